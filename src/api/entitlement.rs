//! The Entitlement resource as the API reads and writes it (OpenSPP `spp_api_v2_entitlements`
//! `schemas/entitlement.py`): cash with `initialAmount` and `balance`, or goods with one item
//! and a service point. A body written is the read shape; what the server derives (`program`,
//! `balance`, `ern`, `approvedDate`, `meta`) may be sent back and is ignored, or must agree.

use openspp_aggregates::bounds::items;
use openspp_aggregates::entitlement::{Benefit, EntitlementDetails, EntitlementKind, Money};
use openspp_aggregates::{Date, Entitlement, EntitlementState};
use openspp_projections::view::ViewRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::cycle::cycle_reference;
use crate::api::schema::{optional_at_most, Meta, Period, Reference};
use crate::error::ApiError;

pub const RESOURCE: &str = "Entitlement";

/// What one beneficiary is entitled to in one cycle.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EntitlementResource {
    #[serde(rename = "type", default = "resource_type")]
    pub resource_type: String,
    /// The entitlement's code, minted on creation (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// `cash` (with `initialAmount`) or `inkind` (with `items`).
    pub entitlement_type: String,
    /// `draft`, `pending_validation`, `approved`, `trans2FSP`, `rdpd2ben`, `rejected1`-`3`,
    /// `cancelled` or `expired`; a new entitlement is `draft`; a PUT with another state moves
    /// it (impossible moves are 409).
    #[serde(default = "draft")]
    pub state: String,
    /// `Individual/{system}|{value}` or `Group/{system}|{value}`, enrolled in the program.
    pub beneficiary: Reference,
    /// The cycle's program (read only; if sent, it must be the cycle's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<Reference>,
    /// `Cycle/{name}`: a draft cycle when the entitlement is created.
    pub cycle: Reference,
    /// From the cycle's start (by default) for a year (by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_period: Option<Period>,
    /// When it was approved (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub approved_date: Option<Date>,
    /// Cash: the amount, in the program's currency, at most two decimals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_amount: Option<MoneyValue>,
    /// Cash: what is left to pay (read only; the initial amount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<MoneyValue>,
    /// Cash: the electronic reference number minted on approval (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ern: Option<String>,
    /// In kind: exactly one item.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_at_most::<_, _, { items::ENTITLEMENT_ITEMS }>"
    )]
    #[schema(max_items = 1)]
    pub items: Option<Vec<Item>>,
    /// In kind: `ServicePoint/{name}` where it is collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_point: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
}

/// An amount and its ISO 4217 currency.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyValue {
    pub value: f64,
    pub currency: String,
}

/// One kind of goods: which product, how much of it, and its unit price.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Item {
    /// `Product/{default code, else name}`.
    pub product: Reference,
    #[serde(default)]
    pub quantity: Quantity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<MoneyValue>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quantity {
    #[serde(default = "one")]
    pub value: f64,
    /// The unit of measure's name.
    #[serde(default = "unit")]
    pub unit: String,
}

impl Default for Quantity {
    fn default() -> Self {
        Self {
            value: one(),
            unit: unit(),
        }
    }
}

fn one() -> f64 {
    1.0
}

fn unit() -> String {
    "Unit".to_owned()
}

fn resource_type() -> String {
    RESOURCE.to_owned()
}

fn draft() -> String {
    "draft".to_owned()
}

/// The name a reference `{resource}/{name}` gives (percent-decoded).
pub fn named(reference: &Reference, resource: &str, field: &str) -> Result<String, ApiError> {
    let name = reference
        .reference
        .strip_prefix(resource)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|rest| !rest.trim().is_empty())
        .ok_or_else(|| {
            ApiError::unprocessable(field, format!("must reference {resource}/{{name}}"))
        })?;
    percent_encoding::percent_decode_str(name)
        .decode_utf8()
        .map(|name| name.into_owned())
        .map_err(|_| ApiError::unprocessable(field, "is not UTF-8 once percent-decoded"))
}

fn money(value: &MoneyValue, field: &str) -> Result<Money, ApiError> {
    let cents = Money::cents_of(value.value).ok_or_else(|| {
        ApiError::unprocessable(
            &format!("{field}.value"),
            "must be an amount with at most two decimals",
        )
    })?;
    Ok(Money {
        cents,
        currency: value.currency.clone(),
    })
}

fn money_value(money: &Money) -> MoneyValue {
    MoneyValue {
        value: money.value(),
        currency: money.currency.clone(),
    }
}

impl EntitlementResource {
    pub fn into_details(self) -> Result<EntitlementDetails, ApiError> {
        if self.resource_type != RESOURCE {
            return Err(ApiError::unprocessable("type", "must be Entitlement"));
        }
        let kind = EntitlementKind::parse(&self.entitlement_type).ok_or_else(|| {
            ApiError::unprocessable("entitlementType", EntitlementKind::expected())
        })?;
        let state = EntitlementState::parse(&self.state)
            .ok_or_else(|| ApiError::unprocessable("state", EntitlementState::expected()))?;
        let benefit = match kind {
            EntitlementKind::Cash => {
                if self.items.is_some() || self.service_point.is_some() {
                    return Err(ApiError::unprocessable(
                        "items",
                        "a cash entitlement has no items or service point",
                    ));
                }
                let amount = self.initial_amount.as_ref().ok_or_else(|| {
                    ApiError::unprocessable("initialAmount", "a cash entitlement needs an amount")
                })?;
                Benefit::Cash {
                    amount: money(amount, "initialAmount")?,
                }
            }
            EntitlementKind::Inkind => {
                if self.initial_amount.is_some() {
                    return Err(ApiError::unprocessable(
                        "initialAmount",
                        "an in-kind entitlement has items, not an amount",
                    ));
                }
                let item = match self.items.as_deref() {
                    Some([item]) => item,
                    _ => {
                        return Err(ApiError::unprocessable(
                            "items",
                            "an in-kind entitlement has exactly one item",
                        ))
                    }
                };
                Benefit::Inkind {
                    product: named(&item.product, "Product", "items[0].product")?,
                    quantity: item.quantity.value,
                    unit: item.quantity.unit.clone(),
                    unit_price: item
                        .unit_price
                        .as_ref()
                        .map(|p| money(p, "items[0].unitPrice"))
                        .transpose()?,
                    service_point: self
                        .service_point
                        .as_ref()
                        .map(|r| named(r, "ServicePoint", "servicePoint"))
                        .transpose()?,
                }
            }
        };
        let period = self.valid_period.unwrap_or_default();
        Ok(EntitlementDetails {
            benefit,
            valid_from: period.start(),
            valid_until: period.end(),
            state,
        })
    }

    /// `program` and `beneficiary` are the `system|value` of the program and the beneficiary;
    /// `cycle` is the cycle's name.
    pub fn render(
        row: &ViewRow<Entitlement>,
        program: Option<&str>,
        beneficiary: Option<&str>,
        cycle: Option<&str>,
    ) -> Self {
        let state = &row.state;
        let (initial_amount, items, service_point) = match &state.benefit {
            Some(Benefit::Cash { amount }) => (Some(money_value(amount)), None, None),
            Some(Benefit::Inkind {
                product,
                quantity,
                unit,
                unit_price,
                service_point,
            }) => (
                None,
                Some(vec![Item {
                    product: Reference {
                        reference: format!("Product/{product}"),
                        display: None,
                    },
                    quantity: Quantity {
                        value: *quantity,
                        unit: unit.clone(),
                    },
                    unit_price: unit_price.as_ref().map(money_value),
                }]),
                service_point.as_ref().map(|name| Reference {
                    reference: format!("ServicePoint/{name}"),
                    display: None,
                }),
            ),
            None => (None, None, None),
        };
        Self {
            resource_type: resource_type(),
            identifier: state.identifier.as_ref().map(|i| i.value.clone()),
            entitlement_type: state.kind().as_str().to_owned(),
            state: state
                .state
                .unwrap_or(EntitlementState::Draft)
                .as_str()
                .to_owned(),
            beneficiary: Reference {
                reference: format!(
                    "{}/{}",
                    state.beneficiary_kind().resource(),
                    beneficiary.unwrap_or_default()
                ),
                display: None,
            },
            program: Some(Reference {
                reference: format!("Program/{}", program.unwrap_or_default()),
                display: None,
            }),
            cycle: cycle_reference(cycle.unwrap_or_default()),
            valid_period: Some(Period::stored(state.valid_from, state.valid_until)),
            approved_date: state.approved_date.map(Date::stored),
            balance: initial_amount.clone(),
            initial_amount,
            ern: state.ern.clone(),
            items,
            service_point,
            meta: Some(Meta::new(row.version, row.last_updated, row.source.clone())),
        }
    }
}
