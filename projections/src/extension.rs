//! Searching registrants by their extension data (CONTRACT §8): a filter on one property an
//! extension's schema marks searchable, answered by containment on `state -> 'extension'`,
//! which one GIN index per view serves (migration 0080) whatever extensions are registered.

use openspp_aggregates::consent::extension_field;
use serde_json::{json, Value};
use sqlx::{Postgres, QueryBuilder};

/// `extension.<key>.<property>=<value>`: the registrants whose data for the extension `uri`
/// holds `value` at `property` (for a list property: among its entries).
#[derive(Debug, Clone, PartialEq)]
pub struct ExtensionFilter {
    /// The search parameter as the request named it, for error messages and the field filter.
    pub parameter: String,
    pub uri: String,
    pub property: String,
    /// The JSON the stored property must contain: a scalar, or a one-entry list for a list.
    pub value: Value,
}

impl ExtensionFilter {
    /// The field a consent or a client's field filter must show for this filter to apply.
    pub fn field(&self) -> String {
        extension_field(&self.uri)
    }

    /// `AND (state -> 'extension') @> {uri: {property: value}}`, the expression the index holds.
    pub(crate) fn push(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        let contained = json!({ &self.uri: { &self.property: &self.value } });
        qb.push(" AND (state -> 'extension') @> ")
            .push_bind(contained);
    }
}
