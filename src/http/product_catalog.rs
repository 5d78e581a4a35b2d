//! `/ProductCategory` and `/UnitOfMeasure` (CONTRACT §11; OpenSPP `spp_api_v2_products`): read
//! and searched as OpenSPP serves them (a FHIR-like Bundle, in name order), under the `product`
//! scope. Both are vocabularies here (`urn:openspp:vocab:product-category`,
//! `urn:openspp:vocab:uom`): operators add and change them through `/Vocabulary`, each change an
//! event with its history there, and a product's category and unit must be one of their codes.

use axum::extract::{OriginalUri, Path};
use axum::http::Uri;
use axum::Json;
use openspp_aggregates::product::{PRODUCT_CATEGORY, UNIT_OF_MEASURE};
use openspp_aggregates::CodeDefinition;
use openspp_projections::search::Found;
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::advanced_search::SearchBundle;
use crate::api::params::{envelope, Params};
use crate::api::product::{ProductCategoryResource, UnitOfMeasureResource};
use crate::api::schema::OperationOutcome;
use crate::app::AppState;
use crate::auth::Action;
use crate::error::ApiError;
use crate::resource::{Call, Interaction};
use crate::vocabulary::VocabularyEntry;

const SCOPE: &str = "product";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search_categories))
        .routes(routes!(read_category))
        .routes(routes!(search_units))
        .routes(routes!(read_unit))
}

type Render<T> = fn(&VocabularyEntry, &CodeDefinition) -> T;

/// One code of `vocabulary` named by its name (or code), access-logged as `{resource}/{id}`.
fn read_one<T: Serialize>(
    call: &Call,
    resource: &'static str,
    vocabulary: &str,
    id: &str,
    render: Render<T>,
) -> Result<Json<T>, ApiError> {
    call.open(SCOPE, Action::Read, resource, Interaction::READ)?;
    let subject = format!("{resource}/{id}");
    let catalog = call.state.vocabulary.catalog();
    let found = catalog
        .vocabulary(vocabulary)
        .and_then(|entry| entry.named(id).map(|code| render(entry, code)));
    match found {
        Some(rendered) => {
            call.audit.returned(subject, None, None);
            Ok(Json(rendered))
        }
        None => {
            call.audit.not_found(subject, None);
            Err(ApiError::not_found(resource))
        }
    }
}

/// The codes of `vocabulary` whose name holds `name`, and whose parent's name holds `parent`
/// (any case), in name order, one page as a `searchset` Bundle.
fn search_codes<T: Serialize>(
    call: &Call,
    uri: &Uri,
    resource: &'static str,
    vocabulary: &str,
    parent_param: Option<&str>,
    render: Render<T>,
) -> Result<Json<SearchBundle>, ApiError> {
    call.open(SCOPE, Action::Read, resource, Interaction::SEARCH)?;
    let mut params = Params::from_uri(uri)?;
    let name = params.one("name")?.map(|n| n.to_lowercase());
    let parent = match parent_param {
        Some(param) => params.one(param)?.map(|p| p.to_lowercase()),
        None => None,
    };
    let page = params.page()?;
    params.finish()?;
    let catalog = call.state.vocabulary.catalog();
    let mut matching: Vec<Value> = Vec::new();
    if let Some(entry) = catalog.vocabulary(vocabulary) {
        let mut codes: Vec<&CodeDefinition> = entry
            .codes
            .iter()
            .map(|c| &c.definition)
            .filter(|c| !c.deprecated)
            .filter(|c| {
                name.as_ref()
                    .is_none_or(|n| c.display.to_lowercase().contains(n))
            })
            .filter(|c| {
                parent.as_ref().is_none_or(|p| {
                    c.parent_code
                        .as_deref()
                        .and_then(|code| entry.code(code))
                        .is_some_and(|up| up.display.to_lowercase().contains(p))
                })
            })
            .collect();
        codes.sort_by(|a, b| (&a.display, &a.code).cmp(&(&b.display, &b.code)));
        matching = codes
            .into_iter()
            .map(|code| serde_json::to_value(render(entry, code)).unwrap_or_default())
            .collect();
    }
    let total = matching.len() as i64;
    let rows: Vec<Value> = matching
        .into_iter()
        .skip(page.offset as usize)
        .take(page.count as usize)
        .collect();
    Ok(Json(
        envelope(uri, page, Found::exact(total, rows), |r| r).into(),
    ))
}

/// `code_routes!(search, read, Resource, Body, vocabulary, parent, "the id", docs…, params(…))`
/// defines the search and the single read of a resource whose rows are the codes of one
/// vocabulary, at `/{Resource}` and `/{Resource}/{id}`, under `product:read`.
macro_rules! code_routes {
    (
        $search:ident, $read:ident, $resource:ident, $body:ty, $vocabulary:expr, $parent:expr,
        $id:literal,
        search: $(#[$search_doc:meta])*,
        read: $(#[$read_doc:meta])*,
        params($($param:tt)*)
    ) => {
        $(#[$search_doc])*
        #[utoipa::path(get, path = concat!("/", stringify!($resource)), tag = "Product",
            params(
                $($param)*
                ("_count" = Option<i64>, Query), ("_offset" = Option<i64>, Query),
            ),
            responses((status = 200, body = SearchBundle), (status = 400, body = OperationOutcome),
                      (status = 403, body = OperationOutcome)),
            security(("bearer" = ["product:read"])))]
        async fn $search(
            call: Call,
            OriginalUri(uri): OriginalUri,
        ) -> Result<Json<SearchBundle>, ApiError> {
            search_codes(
                &call,
                &uri,
                stringify!($resource),
                $vocabulary,
                $parent,
                <$body>::render,
            )
        }

        $(#[$read_doc])*
        #[utoipa::path(get, path = concat!("/", stringify!($resource), "/{id}"), tag = "Product",
            params(("id" = String, Path, description = $id)),
            responses((status = 200, body = $body), (status = 403, body = OperationOutcome),
                      (status = 404, body = OperationOutcome)),
            security(("bearer" = ["product:read"])))]
        async fn $read(call: Call, Path(id): Path<String>) -> Result<Json<$body>, ApiError> {
            read_one(&call, stringify!($resource), $vocabulary, &id, <$body>::render)
        }
    };
}

code_routes!(
    search_categories, read_category, ProductCategory, ProductCategoryResource,
    PRODUCT_CATEGORY, None, "The category's name, URL-encoded",
    search:
        /// Search product categories, in name order, answered as a `searchset` Bundle (as OpenSPP).
    ,
    read:
        /// One product category, by name.
    ,
    params(("name" = Option<String>, Query, description = "A part of the name, any case"),)
);

code_routes!(
    search_units, read_unit, UnitOfMeasure, UnitOfMeasureResource,
    UNIT_OF_MEASURE, Some("category"), "The unit's name, URL-encoded",
    search:
        /// Search units of measure, in name order, answered as a `searchset` Bundle (as OpenSPP).
    ,
    read:
        /// One unit of measure, by name.
    ,
    params(
        ("name" = Option<String>, Query, description = "A part of the name, any case"),
        ("category" = Option<String>, Query, description = "A part of the reference unit's name, any case"),
    )
);
