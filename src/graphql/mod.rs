//! GraphQL for analysts (CONTRACT §7): the read models as one schema, served at
//! `/api/v2/graphql`. Resolvers call the application layer (`crate::resource`) — its grants,
//! consent filter, searches and access log — never the REST handlers, so a GraphQL field shows
//! exactly what the same REST read would show the same client, and a request is one access in
//! the log naming every subject it returned.

mod connections;
mod context;
mod explorer;
mod live;
mod loaders;
mod nodes;
mod objects;
mod query;
mod statistics;
mod values;
mod ws;

use std::sync::Arc;

use async_graphql::{EmptyMutation, Schema};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::graphql::{GraphqlRequest, GraphqlResponse};
use crate::api::schema::OperationOutcome;
use crate::app::AppState;
use crate::extensions::Shown;
use crate::resource::Call;

pub use live::{Event, Subscription};
pub use query::Query;

/// Where GraphQL is served.
pub const PATH: &str = "/api/v2/graphql";
/// Where subscriptions are served (WebSocket, `graphql-transport-ws`).
pub const WS_PATH: &str = "/api/v2/graphql/ws";

/// The deepest selection accepted: deep enough for a membership's beneficiary's groups'
/// members, shallow enough that a recursive query is refused before it runs.
pub const MAX_DEPTH: usize = 10;
/// The most work one query may ask for, counting each field once per node a connection or
/// list may return (`first` for connections, 10 for an unbounded link list).
pub const MAX_COMPLEXITY: usize = 5000;

/// The largest request body `POST /api/v2/graphql` reads: a query is text a person or a tool
/// wrote, never bulk data (the GraphQL extractor streams the body past the server's general
/// limit, so this one is its own).
pub const MAX_BODY: usize = 64 * 1024;

pub type ApiSchema = Schema<Query, EmptyMutation, Subscription>;

pub fn schema() -> ApiSchema {
    Schema::build(Query, EmptyMutation, Subscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema in SDL, as `schema.graphql` holds it.
pub fn sdl() -> String {
    schema().sdl()
}

/// GraphQL's endpoints, described in the OpenAPI document like every other route.
pub fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(query_or_explorer, post))
        .routes(routes!(ws::upgrade))
        .layer(Extension(schema()))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
}

/// The explorer's assets (static files, not API operations).
pub fn routes() -> Router<AppState> {
    Router::new().route(
        &format!("{}/{{name}}", explorer::ASSETS),
        get(explorer::asset),
    )
}

/// Runs one request for `call`, with the request's own batch loaders.
async fn execute(
    schema: &ApiSchema,
    call: Call,
    request: async_graphql::Request,
) -> GraphQLResponse {
    // Resources render with every registered extension, as REST with `_extensions=*`: the
    // grant still drops what the caller may not see, and a query shows only what it selects.
    call.show_extensions(Shown::All);
    let call = Arc::new(call);
    let loaders = loaders::Loaders::new(&call);
    schema
        .execute(request.data(call).data(loaders))
        .await
        .into()
}

/// Runs a GraphQL query (CONTRACT §7) under the token's scopes, allowed programs and
/// consents; a query is one access in the access log, naming every subject it returned.
#[utoipa::path(post, path = "/api/v2/graphql", tag = "GraphQL",
    request_body = GraphqlRequest,
    responses(
        (status = 200, description = "The GraphQL response; refusals are in `errors`",
            content((GraphqlResponse = "application/graphql-response+json"), (GraphqlResponse = "application/json"))),
        (status = 400, body = OperationOutcome),
        (status = 401, body = OperationOutcome),
        (status = 413, body = OperationOutcome, description = "A body over 64 KiB"),
    ),
    security(("bearer" = [])))]
async fn post(
    Extension(schema): Extension<ApiSchema>,
    call: Call,
    request: GraphQLRequest,
) -> GraphQLResponse {
    execute(&schema, call, request.into_inner()).await
}

/// `GET` with a `query` parameter runs it (a token is then required); without one, the
/// explorer page, which works offline (its assets are served here).
#[utoipa::path(get, path = "/api/v2/graphql", tag = "GraphQL",
    params(
        ("query" = Option<String>, Query, description = "A query document; without it, the explorer page"),
        ("operationName" = Option<String>, Query),
        ("variables" = Option<String>, Query, description = "The variables, as JSON"),
    ),
    responses(
        (status = 200, description = "The GraphQL response to `query`; without `query`, the explorer page",
            content((GraphqlResponse = "application/graphql-response+json"), (GraphqlResponse = "application/json"), (String = "text/html"))),
        (status = 400, body = OperationOutcome),
        (status = 401, body = OperationOutcome),
    ),
    security((), ("bearer" = [])))]
async fn query_or_explorer(
    State(state): State<AppState>,
    Extension(schema): Extension<ApiSchema>,
    request: Request,
) -> Response {
    let asks = request
        .uri()
        .query()
        .is_some_and(|q| form_urlencoded_has(q, "query"));
    if !asks {
        return explorer::page();
    }
    let (mut parts, body) = request.into_parts();
    let call = match Call::from_request_parts(&mut parts, &state).await {
        Ok(call) => call,
        Err(error) => return error.into_response(),
    };
    match GraphQLRequest::<async_graphql_axum::rejection::GraphQLRejection>::from_request(
        Request::from_parts(parts, body),
        &state,
    )
    .await
    {
        Ok(request) => execute(&schema, call, request.into_inner())
            .await
            .into_response(),
        Err(rejection) => rejection.into_response(),
    }
}

fn form_urlencoded_has(query: &str, name: &str) -> bool {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .map(|pairs| pairs.iter().any(|(key, _)| key == name))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    /// `schema.graphql` is the schema clients build against; it must be what the code serves.
    /// `UPDATE_SCHEMA=1 cargo test --lib graphql` rewrites it after a deliberate change.
    #[test]
    fn schema_graphql_is_in_step_with_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
        let printed = super::sdl();
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(path, &printed).expect("schema.graphql written");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == printed,
            "schema.graphql differs from the schema the code serves; review the change, then \
             run `UPDATE_SCHEMA=1 cargo test --lib graphql` to rewrite it"
        );
    }
}
