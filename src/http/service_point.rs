//! `/ServicePoint` (CONTRACT §11; OpenSPP `spp_api_v2_service_points`): where beneficiaries
//! collect, read and searched as OpenSPP serves them (searches answer a FHIR-like Bundle, as
//! OpenSPP's do for this resource), and (**beyond OpenSPP**) registered and changed here.

use axum::extract::{OriginalUri, Path};
use axum::Json;
use openspp_aggregates::service_point::{
    name_identifier, ServicePoint, ServicePointCommand, NAME_SYSTEM,
};
use openspp_projections::search::Comparator;
use openspp_projections::service_point::ServicePointQuery;
use openspp_projections::view;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::advanced_search::SearchBundle;
use crate::api::json::ApiJson;
use crate::api::params::Params;
use crate::api::preconditions::IfMatch;
use crate::api::schema::OperationOutcome;
use crate::api::service_point::{ServicePointResource, RESOURCE};
use crate::app::AppState;
use crate::auth::Action;
use crate::error::ApiError;
use crate::http::delivery::with_default;
use crate::resource::{self, Answer, Call, Interaction, Located, Resource, Searchable, Snapshot};

const SCOPE: &str = "service_point";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search, create))
        .routes(routes!(read, replace))
        .routes(routes!(history))
        .routes(routes!(vread))
        .routes(routes!(verify))
}

impl Resource for ServicePoint {
    const SCOPE: &'static str = SCOPE;
    const VIEW: Option<&'static str> = Some("service_point_view");
    const PERSONAL: bool = false;
    type Rendered = ServicePointResource;
    type Context = ();

    /// By name (`urn:openspp:service-point|{name}` names it too).
    async fn locate(call: &Call, id: &str) -> Result<Located<Self>, ApiError> {
        let name = resource::key_in(id, NAME_SYSTEM);
        let subject = format!("{RESOURCE}/{name}");
        let identifier = name_identifier(name);
        let found = view::by_identifier::<ServicePoint>(
            &call.state.pool,
            "service_point_view",
            RESOURCE,
            &identifier.system,
            &identifier.value,
        )
        .await?;
        resource::not_personal(call, subject, found)
    }

    fn render(call: &Call, _context: &(), row: &Snapshot<Self>) -> ServicePointResource {
        ServicePointResource::render(row, &call.state.vocabulary)
    }

    fn key(_stream: &str, state: &Self) -> Option<String> {
        state.registered.then(|| state.details.name.clone())
    }
}

impl Searchable for ServicePoint {
    type Query = ServicePointQuery;

    /// OpenSPP's parameters: `name` and `area` (a part, any case), `country` (any case),
    /// `contractActive`, `_lastUpdated` (no prefix: at or after).
    async fn query(_call: &Call, params: &mut Params) -> Result<ServicePointQuery, ApiError> {
        Ok(ServicePointQuery {
            name: params.one("name")?,
            area: params.one("area")?,
            country: params.one("country")?.map(|c| c.to_uppercase()),
            contract_active: params.boolean("contractActive")?,
            last_updated: with_default(params.instants("_lastUpdated")?, Comparator::Ge),
        })
    }
}

/// Search service points, in name order, answered as a `searchset` Bundle (as OpenSPP).
#[utoipa::path(get, path = "/ServicePoint", tag = "ServicePoint",
    params(
        ("name" = Option<String>, Query, description = "A part of the name, any case"),
        ("area" = Option<String>, Query, description = "A part of the area's name, any case"),
        ("country" = Option<String>, Query, description = "ISO 3166-1 alpha-2, any case"),
        ("contractActive" = Option<bool>, Query),
        ("_lastUpdated" = Option<String>, Query, description = "With a prefix; no prefix: at or after"),
        ("_count" = Option<i64>, Query), ("_offset" = Option<i64>, Query),
        ("_elements" = Option<String>, Query, description = "Comma-separated top-level fields each result shows"),
    ),
    responses((status = 200, body = SearchBundle), (status = 400, body = OperationOutcome)),
    security(("bearer" = ["service_point:read"])))]
async fn search(call: Call, OriginalUri(uri): OriginalUri) -> Result<Json<SearchBundle>, ApiError> {
    resource::search::<ServicePoint>(&call, &uri)
        .await
        .map(|result| Json(result.into()))
}

/// Register a service point (operators).
#[utoipa::path(post, path = "/ServicePoint", tag = "ServicePoint", request_body = ServicePointResource,
    responses(
        (status = 201, body = ServicePointResource, description = "`Location` names it by name"),
        (status = 409, body = OperationOutcome, description = "The name is taken"),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["service_point:create"])))]
async fn create(
    call: Call,
    body: Result<ApiJson<ServicePointResource>, ApiError>,
) -> Result<Answer, ApiError> {
    call.open(SCOPE, Action::Create, RESOURCE, Interaction::CREATE)?;
    let ApiJson(body) = body?;
    let details = body.into_details(&call.state.vocabulary)?;
    let subject = details.name.trim().to_owned();
    resource::create::<ServicePoint>(&call, Some(subject), ServicePointCommand::Register(details))
        .await
}

/// Change a service point (all but its name).
#[utoipa::path(put, path = "/ServicePoint/{id}", tag = "ServicePoint", request_body = ServicePointResource,
    params(("id" = String, Path, description = "The name, URL-encoded"), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = ServicePointResource), (status = 404, body = OperationOutcome),
              (status = 412, body = OperationOutcome), (status = 422, body = OperationOutcome)),
    security(("bearer" = ["service_point:update"])))]
async fn replace(
    call: Call,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Result<ApiJson<ServicePointResource>, ApiError>,
) -> Result<Answer, ApiError> {
    call.open(SCOPE, Action::Update, RESOURCE, Interaction::UPDATE)?;
    let ApiJson(body) = body?;
    let target = ServicePoint::locate(&call, &id).await?;
    let details = body.into_details(&call.state.vocabulary)?;
    let write = target.change(if_match, |_| ServicePointCommand::Replace(details));
    resource::commit(&call, write).await
}

crate::http::read_routes!(
    ServicePoint,
    ServicePointResource,
    "The service point's name, URL-encoded"
);
