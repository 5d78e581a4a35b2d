//! `/Product` (CONTRACT §11; OpenSPP `spp_api_v2_products`): goods an in-kind entitlement
//! delivers, read and searched as OpenSPP serves them (searches answer a FHIR-like Bundle, as
//! OpenSPP's do for this resource), and (**beyond OpenSPP**) registered and changed here.

use axum::extract::Path;
use openspp_aggregates::product::{
    Product, ProductCommand, ProductDetails, KEY_SYSTEM, PRODUCT_CATEGORY,
};
use openspp_projections::product::{self as view_of, ProductQuery};
use openspp_projections::search::Comparator;

use crate::api::json::ApiJson;
use crate::api::params::Params;
use crate::api::preconditions::IfMatch;
use crate::api::product::{ProductResource, RESOURCE};
use crate::api::schema::OperationOutcome;
use crate::error::ApiError;
use crate::http::delivery::with_default;
use crate::resource::{self, Answer, Call, Catalogued, Located, Resource, Searchable, Snapshot};

const SCOPE: &str = "product";

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

impl Catalogued for Product {
    type Body = ProductResource;
    type Details = ProductDetails;

    fn details(call: &Call, body: ProductResource) -> Result<ProductDetails, ApiError> {
        body.into_details(&call.state.vocabulary)
    }

    /// A new product is named by its default code, else its name.
    fn subject(details: &ProductDetails) -> Option<String> {
        Some(details.key().trim().to_owned())
    }

    fn register(details: ProductDetails) -> ProductCommand {
        ProductCommand::Register(details)
    }

    fn replace(details: ProductDetails) -> ProductCommand {
        ProductCommand::Replace(details)
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

crate::http::search_route!(Product, envelope: bundle, "product:read",
    /// Search products, in name order, answered as a `searchset` Bundle (as OpenSPP).
    params(
        ("name" = Option<String>, Query, description = "A part of the name, any case"),
        ("code" = Option<String>, Query, description = "A part of the default code, any case"),
        ("category" = Option<String>, Query, description = "A part of the category's name, any case"),
    )
);

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
    resource::create_whole::<Product>(&call, body).await
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
    resource::replace_whole::<Product>(&call, if_match, &id, body).await
}

crate::http::read_routes!(Product, ProductResource, "The default code, else the name, URL-encoded",
    routes: (search, create), (read, replace));
