//! Batch loading (no N+1): every link of a page — an individual's groups, a group's members, a
//! membership's beneficiary and program, a registrant's memberships — is gathered by
//! async-graphql's `DataLoader` and fetched for the whole page in one statement per kind, then
//! rendered under grants computed for the whole batch.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::Lookahead;
use openspp_aggregates::{Group, Individual, Program, ProgramMembership};
use openspp_projections::view;
use tracing::Instrument;

use crate::graphql::context::gql;
use crate::graphql::nodes::{render, Linked, Node, Shared, Unseen};
use crate::resource::{Call, Snapshot};

/// Resources of type `R` by stream; a stream the caller may not see has no value.
pub struct Streams<R> {
    call: Arc<Call>,
    resource: PhantomData<fn() -> R>,
}

impl<R: Linked> Loader<String> for Streams<R> {
    type Value = Shared<R>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Shared<R>>, Self::Error> {
        let Some(table) = R::VIEW else {
            return Ok(HashMap::new());
        };
        let rows: Vec<Snapshot<R>> =
            view::rows_where(&self.call.state.pool, table, "aggregate_id", keys)
                .await
                .map_err(|e| gql(e.into()))?;
        let nodes = render(&self.call, rows, Unseen::Drop).await.map_err(gql)?;
        Ok(nodes
            .into_iter()
            .map(|node| (node.snapshot.aggregate_id.clone(), Arc::new(node)))
            .collect())
    }
}

/// The program memberships of each beneficiary (by stream) the caller may see.
pub struct MembershipsOf {
    call: Arc<Call>,
}

impl Loader<String> for MembershipsOf {
    type Value = Arc<Vec<Shared<ProgramMembership>>>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let rows: Vec<Snapshot<ProgramMembership>> = view::rows_where(
            &self.call.state.pool,
            "membership_view",
            "beneficiary_id",
            keys,
        )
        .await
        .map_err(|e| gql(e.into()))?;
        let nodes = render(&self.call, rows, Unseen::Drop).await.map_err(gql)?;
        let mut by_beneficiary: HashMap<String, Vec<Shared<ProgramMembership>>> = HashMap::new();
        for node in nodes {
            by_beneficiary
                .entry(node.snapshot.state.beneficiary.clone())
                .or_default()
                .push(Arc::new(node));
        }
        Ok(by_beneficiary
            .into_iter()
            .map(|(beneficiary, mut nodes)| {
                nodes.sort_by_key(|n| std::cmp::Reverse(n.snapshot.last_updated));
                (beneficiary, Arc::new(nodes))
            })
            .collect())
    }
}

/// The request's loaders, put in the query's data next to its call.
pub struct Loaders {
    pub individuals: DataLoader<Streams<Individual>, HashMapCache>,
    pub groups: DataLoader<Streams<Group>, HashMapCache>,
    pub programs: DataLoader<Streams<Program>, HashMapCache>,
    pub memberships_of: DataLoader<MembershipsOf, HashMapCache>,
}

/// Runs a batch in the span of the request that asked for it, so that its statements are
/// logged (and counted) with the request's.
fn spawn_in_span(
    batch: futures_util::future::BoxFuture<'static, ()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(batch.instrument(tracing::Span::current()))
}

/// The request's loaders keep what they loaded (one request, one rendering of each subject), so
/// a connection can load every link of its page in one batch up front (see `prime`) and the
/// fields then read from that, whatever order and timing async-graphql resolves them in.
fn streams<R: Linked>(call: &Arc<Call>) -> DataLoader<Streams<R>, HashMapCache> {
    DataLoader::with_cache(
        Streams {
            call: call.clone(),
            resource: PhantomData,
        },
        spawn_in_span,
        HashMapCache::default(),
    )
}

impl Loaders {
    pub fn new(call: &Arc<Call>) -> Self {
        Self {
            individuals: streams(call),
            groups: streams(call),
            programs: streams(call),
            memberships_of: DataLoader::with_cache(
                MembershipsOf { call: call.clone() },
                spawn_in_span,
                HashMapCache::default(),
            ),
        }
    }
}

/// A resource whose connections load the links of a page up front.
pub trait Prime: Linked {
    /// Loads the links of a connection's page that the query asks for (`node`: what it asks
    /// of each node), one batch per kind, into the request's loaders, so that a page costs the
    /// same statements for 10 nodes as for 100 however its fields are scheduled.
    fn prime<'a>(
        _loaders: &'a Loaders,
        _node: Lookahead<'a>,
        _nodes: &'a [Node<Self>],
    ) -> impl Future<Output = async_graphql::Result<()>> + Send + 'a {
        async { Ok(()) }
    }
}

/// The streams the nodes' renderings name (an individual's groups, a group's members).
fn mentioned<R>(nodes: &[Node<R>]) -> Vec<String> {
    let mut streams: Vec<String> = nodes
        .iter()
        .flat_map(|n| n.mentioned.iter().map(|(_, stream)| stream.clone()))
        .collect();
    streams.sort();
    streams.dedup();
    streams
}

/// Loads the program memberships of the nodes when the query asks for them.
async fn prime_memberships<R>(
    loaders: &Loaders,
    node: &Lookahead<'_>,
    nodes: &[Node<R>],
) -> async_graphql::Result<()> {
    if node.field("memberships").exists() {
        let ids = nodes.iter().map(|n| n.snapshot.aggregate_id.clone());
        loaders.memberships_of.load_many(ids).await?;
    }
    Ok(())
}

impl Prime for Individual {
    async fn prime(
        loaders: &Loaders,
        node: Lookahead<'_>,
        nodes: &[Node<Self>],
    ) -> async_graphql::Result<()> {
        if node.field("groups").exists() {
            loaders.groups.load_many(mentioned(nodes)).await?;
        }
        prime_memberships(loaders, &node, nodes).await
    }
}

impl Prime for Group {
    async fn prime(
        loaders: &Loaders,
        node: Lookahead<'_>,
        nodes: &[Node<Self>],
    ) -> async_graphql::Result<()> {
        if node.field("members").field("individual").exists() {
            loaders.individuals.load_many(mentioned(nodes)).await?;
        }
        prime_memberships(loaders, &node, nodes).await
    }
}
impl Prime for ProgramMembership {}
impl Prime for Program {}
