//! `GET /AuditEvent`: the access log, searched by client, subject and time (scope `audit:read`).
//! A client that itself needs consent, or is limited to some programs, sees only its own
//! accesses: other clients' use of the registry is not its to see.

use axum::extract::OriginalUri;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access_log::{search as search_log, AccessQuery, SubjectQuery};
use crate::api::audit_event::AuditEventResource;
use crate::api::params::{page_link, Params};
use crate::api::reference::parse_identifier;
use crate::api::schema::{OperationOutcome, SearchLinks, SearchMeta, SearchResult};
use crate::app::AppState;
use crate::auth::Action;
use crate::error::ApiError;
use crate::resource::{grants_for, Call, Interaction};
use crate::store::claims;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search))
}

/// Search the access log.
#[utoipa::path(get, path = "/AuditEvent", tag = "Audit",
    params(
        ("client" = Option<String>, Query, description = "A client id, or `urn:openspp:api-client:{id}`"),
        ("subject" = Option<String>, Query, description = "`Individual/{system}|{value}`, `Group/…` or `ProgramMembership/…`: every access to that subject, whichever of its identifiers was used"),
        ("date" = Option<String>, Query, description = "Instant or date with prefix; repeatable"),
        ("_count" = Option<i64>, Query), ("_offset" = Option<i64>, Query),
    ),
    responses((status = 200, body = SearchResult<AuditEventResource>), (status = 400, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn search(
    call: Call,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<SearchResult<AuditEventResource>>, ApiError> {
    call.open("audit", Action::Read, "AuditEvent", Interaction::SEARCH)?;
    let principal = &call.principal;
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
        Some(reference) => Some(subject_query(&call, reference).await?),
        None => None,
    };
    let mut query = AccessQuery {
        client_id,
        subject,
        consent_id: None,
        at,
    };
    // Only its own accesses: asking for another client's finds nothing (not its own instead).
    let mut foreign = false;
    if principal.require_consent || !principal.allowed_programs.is_empty() {
        foreign = query
            .client_id
            .as_ref()
            .is_some_and(|asked| *asked != principal.client_id);
        query.client_id = Some(principal.client_id.clone());
    }
    let (total, rows) = if foreign {
        (0, Vec::new())
    } else {
        search_log(&call.state.pool, &query, page).await?
    };
    let count = rows.len();
    let next = (page.offset.saturating_add(count as i64) < total)
        .then(|| page_link(&uri, page.offset + page.count));
    Ok(Json(SearchResult {
        data: rows.iter().map(AuditEventResource::from).collect(),
        meta: SearchMeta {
            total,
            total_estimated: false,
            count,
            offset: page.offset,
        },
        links: SearchLinks {
            self_: uri.to_string(),
            next,
            prev: None,
        },
    }))
}

/// The subject an auditor asks about: `Individual/{system}|{value}` (or `Group/…`,
/// `ProgramMembership/…`) resolved through the live identifiers to its stream, so that accesses
/// made through any of its identifiers match; entries naming the reference itself match too
/// (refused lookups of unknown identifiers, identifiers no longer live).
///
/// For a caller that needs consent, only a subject it may see now is resolved: otherwise a
/// second identifier of someone it may not see would link to its accesses through the first,
/// telling it that both name one person. It then matches the reference text only.
async fn subject_query(call: &Call, reference: String) -> Result<SubjectQuery, ApiError> {
    let (kind, key) = reference.split_once('/').ok_or_else(|| {
        ApiError::bad_request(Some("subject"), "must be {Resource}/{system}|{value}")
    })?;
    let identifier = parse_identifier(key, "subject")?;
    let mut stream = claims::resolve(&call.state.pool, kind, &identifier).await?;
    if call.principal.require_consent {
        if let Some(found) = stream.take() {
            let scope = match kind {
                "Individual" => "individual",
                "Group" => "group",
                // A membership's consent is its beneficiary's: matched by text only.
                _ => "",
            };
            let visible = if scope.is_empty() {
                false
            } else {
                grants_for(call, scope, std::slice::from_ref(&found))
                    .await?
                    .contains_key(&found)
            };
            stream = visible.then_some(found);
        }
    }
    Ok(SubjectQuery::new(reference, stream))
}
