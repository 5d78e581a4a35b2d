//! `GET /AuditEvent`: the access log, searched by client, subject and time (scope `audit:read`).
//! A client that itself needs consent sees only its own accesses.

use axum::extract::{OriginalUri, State};
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access_log::{search as search_log, AccessQuery, AccessRow, SubjectQuery};
use crate::app::AppState;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::http::schema::OperationOutcome;
use crate::http::search::{page_link, Params};
use crate::store::metadata::client_uri;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search))
}

/// FHIR's action codes: create, read, update, execute (search).
fn action(interaction: &str) -> &'static str {
    match interaction {
        "write" => "U",
        "search" => "E",
        _ => "R",
    }
}

/// An access as a FHIR-shaped AuditEvent.
pub fn audit_event(row: &AccessRow) -> Value {
    json!({
        "resourceType": "AuditEvent",
        "recorded": row.at.to_rfc3339(),
        "type": {"code": "rest"},
        "subtype": row.interaction,
        "action": action(&row.interaction),
        "outcome": row.outcome.to_string(),
        "agent": {"who": client_uri(&row.client_id), "organization": row.organization},
        "source": {"requestId": row.request_id},
        "entity": row.subjects.iter().map(|s| json!({"what": {"reference": s}})).collect::<Vec<_>>(),
        "resource": row.resource_type,
        "purposeOfUse": row.purpose,
        "consent": row.consent_ids,
        "fieldsReturned": row.fields,
    })
}

/// Search the access log.
#[utoipa::path(get, path = "/AuditEvent", tag = "Audit",
    params(
        ("client" = Option<String>, Query, description = "A client id, or `urn:openspp:api-client:{id}`"),
        ("subject" = Option<String>, Query, description = "`Individual/{system}|{value}`, `Group/…` or `ProgramMembership/…`: every access to that subject, whichever of its identifiers was used"),
        ("date" = Option<String>, Query, description = "Instant or date with prefix; repeatable"),
        ("_count" = Option<i64>, Query), ("_offset" = Option<i64>, Query),
    ),
    responses((status = 200, description = "Search envelope of AuditEvent"), (status = 400, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn search(
    State(state): State<AppState>,
    principal: Principal,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<Value>, ApiError> {
    principal.require("audit", Action::Read)?;
    let mut params = Params::from_uri(&uri)?;
    let page = params.page()?;
    let client_id = params.one("client")?.map(|c| {
        c.strip_prefix("urn:openspp:api-client:")
            .map(str::to_owned)
            .unwrap_or(c)
    });
    let subject = params.one("subject")?;
    let at = params.instants("date")?;
    params.finish()?;
    let subject = match subject {
        Some(reference) => Some(SubjectQuery::resolve(&state.pool, reference).await?),
        None => None,
    };
    let mut query = AccessQuery {
        client_id,
        subject,
        consent_id: None,
        at,
    };
    if principal.require_consent {
        query.client_id = Some(principal.client_id.clone());
    }
    let (total, rows) = search_log(&state.pool, &query, page).await?;
    let count = rows.len();
    let next =
        (page.offset + (count as i64) < total).then(|| page_link(&uri, page.offset + page.count));
    Ok(Json(json!({
        "data": rows.iter().map(audit_event).collect::<Vec<_>>(),
        "meta": {"total": total, "count": count, "offset": page.offset},
        "links": {"self": uri.to_string(), "next": next},
    })))
}
