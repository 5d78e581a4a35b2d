//! `/Program` (CONTRACT §4; **beyond OpenSPP**, programs are created and changed here by
//! operators with `program:create` / `program:update`).

use axum::extract::{OriginalUri, Path};
use axum::Json;
use openspp_aggregates::program::PROGRAM_TYPE;
use openspp_aggregates::TargetType;
use openspp_aggregates::{Program, ProgramCommand, ProgramDetails, ProgramStatus};
use openspp_projections::program::{self as view, ProgramQuery};
use openspp_projections::search::SortKey;
use serde_json::Value;

use crate::api::json::ApiJson;
use crate::api::params::{code_of, Params};
use crate::api::preconditions::IfMatch;
use crate::api::program::ProgramResource;
use crate::api::reference::parse_identifier;
use crate::api::schema::{OperationOutcome, SearchResult};
use crate::error::ApiError;
use crate::resource::{self, Answer, Call, Catalogued, Located, Resource, Searchable, Snapshot};
use crate::store::claims::resolve_program;

pub const RESOURCE: &str = "Program";
const SCOPE: &str = "program";

impl Resource for Program {
    const SCOPE: &'static str = SCOPE;
    const VIEW: Option<&'static str> = Some("program_view");
    const PERSONAL: bool = false;
    type Rendered = ProgramResource;
    type Context = ();

    /// By any of its identifiers, the name alias matched whatever its case; a client limited
    /// to some programs finds only those.
    async fn locate(call: &Call, id: &str) -> Result<Located<Self>, ApiError> {
        let identifier = parse_identifier(id, "id")?;
        let subject = format!("{RESOURCE}/{}", identifier.key());
        let key = openspp_aggregates::program::lookup_key(identifier);
        let found = resource::by_identifier::<Self>(call, &key)
            .await?
            .filter(|(stream, _)| call.principal.uses_program(stream));
        resource::not_personal(call, subject, found)
    }

    fn render(call: &Call, _context: &(), row: &Snapshot<Self>) -> ProgramResource {
        ProgramResource::render(row, &call.state.vocabulary)
    }

    fn key(_stream: &str, state: &Self) -> Option<String> {
        state.live_identifiers().next().map(|i| i.key())
    }
}

impl Catalogued for Program {
    type Body = ProgramResource;
    type Details = ProgramDetails;

    fn details(_call: &Call, body: ProgramResource) -> Result<ProgramDetails, ApiError> {
        body.into_details()
    }

    /// A new program is named by its identifiers once it is stored.
    fn subject(_details: &ProgramDetails) -> Option<String> {
        None
    }

    fn register(details: ProgramDetails) -> ProgramCommand {
        ProgramCommand::Create(details)
    }

    fn replace(details: ProgramDetails) -> ProgramCommand {
        ProgramCommand::Replace(details)
    }
}

impl Searchable for Program {
    type Query = ProgramQuery;

    async fn query(call: &Call, params: &mut Params) -> Result<ProgramQuery, ApiError> {
        let status = params.one_of("status", ProgramStatus::parse, ProgramStatus::expected)?;
        let target_type = params.one_of("targetType", TargetType::parse, TargetType::expected)?;
        let principal = &call.principal;
        let pool = &call.state.pool;
        let identifier = match params.identifier()? {
            None => None,
            Some(identifier) => Some(
                resolve_program(pool, identifier)
                    .await?
                    .filter(|stream| principal.uses_program(stream)),
            ),
        };
        let program_type = params
            .one("type")?
            .map(|code| code_of(&code, PROGRAM_TYPE, "type"))
            .transpose()?;
        let after = match params.one("_lastId")? {
            None => None,
            Some(text) => {
                let identifier = parse_identifier(&text, "_lastId")?;
                let stream = resolve_program(pool, identifier)
                    .await?
                    .filter(|stream| principal.uses_program(stream))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            Some("_lastId"),
                            "names no program; give the identifier of the last program of the \
                             previous page, as its `next` link does",
                        )
                    })?;
                Some(stream)
            }
        };
        let sort = if after.is_some() {
            if params.one("_sort")?.is_some() {
                return Err(ApiError::bad_request(
                    Some("_sort"),
                    "`_lastId` pages in the server's own order; leave out `_sort`",
                ));
            }
            vec![SortKey {
                column: "aggregate_id",
                descending: false,
            }]
        } else {
            params.sort(
                &view::SORT_COLUMNS,
                SortKey {
                    column: "name",
                    descending: false,
                },
            )?
        };
        Ok(ProgramQuery {
            identifier,
            name: params.one("name")?,
            program_type,
            after,
            status,
            target_type,
            last_updated: params.instants("_lastUpdated")?,
            allowed: principal.program_limit(),
            sort,
        })
    }

    fn cursor(query: &ProgramQuery) -> bool {
        query.after.is_some()
    }
}

/// Search programs (clients limited to some programs see only those).
#[utoipa::path(get, path = "/Program", tag = "Program",
    params(
        ("identifier" = Option<String>, Query, description = "`system|value`, or the name alias `urn:openspp:program|{slug}`"),
        ("type" = Option<String>, Query, description = "A code of `urn:openspp:vocab:program-type` (or `system|code`)"),
        ("_lastId" = Option<String>, Query, description = "Cursor: the identifier (`system|value`) of the last program of the previous page, as the `next` link gives it; the server's own order, not with `_sort` or `_offset`"),
        ("_elements" = Option<String>, Query, description = "Comma-separated top-level fields each result shows"),
        ("name" = Option<String>, Query), ("status" = Option<String>, Query),
        ("targetType" = Option<String>, Query), ("_lastUpdated" = Option<String>, Query),
        ("_count" = Option<i64>, Query), ("_offset" = Option<i64>, Query), ("_sort" = Option<String>, Query),
    ),
    responses((status = 200, body = SearchResult<ProgramResource>), (status = 400, body = OperationOutcome)),
    security(("bearer" = ["program:search"])))]
async fn search(
    call: Call,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<SearchResult<Value>>, ApiError> {
    resource::search::<Program>(&call, &uri).await.map(Json)
}

/// Create a program (operators).
#[utoipa::path(post, path = "/Program", tag = "Program", request_body = ProgramResource,
    responses((status = 201, body = ProgramResource), (status = 409, body = OperationOutcome), (status = 422, body = OperationOutcome)),
    security(("bearer" = ["program:create"])))]
async fn create(
    call: Call,
    body: Result<ApiJson<ProgramResource>, ApiError>,
) -> Result<Answer, ApiError> {
    resource::create_whole::<Program>(&call, body).await
}

/// Change a program: rename, describe, target type, currency, end, archive.
#[utoipa::path(put, path = "/Program/{id}", tag = "Program", request_body = ProgramResource,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = ProgramResource), (status = 404, body = OperationOutcome),
              (status = 412, body = OperationOutcome), (status = 422, body = OperationOutcome)),
    security(("bearer" = ["program:update"])))]
async fn replace(
    call: Call,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Result<ApiJson<ProgramResource>, ApiError>,
) -> Result<Answer, ApiError> {
    resource::replace_whole::<Program>(&call, if_match, &id, body).await
}

crate::http::read_routes!(Program, ProgramResource, "`system|value`, URL-encoded",
    routes: (search, create), (read, replace));
