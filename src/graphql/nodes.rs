//! Resources as GraphQL serves them: rendered exactly as REST renders them, filtered by the
//! caller's grant, with the other subjects the rendering names (for the links), and written to
//! the request's access-log entry as returned.

use std::collections::HashMap;
use std::sync::Arc;

use openspp_aggregates::{Group, Individual, Program, ProgramMembership};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;
use crate::resource::{note_returned, shown, Call, Grant, Resource, Snapshot};

/// One resource as the caller may see it.
pub struct Node<R> {
    /// The REST rendering after the grant's filter: a field the caller may not see is absent.
    pub body: Value,
    /// Other subjects the rendering names, as `(reference, stream)`, only those the grant
    /// shows (an individual's groups, a group's members, a membership's beneficiary).
    pub mentioned: Vec<(String, String)>,
    /// What the caller may see of it; `None`: its identity only.
    pub grant: Option<Grant>,
    pub snapshot: Snapshot<R>,
}

impl<R> Node<R> {
    /// Whether the caller may see `field` (a link is hidden with the field it comes from).
    pub fn allows(&self, field: &str) -> bool {
        self.grant.as_ref().is_some_and(|grant| grant.allows(field))
    }

    /// A field of the rendering, `None` when the caller may not see it.
    pub fn field<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        self.body
            .get(name)
            .and_then(|value| T::deserialize(value).ok())
    }

    /// The stream of a subject the rendering names by `reference`.
    pub fn stream_of(&self, reference: &str) -> Option<&str> {
        self.mentioned
            .iter()
            .find(|(named, _)| named == reference)
            .map(|(_, stream)| stream.as_str())
    }
}

/// What becomes of a row the caller has no grant for: a search (whose rows are all visible by
/// construction) shows its identity as REST does; a link shows nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unseen {
    Identity,
    Drop,
}

/// A resource GraphQL links to by stream; a resource may narrow which rows a caller may see
/// beyond consent (programs: the client's allowed programs).
pub trait Linked: Resource {
    fn admits(_call: &Call, _row: &Snapshot<Self>) -> bool {
        true
    }
}

impl Linked for Individual {}
impl Linked for Group {}
impl Linked for ProgramMembership {
    fn admits(call: &Call, row: &Snapshot<Self>) -> bool {
        call.principal.uses_program(&row.state.program)
    }
}
impl Linked for Program {
    fn admits(call: &Call, row: &Snapshot<Self>) -> bool {
        call.principal.uses_program(&row.aggregate_id)
    }
}

/// Renders `rows` under the caller's grants (computed for the whole batch at once), and notes
/// each in the access log as returned, with what it was shown under.
pub async fn render<R: Linked>(
    call: &Call,
    rows: Vec<Snapshot<R>>,
    unseen: Unseen,
) -> Result<Vec<Node<R>>, ApiError> {
    let rows: Vec<Snapshot<R>> = rows.into_iter().filter(|r| R::admits(call, r)).collect();
    let refs: Vec<&Snapshot<R>> = rows.iter().collect();
    let grants = R::grants(call, &refs).await?;
    let rows: Vec<Snapshot<R>> = match unseen {
        Unseen::Identity => rows,
        Unseen::Drop => rows
            .into_iter()
            .filter(|r| grants.contains_key(&r.aggregate_id))
            .collect(),
    };
    render_granted(call, rows, &grants).await
}

/// Renders rows whose grants are known (a located subject's, or a batch's).
pub async fn render_granted<R: Resource>(
    call: &Call,
    rows: Vec<Snapshot<R>>,
    grants: &HashMap<String, Grant>,
) -> Result<Vec<Node<R>>, ApiError> {
    let refs: Vec<&Snapshot<R>> = rows.iter().collect();
    let context = R::context(call, &refs).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let grant = grants.get(&row.aggregate_id);
            note_returned(call, &row, grant);
            let rendered =
                serde_json::to_value(R::render(call, &context, &row)).unwrap_or_default();
            Node {
                body: shown(rendered, grant),
                mentioned: grant
                    .map(|g| R::mentioned(&context, &row, g))
                    .unwrap_or_default(),
                grant: grant.cloned(),
                snapshot: row,
            }
        })
        .collect())
}

/// Shares a node between the loaders' caches and the objects that show it.
pub type Shared<R> = Arc<Node<R>>;
