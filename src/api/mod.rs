//! The API's wire format, below every surface that speaks it: the resource shapes and their
//! building blocks (OpenSPP's schemas), request bodies, query parameters and the search
//! envelope, external identifiers in paths and references, the provenance headers of a
//! request, and its preconditions.

pub mod advanced_search;
pub mod aggregation;
pub mod audit_event;
pub mod batch;
pub mod bulk;
pub mod bundle;
pub mod consent;
pub mod cycle;
pub mod entitlement;
pub mod graphql;
pub mod group;
pub mod household;
pub mod individual;
pub mod json;
pub mod membership;
pub mod params;
pub mod preconditions;
pub mod product;
pub mod program;
pub mod provenance;
pub mod reference;
pub mod schema;
#[cfg(test)]
mod schema_tests;
pub mod search_params;
pub mod service_point;
pub mod stated;

/// Where the API lives (CONTRACT §1).
pub const BASE: &str = "/api/v2/spp";
