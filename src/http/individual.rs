//! `/Individual`: register, read, replace and search people (CONTRACT §4).

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::NaiveDate;
use openspp_aggregates::vocabulary::GROUP_MEMBERSHIP_TYPE;
use openspp_aggregates::{Individual, IndividualCommand, IndividualDetails};
use openspp_projections::individual::{
    self as view, GroupMembershipRow, IndividualQuery, IndividualRow,
};
use openspp_projections::search::SortKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access_log::AccessEntry;
use crate::app::AppState;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::http::access::{find_visible, grants_for, identity_only, Grant, Stated};
use crate::http::command::IfMatch;
use crate::http::context::Provenance;
use crate::http::history::Version;
use crate::http::json::ApiJson;
use crate::http::registrant::{self, Registrant};
use crate::http::resource::{self, reply, Write};
use crate::http::schema::{
    Address, CodeableConcept, ContactPoint, HumanName, Identifier, Meta, OperationOutcome, Period,
    Reference, SearchResult,
};
use crate::http::search::{envelope, Params};
use crate::store::verify::Verification;
use crate::vocabulary::Vocabularies;
use openspp_projections::view::ViewRow;

const RESOURCE: &str = "Individual";
const SCOPE: &str = "individual";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search, create))
        .routes(routes!(read, replace))
        .routes(routes!(history))
        .routes(routes!(vread))
        .routes(routes!(verify))
}

/// A person in the registry (OpenSPP `schemas/individual.py`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IndividualResource {
    /// Always `Individual`.
    #[serde(rename = "type", default = "resource_type")]
    pub resource_type: String,
    /// External identifiers; at least one, at most one per system.
    pub identifier: Vec<Identifier>,
    #[serde(default = "active_by_default")]
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<HumanName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<NaiveDate>,
    #[serde(default)]
    pub birth_date_estimated: bool,
    /// ISO 5218 (`urn:iso:std:iso:5218`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<CodeableConcept>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<ContactPoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address: Vec<Address>,
    /// Current group memberships (read only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_membership: Vec<GroupMembershipRef>,
    /// Module-specific fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
}

/// A group this individual belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupMembershipRef {
    pub group: Reference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<CodeableConcept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
}

/// Group roles as codes of the group-membership-type vocabulary.
pub fn role_codes(roles: &[String]) -> Vec<openspp_aggregates::Code> {
    roles
        .iter()
        .map(|code| openspp_aggregates::Code {
            system: GROUP_MEMBERSHIP_TYPE.to_owned(),
            code: code.clone(),
        })
        .collect()
}

fn resource_type() -> String {
    RESOURCE.to_owned()
}

fn active_by_default() -> bool {
    true
}

impl IndividualResource {
    fn into_details(self) -> Result<IndividualDetails, ApiError> {
        if self.resource_type != RESOURCE {
            return Err(ApiError::unprocessable("type", "must be Individual"));
        }
        Ok(IndividualDetails {
            identifiers: self.identifier.into_iter().map(Into::into).collect(),
            active: self.active,
            name: self.name.map(Into::into).unwrap_or_default(),
            birth_date: self.birth_date,
            birth_date_estimated: self.birth_date_estimated,
            gender: self.gender.map(|g| g.single("gender")).transpose()?,
            telecom: self.telecom.into_iter().map(Into::into).collect(),
            address: self.address.into_iter().map(Into::into).collect(),
            extension: self.extension,
        })
    }

    fn render(
        row: IndividualRow,
        memberships: &[GroupMembershipRow],
        vocabulary: &Vocabularies,
    ) -> Self {
        let state = row.state;
        Self {
            resource_type: resource_type(),
            identifier: state.live_identifiers().map(Into::into).collect(),
            active: state.active,
            name: Some((&state.name).into()),
            birth_date: state.birth_date,
            birth_date_estimated: state.birth_date_estimated,
            gender: state
                .gender
                .as_ref()
                .map(|g| CodeableConcept::from_codes([g], vocabulary)),
            telecom: state.telecom.iter().map(Into::into).collect(),
            address: state.address.iter().map(Into::into).collect(),
            group_membership: memberships
                .iter()
                .map(|m| GroupMembershipRef {
                    group: Reference {
                        reference: format!("Group/{}", m.group_identifier),
                        display: None,
                    },
                    role: (!m.roles.is_empty())
                        .then(|| CodeableConcept::from_codes(&role_codes(&m.roles), vocabulary)),
                    period: Some(Period {
                        start: Some(m.start_date),
                        end: None,
                    }),
                })
                .collect(),
            extension: None,
            meta: Some(Meta::new(row.version, row.last_updated, row.source)),
        }
    }
}

/// Current group memberships of `ids`, keeping for a consent-bound caller only the groups it
/// may see itself: a household's identifier is the household's data.
async fn visible_memberships(
    state: &AppState,
    principal: &Principal,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Vec<GroupMembershipRow>>, ApiError> {
    let mut memberships = view::group_memberships(&state.pool, ids).await?;
    if principal.require_consent {
        let groups: Vec<String> = memberships
            .values()
            .flatten()
            .map(|m| m.group_id.clone())
            .collect();
        let visible = grants_for(state, principal, "group", &groups).await?;
        for rows in memberships.values_mut() {
            rows.retain(|m| visible.contains_key(&m.group_id));
        }
    }
    Ok(memberships)
}

/// The groups a rendering names in `groupMembership`, as `(reference, stream)` for the access
/// log.
fn mentioned_groups(
    memberships: &[GroupMembershipRow],
    grant: Option<&Grant>,
) -> Vec<(String, String)> {
    if !grant.is_some_and(|g| g.allows("groupMembership")) {
        return Vec::new();
    }
    memberships
        .iter()
        .map(|m| (format!("Group/{}", m.group_identifier), m.group_id.clone()))
        .collect()
}

/// Renders one individual with its group memberships, as every single read and write answers;
/// a read's access-log entry (`log`) is recorded with the groups the answer names.
async fn respond(
    state: &AppState,
    principal: &Principal,
    row: IndividualRow,
    status: StatusCode,
    grant: Option<&Grant>,
    log: Option<AccessEntry>,
) -> Result<Response, ApiError> {
    let memberships =
        visible_memberships(state, principal, std::slice::from_ref(&row.aggregate_id))
            .await?
            .remove(&row.aggregate_id)
            .unwrap_or_default();
    if let Some(log) = log {
        let entry = log.mentioning(mentioned_groups(&memberships, grant));
        state.access_log.record(entry).await;
    }
    let version = row.version;
    let first = row.state.live_identifiers().next().map(|i| i.key());
    let resource = IndividualResource::render(row, &memberships, &state.vocabulary);
    Ok(reply(status, RESOURCE, version, first, resource, grant))
}

/// Runs a command and answers with the individual as the caller may now see it.
async fn run(
    state: &AppState,
    principal: &Principal,
    provenance: &Provenance,
    write: Write<IndividualCommand>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let (row, grant) = resource::run::<Individual>(
        state,
        principal,
        provenance,
        write,
        RESOURCE,
        "individual_view",
        SCOPE,
    )
    .await?;
    respond(state, principal, row, status, grant.as_ref(), None).await
}

/// Search individuals.
#[utoipa::path(get, path = "/Individual", tag = "Individual",
    params(
        ("identifier" = Option<String>, Query, description = "`system|value`"),
        ("name" = Option<String>, Query, description = "Part of any name, case-insensitive"),
        ("birthdate" = Option<String>, Query, description = "Date with prefix eq ne gt lt ge le; repeatable"),
        ("gender" = Option<String>, Query, description = "ISO 5218 code, or `system|code`"),
        ("address" = Option<String>, Query, description = "Part of any address field"),
        ("active" = Option<bool>, Query),
        ("_lastUpdated" = Option<String>, Query, description = "Instant or date with prefix; repeatable"),
        ("_count" = Option<i64>, Query, description = "1-100, default 20"),
        ("_offset" = Option<i64>, Query),
        ("_sort" = Option<String>, Query, description = "name, given, birthdate, _lastUpdated; `-` for descending"),
    ),
    responses(
        (status = 200, body = SearchResult<IndividualResource>),
        (status = 400, body = OperationOutcome),
        (status = 401, body = OperationOutcome),
        (status = 403, body = OperationOutcome),
    ),
    security(("bearer" = ["individual:search"])))]
async fn search(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<SearchResult<serde_json::Value>>, ApiError> {
    principal.require(SCOPE, Action::Search)?;
    let mut params = Params::from_uri(&uri)?;
    let page = params.page()?;
    let query = IndividualQuery {
        identifier: params.identifier()?,
        name: params.one("name")?,
        birth_date: params.dates("birthdate")?,
        gender: params
            .one("gender")?
            .map(|g| g.rsplit('|').next().unwrap_or_default().to_owned()),
        address: params.one("address")?,
        last_updated: params.instants("_lastUpdated")?,
        active: params.boolean("active")?,
        visibility: principal.visibility(),
        sort: params.sort(
            &view::SORT_COLUMNS,
            SortKey {
                column: "last_updated",
                descending: true,
            },
        )?,
    };
    params.finish()?;
    principal.may_search_on(SCOPE, &query.fields())?;
    let found = view::search(&state.pool, &query, page).await?;
    let ids: Vec<String> = found.rows.iter().map(|r| r.aggregate_id.clone()).collect();
    let mut memberships = visible_memberships(&state, &principal, &ids).await?;
    let grants = grants_for(&state, &principal, SCOPE, &ids).await?;
    let mut entry = AccessEntry::new(&principal, provenance.request_id(), RESOURCE, "search");
    for row in &found.rows {
        let grant = grants.get(&row.aggregate_id);
        if let Some(key) = row.state.live_identifiers().next() {
            entry = entry.returned(
                format!("{RESOURCE}/{}", key.key()),
                Some(&row.aggregate_id),
                grant,
            );
        }
        if let Some(groups) = memberships.get(&row.aggregate_id) {
            entry = entry.mentioning(mentioned_groups(groups, grant));
        }
    }
    state.access_log.record(entry).await;
    Ok(Json(envelope(&uri, page, found, |row| {
        let mine = memberships.remove(&row.aggregate_id).unwrap_or_default();
        let grant = grants.get(&row.aggregate_id);
        let resource =
            serde_json::to_value(IndividualResource::render(row, &mine, &state.vocabulary))
                .unwrap_or_default();
        match grant {
            Some(grant) => grant.filter(resource),
            None => identity_only(resource),
        }
    })))
}

/// Register an individual.
#[utoipa::path(post, path = "/Individual", tag = "Individual",
    request_body = IndividualResource,
    responses(
        (status = 201, body = IndividualResource, description = "Registered; `Location` and `ETag` set"),
        (status = 409, body = OperationOutcome, description = "An identifier is already in use"),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["individual:create"])))]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    body: Result<ApiJson<IndividualResource>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(SCOPE, Action::Create)?;
    let ApiJson(body) = body?;
    let details = body.into_details()?;
    let aggregate_id = uuid::Uuid::now_v7().to_string();
    let subject = details
        .identifiers
        .first()
        .map(|i| i.key())
        .unwrap_or_default();
    run(
        &state,
        &principal,
        &provenance,
        Write {
            stream: aggregate_id,
            if_match: IfMatch(None),
            command: IndividualCommand::Register(details),
            consent_id: None,
            subject,
        },
        StatusCode::CREATED,
    )
    .await
}

/// Read an individual by external identifier; with `_at`, as it was at that instant.
#[utoipa::path(get, path = "/Individual/{id}", tag = "Individual",
    params(
        ("id" = String, Path, description = "`system|value`, URL-encoded"),
        ("_at" = Option<String>, Query, description = "An RFC 3339 instant: the individual as it was then"),
    ),
    responses(
        (status = 200, body = IndividualResource, description = "With `ETag`"),
        (status = 404, body = OperationOutcome),
    ),
    security(("bearer" = ["individual:read"])))]
async fn read(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    registrant::read::<Individual, _, _>(
        &state,
        &principal,
        &provenance,
        &id,
        &uri,
        |row, grant, log| {
            let (state, principal) = (&state, &principal);
            async move {
                respond(
                    state,
                    principal,
                    row,
                    StatusCode::OK,
                    Some(&grant),
                    Some(log),
                )
                .await
            }
        },
    )
    .await
}

/// Replace an individual's data; only what changed is recorded, as specific events. Fields the
/// client may not see must be left out, and stay as they are.
#[utoipa::path(put, path = "/Individual/{id}", tag = "Individual",
    params(
        ("id" = String, Path, description = "`system|value`, URL-encoded"),
        ("If-Match" = Option<String>, Header, description = "The `ETag` the change is based on"),
    ),
    request_body = IndividualResource,
    responses(
        (status = 200, body = IndividualResource),
        (status = 403, body = OperationOutcome, description = "The body states a field this client may not see"),
        (status = 404, body = OperationOutcome),
        (status = 409, body = OperationOutcome),
        (status = 412, body = OperationOutcome, description = "`If-Match` is stale"),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["individual:update"])))]
async fn replace(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Result<Stated<IndividualResource>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(SCOPE, Action::Update)?;
    let Stated { body, fields } = body?;
    let visible = find_visible(&state, &principal, &provenance, RESOURCE, SCOPE, &id).await?;
    let details = body.into_details()?;
    run(
        &state,
        &principal,
        &provenance,
        Write {
            stream: visible.stream,
            if_match,
            command: IndividualCommand::Replace {
                details,
                stated: fields,
                access: visible.access,
            },
            consent_id: visible.grant.consent_id(),
            subject: id,
        },
        StatusCode::OK,
    )
    .await
}

impl Registrant for Individual {
    const RESOURCE: &'static str = RESOURCE;
    const SCOPE: &'static str = SCOPE;
    const VIEW: &'static str = "individual_view";
    type Rendered = IndividualResource;
    type Context = ();

    fn context<'a>(
        _state: &'a AppState,
        _principal: &'a Principal,
        _versions: &'a [Version<Self>],
    ) -> impl std::future::Future<Output = Result<(), ApiError>> + Send + 'a {
        std::future::ready(Ok(()))
    }

    /// Past versions name no other subject: group memberships live in other streams.
    fn mentioned(_context: &(), _grant: &Grant) -> Vec<(String, String)> {
        Vec::new()
    }

    /// As a read shows it; group memberships live in other streams and are left out.
    fn render(state: &AppState, _context: &(), version: &Version<Self>) -> IndividualResource {
        let row = ViewRow {
            aggregate_id: String::new(),
            version: version.number(),
            state: version.state.clone(),
            last_updated: version.event.recorded_at,
            source: version.source(),
        };
        IndividualResource::render(row, &[], &state.vocabulary)
    }
}

/// The individual's versions, newest first, with what changed and who changed it.
#[utoipa::path(get, path = "/Individual/{id}/_history", tag = "Individual",
    params(
        ("id" = String, Path, description = "`system|value`, URL-encoded"),
        ("_since" = Option<String>, Query, description = "Only versions recorded at or after this instant"),
        ("_at" = Option<String>, Query, description = "Only versions recorded up to this instant"),
        ("_count" = Option<i64>, Query), ("_offset" = Option<i64>, Query),
    ),
    responses((status = 200, description = "FHIR Bundle of type history"), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn history(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<serde_json::Value>, ApiError> {
    registrant::history::<Individual>(&state, &principal, &provenance, &id, &uri).await
}

/// The individual exactly as it was at one version.
#[utoipa::path(get, path = "/Individual/{id}/_history/{versionId}", tag = "Individual",
    params(
        ("id" = String, Path, description = "`system|value`, URL-encoded"),
        ("versionId" = String, Path, description = "A `meta.versionId`"),
    ),
    responses((status = 200, body = IndividualResource), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn vread(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path((id, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    registrant::vread::<Individual>(&state, &principal, &provenance, &id, &version).await
}

/// Recomputes the individual's hash chain and names the first broken version, if any.
#[utoipa::path(get, path = "/Individual/{id}/_history/$verify", tag = "Individual",
    params(("id" = String, Path, description = "`system|value`, URL-encoded")),
    responses((status = 200, description = "`{valid, versions, first_broken_version?}`"), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn verify(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
) -> Result<Json<Verification>, ApiError> {
    registrant::verify::<Individual>(&state, &principal, &provenance, &id).await
}
