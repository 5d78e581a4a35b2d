//! The ServicePoint resource as the API reads and writes it (OpenSPP
//! `spp_api_v2_service_points` `schemas/service_point.py`, whose discriminator is
//! `resourceType`). A body written is the read shape.

use openspp_aggregates::service_point::{ServicePoint, ServicePointDetails, SERVICE_TYPES};
use openspp_projections::view::ViewRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::entitlement::named;
use crate::api::reference::identifier_is_name;
use crate::api::schema::{Meta, Reference};
use crate::error::ApiError;
use crate::vocabulary::Vocabularies;

pub const RESOURCE: &str = "ServicePoint";

/// Where beneficiaries collect cash or goods.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicePointResource {
    #[serde(default = "resource_type")]
    pub resource_type: String,
    /// The name, which is its identifier (read only; if sent, it must be the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// Unique: `ServicePoint/{name}` names one service point; it never changes.
    pub name: String,
    #[serde(default)]
    pub contract_active: bool,
    #[serde(default)]
    pub disabled: bool,
    /// ISO 3166-1 alpha-2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// `Area/{name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<PlainAddress>,
    /// At most one phone number (`system` `phone`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 1)]
    pub telecom: Vec<Phone>,
    /// `Organization/{name}` of the operating company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<Reference>,
    /// The services offered, by display (as read) or code of `urn:openspp:vocab:service-types`.
    #[serde(default)]
    #[schema(max_items = 10)]
    pub service_type: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlainAddress {
    pub text: String,
    /// `physical`.
    #[serde(rename = "type", default = "physical")]
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Phone {
    /// `phone`.
    pub system: String,
    pub value: String,
    /// `work`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

fn resource_type() -> String {
    RESOURCE.to_owned()
}

fn physical() -> String {
    "physical".to_owned()
}

impl ServicePointResource {
    pub fn into_details(self, vocabulary: &Vocabularies) -> Result<ServicePointDetails, ApiError> {
        if self.resource_type != RESOURCE {
            return Err(ApiError::unprocessable(
                "resourceType",
                "must be ServicePoint",
            ));
        }
        identifier_is_name(self.identifier.as_deref(), &self.name, "service point")?;
        let phone = match self.telecom.as_slice() {
            [] => None,
            [phone] if phone.system == "phone" => Some(phone.value.clone()),
            _ => {
                return Err(ApiError::unprocessable(
                    "telecom",
                    "holds at most one phone number",
                ))
            }
        };
        let catalog = vocabulary.catalog();
        let codes = catalog.vocabulary(SERVICE_TYPES);
        // A read shows displays; a code or a display names the same service type.
        let service_types = self
            .service_type
            .iter()
            .map(|given| {
                codes
                    .and_then(|v| {
                        v.codes
                            .iter()
                            .find(|c| c.definition.code == *given || c.definition.display == *given)
                    })
                    .map_or_else(|| given.clone(), |c| c.definition.code.clone())
            })
            .collect();
        Ok(ServicePointDetails {
            name: self.name,
            contract_active: self.contract_active,
            disabled: self.disabled,
            country: self.country,
            area: self.area.map(|r| named(&r, "Area", "area")).transpose()?,
            address: self.address.map(|a| a.text),
            phone,
            company: self
                .company
                .map(|r| named(&r, "Organization", "company"))
                .transpose()?,
            service_types,
        })
    }

    pub fn render(row: &ViewRow<ServicePoint>, vocabulary: &Vocabularies) -> Self {
        let details = &row.state.details;
        let reference = |resource: &str, name: &Option<String>| {
            name.as_ref().map(|name| Reference {
                reference: format!("{resource}/{name}"),
                display: None,
            })
        };
        Self {
            resource_type: resource_type(),
            identifier: Some(details.name.clone()),
            name: details.name.clone(),
            contract_active: details.contract_active,
            disabled: details.disabled,
            country: details.country.clone(),
            area: reference("Area", &details.area),
            address: details.address.as_ref().map(|text| PlainAddress {
                text: text.clone(),
                kind: physical(),
            }),
            telecom: details
                .phone
                .iter()
                .map(|value| Phone {
                    system: "phone".to_owned(),
                    value: value.clone(),
                    use_: Some("work".to_owned()),
                })
                .collect(),
            company: reference("Organization", &details.company),
            service_type: details
                .service_types
                .iter()
                .map(|code| {
                    vocabulary
                        .display(SERVICE_TYPES, code)
                        .unwrap_or_else(|| code.clone())
                })
                .collect(),
            meta: Some(Meta::new(row.version, row.last_updated, row.source.clone())),
        }
    }
}
