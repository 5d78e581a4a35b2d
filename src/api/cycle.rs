//! The Cycle resource as the API reads and writes it (OpenSPP `spp_api_v2_cycles`
//! `schemas/cycle.py`). A body written is the read shape: what the server derives
//! (`sequence` once known, approval, statistics, neighbours, `meta`) may be sent back and is
//! ignored, or must agree where it says what the cycle is.

use openspp_aggregates::cycle::CycleDetails;
use openspp_aggregates::{Cycle, CycleState, Date};
use openspp_projections::delivery::CycleStatistics;
use openspp_projections::view::ViewRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::reference::identifier_is_name;
use crate::api::schema::{Meta, Period, Reference};
use crate::error::ApiError;

pub const RESOURCE: &str = "Cycle";

/// One round of a program's delivery.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CycleResource {
    #[serde(rename = "type", default = "resource_type")]
    pub resource_type: String,
    /// The cycle's name, which is its identifier (read only; if sent, it must be the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// Unique across programs: `Cycle/{name}` names one cycle.
    pub name: String,
    /// Its place in the program's sequence: the next one when created (if sent, it must be).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u32>,
    /// `Program/{system}|{value}` (OpenSPP's `Program/{name}` is accepted too).
    pub program: Reference,
    /// `start` and `end` are both required; a cycle starts after the previous one ends.
    pub period: Period,
    /// `draft`, `to_approve`, `approved`, `distributed`, `cancelled` or `ended`; a new cycle is
    /// `draft`; a PUT with another state moves it (impossible moves are 409).
    #[serde(default = "draft")]
    pub state: String,
    /// When the cycle was approved (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub approved_date: Option<Date>,
    /// The client that approved it (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// Read only: kept as the cycle's entitlements change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<CycleStatisticsBody>,
    /// `Cycle/{name}` of the cycle this one follows (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_cycle: Option<Reference>,
    /// `Cycle/{name}` of the cycle that follows this one (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cycle: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
}

/// OpenSPP's cycle statistics: members (beneficiaries with an entitlement in the cycle), cash
/// entitlements, entitlements paid, and the cash total (only when not zero) in `currency`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CycleStatisticsBody {
    #[serde(default)]
    pub members_count: i64,
    #[serde(default)]
    pub entitlements_count: i64,
    #[serde(default)]
    pub payments_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_amount: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

fn resource_type() -> String {
    RESOURCE.to_owned()
}

fn draft() -> String {
    "draft".to_owned()
}

/// A reference to a cycle by name.
pub fn cycle_reference(name: &str) -> Reference {
    Reference {
        reference: format!("{RESOURCE}/{name}"),
        display: None,
    }
}

/// What rendering a cycle needs beyond its state.
pub struct CycleLinks<'a> {
    /// `system|value` of its program.
    pub program: Option<&'a str>,
    pub currency: Option<&'a str>,
    pub statistics: CycleStatistics,
    pub next: Option<&'a str>,
}

impl CycleResource {
    pub fn into_details(self) -> Result<CycleDetails, ApiError> {
        if self.resource_type != RESOURCE {
            return Err(ApiError::unprocessable("type", "must be Cycle"));
        }
        identifier_is_name(self.identifier.as_deref(), &self.name, "cycle")?;
        let state = CycleState::parse(&self.state)
            .ok_or_else(|| ApiError::unprocessable("state", CycleState::expected()))?;
        let start_date = self
            .period
            .start()
            .ok_or_else(|| ApiError::unprocessable("period.start", "is required"))?;
        let end_date = self
            .period
            .end()
            .ok_or_else(|| ApiError::unprocessable("period.end", "is required"))?;
        Ok(CycleDetails {
            name: self.name,
            start_date,
            end_date,
            sequence: self.sequence,
            state,
        })
    }

    pub fn render(row: &ViewRow<Cycle>, links: CycleLinks<'_>) -> Self {
        let state = &row.state;
        let statistics = links.statistics;
        Self {
            resource_type: resource_type(),
            identifier: Some(state.name.clone()),
            name: state.name.clone(),
            sequence: Some(state.sequence),
            program: Reference {
                reference: format!("Program/{}", links.program.unwrap_or_default()),
                display: None,
            },
            period: Period::stored(state.start_date, state.end_date),
            state: state.state.unwrap_or(CycleState::Draft).as_str().to_owned(),
            approved_date: state.approved_date.map(Date::stored),
            approved_by: state.approved_by.clone(),
            statistics: Some(CycleStatisticsBody {
                members_count: statistics.members,
                entitlements_count: statistics.entitlements,
                payments_count: statistics.payments,
                total_amount: (statistics.total_cents != 0)
                    .then(|| statistics.total_cents as f64 / 100.0),
                currency: links.currency.map(str::to_owned),
            }),
            previous_cycle: state.previous.as_deref().map(cycle_reference),
            next_cycle: links.next.map(cycle_reference),
            meta: Some(Meta::new(row.version, row.last_updated, row.source.clone())),
        }
    }
}
