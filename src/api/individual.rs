//! The Individual resource as the API reads and writes it (OpenSPP `schemas/individual.py`), and
//! its conversions to and from the domain.

use openspp_aggregates::bounds::items;
use openspp_aggregates::vocabulary::GROUP_MEMBERSHIP_TYPE;
use openspp_aggregates::{Date, Individual, IndividualDetails};
use openspp_projections::individual::GroupMembershipRow;
use openspp_projections::view::ViewRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::schema::{
    active_by_default, at_most, Address, CodeableConcept, ContactPoint, HumanName, Identifier,
    Meta, Period, Reference,
};
use crate::error::ApiError;
use crate::vocabulary::Vocabularies;

const RESOURCE: &str = "Individual";

/// A person in the registry (OpenSPP `schemas/individual.py`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IndividualResource {
    /// Always `Individual`.
    #[serde(rename = "type", default = "resource_type")]
    pub resource_type: String,
    /// External identifiers; at least one, at most one per system.
    #[serde(deserialize_with = "at_most::<_, _, { items::IDENTIFIERS }>")]
    #[schema(max_items = 20)]
    pub identifier: Vec<Identifier>,
    #[serde(default = "active_by_default")]
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<HumanName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub birth_date: Option<Date>,
    #[serde(default)]
    pub birth_date_estimated: bool,
    /// ISO 5218 (`urn:iso:std:iso:5218`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<CodeableConcept>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most::<_, _, { items::TELECOM }>"
    )]
    #[schema(max_items = 20)]
    pub telecom: Vec<ContactPoint>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most::<_, _, { items::ADDRESSES }>"
    )]
    #[schema(max_items = 10)]
    pub address: Vec<Address>,
    /// Current group memberships (read only).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most::<_, _, { items::GROUPS }>"
    )]
    #[schema(max_items = 100)]
    pub group_membership: Vec<GroupMembershipRef>,
    /// OpenSPP's `photo`: an image as base64 text (RFC 4648), stored and returned as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 262144, format = Byte)]
    pub photo: Option<String>,
    /// Registered extension data, by extension URI or short key (`{"farmer": {"farm_size":
    /// 3}}`). Reads show it only when asked (`_extensions`), each extension under its short key
    /// with its `url` (OpenSPP's shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
}

/// A group this individual belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupMembershipRef {
    pub group: Reference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<CodeableConcept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
}

/// Group roles as codes of the group-membership-type vocabulary.
pub fn role_codes(roles: &[String]) -> Vec<openspp_aggregates::Code> {
    roles
        .iter()
        .map(|code| openspp_aggregates::Code {
            system: GROUP_MEMBERSHIP_TYPE.to_owned(),
            code: code.clone(),
        })
        .collect()
}

fn resource_type() -> String {
    RESOURCE.to_owned()
}

/// A photo as base64 text (the standard alphabet, padded), bounded before it is decoded;
/// 422 naming `photo` otherwise. Stored as sent: the registry keeps the image, not a copy of it.
fn checked_photo(photo: String) -> Result<String, ApiError> {
    use base64::Engine;
    if photo.len() > openspp_aggregates::bounds::PHOTO {
        return Err(ApiError::unprocessable(
            "photo",
            format!(
                "must be at most {} characters of base64",
                openspp_aggregates::bounds::PHOTO
            ),
        ));
    }
    base64::engine::general_purpose::STANDARD
        .decode(&photo)
        .map_err(|_| ApiError::unprocessable("photo", "must be an image as base64 text"))?;
    Ok(photo)
}

impl IndividualResource {
    pub fn into_details(self) -> Result<IndividualDetails, ApiError> {
        if self.resource_type != RESOURCE {
            return Err(ApiError::unprocessable("type", "must be Individual"));
        }
        Ok(IndividualDetails {
            identifiers: self.identifier.into_iter().map(Into::into).collect(),
            active: self.active,
            name: self.name.map(Into::into).unwrap_or_default(),
            birth_date: self.birth_date.map(Date::get),
            birth_date_estimated: self.birth_date_estimated,
            gender: self.gender.map(|g| g.single("gender")).transpose()?,
            telecom: self.telecom.into_iter().map(Into::into).collect(),
            address: self.address.into_iter().map(Into::into).collect(),
            photo: self.photo.map(checked_photo).transpose()?,
            extension: self.extension,
        })
    }

    /// `extension` is the extension data as the request asked to see it (`_extensions`).
    pub fn render(
        row: &ViewRow<Individual>,
        memberships: &[GroupMembershipRow],
        vocabulary: &Vocabularies,
        extension: Option<serde_json::Value>,
    ) -> Self {
        let state = &row.state;
        Self {
            resource_type: resource_type(),
            identifier: state.live_identifiers().map(Into::into).collect(),
            active: state.active,
            name: Some((&state.name).into()),
            birth_date: state.birth_date.map(Date::stored),
            birth_date_estimated: state.birth_date_estimated,
            gender: state
                .gender
                .as_ref()
                .map(|g| CodeableConcept::from_codes([g], vocabulary)),
            telecom: state.telecom.iter().map(Into::into).collect(),
            address: state.address.iter().map(Into::into).collect(),
            group_membership: memberships
                .iter()
                .map(|m| GroupMembershipRef {
                    group: Reference {
                        reference: format!("Group/{}", m.group_identifier),
                        display: None,
                    },
                    role: (!m.roles.is_empty())
                        .then(|| CodeableConcept::from_codes(&role_codes(&m.roles), vocabulary)),
                    period: Some(Period::stored(Some(m.start_date), None)),
                })
                .collect(),
            photo: state.photo.clone(),
            extension,
            meta: Some(Meta::new(row.version, row.last_updated, row.source.clone())),
        }
    }
}

impl crate::api::stated::ExtendedBody for IndividualResource {
    fn extension(&self) -> Option<&serde_json::Value> {
        self.extension.as_ref()
    }
}
