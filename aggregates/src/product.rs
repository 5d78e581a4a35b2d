//! A product: goods an in-kind entitlement delivers (OpenSPP `product.product`, served by
//! `spp_api_v2_products`). OpenSPP names a product by its default code, else its name
//! (`Product/{key}`), so that key is claimed as an identifier and never changes; the rest is
//! changed by a replacement. Operators register them.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::bounds;
use crate::error::DomainError;
use crate::inline_index::{IndexChange, InlineIndex};
use crate::services::RegistryServices;
use crate::values::Identifier;

/// The system a product's key (default code, else name) is claimed under.
pub const KEY_SYSTEM: &str = "urn:openspp:product";
/// OpenSPP's product categories (`product.category`), a hierarchy kept as a vocabulary.
pub const PRODUCT_CATEGORY: &str = "urn:openspp:vocab:product-category";
/// OpenSPP's units of measure (`uom.uom`), kept as a vocabulary whose parent of a unit is its
/// reference unit.
pub const UNIT_OF_MEASURE: &str = "urn:openspp:vocab:uom";

/// What a product is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDetails {
    pub name: String,
    /// OpenSPP's `default_code`: when set, the product's key.
    pub default_code: Option<String>,
    /// A code of [`PRODUCT_CATEGORY`].
    pub category: Option<String>,
    /// A code of [`UNIT_OF_MEASURE`].
    pub unit: Option<String>,
    /// The list price in hundredths of [`Self::currency`].
    pub list_price_cents: Option<i64>,
    /// ISO 4217.
    pub currency: Option<String>,
    pub active: bool,
}

impl ProductDetails {
    /// `Product/{key}`: the default code, else the name.
    pub fn key(&self) -> &str {
        self.default_code.as_deref().unwrap_or(&self.name)
    }

    fn trimmed(mut self) -> Self {
        self.name = self.name.trim().to_owned();
        self.default_code = self
            .default_code
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProductCommand {
    Register(ProductDetails),
    Replace(ProductDetails),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProductEvent {
    ProductRegistered {
        /// The key, claimed in [`KEY_SYSTEM`].
        identifier: Identifier,
        details: ProductDetails,
    },
    ProductChanged {
        details: ProductDetails,
    },
}

impl DomainEvent for ProductEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ProductRegistered { .. } => "ProductRegistered",
            Self::ProductChanged { .. } => "ProductChanged",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

impl InlineIndex for ProductEvent {
    fn index_change(&self) -> Option<IndexChange<'_>> {
        match self {
            Self::ProductRegistered { identifier, .. } => {
                Some(IndexChange::IdentifierClaimed(identifier))
            }
            Self::ProductChanged { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub registered: bool,
    pub details: ProductDetails,
    pub version: u64,
}

/// The identifier a product's key is claimed as (and looked up by).
pub fn key_identifier(key: &str) -> Identifier {
    Identifier {
        system: KEY_SYSTEM.to_owned(),
        value: key.to_owned(),
    }
}

fn validate(details: &ProductDetails, services: &RegistryServices) -> Result<(), DomainError> {
    if details.name.is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    bounds::text("name", &details.name, bounds::SHORT_TEXT)?;
    for (field, text) in [
        ("defaultCode", &details.default_code),
        ("category", &details.category),
        ("unitOfMeasure", &details.unit),
    ] {
        bounds::optional_text(field, text.as_deref(), bounds::SHORT_TEXT)?;
    }
    for (field, code, vocabulary, resource) in [
        (
            "category",
            &details.category,
            PRODUCT_CATEGORY,
            "ProductCategory",
        ),
        (
            "unitOfMeasure",
            &details.unit,
            UNIT_OF_MEASURE,
            "UnitOfMeasure",
        ),
    ] {
        if let Some(code) = code {
            if !services.vocabulary.has_code(vocabulary, code) {
                return Err(DomainError::invalid(
                    field,
                    format!("no such {resource} {code}; see {vocabulary}"),
                ));
            }
        }
    }
    if let Some(currency) = &details.currency {
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(DomainError::invalid(
                "currency",
                "must be an ISO 4217 code such as PHP",
            ));
        }
    }
    if details.list_price_cents.is_some_and(|cents| cents < 0) {
        return Err(DomainError::invalid("listPrice", "must not be negative"));
    }
    Ok(())
}

impl Aggregate for Product {
    const TYPE: &'static str = "Product";
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = DomainError;
    type Services = RegistryServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            ProductCommand::Register(details) => {
                if self.registered {
                    return Err(DomainError::AlreadyExists);
                }
                let details = details.trimmed();
                validate(&details, services)?;
                ProductEvent::ProductRegistered {
                    identifier: key_identifier(details.key()),
                    details,
                }
            }
            ProductCommand::Replace(details) => {
                if !self.registered {
                    return Err(DomainError::not_found("Product"));
                }
                let details = details.trimmed();
                if details.key() != self.details.key() {
                    let field = if self.details.default_code.is_some() {
                        "defaultCode"
                    } else {
                        "name"
                    };
                    return Err(DomainError::invalid(
                        field,
                        "is the product's identifier and never changes",
                    ));
                }
                validate(&details, services)?;
                if details == self.details {
                    return Ok(());
                }
                ProductEvent::ProductChanged { details }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        match event {
            ProductEvent::ProductRegistered { details, .. }
            | ProductEvent::ProductChanged { details } => {
                self.registered = true;
                self.details = details;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::testing::services;

    fn details() -> ProductDetails {
        ProductDetails {
            name: "Rice 25kg".into(),
            default_code: Some("RICE-25KG".into()),
            category: Some("food".into()),
            unit: Some("kg".into()),
            list_price_cents: Some(125_000),
            currency: Some("PHP".into()),
            active: true,
        }
    }

    async fn run(
        given: Vec<ProductEvent>,
        command: ProductCommand,
    ) -> Result<Vec<ProductEvent>, DomainError> {
        TestFramework::<Product>::with(services())
            .given(given)
            .when_async(command)
            .await
            .inspect_result()
    }

    fn registered() -> ProductEvent {
        ProductEvent::ProductRegistered {
            identifier: key_identifier("RICE-25KG"),
            details: details(),
        }
    }

    #[tokio::test]
    async fn a_product_is_registered_under_its_code_else_its_name() {
        assert_eq!(
            run(vec![], ProductCommand::Register(details())).await,
            Ok(vec![registered()])
        );
        let mut uncoded = details();
        uncoded.default_code = Some("  ".into());
        let events = run(vec![], ProductCommand::Register(uncoded))
            .await
            .unwrap();
        assert!(
            matches!(&events[..], [ProductEvent::ProductRegistered { identifier, details }]
            if identifier.value == "Rice 25kg" && details.default_code.is_none())
        );
        assert_eq!(
            run(vec![registered()], ProductCommand::Register(details())).await,
            Err(DomainError::AlreadyExists)
        );
    }

    #[tokio::test]
    async fn category_and_unit_are_codes_of_their_vocabularies() {
        let mut unknown = details();
        unknown.category = Some("weapons".into());
        assert!(matches!(
            run(vec![], ProductCommand::Register(unknown)).await,
            Err(DomainError::Invalid { field, .. }) if field == "category"
        ));
        let mut unknown = details();
        unknown.unit = Some("furlong".into());
        assert!(matches!(
            run(vec![], ProductCommand::Register(unknown)).await,
            Err(DomainError::Invalid { field, .. }) if field == "unitOfMeasure"
        ));
    }

    #[tokio::test]
    async fn currency_and_price_are_checked() {
        let mut lower = details();
        lower.currency = Some("php".into());
        assert!(matches!(
            run(vec![], ProductCommand::Register(lower)).await,
            Err(DomainError::Invalid { field, .. }) if field == "currency"
        ));
        let mut negative = details();
        negative.list_price_cents = Some(-1);
        assert!(matches!(
            run(vec![], ProductCommand::Register(negative)).await,
            Err(DomainError::Invalid { field, .. }) if field == "listPrice"
        ));
    }

    #[tokio::test]
    async fn a_replacement_keeps_the_key_and_changes_the_rest() {
        let mut renamed = details();
        renamed.name = "Rice, 25 kg sack".into();
        assert_eq!(
            run(vec![registered()], ProductCommand::Replace(renamed.clone())).await,
            Ok(vec![ProductEvent::ProductChanged { details: renamed }])
        );
        assert_eq!(
            run(vec![registered()], ProductCommand::Replace(details())).await,
            Ok(vec![])
        );
        let mut recoded = details();
        recoded.default_code = Some("RICE-50KG".into());
        assert!(matches!(
            run(vec![registered()], ProductCommand::Replace(recoded)).await,
            Err(DomainError::Invalid { field, .. }) if field == "defaultCode"
        ));
    }
}
