//! `/Cycle` (CONTRACT §11; OpenSPP `spp_api_v2_cycles`): a program's cycles, read and searched
//! as OpenSPP serves them, and (**beyond OpenSPP**) created and moved through their states by
//! operators and integrators. A cycle is seen only in the caller's allowed programs.

use std::collections::HashMap;

use axum::extract::Path;
use axum::http::StatusCode;
use openspp_aggregates::cycle::{name_identifier, PreviousCycle, NAME_SYSTEM};
use openspp_aggregates::{Cycle, CycleCommand, CycleState, Program};
use openspp_projections::delivery::{self, CycleQuery, CycleStatistics};
use openspp_projections::search::Comparator;
use openspp_projections::view;

use crate::api::cycle::{CycleLinks, CycleResource, RESOURCE};
use crate::api::json::ApiJson;
use crate::api::params::Params;
use crate::api::preconditions::IfMatch;
use crate::api::schema::{OperationOutcome, Reference, SearchResult};
use crate::auth::Action;
use crate::error::ApiError;
use crate::http::delivery::{program_filter, program_of, with_default};
use crate::resource::{
    self, Answer, Call, Grant, Interaction, Located, Resource, Searchable, Snapshot, Write,
};
use crate::store::claims;

const SCOPE: &str = "cycle";

/// What rendering cycles needs: their programs (identifier and currency), their statistics,
/// and the names of the cycles of those programs by sequence (for `nextCycle`).
#[derive(Default)]
pub struct CycleContext {
    programs: HashMap<String, (Option<String>, String)>,
    statistics: HashMap<String, CycleStatistics>,
    names: HashMap<(String, i32), String>,
}

/// The identifier and currency of each of `streams` (programs).
pub async fn programs(
    call: &Call,
    streams: Vec<String>,
) -> Result<HashMap<String, (Option<String>, String)>, ApiError> {
    let rows =
        view::rows_where::<Program>(&call.state.pool, "program_view", "aggregate_id", &streams)
            .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let key = row.state.live_identifiers().next().map(|i| i.key());
            (row.aggregate_id, (key, row.state.currency))
        })
        .collect())
}

impl Resource for Cycle {
    const SCOPE: &'static str = SCOPE;
    const VIEW: Option<&'static str> = Some("cycle_view");
    const PERSONAL: bool = false;
    /// Its statistics and next cycle change as other streams are written.
    const RENDERS_OTHERS: bool = true;
    type Rendered = CycleResource;
    type Context = CycleContext;

    /// By name (`urn:openspp:cycle|{name}` names it too), in the caller's allowed programs.
    async fn locate(call: &Call, id: &str) -> Result<Located<Self>, ApiError> {
        let name = resource::key_in(id, NAME_SYSTEM);
        let subject = format!("{RESOURCE}/{name}");
        let pool = &call.state.pool;
        let stream = claims::resolve(pool, RESOURCE, &name_identifier(name)).await?;
        let row = match &stream {
            Some(stream) => view::get::<Cycle>(pool, "cycle_view", stream).await?,
            None => None,
        };
        match row.filter(|row| call.principal.uses_program(&row.state.program)) {
            Some(row) => {
                call.audit.returned(subject, Some(&row.aggregate_id), None);
                Ok(Located {
                    stream: row.aggregate_id.clone(),
                    consent_subject: row.aggregate_id.clone(),
                    grant: Grant::not_personal(SCOPE),
                    access: call.principal.access(Vec::new()),
                    current: Some(row),
                    context: None,
                })
            }
            None => {
                call.audit.not_found(subject, stream.as_deref());
                Err(ApiError::not_found(RESOURCE))
            }
        }
    }

    async fn context(call: &Call, snapshots: &[&Snapshot<Self>]) -> Result<CycleContext, ApiError> {
        let pool = &call.state.pool;
        let mut program_streams: Vec<String> =
            snapshots.iter().map(|s| s.state.program.clone()).collect();
        program_streams.sort_unstable();
        program_streams.dedup();
        let cycles: Vec<String> = snapshots.iter().map(|s| s.aggregate_id.clone()).collect();
        Ok(CycleContext {
            statistics: delivery::statistics(pool, &cycles).await?,
            names: delivery::cycle_names(pool, &program_streams).await?,
            programs: programs(call, program_streams).await?,
        })
    }

    fn render(_call: &Call, context: &CycleContext, row: &Snapshot<Self>) -> CycleResource {
        let state = &row.state;
        let program = context.programs.get(&state.program);
        CycleResource::render(
            row,
            CycleLinks {
                program: program.and_then(|(key, _)| key.as_deref()),
                currency: program.map(|(_, currency)| currency.as_str()),
                statistics: context
                    .statistics
                    .get(&row.aggregate_id)
                    .copied()
                    .unwrap_or_default(),
                next: context
                    .names
                    .get(&(state.program.clone(), state.sequence as i32 + 1))
                    .map(String::as_str),
            },
        )
    }

    fn key(_stream: &str, state: &Self) -> Option<String> {
        (!state.name.is_empty()).then(|| state.name.clone())
    }
}

impl Searchable for Cycle {
    type Query = CycleQuery;

    /// OpenSPP's parameters: `program` (a part of its name, or `Program/{system}|{value}`),
    /// `state`, `startDate` (no prefix: on or after), `endDate` (no prefix: on or before),
    /// `_lastUpdated` (no prefix: at or after).
    async fn query(call: &Call, params: &mut Params) -> Result<CycleQuery, ApiError> {
        let program = match params.one("program")? {
            None => None,
            Some(text) => Some(program_filter(call, &text).await?),
        };
        let principal = &call.principal;
        Ok(CycleQuery {
            program,
            state: params.one_of("state", CycleState::parse, CycleState::expected)?,
            start_date: with_default(params.dates("startDate")?, Comparator::Ge),
            end_date: with_default(params.dates("endDate")?, Comparator::Le),
            last_updated: with_default(params.instants("_lastUpdated")?, Comparator::Ge),
            allowed: principal.program_limit(),
        })
    }
}

crate::http::search_route!(Cycle, envelope: result(CycleResource), "cycle:read",
    /// Search cycles, in sequence order.
    params(
        ("program" = Option<String>, Query, description = "A part of the program's name (any case), or `Program/{system}|{value}`"),
        ("state" = Option<String>, Query, description = "`draft`, `to_approve`, `approved`, `distributed`, `cancelled` or `ended`"),
        ("startDate" = Option<String>, Query, description = "`YYYY-MM-DD` with a prefix `ge`/`le`…; no prefix: on or after"),
        ("endDate" = Option<String>, Query, description = "`YYYY-MM-DD` with a prefix; no prefix: on or before"),
    )
);

/// Create a program's next cycle (draft), numbered after its latest and starting after it ends.
#[utoipa::path(post, path = "/Cycle", tag = "Cycle", request_body = CycleResource,
    responses(
        (status = 201, body = CycleResource, description = "`Location` names the cycle"),
        (status = 409, body = OperationOutcome, description = "The name is taken, or the program is not active"),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["cycle:create"])))]
async fn create(
    call: Call,
    body: Result<ApiJson<CycleResource>, ApiError>,
) -> Result<Answer, ApiError> {
    call.open(SCOPE, Action::Create, RESOURCE, Interaction::CREATE)?;
    let ApiJson(body) = body?;
    let program_reference = body.program.clone();
    let details = body.into_details()?;
    let (program, program_state) = program_of(&call, &program_reference).await?;
    let previous = delivery::latest_cycle(&call.state.pool, &program)
        .await?
        .map(|row| PreviousCycle {
            name: row.state.name,
            sequence: row.state.sequence,
            end_date: row.state.end_date.unwrap_or_default(),
        });
    call.audit
        .returned(format!("{RESOURCE}/{}", details.name.trim()), None, None);
    let write = Write::<Cycle> {
        stream: Cycle::stream_id(&program, Cycle::next_sequence(previous.as_ref())),
        if_match: IfMatch::LATEST,
        command: CycleCommand::Create {
            program: program_state.enrolment_facts(program),
            previous,
            details,
        },
        consent: None,
        status: StatusCode::CREATED,
        known: None,
    };
    resource::commit(&call, write).await
}

/// Move a cycle along OpenSPP's states (impossible moves are 409 naming the allowed ones); the
/// rest of the body restates the cycle. Approval records `approvedDate` and `approvedBy`. Its
/// entitlements follow as OpenSPP's do, in the same commit: submitted, its draft entitlements
/// await approval (`pending_validation`); rejected (`cancelled`), its pending cash entitlements
/// are cancelled; reset to draft, its pending and cancelled cash entitlements are reset.
#[utoipa::path(put, path = "/Cycle/{id}", tag = "Cycle", request_body = CycleResource,
    params(("id" = String, Path, description = "The cycle's name, URL-encoded"), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 200, body = CycleResource), (status = 404, body = OperationOutcome),
        (status = 409, body = OperationOutcome, description = "Impossible transition, or submitted without entitlements"),
        (status = 412, body = OperationOutcome), (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["cycle:update"])))]
async fn change(
    call: Call,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Result<ApiJson<CycleResource>, ApiError>,
) -> Result<Answer, ApiError> {
    let (body, target) = resource::open_update::<Cycle, _>(&call, &id, body).await?;
    let program = restated_program(&call, &body.program).await?;
    let details = body.into_details()?;
    let statistics = delivery::statistics(&call.state.pool, std::slice::from_ref(&target.stream))
        .await?
        .remove(&target.stream)
        .unwrap_or_default();
    let command = CycleCommand::Change {
        details,
        program,
        // Every entitlement makes its beneficiary a member: members > 0 iff it has any.
        entitlements: statistics.members as u64,
        client: call.principal.client_id.clone(),
    };
    // Its entitlements follow it, in the same commit (`resource::change_cycle`).
    let snapshot = resource::change_cycle(&call, &target.stream, if_match, command).await?;
    Ok(resource::committed_answer(&call, StatusCode::OK, &snapshot, None).await)
}

/// The program stream a change body names, `None` when it names none the caller may use.
async fn restated_program(call: &Call, reference: &Reference) -> Result<Option<String>, ApiError> {
    match program_of(call, reference).await {
        Ok((stream, _)) => Ok(Some(stream)),
        Err(error) if error.status == StatusCode::UNPROCESSABLE_ENTITY => Ok(None),
        Err(error) => Err(error),
    }
}

crate::http::read_routes!(Cycle, CycleResource, "The cycle's name, URL-encoded",
    routes: (search, create), (read, change));
