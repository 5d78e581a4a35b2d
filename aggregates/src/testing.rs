//! A fixed vocabulary and clock for the domain's tests.

use std::sync::Arc;

use chrono::NaiveDate;

use crate::consent::{
    consentable_fields, Access, Actor, ConsentRecord, ConsentScope, ConsentStatus, ConsentTerms,
    RecipientMode,
};
use crate::extension::{ExtendedResource, ExtensionSchemas, SchemaViolation};
use crate::program::PROGRAM_TYPE;
use crate::program_membership::EXIT_REASON;
use crate::services::{Clock, RegistryServices};
use crate::values::{Code, Identifier};
use crate::vocabulary::{TargetType, Vocabulary, GENDER, GROUP_MEMBERSHIP_TYPE, GROUP_TYPE};

pub const NATIONAL_ID: &str = "urn:openspp:vocab:id-type#national_id";
pub const PASSPORT: &str = "urn:openspp:vocab:id-type#passport";
pub const GROUP_ID: &str = "urn:openspp:group";

struct FakeVocabulary;

impl Vocabulary for FakeVocabulary {
    fn has_code(&self, system: &str, code: &str) -> bool {
        match system {
            GENDER => ["0", "1", "2", "9"].contains(&code),
            GROUP_TYPE => ["household", "family", "organization", "other"].contains(&code),
            GROUP_MEMBERSHIP_TYPE => ["head", "spouse", "child", "member", "other"].contains(&code),
            PROGRAM_TYPE => ["social-protection", "cash-transfer"].contains(&code),
            EXIT_REASON => ["graduated", "moved"].contains(&code),
            crate::service_point::SERVICE_TYPES => ["CASH", "VOUCHER"].contains(&code),
            crate::product::PRODUCT_CATEGORY => ["all", "food"].contains(&code),
            crate::product::UNIT_OF_MEASURE => ["unit", "kg"].contains(&code),
            _ => false,
        }
    }

    fn identifier_system_allowed(&self, uri: &str, target: TargetType) -> Option<bool> {
        match uri {
            NATIONAL_ID | PASSPORT => Some(target == TargetType::Individual),
            "urn:openspp:vocab:id-type#tax_id" => Some(true),
            GROUP_ID => Some(target == TargetType::Group),
            _ => None,
        }
    }
}

/// The one registered extension of the domain's tests: a farmer's `farm_size`, a number.
pub const FARMER: &str = "urn:openspp:extension:farmer";

pub struct FakeExtensions;

impl ExtensionSchemas for FakeExtensions {
    fn resolve(&self, resource: ExtendedResource, key: &str) -> Option<String> {
        (resource == ExtendedResource::Individual && (key == FARMER || key == "farmer"))
            .then(|| FARMER.to_owned())
    }

    fn check(&self, _uri: &str, data: &serde_json::Value) -> Result<(), SchemaViolation> {
        match data.get("farm_size") {
            Some(size) if !size.is_number() => Err(SchemaViolation {
                path: "farm_size".into(),
                message: "must be a number".into(),
            }),
            _ => Ok(()),
        }
    }

    /// `plots` is bounded by its schema (3), any other list by the server's default.
    fn schema(&self, uri: &str) -> Option<serde_json::Value> {
        (uri == FARMER).then(|| {
            serde_json::json!({"type": "object", "properties": {
                "farm_size": {"type": "number"},
                "plots": {"type": "array", "maxItems": 3}
            }})
        })
    }
}

struct FixedClock;

pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 15).unwrap()
}

impl Clock for FixedClock {
    fn today(&self) -> NaiveDate {
        today()
    }
}

pub fn services() -> RegistryServices {
    RegistryServices {
        vocabulary: Arc::new(FakeVocabulary),
        extensions: Arc::new(FakeExtensions),
        clock: Arc::new(FixedClock),
    }
}

/// A caller acting under a legal basis: no consent needed.
pub fn full_access() -> Access {
    Access {
        actor: Actor {
            organization: "Ministry".into(),
            organization_type: "government".into(),
            legal_basis: Some("public_task".into()),
            field_filter: vec![],
        },
        consents: vec![],
    }
}

/// Every field a full PUT body of `resource_type` states.
pub fn every_field(resource_type: &str) -> Vec<String> {
    ["type", "identifier"]
        .iter()
        .chain(consentable_fields(resource_type))
        .map(|field| field.to_string())
        .collect()
}

/// An NGO that acts under the data subject's consent.
pub fn ngo() -> Actor {
    Actor {
        organization: "Helping Hands".into(),
        organization_type: "ngo".into(),
        legal_basis: None,
        field_filter: vec![],
    }
}

/// A consent in force that names `ngo()` for `resource_type`, limited to `fields` if given.
pub fn ngo_consent(subject: &str, resource_type: &str, fields: Option<&[&str]>) -> ConsentRecord {
    ConsentRecord {
        consent_id: format!("consent-of-{subject}"),
        status: ConsentStatus::Given,
        terms: ConsentTerms {
            subject_type: "Individual".into(),
            subject: subject.into(),
            recipient_mode: RecipientMode::Category,
            recipients: vec![],
            recipient_types: vec!["ngo".into()],
            scopes: vec![ConsentScope {
                resource_type: resource_type.into(),
                field_access: fields.map(|f| f.iter().map(|s| s.to_string()).collect()),
                purpose: "service_delivery".into(),
            }],
            legal_basis: "consent".into(),
            effective_date: date(2024, 1, 1),
            expiry_date: date(2030, 1, 1),
            delegation_type: "self".into(),
            indicated_by: None,
        },
        released: vec![],
    }
}

pub fn id(system: &str, value: &str) -> Identifier {
    Identifier {
        system: system.into(),
        value: value.into(),
    }
}

pub fn code(system: &str, code: &str) -> Code {
    Code {
        system: system.into(),
        code: code.into(),
    }
}

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}
