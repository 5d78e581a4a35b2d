//! Relay cursor connections over the REST searches (CONTRACT §7): a connection's `filter`
//! takes its resource's REST search parameters, under the same names and with the same string
//! values, and runs the very search REST runs — the same parameter checks, consent filter,
//! refusal of hidden fields, and allowed programs.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, InputObject, OutputType, SimpleObject};
use openspp_projections::search::Page;

use crate::api::params::{Params, MAX_COUNT};
use crate::auth::Action;
use crate::graphql::context::{bad_argument, call, gql, open};
use crate::graphql::loaders::{Loaders, Prime};
use crate::graphql::nodes::{render, Shared, Unseen};
use crate::resource::Searchable;

/// The page size when `first` is not given.
pub const DEFAULT_FIRST: i32 = 20;

#[derive(SimpleObject)]
pub struct Total {
    /// How many match in all (what the caller may see of them).
    pub total_count: i64,
}

/// A connection's edges carry their position in the result as an opaque cursor.
pub type Cursor = OpaqueCursor<i64>;

/// Search parameters as `(name, value)` pairs, as a query string gives them.
pub trait Parameters {
    fn pairs(self) -> Vec<(String, String)>;
}

fn push(pairs: &mut Vec<(String, String)>, name: &str, value: Option<String>) {
    if let Some(value) = value {
        pairs.push((name.to_owned(), value));
    }
}

fn push_all(pairs: &mut Vec<(String, String)>, name: &str, values: Option<Vec<String>>) {
    for value in values.unwrap_or_default() {
        pairs.push((name.to_owned(), value));
    }
}

/// `GET /Individual`'s parameters.
#[derive(InputObject, Default)]
pub struct IndividualFilter {
    pub identifier: Option<String>,
    pub name: Option<String>,
    /// With a prefix `eq ne gt lt ge le`; a list is ANDed.
    pub birthdate: Option<Vec<String>>,
    /// ISO 5218 code, or `system|code`.
    pub gender: Option<String>,
    pub address: Option<String>,
    pub active: Option<String>,
    #[graphql(name = "_lastUpdated")]
    pub last_updated: Option<Vec<String>>,
    #[graphql(name = "_sort")]
    pub sort: Option<String>,
}

impl Parameters for IndividualFilter {
    fn pairs(self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        push(&mut pairs, "identifier", self.identifier);
        push(&mut pairs, "name", self.name);
        push_all(&mut pairs, "birthdate", self.birthdate);
        push(&mut pairs, "gender", self.gender);
        push(&mut pairs, "address", self.address);
        push(&mut pairs, "active", self.active);
        push_all(&mut pairs, "_lastUpdated", self.last_updated);
        push(&mut pairs, "_sort", self.sort);
        pairs
    }
}

/// `GET /Group`'s parameters.
#[derive(InputObject, Default)]
pub struct GroupFilter {
    pub identifier: Option<String>,
    pub name: Option<String>,
    pub group_type: Option<String>,
    pub active: Option<String>,
    #[graphql(name = "_lastUpdated")]
    pub last_updated: Option<Vec<String>>,
    #[graphql(name = "_sort")]
    pub sort: Option<String>,
}

impl Parameters for GroupFilter {
    fn pairs(self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        push(&mut pairs, "identifier", self.identifier);
        push(&mut pairs, "name", self.name);
        push(&mut pairs, "groupType", self.group_type);
        push(&mut pairs, "active", self.active);
        push_all(&mut pairs, "_lastUpdated", self.last_updated);
        push(&mut pairs, "_sort", self.sort);
        pairs
    }
}

/// `GET /Program`'s parameters.
#[derive(InputObject, Default)]
pub struct ProgramFilter {
    pub name: Option<String>,
    pub status: Option<String>,
    pub target_type: Option<String>,
    #[graphql(name = "_lastUpdated")]
    pub last_updated: Option<Vec<String>>,
    #[graphql(name = "_sort")]
    pub sort: Option<String>,
}

impl Parameters for ProgramFilter {
    fn pairs(self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        push(&mut pairs, "name", self.name);
        push(&mut pairs, "status", self.status);
        push(&mut pairs, "targetType", self.target_type);
        push_all(&mut pairs, "_lastUpdated", self.last_updated);
        push(&mut pairs, "_sort", self.sort);
        pairs
    }
}

/// `GET /ProgramMembership`'s parameters (`program` and `beneficiary` as `system|value` or
/// `Program/…`, `Individual/…`, `Group/…`).
#[derive(InputObject, Default)]
pub struct MembershipFilter {
    pub program: Option<String>,
    pub beneficiary: Option<String>,
    pub status: Option<String>,
    #[graphql(name = "_lastUpdated")]
    pub last_updated: Option<Vec<String>>,
    #[graphql(name = "_sort")]
    pub sort: Option<String>,
}

impl Parameters for MembershipFilter {
    fn pairs(self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        push(&mut pairs, "program", self.program);
        push(&mut pairs, "beneficiary", self.beneficiary);
        push(&mut pairs, "status", self.status);
        push_all(&mut pairs, "_lastUpdated", self.last_updated);
        push(&mut pairs, "_sort", self.sort);
        pairs
    }
}

/// `first` (1 to 100) and `after` as a page of the search.
fn page(first: Option<i32>, after: Option<String>) -> async_graphql::Result<Page> {
    let count = i64::from(first.unwrap_or(DEFAULT_FIRST));
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(bad_argument(
            "first",
            &format!("must be a whole number from 1 to {MAX_COUNT}"),
        ));
    }
    let offset = match after {
        None => 0,
        Some(cursor) => {
            let position = Cursor::decode_cursor(&cursor)
                .map_err(|_| bad_argument("after", "is not a cursor this server gave"))?;
            position
                .0
                .checked_add(1)
                .filter(|p| *p > 0)
                .ok_or_else(|| bad_argument("after", "is not a cursor this server gave"))?
        }
    };
    Ok(Page::new(count, offset))
}

use async_graphql::connection::CursorType;

/// One page of `R`'s REST search with `filter` as its parameters, each node wrapped as its
/// GraphQL object.
pub async fn search<R, F, N>(
    ctx: &Context<'_>,
    first: Option<i32>,
    after: Option<String>,
    filter: Option<F>,
    wrap: impl Fn(Shared<R>) -> N,
) -> async_graphql::Result<Connection<Cursor, N, Total>>
where
    R: Searchable + Prime,
    F: Parameters + Default,
    N: OutputType,
{
    let call = call(ctx);
    open(call, R::SCOPE, Action::Search)?;
    let page = page(first, after)?;
    let mut params = Params::new(filter.unwrap_or_default().pairs());
    let query = R::query(call, &mut params).await.map_err(gql)?;
    params.finish().map_err(gql)?;
    let found = R::find(call, &query, page).await.map_err(gql)?;
    let total = found.total;
    let nodes = render(call, found.rows, Unseen::Identity)
        .await
        .map_err(gql)?;
    let ahead = ctx.look_ahead();
    R::prime(
        ctx.data_unchecked::<Loaders>(),
        ahead.field("edges").field("node"),
        &nodes,
    )
    .await?;
    let has_next = page.offset + (nodes.len() as i64) < total;
    let mut connection =
        Connection::with_additional_fields(page.offset > 0, has_next, Total { total_count: total });
    connection.edges.extend(
        nodes
            .into_iter()
            .enumerate()
            .map(|(i, node)| Edge::new(OpaqueCursor(page.offset + i as i64), wrap(node.into()))),
    );
    Ok(connection)
}
