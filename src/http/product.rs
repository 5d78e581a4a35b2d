//! `/Product` (CONTRACT §11; OpenSPP `spp_api_v2_products`): goods an in-kind entitlement
//! delivers, read and searched as OpenSPP serves them (searches answer a FHIR-like Bundle, as
//! OpenSPP's do for this resource), and (**beyond OpenSPP**) registered and changed here.

use axum::extract::{OriginalUri, Path};
use axum::Json;
use openspp_aggregates::product::{Product, ProductCommand, KEY_SYSTEM, PRODUCT_CATEGORY};
use openspp_projections::product::{self as view_of, ProductQuery};
use openspp_projections::search::Comparator;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::advanced_search::SearchBundle;
use crate::api::json::ApiJson;
use crate::api::params::Params;
use crate::api::preconditions::IfMatch;
use crate::api::product::{ProductResource, RESOURCE};
use crate::api::schema::OperationOutcome;
use crate::app::AppState;
use crate::auth::Action;
use crate::error::ApiError;
use crate::http::delivery::with_default;
use crate::resource::{self, Answer, Call, Interaction, Located, Resource, Searchable, Snapshot};

const SCOPE: &str = "product";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search, create))
        .routes(routes!(read, replace))
        .routes(routes!(history))
        .routes(routes!(vread))
        .routes(routes!(verify))
}

impl Resource for Product {
    const SCOPE: &'static str = SCOPE;
    const VIEW: Option<&'static str> = Some("product_view");
    const PERSONAL: bool = false;
    type Rendered = ProductResource;
    type Context = ();

    /// OpenSPP's lookup: the exact default code first, then the exact name
    /// (`urn:openspp:product|{key}` names it too).
    async fn locate(call: &Call, id: &str) -> Result<Located<Self>, ApiError> {
        let key = resource::key_in(id, KEY_SYSTEM);
        let subject = format!("{RESOURCE}/{key}");
        let found = view_of::locate(&call.state.pool, key).await?;
        resource::not_personal(call, subject, found)
    }

    fn render(call: &Call, _context: &(), row: &Snapshot<Self>) -> ProductResource {
        ProductResource::render(row, &call.state.vocabulary)
    }

    fn key(_stream: &str, state: &Self) -> Option<String> {
        state.registered.then(|| state.details.key().to_owned())
    }
}

impl Searchable for Product {
    type Query = ProductQuery;

    /// OpenSPP's parameters: `name`, `code` and `category` (a part, any case), `_lastUpdated`
    /// (no prefix: at or after).
    async fn query(call: &Call, params: &mut Params) -> Result<ProductQuery, ApiError> {
        Ok(ProductQuery {
            name: params.one("name")?,
            code: params.one("code")?,
            categories: params.one("category")?.map(|part| {
                let catalog = call.state.vocabulary.catalog();
                catalog
                    .vocabulary(PRODUCT_CATEGORY)
                    .map(|v| {
                        v.displays_containing(&part)
                            .into_iter()
                            .map(|c| c.code.clone())
                            .collect()
                    })
                    .unwrap_or_default()
            }),
            last_updated: with_default(params.instants("_lastUpdated")?, Comparator::Ge),
        })
    }
}

/// Search products, in name order, answered as a `searchset` Bundle (as OpenSPP).
#[utoipa::path(get, path = "/Product", tag = "Product",
    params(
        ("name" = Option<String>, Query, description = "A part of the name, any case"),
        ("code" = Option<String>, Query, description = "A part of the default code, any case"),
        ("category" = Option<String>, Query, description = "A part of the category's name, any case"),
        ("_lastUpdated" = Option<String>, Query, description = "With a prefix; no prefix: at or after"),
        ("_count" = Option<i64>, Query), ("_offset" = Option<i64>, Query),
        ("_elements" = Option<String>, Query, description = "Comma-separated top-level fields each result shows"),
    ),
    responses((status = 200, body = SearchBundle), (status = 400, body = OperationOutcome)),
    security(("bearer" = ["product:read"])))]
async fn search(call: Call, OriginalUri(uri): OriginalUri) -> Result<Json<SearchBundle>, ApiError> {
    resource::search::<Product>(&call, &uri)
        .await
        .map(|result| Json(result.into()))
}

/// Register a product (operators).
#[utoipa::path(post, path = "/Product", tag = "Product", request_body = ProductResource,
    responses(
        (status = 201, body = ProductResource, description = "`Location` names it by default code, else name"),
        (status = 409, body = OperationOutcome, description = "The default code (else name) is taken"),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["product:create"])))]
async fn create(
    call: Call,
    body: Result<ApiJson<ProductResource>, ApiError>,
) -> Result<Answer, ApiError> {
    call.open(SCOPE, Action::Create, RESOURCE, Interaction::CREATE)?;
    let ApiJson(body) = body?;
    let details = body.into_details(&call.state.vocabulary)?;
    let subject = details.key().trim().to_owned();
    resource::create::<Product>(&call, Some(subject), ProductCommand::Register(details)).await
}

/// Change a product (all but its default code, else its name).
#[utoipa::path(put, path = "/Product/{id}", tag = "Product", request_body = ProductResource,
    params(("id" = String, Path, description = "The default code, else the name, URL-encoded"), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = ProductResource), (status = 404, body = OperationOutcome),
              (status = 412, body = OperationOutcome), (status = 422, body = OperationOutcome)),
    security(("bearer" = ["product:update"])))]
async fn replace(
    call: Call,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Result<ApiJson<ProductResource>, ApiError>,
) -> Result<Answer, ApiError> {
    call.open(SCOPE, Action::Update, RESOURCE, Interaction::UPDATE)?;
    let ApiJson(body) = body?;
    let target = Product::locate(&call, &id).await?;
    let details = body.into_details(&call.state.vocabulary)?;
    let write = target.change(if_match, |_| ProductCommand::Replace(details));
    resource::commit(&call, write).await
}

crate::http::read_routes!(
    Product,
    ProductResource,
    "The default code, else the name, URL-encoded"
);
