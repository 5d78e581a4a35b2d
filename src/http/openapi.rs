//! The OpenAPI 3.1 document, generated from the handlers' annotations (utoipa), so it cannot
//! drift from the code. Served at `/api/v2/spp/openapi.json`.

use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::Response;
use utoipa::OpenApi;

use crate::api::schema::OperationOutcome;

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

/// Adds what the annotations cannot say: the security schemes, and the document's own path.
pub fn finish(mut document: Document, own_path: &str) -> Document {
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
    components.add_security_scheme(
        "client_basic",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
    );
    let operation = OperationBuilder::new()
        .tag("Metadata")
        .summary(Some("This OpenAPI 3.1 document"))
        .response("200", Response::new("The OpenAPI document"))
        .build();
    document
        .paths
        .add_path_operation(own_path, vec![HttpMethod::Get], operation);
    document
}
