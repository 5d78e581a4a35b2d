//! The GraphQL explorer at `GET /api/v2/graphql` (CONTRACT §7): GraphiQL, with React and its
//! stylesheet vendored under `assets/graphiql/` and compiled into the binary, so the page works
//! with no network access (async-graphql's stock page loads from a CDN). The bundles are stored
//! gzip-compressed and sent as they are (`Content-Encoding: gzip`, which every browser reads).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::error::ApiError;

/// Where the explorer's assets are served.
pub const ASSETS: &str = "/api/v2/graphql/assets";

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>OpenSPP GraphQL explorer</title>
<link rel="stylesheet" href="/api/v2/graphql/assets/graphiql.min.css">
<style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
</head>
<body>
<div id="graphiql">Loading the explorer…</div>
<script src="/api/v2/graphql/assets/react.production.min.js"></script>
<script src="/api/v2/graphql/assets/react-dom.production.min.js"></script>
<script src="/api/v2/graphql/assets/graphiql.min.js"></script>
<script src="/api/v2/graphql/assets/explorer.js"></script>
</body>
</html>
"#;

/// Each asset: its name, content type, body, and whether the body is gzip-compressed.
const FILES: [(&str, &str, &[u8], bool); 5] = [
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.js.gz"),
        true,
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.css.gz"),
        true,
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react.production.min.js.gz"),
        true,
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js.gz"),
        true,
    ),
    (
        "explorer.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/explorer.js"),
        false,
    ),
];

pub fn page() -> Response {
    Html(PAGE).into_response()
}

/// `GET /api/v2/graphql/assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    let Some((_, content_type, body, gzipped)) = FILES.iter().find(|(n, ..)| *n == name) else {
        return ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such asset").into_response();
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        *body,
    )
        .into_response();
    if *gzipped {
        response.headers_mut().insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("gzip"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every script and stylesheet of the page is one this server serves (no CDN).
    #[test]
    fn the_page_loads_only_the_server_s_own_assets() {
        for attribute in ["src=\"", "href=\""] {
            for reference in PAGE.split(attribute).skip(1) {
                let url = reference.split('"').next().unwrap();
                let name = url
                    .strip_prefix(&format!("{ASSETS}/"))
                    .unwrap_or_else(|| panic!("{url} is not served here"));
                assert!(FILES.iter().any(|(n, ..)| *n == name), "{name}");
            }
        }
    }

    /// Subscriptions run from the page: its fetcher sends them to the WebSocket (the endpoint
    /// and `/ws`), where `connection_init` takes the Headers tab's `Authorization`.
    #[test]
    fn the_explorer_sends_subscriptions_to_the_websocket() {
        let script =
            std::str::from_utf8(FILES.iter().find(|f| f.0 == "explorer.js").unwrap().2).unwrap();
        assert!(script.contains("subscriptionUrl:"), "{script}");
        assert!(script.contains("endpoint + '/ws'"), "{script}");
        assert_eq!(
            format!("{}/ws", crate::graphql::PATH),
            crate::graphql::WS_PATH
        );
    }
}
