//! `/ProgramMembership` (CONTRACT §4): enrolment and its state machine. Reads and writes go
//! through the consent filter (on the beneficiary, for `program_membership`: a consent for the
//! person's record is not one for their memberships) and the client's allowed programs;
//! whatever the caller may not see answers as unknown.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path};
use axum::http::header;
use axum::Json;
use openspp_aggregates::program::is_namespace_uri;
use openspp_aggregates::program_membership::Restated;
use openspp_aggregates::{
    Date, Identifier, MembershipCommand, MembershipStatus, Program, ProgramMembership,
};
use openspp_projections::membership::{self as view, MembershipQuery, Named};
use openspp_projections::search::SortKey;
use serde_json::Value;

use crate::api::json::ApiJson;
use crate::api::membership::{
    exit_reason, parse_status, render, split_beneficiary, MembershipResource,
};
use crate::api::params::Params;
use crate::api::preconditions::IfMatch;
use crate::api::reference::{parse_identifier, parse_reference, path_segment, query_value};
use crate::api::schema::{OperationOutcome, SearchResult};
use crate::api::BASE;
use crate::auth::Action;
use crate::error::ApiError;
use crate::resource::{
    self, beneficiary_mentioned, locate_beneficiarys, Answer, Beneficiary, Call, Grant,
    Interaction, Located, Resource, Searchable, Snapshot,
};
use crate::store::claims::{self, resolve_program};

const RESOURCE: &str = "ProgramMembership";
const SCOPE: &str = "program_membership";

/// `system|value` of the programs and beneficiaries memberships name, by stream.
type References = HashMap<String, String>;

impl Resource for ProgramMembership {
    const SCOPE: &'static str = SCOPE;
    const VIEW: Option<&'static str> = Some("membership_view");
    type Rendered = MembershipResource;
    type Context = References;

    /// By its identifier; visible only under a consent of its beneficiary covering memberships,
    /// and only in the caller's allowed programs. The consent lookup runs for an unknown
    /// identifier too, so that unknown and not visible take the same work.
    async fn locate(call: &Call, id: &str) -> Result<Located<Self>, ApiError> {
        let identifier = parse_identifier(id, "id")?;
        let subject = format!("{RESOURCE}/{}", identifier.key());
        locate_beneficiarys(
            call,
            &identifier,
            subject,
            |membership: &Self| &membership.program,
            |access| Grant::from_access(access, SCOPE),
        )
        .await
    }

    const CONTEXT_BESIDE: Option<&'static str> = Some(view::REFERENCES_OF_ROW);

    /// The program's and beneficiary's identifiers, read beside the row: a status change
    /// leaves them as they are.
    fn context_beside(_stream: &str, beside: Option<Value>) -> Result<References, ApiError> {
        Ok(view::references_of_row(beside)?)
    }

    async fn context(call: &Call, snapshots: &[&Snapshot<Self>]) -> Result<References, ApiError> {
        let streams: Vec<String> = snapshots
            .iter()
            .flat_map(|s| [s.state.program.clone(), s.state.beneficiary.clone()])
            .collect();
        Ok(view::references(call.state.lane(), &streams).await?)
    }

    fn render(call: &Call, references: &References, row: &Snapshot<Self>) -> MembershipResource {
        render(row, references, &call.state.vocabulary)
    }

    /// The beneficiary the rendering names.
    fn mentioned(
        references: &References,
        row: &Snapshot<Self>,
        grant: &Grant,
    ) -> Vec<(String, String)> {
        let state = &row.state;
        beneficiary_mentioned(
            references,
            &state.beneficiary,
            state.beneficiary_kind(),
            grant,
        )
    }

    fn key(_stream: &str, state: &Self) -> Option<String> {
        state.identifier.as_ref().map(|i| i.key())
    }

    async fn address(call: &Call, id: &str, params: &mut Params) -> Result<String, ApiError> {
        beneficiary_address(call, id, params).await
    }

    fn consent_subject<'a>(_stream: &'a str, state: &'a Self) -> &'a str {
        &state.beneficiary
    }
}

impl Searchable for ProgramMembership {
    type Query = MembershipQuery;

    /// A malformed value is a 400 naming the parameter, never an empty result.
    async fn query(call: &Call, params: &mut Params) -> Result<MembershipQuery, ApiError> {
        let pool = &call.state.pool;
        let program = match params.one("program")? {
            None => None,
            Some(text) => Some(program_param(pool, &text).await?),
        };
        let beneficiary = match params.one("beneficiary")? {
            None => None,
            Some(text) => {
                let (_, kind_name, key) = split_beneficiary(&text).ok_or_else(|| {
                    ApiError::bad_request(
                        Some("beneficiary"),
                        "must be Individual/{system}|{value} or Group/{system}|{value}",
                    )
                })?;
                let identifier = parse_identifier(key, "beneficiary")?;
                Some(
                    claims::resolve(pool, kind_name, &identifier)
                        .await?
                        .unwrap_or_default(),
                )
            }
        };
        let status = params.one_of(
            "status",
            MembershipStatus::parse,
            MembershipStatus::expected,
        )?;
        let principal = &call.principal;
        Ok(MembershipQuery {
            program: program.map(Named::Stream),
            beneficiary: beneficiary.map(Named::Stream),
            status,
            last_updated: params.instants("_lastUpdated")?,
            allowed_programs: principal.program_limit(),
            visibility: principal.visibility(),
            sort: params.sort(&view::SORT_COLUMNS, SortKey::NEWEST_FIRST)?,
        })
    }
}

/// The program stream a `program` parameter names (`Program/{system}|{value}` or
/// `{system}|{value}`); a malformed one is a 400 naming it. An unknown program is no stream,
/// and so matches nothing, as does one outside the caller's allowed programs.
async fn program_param(pool: impl sqlx::PgExecutor<'_>, text: &str) -> Result<String, ApiError> {
    Ok(resolve_program(pool, program_identifier(text)?)
        .await?
        .unwrap_or_default())
}

/// The identifier a `program` parameter names; a malformed one is a 400 naming it.
fn program_identifier(text: &str) -> Result<Identifier, ApiError> {
    let key = text.strip_prefix("Program/").unwrap_or(text);
    let identifier = parse_identifier(key, "program")?;
    if !is_namespace_uri(&identifier.system) {
        return Err(ApiError::bad_request(
            Some("program"),
            "must be Program/{system}|{value} or {system}|{value}",
        ));
    }
    Ok(identifier)
}

/// OpenSPP's address of a membership, `/ProgramMembership/{beneficiary}?program=Program/{id}`:
/// the identifier of the one membership the caller may see of the individual or group that
/// `id` names, in `program` when given. Several (no `program`, and the beneficiary is in more
/// than one, or an individual and a group share the identifier) is a 409; none leaves `id`
/// as it is, to be answered as unknown. A membership's own identifier, without `program`,
/// names it as before.
///
/// The beneficiary and the program are resolved from their identifiers by the statement that
/// finds the memberships (`Named::Identified`), which reads at most two and counts none: one
/// round trip where resolving each kind and searching its memberships took six.
async fn beneficiary_address(
    call: &Call,
    id: &str,
    params: &mut Params,
) -> Result<String, ApiError> {
    let program = params.one("program")?;
    let identifier = parse_identifier(id, "id")?;
    let pool = call.state.lane();
    if program.is_none()
        && claims::resolve(pool, RESOURCE, &identifier)
            .await?
            .is_some()
    {
        return Ok(id.to_owned());
    }
    // In an open `$batch` transaction, resolved as a lone lookup resolves them.
    let open = !claims::committed_alone();
    let program = match program {
        Some(text) if open => Some(Named::Stream(program_param(pool, &text).await?)),
        Some(text) => Some(Named::Identified {
            types: &["Program"],
            identifier: openspp_aggregates::program::lookup_key(program_identifier(&text)?),
        }),
        None => None,
    };
    let beneficiary = if open {
        let mut streams = Vec::new();
        for kind_name in ["Individual", "Group"] {
            streams.extend(claims::resolve(pool, kind_name, &identifier).await?);
        }
        Named::AnyOf(streams)
    } else {
        Named::Identified {
            types: &["Individual", "Group"],
            identifier,
        }
    };
    let principal = &call.principal;
    let query = MembershipQuery {
        program,
        beneficiary: Some(beneficiary),
        status: None,
        last_updated: Vec::new(),
        allowed_programs: principal.program_limit(),
        visibility: principal.visibility(),
        sort: Vec::new(),
    };
    match view::identifiers_of(pool, &query, 2).await?.as_slice() {
        [] => Ok(id.to_owned()),
        [one] => Ok(one.clone().unwrap_or_else(|| id.to_owned())),
        _ => Err(ApiError::conflict(
            Some("program"),
            "the beneficiary has more than one membership: name its program with \
             ?program=Program/{system}|{value}",
        )),
    }
}

/// OpenSPP's `Location` of a membership: its beneficiary's identifier and its program.
fn openspp_location(beneficiary: &str, program: &str) -> Option<axum::http::HeaderValue> {
    let program = query_value(&format!("Program/{program}"));
    format!(
        "{BASE}/{RESOURCE}/{}?program={program}",
        path_segment(beneficiary)
    )
    .parse()
    .ok()
}

/// Search memberships by program, beneficiary, status and `_lastUpdated`.
#[utoipa::path(get, path = "/ProgramMembership", tag = "ProgramMembership",
    params(
        ("program" = Option<String>, Query, description = "`Program/{system}|{value}` or `{system}|{value}`"),
        ("beneficiary" = Option<String>, Query, description = "`Individual/…` or `Group/…`"),
        ("status" = Option<String>, Query), ("_lastUpdated" = Option<String>, Query),
        ("_count" = Option<i64>, Query), ("_offset" = Option<i64>, Query), ("_sort" = Option<String>, Query),
    ),
    responses((status = 200, body = SearchResult<MembershipResource>), (status = 400, body = OperationOutcome)),
    security(("bearer" = ["program_membership:search"])))]
async fn search(
    call: Call,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<SearchResult<Value>>, ApiError> {
    resource::search::<ProgramMembership>(&call, &uri)
        .await
        .map(Json)
}

/// Enrol a beneficiary in a program: one membership per beneficiary and program.
#[utoipa::path(post, path = "/ProgramMembership", tag = "ProgramMembership", request_body = MembershipResource,
    responses(
        (status = 201, body = MembershipResource, description = "`Location` names the membership's identifier"),
        (status = 403, body = OperationOutcome, description = "The client may not choose the identifier (it is limited to programs or acts under consent): leave `identifier` out and one is minted"),
        (status = 409, body = OperationOutcome, description = "Already a member, or the program is not active"),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["program_membership:create"])))]
async fn enrol(
    call: Call,
    body: Result<ApiJson<MembershipResource>, ApiError>,
) -> Result<Answer, ApiError> {
    call.open(SCOPE, Action::Create, RESOURCE, Interaction::CREATE)?;
    let ApiJson(body) = body?;
    if body.resource_type != RESOURCE {
        return Err(ApiError::unprocessable("type", "must be ProgramMembership"));
    }
    if !body.identifier.is_empty() {
        call.principal.may_choose_membership_identifier()?;
    }
    let program_key = parse_reference(&body.program.reference, "Program", "program")?;
    let mut program = resource::named::<Program>(&call, &body.program.reference, "program").await?;
    let program_state = program
        .take_current(&call)
        .await
        .map_err(|e| e.or_refused(|| ApiError::unprocessable("program", "no such Program")))?
        .state;
    let beneficiary = Beneficiary::parse(&body.beneficiary.reference)?;
    let subject = beneficiary.find(&call, SCOPE).await?;
    let stream = ProgramMembership::stream_id(&program.stream, &subject.stream);
    // Rendered from what was found, not read back after the commit.
    let known = subject.references_in(
        &program.stream,
        Program::key(&program.stream, &program_state),
    );
    let (status, exit_reason) = (parse_status(&body.status)?, exit_reason(body.exit_reason)?);
    let kind = beneficiary.kind;
    let enrol = |beneficiary, access| MembershipCommand::Enrol {
        program: program_state.enrolment_facts(program.stream.clone()),
        beneficiary,
        beneficiary_type: kind,
        identifiers: body.identifier.into_iter().map(Into::into).collect(),
        status,
        enrollment_date: body.enrollment_date.map(Date::get),
        exit_date: body.exit_date.map(Date::get),
        exit_reason,
        access,
    };
    let mut answer = beneficiary
        .create::<ProgramMembership>(&call, subject, stream, enrol, known)
        .await?;
    if let Some(location) = openspp_location(&beneficiary.identifier.key(), &program_key.key()) {
        answer.headers.insert(header::LOCATION, location);
    }
    Ok(answer)
}

/// Change a membership's status along the state machine (impossible moves are 409, naming the
/// allowed ones). `program` and `beneficiary`, if sent, must be the membership's own.
#[utoipa::path(put, path = "/ProgramMembership/{id}", tag = "ProgramMembership", request_body = MembershipResource,
    params(
        ("id" = String, Path, description = "The membership's identifier, or (OpenSPP's address) its beneficiary's `system|value`"),
        ("program" = Option<String>, Query, description = "With a beneficiary's identifier: `Program/{system}|{value}`; needed when the beneficiary is in more than one program (409 otherwise)"),
        ("If-Match" = Option<String>, Header),
    ),
    responses(
        (status = 200, body = MembershipResource), (status = 404, body = OperationOutcome),
        (status = 409, body = OperationOutcome, description = "Impossible transition"),
        (status = 412, body = OperationOutcome), (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["program_membership:update"])))]
async fn change(
    call: Call,
    if_match: IfMatch,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    body: Result<ApiJson<MembershipResource>, ApiError>,
) -> Result<Answer, ApiError> {
    call.open(SCOPE, Action::Update, RESOURCE, Interaction::UPDATE)?;
    let ApiJson(body) = body?;
    let id = beneficiary_address(&call, &id, &mut Params::from_uri(&uri)?).await?;
    let target = ProgramMembership::locate(&call, &id).await?;
    let restated = restated(&call, &body, &target).await?;
    let status = parse_status(&body.status)?;
    let exit_reason = exit_reason(body.exit_reason)?;
    let write = target.change(if_match, |access| MembershipCommand::ChangeStatus {
        status,
        enrollment_date: body.enrollment_date.map(Date::get),
        exit_date: body.exit_date.map(Date::get),
        exit_reason,
        restated: Some(restated),
        access,
    });
    resource::commit(&call, write).await
}

/// What a change body says the membership is, its references resolved to streams, for the
/// aggregate to hold against the membership. Any identifier of the program or the beneficiary
/// (the name alias, `%23` for `#`) names it. A reference as the membership renders it (what a
/// client read and sends back: the primary identifier its locate read beside the row) names
/// the membership's own program or beneficiary, and is not looked up again: a claim is held
/// by one stream, and that identifier was its live claim when the row was read.
async fn restated(
    call: &Call,
    body: &MembershipResource,
    target: &Located<ProgramMembership>,
) -> Result<Restated, ApiError> {
    let program = parse_reference(&body.program.reference, "Program", "program")?;
    let own = target.current.as_ref().map(|row| &row.state);
    let context = target
        .context
        .as_ref()
        .filter(|_| claims::committed_alone());
    let rendered = |stream: &str| context?.get(stream).cloned();
    let program = match own {
        Some(own) if rendered(&own.program) == Some(program.key()) => Some(own.program.clone()),
        _ => resolve_program(call.state.lane(), program).await?,
    };
    let reference = &body.beneficiary.reference;
    let named = match split_beneficiary(reference) {
        Some(_) => Some(Beneficiary::parse(reference)?),
        None => None,
    };
    let beneficiary = match (own, named) {
        (Some(own), Some(named))
            if named.kind == own.beneficiary_kind()
                && rendered(&own.beneficiary) == Some(named.identifier.key()) =>
        {
            Some((named.kind, Some(own.beneficiary.clone())))
        }
        _ => Beneficiary::restated(call, reference).await?,
    };
    Ok(Restated {
        identifiers: body.identifier.iter().cloned().map(Into::into).collect(),
        program,
        beneficiary,
    })
}

crate::http::read_routes!(ProgramMembership, MembershipResource, "`system|value`, URL-encoded",
    routes: (search, enrol), (read, change));
