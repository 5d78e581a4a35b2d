//! Every search parameter each resource's `GET /{Resource}` accepts, in one table: `/metadata`
//! lists them (OpenSPP's `search_params`) and `GET /{Resource}/_filters` describes them, so
//! what is advertised is what the searches take. The searches themselves read their
//! parameters in `src/http/{resource}.rs`; `tests/e2e/compat_discovery.rs` sends every
//! parameter listed here to its search and expects it accepted.

use serde::Serialize;
use utoipa::ToSchema;

/// How a parameter matches, as OpenSPP's filter metadata names it.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A code or an exact value (`gender=2`, `status=enrolled`).
    Exact,
    /// Part of a text, case-insensitive.
    Contains,
    /// A date or an instant with an optional prefix `eq ne gt lt ge le`.
    Range,
    /// `true` or `false`.
    Boolean,
    /// Another resource, `Resource/{system}|{value}`.
    Reference,
}

impl Kind {
    fn filter_type(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Contains => "contains",
            Self::Range => "range",
            Self::Boolean => "boolean",
            Self::Reference => "reference",
        }
    }

    fn operators(self) -> &'static [&'static str] {
        match self {
            Self::Range => &["eq", "ne", "gt", "lt", "ge", "le"],
            Self::Contains => &["contains"],
            _ => &["eq"],
        }
    }
}

/// One search parameter: its name in the query string, the resource's field it reads (what a
/// consent must show for the parameter to count a subject), how it matches, and a label.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub field: &'static str,
    pub kind: Kind,
    pub label: &'static str,
}

const fn param(name: &'static str, field: &'static str, kind: Kind, label: &'static str) -> Param {
    Param {
        name,
        field,
        kind,
        label,
    }
}

const LAST_UPDATED: Param = param("_lastUpdated", "meta", Kind::Range, "Last changed");
const IDENTIFIER: Param = param(
    "identifier",
    "identifier",
    Kind::Exact,
    "Identifier (system|value)",
);
const ANY_PART_OF_NAME: Param = param("name", "name", Kind::Contains, "Any part of the name");
const NAME: Param = param("name", "name", Kind::Contains, "Name");
const ACTIVE: Param = param("active", "active", Kind::Boolean, "Active");
const BENEFICIARY: Param = param(
    "beneficiary",
    "beneficiary",
    Kind::Reference,
    "The beneficiary",
);
const PROGRAM_NAMED: Param = param(
    "program",
    "program",
    Kind::Contains,
    "Program (part of its name)",
);

pub const INDIVIDUAL: &[Param] = &[
    IDENTIFIER,
    ANY_PART_OF_NAME,
    param("birthdate", "birthDate", Kind::Range, "Date of birth"),
    param("gender", "gender", Kind::Exact, "Gender (ISO 5218 code)"),
    param(
        "address",
        "address",
        Kind::Contains,
        "Any part of an address",
    ),
    ACTIVE,
    param(
        "group",
        "groupMembership",
        Kind::Reference,
        "Current member of the group",
    ),
    param(
        "membership-role",
        "groupMembership",
        Kind::Exact,
        "Holds this role in a current group (urn:openspp:vocab:group-membership-type)",
    ),
    LAST_UPDATED,
];

pub const GROUP: &[Param] = &[
    IDENTIFIER,
    ANY_PART_OF_NAME,
    param(
        "type",
        "groupType",
        Kind::Exact,
        "Group type (household, family, organization, other)",
    ),
    param(
        "groupType",
        "groupType",
        Kind::Exact,
        "Group type (the same as `type`)",
    ),
    param(
        "member",
        "member",
        Kind::Reference,
        "Has this individual as a current member",
    ),
    ACTIVE,
    LAST_UPDATED,
];

pub const PROGRAM: &[Param] = &[
    param(
        "identifier",
        "identifier",
        Kind::Exact,
        "Identifier (system|value), or the name alias urn:openspp:program|{slug}",
    ),
    ANY_PART_OF_NAME,
    param(
        "type",
        "programType",
        Kind::Exact,
        "Program type (urn:openspp:vocab:program-type)",
    ),
    param(
        "status",
        "status",
        Kind::Exact,
        "Status (active, ended, archived)",
    ),
    param(
        "targetType",
        "targetType",
        Kind::Exact,
        "Target type (individual, group)",
    ),
    LAST_UPDATED,
];

pub const PROGRAM_MEMBERSHIP: &[Param] = &[
    param("program", "program", Kind::Reference, "The program"),
    BENEFICIARY,
    param("status", "status", Kind::Exact, "Membership status"),
    LAST_UPDATED,
];

/// OpenSPP `spp_api_v2_cycles`.
pub const CYCLE: &[Param] = &[
    PROGRAM_NAMED,
    param("state", "state", Kind::Exact, "Cycle state"),
    param(
        "startDate",
        "period",
        Kind::Range,
        "Starts (no prefix: on or after)",
    ),
    param(
        "endDate",
        "period",
        Kind::Range,
        "Ends (no prefix: on or before)",
    ),
    LAST_UPDATED,
];

/// OpenSPP `spp_api_v2_entitlements`.
pub const ENTITLEMENT: &[Param] = &[
    BENEFICIARY,
    PROGRAM_NAMED,
    param("cycle", "cycle", Kind::Contains, "Cycle (part of its name)"),
    param("state", "state", Kind::Exact, "Entitlement state"),
    param(
        "entitlementType",
        "entitlementType",
        Kind::Exact,
        "cash (default) or inkind",
    ),
    param(
        "validFrom",
        "validPeriod",
        Kind::Range,
        "Valid from (on or after)",
    ),
    param(
        "validUntil",
        "validPeriod",
        Kind::Range,
        "Valid until (on or before)",
    ),
    LAST_UPDATED,
];

/// OpenSPP `spp_api_v2_service_points`.
pub const SERVICE_POINT: &[Param] = &[
    NAME,
    param("area", "area", Kind::Contains, "Area (part of its name)"),
    param(
        "country",
        "country",
        Kind::Exact,
        "Country (ISO 3166-1 alpha-2)",
    ),
    param(
        "contractActive",
        "contractActive",
        Kind::Boolean,
        "Contract active",
    ),
    LAST_UPDATED,
];

/// OpenSPP `spp_api_v2_products`.
pub const PRODUCT: &[Param] = &[
    NAME,
    param("code", "defaultCode", Kind::Contains, "Default code"),
    param(
        "category",
        "category",
        Kind::Contains,
        "Category (part of its name)",
    ),
    LAST_UPDATED,
];

pub const CONSENT: &[Param] = &[param(
    "subject",
    "subject",
    Kind::Reference,
    "The data subject",
)];

pub const AUDIT_EVENT: &[Param] = &[
    param("client", "client", Kind::Exact, "The API client"),
    param(
        "subject",
        "subject",
        Kind::Reference,
        "A subject the access concerned",
    ),
    param("date", "recorded", Kind::Range, "When the access happened"),
];

/// The most filter conditions one `POST /{Resource}/_search` may hold (OpenSPP's default
/// `max_filter_complexity`).
pub const MAX_CONDITIONS: usize = 10;

/// Paging and shaping parameters of the four core searches.
pub const CONTROL: &[&str] = &["_count", "_offset", "_sort", "_elements", "_total"];

/// A named, saved filter (OpenSPP's presets): `POST /{Resource}/_search` with `"preset"`
/// applies its parameters, ANDed with the request's own filters.
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    pub name: &'static str,
    pub description: &'static str,
    pub params: &'static [(&'static str, &'static str)],
}

pub const INDIVIDUAL_PRESETS: &[Preset] = &[
    Preset {
        name: "active",
        description: "Active individuals",
        params: &[("active", "true")],
    },
    Preset {
        name: "household-heads",
        description: "Individuals who head a group now",
        params: &[("membership-role", "head")],
    },
];

pub const GROUP_PRESETS: &[Preset] = &[Preset {
    name: "active-households",
    description: "Active groups of type household",
    params: &[("type", "household"), ("active", "true")],
}];

pub const PROGRAM_PRESETS: &[Preset] = &[Preset {
    name: "active",
    description: "Programs that are running",
    params: &[("status", "active")],
}];

pub const PROGRAM_MEMBERSHIP_PRESETS: &[Preset] = &[Preset {
    name: "enrolled",
    description: "Memberships now enrolled",
    params: &[("status", "enrolled")],
}];

/// OpenSPP's `FilterMetadata`: one filter `GET /{Resource}/_filters` describes.
#[derive(Debug, Serialize, ToSchema)]
pub struct FilterMetadata {
    /// The name to use as a query parameter of `GET /{Resource}`.
    pub name: String,
    /// The resource's field the filter reads.
    pub field_path: String,
    /// `exact`, `contains`, `range`, `boolean` or `reference`.
    pub filter_type: String,
    pub label: String,
    pub description: String,
    pub allowed_operators: Vec<String>,
    pub required: bool,
    pub is_indexed: bool,
}

/// OpenSPP's `FilterMetadataResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FilterMetadataResponse {
    pub resource: String,
    /// Whether filters beyond the presets may be sent: always, here.
    pub allow_custom_filters: bool,
    pub max_filter_complexity: usize,
    pub filters: Vec<FilterMetadata>,
    /// Named filters `POST /{Resource}/_search` applies by `preset`.
    pub presets: Vec<PresetMetadata>,
}

/// OpenSPP's `PresetMetadata`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PresetMetadata {
    pub name: String,
    pub description: String,
}

/// The filter metadata of `resource`, from its parameters and presets.
pub fn filter_metadata(
    resource: &str,
    params: &[Param],
    presets: &[Preset],
) -> FilterMetadataResponse {
    FilterMetadataResponse {
        resource: resource.to_owned(),
        allow_custom_filters: true,
        max_filter_complexity: MAX_CONDITIONS,
        filters: params
            .iter()
            .map(|p| FilterMetadata {
                name: p.name.to_owned(),
                field_path: p.field.to_owned(),
                filter_type: p.kind.filter_type().to_owned(),
                label: p.label.to_owned(),
                description: format!(
                    "`GET /{resource}?{}=…`; counts only subjects whose consent shows `{}`",
                    p.name, p.field
                ),
                allowed_operators: p.kind.operators().iter().map(|o| (*o).to_owned()).collect(),
                required: false,
                is_indexed: true,
            })
            .collect(),
        presets: presets
            .iter()
            .map(|p| PresetMetadata {
                name: p.name.to_owned(),
                description: p.description.to_owned(),
            })
            .collect(),
    }
}
