//! OpenSPP's aggregation shapes (`spp_api_v2_simulation`: `ComputeAggregationRequest`,
//! `AggregationResponse`, `DimensionsListResponse`), snake_case as there. What goes beyond
//! OpenSPP is marked so: the scope's `program`, `gender` and `membership_status`, each cell's
//! `values` and `suppressed`, and `min_cell_size`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which registrants are counted: groups (OpenSPP's default) or individuals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetType {
    #[default]
    Group,
    Individual,
}

/// Which registrants are counted.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregationScope {
    #[serde(default)]
    pub target_type: TargetType,
    /// Not supported here: a request with one is refused (400) rather than answered for a
    /// population it did not ask about.
    #[serde(default)]
    pub cel_expression: Option<String>,
    /// Not supported here (areas are not recorded): refused when given.
    #[serde(default)]
    pub area_id: Option<i64>,
    /// **Beyond OpenSPP**: `system|value` of a program: count its memberships.
    #[serde(default)]
    pub program: Option<String>,
    /// **Beyond OpenSPP**: an ISO 5218 code.
    #[serde(default)]
    pub gender: Option<String>,
    /// **Beyond OpenSPP**: memberships in this status (`enrolled`, …).
    #[serde(default)]
    pub membership_status: Option<String>,
}

/// `POST /aggregation/compute`'s body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComputeAggregationRequest {
    pub scope: AggregationScope,
    /// Statistics to compute: `count`. None: none (OpenSPP's default).
    #[serde(default)]
    pub statistics: Option<Vec<String>>,
    /// Dimension names (`GET /aggregation/dimensions`), at most three.
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
}

/// One statistic's value; `null` when suppressed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatisticValue {
    pub value: Option<i64>,
    pub suppressed: bool,
}

/// One cell of the breakdown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BreakdownCell {
    /// `null` when suppressed (below the minimum cell size, or hidden so that a suppressed
    /// cell cannot be recovered from a margin or the total).
    pub count: Option<i64>,
    /// **Beyond OpenSPP**.
    pub suppressed: bool,
    /// **Beyond OpenSPP**: the cell's value of each `group_by` dimension, by name.
    pub values: BTreeMap<String, String>,
    /// The requested statistics within the cell.
    pub statistics: BTreeMap<String, StatisticValue>,
}

/// `POST /aggregation/compute`'s answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AggregationResponse {
    /// Registrants (or memberships) in scope; `null` when below the minimum cell size.
    pub total_count: Option<i64>,
    pub statistics: BTreeMap<String, StatisticValue>,
    /// By the `group_by` values joined with `|`, in `group_by` order; `null` without
    /// `group_by`.
    pub breakdown: Option<BTreeMap<String, BreakdownCell>>,
    /// Always `false`: every answer is counted from the read models as they are.
    pub from_cache: bool,
    /// RFC 3339.
    pub computed_at: String,
    /// Always `aggregate`: no answer here names a registrant.
    pub access_level: String,
    /// **Beyond OpenSPP**: the smallest count shown (`OPENSPP_MIN_CELL_SIZE`).
    pub min_cell_size: i64,
}

/// A dimension `group_by` may name.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DimensionInfo {
    pub name: String,
    pub label: String,
    pub description: Option<String>,
    /// `field`.
    pub dimension_type: String,
    /// `all`, `individuals` or `groups`.
    pub applies_to: String,
    /// Labels of the values a cell may have, where they form a fixed list.
    pub value_labels: Option<BTreeMap<String, String>>,
}

/// `GET /aggregation/dimensions`'s answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DimensionsListResponse {
    pub dimensions: Vec<DimensionInfo>,
}
