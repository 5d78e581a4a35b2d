//! The Program resource as the API reads and writes it (OpenSPP `schemas/program.py`, with
//! `currency` and `status` added), and its conversions to and from the domain.

use openspp_aggregates::bounds::items;
use openspp_aggregates::TargetType;
use openspp_aggregates::{Program, ProgramDetails, ProgramStatus};
use openspp_projections::view::ViewRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::schema::{at_most, CodeableConcept, Identifier, Meta, Period};
use crate::error::ApiError;
use crate::vocabulary::Vocabularies;

pub const RESOURCE: &str = "Program";

/// A program (OpenSPP `schemas/program.py`, with `currency` and `status` added).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProgramResource {
    #[serde(rename = "type", default = "resource_type")]
    pub resource_type: String,
    /// The operator's identifiers; `urn:openspp:program|{name-with-hyphens}` is always added.
    #[serde(default, deserialize_with = "at_most::<_, _, { items::IDENTIFIERS }>")]
    #[schema(max_items = 20)]
    pub identifier: Vec<Identifier>,
    /// True while the program is active (read only; use `status`; if sent, it must agree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `urn:openspp:vocab:program-type`; `social-protection` (OpenSPP's default) when not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_type: Option<CodeableConcept>,
    /// `individual` or `group`.
    pub target_type: String,
    /// ISO 4217 currency of the program's benefits.
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligibility_criteria: Option<String>,
    /// `end` only on an ended program: when it ended (today if not sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// `active`, `ended` or `archived`.
    #[serde(default = "active_status")]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
}

fn resource_type() -> String {
    RESOURCE.to_owned()
}

fn active_status() -> String {
    "active".to_owned()
}

impl ProgramResource {
    pub fn into_details(self) -> Result<ProgramDetails, ApiError> {
        if self.resource_type != RESOURCE {
            return Err(ApiError::unprocessable("type", "must be Program"));
        }
        let target_type = TargetType::parse(&self.target_type)
            .ok_or_else(|| ApiError::unprocessable("targetType", TargetType::expected()))?;
        let status = ProgramStatus::parse(&self.status)
            .ok_or_else(|| ApiError::unprocessable("status", ProgramStatus::expected()))?;
        if self
            .active
            .is_some_and(|active| active != (status == ProgramStatus::Active))
        {
            return Err(ApiError::unprocessable(
                "active",
                "is read only and must agree with status",
            ));
        }
        let period = self.period.unwrap_or_default();
        Ok(ProgramDetails {
            identifiers: self.identifier.into_iter().map(Into::into).collect(),
            name: self.name,
            description: self.description,
            program_type: self
                .program_type
                .map(|c| c.single("programType"))
                .transpose()?,
            target_type,
            currency: self.currency,
            eligibility_criteria: self.eligibility_criteria,
            start_date: period.start(),
            end_date: period.end(),
            status,
        })
    }

    pub fn render(row: &ViewRow<Program>, vocabulary: &Vocabularies) -> Self {
        let state = &row.state;
        Self {
            resource_type: resource_type(),
            identifier: state.live_identifiers().map(Into::into).collect(),
            active: Some(state.is_active()),
            name: state.name.clone(),
            description: state.description.clone(),
            program_type: Some(CodeableConcept::from_codes(
                [&state.program_type()],
                vocabulary,
            )),
            target_type: state.serves().as_str().to_owned(),
            currency: state.currency.clone(),
            eligibility_criteria: state.eligibility_criteria.clone(),
            period: (state.start_date.is_some() || state.end_date.is_some())
                .then_some(Period::stored(state.start_date, state.end_date)),
            status: state
                .status
                .unwrap_or(ProgramStatus::Active)
                .as_str()
                .to_owned(),
            meta: Some(Meta::new(row.version, row.last_updated, row.source.clone())),
        }
    }
}
