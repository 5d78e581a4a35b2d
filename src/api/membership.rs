//! The ProgramMembership resource as the API reads and writes it (OpenSPP
//! `schemas/program_membership.py`), and its conversions to and from the domain.

use std::collections::HashMap;

use openspp_aggregates::program_membership::ExitReason;
use openspp_aggregates::TargetType;
use openspp_aggregates::{Date, MembershipStatus, ProgramMembership};
use openspp_projections::view::ViewRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::schema::{CodeableConcept, Identifier, Meta, Reference};
use crate::error::ApiError;
use crate::vocabulary::Vocabularies;

const RESOURCE: &str = "ProgramMembership";

/// A beneficiary's membership of a program (OpenSPP `schemas/program_membership.py`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MembershipResource {
    #[serde(rename = "type", default = "resource_type")]
    pub resource_type: String,
    /// At most one, in `urn:openspp:program-membership`: chosen by the client, or minted when
    /// none is given on enrolment. It never changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 1)]
    pub identifier: Vec<Identifier>,
    /// `Program/{system}|{value}`.
    pub program: Reference,
    /// `Individual/…` or `Group/…`, as the program's target type says.
    pub beneficiary: Reference,
    /// `draft`, `enrolled`, `paused`, `exited`, `not_eligible` or `duplicated`.
    #[serde(default = "draft")]
    pub status: String,
    /// Set by the first enrolment (today unless given) and never changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub enrollment_date: Option<Date>,
    /// Given with the change to `exited`, not before the enrolment date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub exit_date: Option<Date>,
    /// Given with the change to `exited`: a code of `urn:openspp:vocab:exit-reason`, a text,
    /// or both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_reason: Option<CodeableConcept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
}

fn resource_type() -> String {
    RESOURCE.to_owned()
}

fn draft() -> String {
    "draft".to_owned()
}

/// `Individual/…` or `Group/…`: the kind of beneficiary, its resource name and the identifier.
pub fn split_beneficiary(reference: &str) -> Option<(TargetType, &'static str, &str)> {
    let (name, rest) = reference.split_once('/')?;
    let kind = TargetType::of_resource(name)?;
    Some((kind, kind.resource(), rest))
}

pub fn render(
    row: &ViewRow<ProgramMembership>,
    references: &HashMap<String, String>,
    vocabulary: &Vocabularies,
) -> MembershipResource {
    let state = &row.state;
    let reference = |prefix: &str, stream: &str| Reference {
        reference: format!(
            "{prefix}/{}",
            references.get(stream).cloned().unwrap_or_default()
        ),
        display: None,
    };
    MembershipResource {
        resource_type: resource_type(),
        identifier: state.identifier.iter().map(Into::into).collect(),
        program: reference("Program", &state.program),
        beneficiary: reference(state.beneficiary_kind().resource(), &state.beneficiary),
        status: state.status.map_or("draft", |s| s.as_str()).to_owned(),
        enrollment_date: state.enrollment_date.map(Date::stored),
        exit_date: state.exit_date.map(Date::stored),
        exit_reason: (state.exit_reason.is_some() || state.exit_reason_text.is_some()).then(|| {
            CodeableConcept {
                text: state.exit_reason_text.clone(),
                ..CodeableConcept::from_codes(&state.exit_reason, vocabulary)
            }
        }),
        meta: Some(Meta::new(row.version, row.last_updated, row.source.clone())),
    }
}

pub fn parse_status(text: &str) -> Result<MembershipStatus, ApiError> {
    MembershipStatus::parse(text)
        .ok_or_else(|| ApiError::unprocessable("status", MembershipStatus::expected()))
}

pub fn exit_reason(concept: Option<CodeableConcept>) -> Result<Option<ExitReason>, ApiError> {
    concept
        .map(|concept| match concept.codes().as_slice() {
            [_, _, ..] => Err(ApiError::unprocessable(
                "exitReason",
                "must have at most one coding",
            )),
            codes => Ok(ExitReason {
                code: codes.first().cloned(),
                text: concept.text,
            }),
        })
        .transpose()
}
