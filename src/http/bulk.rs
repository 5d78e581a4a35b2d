//! `POST /$bulk/export` (CONTRACT §10): up to 100 Individuals or Groups by identifier in one
//! call, each as a read of it alone would show it (`resource::export`).

use axum::Json;
use openspp_aggregates::{Group, Individual};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::bulk::{BulkExportItem, BulkExportRequest, BulkExportResponse, MAX_IDENTIFIERS};
use crate::api::json::ApiJson;
use crate::api::params::Params;
use crate::api::schema::OperationOutcome;
use crate::app::AppState;
use crate::error::ApiError;
use crate::resource::{self, Call, Exported};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export))
}

/// Read up to 100 Individuals or Groups by identifier: one item per identifier, in order,
/// with consent and field filtering applied per subject, and one access-log entry naming
/// every subject returned and every identifier asked for and not found.
#[utoipa::path(post, path = "/$bulk/export", tag = "Bulk",
    request_body = BulkExportRequest,
    responses(
        (status = 200, body = BulkExportResponse),
        (status = 400, body = OperationOutcome),
        (status = 401, body = OperationOutcome),
        (status = 403, body = OperationOutcome, description = "No `individual:read` (or `group:read`) scope"),
        (status = 422, body = OperationOutcome, description = "Another type, or not 1 to 100 identifiers"),
    ),
    security(("bearer" = ["individual:read", "group:read"])))]
async fn export(
    call: Call,
    body: Result<ApiJson<BulkExportRequest>, ApiError>,
) -> Result<Json<BulkExportResponse>, ApiError> {
    let ApiJson(request) = body?;
    if !(1..=MAX_IDENTIFIERS).contains(&request.identifiers.len()) {
        return Err(ApiError::unprocessable(
            "identifiers",
            format!("name 1 to {MAX_IDENTIFIERS} identifiers"),
        ));
    }
    let mut params = Vec::new();
    if let Some(elements) = &request.elements {
        params.push(("_elements".to_owned(), elements.join(",")));
    }
    if let Some(extensions) = &request.extensions {
        params.push(("_extensions".to_owned(), extensions.clone()));
    }
    let params = Params::new(params);
    let ids = &request.identifiers;
    let exported = match request.resource_type.as_str() {
        "Individual" => resource::export::<Individual>(&call, ids, params).await?,
        "Group" => resource::export::<Group>(&call, ids, params).await?,
        _ => {
            return Err(ApiError::unprocessable(
                "type",
                "must be Individual or Group",
            ))
        }
    };
    let hidden = if call.principal.require_consent {
        ("access_denied", "Access denied".to_owned())
    } else {
        ("not_found", format!("{} not found", request.resource_type))
    };
    let items: Vec<BulkExportItem> = ids
        .iter()
        .zip(exported)
        .map(|(identifier, exported)| {
            let (status, resource, error) = match exported {
                Exported::Found(resource) => ("success", Some(resource), None),
                Exported::NotFound => (hidden.0, None, Some(hidden.1.clone())),
                Exported::Invalid(reason) => ("error", None, Some(reason)),
            };
            BulkExportItem {
                identifier: identifier.clone(),
                status,
                resource,
                error,
            }
        })
        .collect();
    let successful = items.iter().filter(|i| i.status == "success").count();
    Ok(Json(BulkExportResponse {
        total: items.len(),
        successful,
        failed: items.len() - successful,
        items,
    }))
}
