//! `/ServicePoint` (CONTRACT §11; OpenSPP `spp_api_v2_service_points`): where beneficiaries
//! collect, read and searched as OpenSPP serves them (searches answer a FHIR-like Bundle, as
//! OpenSPP's do for this resource), and (**beyond OpenSPP**) registered and changed here.

use axum::extract::Path;
use openspp_aggregates::service_point::{
    name_identifier, ServicePoint, ServicePointCommand, ServicePointDetails, NAME_SYSTEM,
};
use openspp_projections::search::Comparator;
use openspp_projections::service_point::ServicePointQuery;
use openspp_projections::view;

use crate::api::json::ApiJson;
use crate::api::params::Params;
use crate::api::preconditions::IfMatch;
use crate::api::schema::OperationOutcome;
use crate::api::service_point::{ServicePointResource, RESOURCE};
use crate::error::ApiError;
use crate::http::delivery::with_default;
use crate::resource::{self, Answer, Call, Catalogued, Located, Resource, Searchable, Snapshot};

const SCOPE: &str = "service_point";

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

impl Catalogued for ServicePoint {
    type Body = ServicePointResource;
    type Details = ServicePointDetails;

    fn details(call: &Call, body: ServicePointResource) -> Result<ServicePointDetails, ApiError> {
        body.into_details(&call.state.vocabulary)
    }

    /// A new service point is named by its name.
    fn subject(details: &ServicePointDetails) -> Option<String> {
        Some(details.name.trim().to_owned())
    }

    fn register(details: ServicePointDetails) -> ServicePointCommand {
        ServicePointCommand::Register(details)
    }

    fn replace(details: ServicePointDetails) -> ServicePointCommand {
        ServicePointCommand::Replace(details)
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

crate::http::search_route!(ServicePoint, envelope: bundle, "service_point:read",
    /// Search service points, in name order, answered as a `searchset` Bundle (as OpenSPP).
    params(
        ("name" = Option<String>, Query, description = "A part of the name, any case"),
        ("area" = Option<String>, Query, description = "A part of the area's name, any case"),
        ("country" = Option<String>, Query, description = "ISO 3166-1 alpha-2, any case"),
        ("contractActive" = Option<bool>, Query),
    )
);

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
    resource::create_whole::<ServicePoint>(&call, body).await
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
    resource::replace_whole::<ServicePoint>(&call, if_match, &id, body).await
}

crate::http::read_routes!(ServicePoint, ServicePointResource, "The service point's name, URL-encoded",
    routes: (search, create), (read, replace));
