//! The OpenAPI 3.1 document, generated from the handlers' annotations (utoipa), so it cannot
//! drift from the code. Served at `/api/v2/spp/openapi.json`.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::OpenApi;

use crate::http::schema::OperationOutcome;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "OpenSPP API V2 (event-sourced)",
        description = "Registry of individuals and groups, served as OpenSPP API V2. \
                       External identifiers only; errors are OperationOutcome."
    ),
    components(schemas(OperationOutcome))
)]
struct Base;

pub fn document() -> Document {
    Base::openapi()
}

/// Adds what the annotations cannot say: the bearer scheme and the public endpoints.
pub fn finish(mut document: Document) -> Document {
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    document
}
