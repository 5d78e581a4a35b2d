//! The documentation pages (CONTRACT §4a): `/docs` (and OpenSPP's `/redoc`) render the served
//! OpenAPI document with ReDoc, whose script this server serves itself, so the page works with
//! no network access (an air-gapped registry, a browser without internet).
//!
//! ReDoc (MIT licence, `assets/redoc/LICENSE`) is vendored as its single standalone bundle, the
//! file its npm package `redoc@2.5.0` ships as `bundles/redoc.standalone.js`, and compiled into
//! the binary. One file of ~0.9 MB with no build step and no crate: the documentation crates
//! for utoipa either load their scripts from a CDN or download Swagger UI when they are built,
//! and neither works offline.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::IntoResponse;

use crate::api::BASE;

const REDOC: &[u8] = include_bytes!("../../assets/redoc/redoc.standalone.js");

/// What the pages may load: only this server's own script and document (and what ReDoc makes
/// in the page itself), so a browser refuses anything from elsewhere.
const POLICY: &str = "default-src 'none'; script-src 'self' 'unsafe-inline' blob:; \
    worker-src 'self' blob:; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
    font-src 'self' data:; connect-src 'self'";

fn page() -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>OpenSPP API V2 (event-sourced): reference</title>\n\
         <style>body {{ margin: 0; padding: 0; }}</style>\n</head>\n<body>\n\
         <redoc spec-url=\"{BASE}/openapi.json\"></redoc>\n\
         <script src=\"{BASE}/docs/redoc.standalone.js\"></script>\n</body>\n</html>\n"
    )
}

fn html() -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    (headers, page())
}

/// The API reference, rendered from `openapi.json` (public).
#[utoipa::path(get, path = "/docs", tag = "Metadata",
    responses((status = 200, content_type = "text/html", body = String,
        description = "An HTML page rendering the OpenAPI document; every asset it loads is served here")))]
pub async fn docs() -> impl IntoResponse {
    html()
}

/// OpenSPP's ReDoc page: the same reference (public).
#[utoipa::path(get, path = "/redoc", tag = "Metadata",
    responses((status = 200, content_type = "text/html", body = String,
        description = "An HTML page rendering the OpenAPI document")))]
pub async fn redoc() -> impl IntoResponse {
    html()
}

/// The ReDoc script the pages load (public).
#[utoipa::path(get, path = "/docs/redoc.standalone.js", tag = "Metadata",
    responses((status = 200, content_type = "text/javascript", body = String,
        description = "ReDoc 2.5.0, MIT licence")))]
pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        REDOC,
    )
}
