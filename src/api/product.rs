//! The Product resource as the API reads and writes it (OpenSPP `spp_api_v2_products`
//! `schemas/product.py`, whose discriminator is `resourceType`). A body written is the read
//! shape.

use openspp_aggregates::entitlement::Money;
use openspp_aggregates::product::{Product, ProductDetails, PRODUCT_CATEGORY, UNIT_OF_MEASURE};
use openspp_projections::view::ViewRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::entitlement::named;
use crate::api::schema::{active_by_default, Meta, Reference};
use crate::error::ApiError;
use crate::vocabulary::{Vocabularies, VocabularyEntry};
use openspp_aggregates::CodeDefinition;

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
    #[serde(default = "active_by_default")]
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

impl ProductResource {
    pub fn into_details(self, vocabulary: &Vocabularies) -> Result<ProductDetails, ApiError> {
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
                .transpose()?
                .map(|name| code_named(vocabulary, PRODUCT_CATEGORY, name)),
            unit: self
                .unit_of_measure
                .map(|r| named(&r, "UnitOfMeasure", "unitOfMeasure"))
                .transpose()?
                .map(|name| code_named(vocabulary, UNIT_OF_MEASURE, name)),
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

    pub fn render(row: &ViewRow<Product>, vocabulary: &Vocabularies) -> Self {
        let details = &row.state.details;
        let reference = |resource: &str, system: &str, code: &Option<String>| {
            code.as_ref().map(|code| {
                let name = vocabulary
                    .display(system, code)
                    .unwrap_or_else(|| code.clone());
                Reference {
                    reference: format!("{resource}/{name}"),
                    display: Some(name),
                }
            })
        };
        Self {
            resource_type: resource_type(),
            identifier: Some(details.key().to_owned()),
            name: details.name.clone(),
            default_code: details.default_code.clone(),
            category: reference("ProductCategory", PRODUCT_CATEGORY, &details.category),
            unit_of_measure: reference("UnitOfMeasure", UNIT_OF_MEASURE, &details.unit),
            list_price: details.list_price_cents.map(|cents| cents as f64 / 100.0),
            currency: details.currency.clone(),
            active: details.active,
            has_image: false,
            meta: Some(Meta::new(row.version, row.last_updated, row.source.clone())),
        }
    }
}

/// The code of `vocabulary` a body names by its name (a display, as read) or its code; an
/// unknown name is kept for the domain to refuse, naming the field.
fn code_named(vocabulary: &Vocabularies, system: &str, name: String) -> String {
    let catalog = vocabulary.catalog();
    catalog
        .vocabulary(system)
        .and_then(|v| v.named(&name))
        .map_or(name, |c| c.code.clone())
}

/// A product category (OpenSPP `product.category`), named by its name; kept as a code of
/// `urn:openspp:vocab:product-category` (changed through `/Vocabulary`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductCategoryResource {
    /// `ProductCategory`.
    pub resource_type: String,
    /// The name.
    pub identifier: String,
    pub name: String,
    /// `ProductCategory/{parent's name}`; none for a root category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Reference>,
}

/// A unit of measure (OpenSPP `uom.uom`), named by its name; kept as a code of
/// `urn:openspp:vocab:uom` (changed through `/Vocabulary`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnitOfMeasureResource {
    /// `UnitOfMeasure`.
    pub resource_type: String,
    /// The name.
    pub identifier: String,
    pub name: String,
    /// `UnitOfMeasure/{reference unit's name}` (Odoo 19 has no UoM category: the reference
    /// unit stands for it); none for a reference unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<Reference>,
    /// How many of its root reference unit one of it is (OpenSPP's `factor`: 0.001 for `g`).
    pub factor: f64,
    /// The precision quantities in it are rounded to (OpenSPP's `rounding`).
    pub rounding: f64,
}

/// Odoo's rounding precision of a unit of measure, which every unit here has.
const UOM_ROUNDING: f64 = 0.01;

/// A unit's size in its reference unit (Odoo's `relative_factor`): that of the units this
/// server seeds (migration 0176) smaller than their reference unit; 1, Odoo's default, for any
/// other (a vocabulary code carries no size).
fn relative_factor(code: &str) -> f64 {
    match code {
        "g" | "ml" => 0.001,
        _ => 1.0,
    }
}

/// A unit's size in its root reference unit (Odoo's `factor`): its relative factor times its
/// reference unit's factor, up the chain.
fn uom_factor(entry: &VocabularyEntry, code: &CodeDefinition) -> f64 {
    let mut factor = relative_factor(&code.code);
    let mut reference = code.parent_code.as_deref();
    // A vocabulary's hierarchy has no cycles; the bound only keeps a damaged one finite.
    for _ in 0..16 {
        let Some(unit) = reference.and_then(|parent| entry.code(parent)) else {
            break;
        };
        factor *= relative_factor(&unit.code);
        reference = unit.parent_code.as_deref();
    }
    factor
}

/// A code as OpenSPP renders its parent: `{resource}/{parent's display}`.
fn parent_of(entry: &VocabularyEntry, code: &CodeDefinition, resource: &str) -> Option<Reference> {
    let parent = entry.code(code.parent_code.as_deref()?)?;
    Some(Reference {
        reference: format!("{resource}/{}", parent.display),
        display: Some(parent.display.clone()),
    })
}

impl ProductCategoryResource {
    pub fn render(entry: &VocabularyEntry, code: &CodeDefinition) -> Self {
        Self {
            resource_type: "ProductCategory".to_owned(),
            identifier: code.display.clone(),
            name: code.display.clone(),
            parent: parent_of(entry, code, "ProductCategory"),
        }
    }
}

impl UnitOfMeasureResource {
    pub fn render(entry: &VocabularyEntry, code: &CodeDefinition) -> Self {
        Self {
            resource_type: "UnitOfMeasure".to_owned(),
            identifier: code.display.clone(),
            name: code.display.clone(),
            category: parent_of(entry, code, "UnitOfMeasure"),
            factor: uom_factor(entry, code),
            rounding: UOM_ROUNDING,
        }
    }
}
