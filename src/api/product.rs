//! The Product resource as the API reads and writes it (OpenSPP `spp_api_v2_products`
//! `schemas/product.py`, whose discriminator is `resourceType`). A body written is the read
//! shape.

use openspp_aggregates::entitlement::Money;
use openspp_aggregates::product::{Product, ProductDetails};
use openspp_projections::view::ViewRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::entitlement::named;
use crate::api::schema::{Meta, Reference};
use crate::error::ApiError;

pub const RESOURCE: &str = "Product";

/// Goods an in-kind entitlement delivers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProductResource {
    #[serde(default = "resource_type")]
    pub resource_type: String,
    /// The default code, else the name (read only; if sent, it must be that).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    pub name: String,
    /// When set, `Product/{defaultCode}` names the product, and it never changes; otherwise
    /// the name does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_code: Option<String>,
    /// `ProductCategory/{name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Reference>,
    /// `UnitOfMeasure/{name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_of_measure: Option<Reference>,
    /// At most two decimals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_price: Option<f64>,
    /// ISO 4217.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    /// Read only: no image is kept here.
    #[serde(default)]
    pub has_image: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
}

fn resource_type() -> String {
    RESOURCE.to_owned()
}

fn yes() -> bool {
    true
}

impl ProductResource {
    pub fn into_details(self) -> Result<ProductDetails, ApiError> {
        if self.resource_type != RESOURCE {
            return Err(ApiError::unprocessable("resourceType", "must be Product"));
        }
        let list_price_cents = self
            .list_price
            .map(|price| {
                Money::cents_of(price).ok_or_else(|| {
                    ApiError::unprocessable(
                        "listPrice",
                        "must be an amount with at most two decimals",
                    )
                })
            })
            .transpose()?;
        let details = ProductDetails {
            name: self.name,
            default_code: self.default_code,
            category: self
                .category
                .map(|r| named(&r, "ProductCategory", "category"))
                .transpose()?,
            unit: self
                .unit_of_measure
                .map(|r| named(&r, "UnitOfMeasure", "unitOfMeasure"))
                .transpose()?,
            list_price_cents,
            currency: self.currency,
            active: self.active,
        };
        let key = details
            .default_code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .unwrap_or(details.name.trim());
        if self.identifier.as_ref().is_some_and(|id| id.trim() != key) {
            return Err(ApiError::unprocessable(
                "identifier",
                "is the product's default code, else its name; leave it out or send that",
            ));
        }
        Ok(details)
    }

    pub fn render(row: &ViewRow<Product>) -> Self {
        let details = &row.state.details;
        let reference = |resource: &str, name: &Option<String>| {
            name.as_ref().map(|name| Reference {
                reference: format!("{resource}/{name}"),
                display: Some(name.clone()),
            })
        };
        Self {
            resource_type: resource_type(),
            identifier: Some(details.key().to_owned()),
            name: details.name.clone(),
            default_code: details.default_code.clone(),
            category: reference("ProductCategory", &details.category),
            unit_of_measure: reference("UnitOfMeasure", &details.unit),
            list_price: details.list_price_cents.map(|cents| cents as f64 / 100.0),
            currency: details.currency.clone(),
            active: details.active,
            has_image: false,
            meta: Some(Meta::new(row.version, row.last_updated, row.source.clone())),
        }
    }
}
