//! `/Entitlement` (CONTRACT §11; OpenSPP `spp_api_v2_entitlements`): what each beneficiary is
//! entitled to in a cycle, read and searched as OpenSPP serves it, and (**beyond OpenSPP**)
//! created and moved through its approval and payment states. An entitlement names a
//! beneficiary, so it is seen and written under the beneficiary's consent for program
//! participation (`program_membership`) or a legal basis, and only in the caller's allowed
//! programs; whatever the caller may not see answers as unknown.

use std::collections::HashMap;

use axum::extract::Path;
use openspp_aggregates::entitlement::{
    Benefit, CycleFacts, EntitlementKind, CODE_SYSTEM, CONSENT_RESOURCE,
};
use openspp_aggregates::product::UNIT_OF_MEASURE;
use openspp_aggregates::{
    Cycle, CycleState, Date, Entitlement, EntitlementCommand, EntitlementState, Identifier,
    MembershipStatus, Program, ProgramMembership,
};
use openspp_projections::delivery::EntitlementQuery;
use openspp_projections::search::Comparator;
use openspp_projections::{membership, view};

use crate::api::entitlement::{named, EntitlementResource, RESOURCE};
use crate::api::json::ApiJson;
use crate::api::membership::split_beneficiary;
use crate::api::params::Params;
use crate::api::preconditions::IfMatch;
use crate::api::reference::parse_identifier;
use crate::api::schema::{OperationOutcome, SearchResult};
use crate::auth::Action;
use crate::error::ApiError;
use crate::http::delivery::{program_filter, with_default};
use crate::resource::{
    self, beneficiary_mentioned, grants_for, locate_beneficiarys, Answer, Beneficiary, Call, Grant,
    Interaction, Located, Resource, Searchable, Snapshot, Write,
};
use crate::store::claims;

const SCOPE: &str = "entitlement";

/// What a consent for program participation lets the caller see of an entitlement: all of it,
/// when it shows who the beneficiary is (an entitlement is nothing without its beneficiary);
/// else nothing, as for an unconsented one.
fn widened(mut grant: Grant) -> Option<Grant> {
    if !grant.allows("beneficiary") {
        return None;
    }
    grant.fields = None;
    Some(grant)
}

/// `system|value` of the programs and beneficiaries, and the names of the cycles, that
/// entitlements name, by stream.
#[derive(Default)]
pub struct EntitlementContext {
    references: HashMap<String, String>,
    cycles: HashMap<String, String>,
}

impl Resource for Entitlement {
    const SCOPE: &'static str = SCOPE;
    const VIEW: Option<&'static str> = Some("entitlement_view");
    type Rendered = EntitlementResource;
    type Context = EntitlementContext;

    /// By code (`urn:openspp:entitlement|{code}` names it too); visible under the
    /// beneficiary's consent, in the caller's allowed programs. The consent lookup runs for an
    /// unknown code too, so that unknown and not visible take the same work.
    async fn locate(call: &Call, id: &str) -> Result<Located<Self>, ApiError> {
        let code = id
            .strip_prefix(CODE_SYSTEM)
            .and_then(|rest| rest.strip_prefix('|'))
            .unwrap_or(id);
        let identifier = Identifier {
            system: CODE_SYSTEM.to_owned(),
            value: code.to_owned(),
        };
        locate_beneficiarys(
            call,
            &identifier,
            format!("{RESOURCE}/{code}"),
            |entitlement: &Self| &entitlement.program,
            |access| Grant::from_access(access, CONSENT_RESOURCE).and_then(widened),
        )
        .await
    }

    async fn context(
        call: &Call,
        snapshots: &[&Snapshot<Self>],
    ) -> Result<EntitlementContext, ApiError> {
        let pool = &call.state.pool;
        let streams: Vec<String> = snapshots
            .iter()
            .flat_map(|s| [s.state.program.clone(), s.state.beneficiary.clone()])
            .collect();
        let cycles: Vec<String> = snapshots.iter().map(|s| s.state.cycle.clone()).collect();
        let cycles = view::rows_where::<Cycle>(pool, "cycle_view", "aggregate_id", &cycles)
            .await?
            .into_iter()
            .map(|row| (row.aggregate_id, row.state.name))
            .collect();
        Ok(EntitlementContext {
            references: membership::references(pool, &streams).await?,
            cycles,
        })
    }

    fn render(
        _call: &Call,
        context: &EntitlementContext,
        row: &Snapshot<Self>,
    ) -> EntitlementResource {
        let state = &row.state;
        EntitlementResource::render(
            row,
            context.references.get(&state.program).map(String::as_str),
            context
                .references
                .get(&state.beneficiary)
                .map(String::as_str),
            context.cycles.get(&state.cycle).map(String::as_str),
        )
    }

    /// The beneficiary the rendering names.
    fn mentioned(
        context: &EntitlementContext,
        row: &Snapshot<Self>,
        grant: &Grant,
    ) -> Vec<(String, String)> {
        let state = &row.state;
        let kind = state.beneficiary_kind();
        beneficiary_mentioned(&context.references, &state.beneficiary, kind, grant)
    }

    fn key(_stream: &str, state: &Self) -> Option<String> {
        state.identifier.as_ref().map(|i| i.value.clone())
    }

    fn consent_subject<'a>(_stream: &'a str, state: &'a Self) -> &'a str {
        &state.beneficiary
    }

    /// Under the beneficiaries' consents for program participation (see `widened`).
    async fn grants(
        call: &Call,
        snapshots: &[&Snapshot<Self>],
    ) -> Result<HashMap<String, Grant>, ApiError> {
        let subjects: Vec<String> = snapshots
            .iter()
            .map(|s| s.state.beneficiary.clone())
            .collect();
        let by_subject = grants_for(call, CONSENT_RESOURCE, &subjects).await?;
        Ok(snapshots
            .iter()
            .filter_map(|s| {
                let grant = widened(by_subject.get(&s.state.beneficiary)?.clone())?;
                Some((s.aggregate_id.clone(), grant))
            })
            .collect())
    }
}

/// A single date parameter (`validFrom`, `validUntil`): a 400 naming it when malformed.
fn date_param(params: &mut Params, name: &str) -> Result<Option<chrono::NaiveDate>, ApiError> {
    params
        .one(name)?
        .map(|text| {
            text.parse::<Date>()
                .map(Date::get)
                .map_err(|error| ApiError::bad_request(Some(name), error.to_string()))
        })
        .transpose()
}

impl Searchable for Entitlement {
    type Query = EntitlementQuery;

    /// OpenSPP's parameters: `beneficiary` (`{system}|{value}`, or `Individual/…`, `Group/…`),
    /// `program` and `cycle` (a part of the name), `state`, `entitlementType` (`cash` unless
    /// given: one kind per search, as OpenSPP), `validFrom`, `validUntil`, `_lastUpdated`.
    async fn query(call: &Call, params: &mut Params) -> Result<EntitlementQuery, ApiError> {
        let pool = &call.state.pool;
        let beneficiary = match params.one("beneficiary")? {
            None => None,
            Some(text) => {
                let (kinds, key) = match split_beneficiary(&text) {
                    Some((_, kind_name, key)) => (vec![kind_name], key.to_owned()),
                    None => (vec!["Individual", "Group"], text.clone()),
                };
                let identifier = parse_identifier(&key, "beneficiary")?;
                let mut stream = None;
                for kind_name in kinds {
                    if stream.is_none() {
                        stream = claims::resolve(pool, kind_name, &identifier).await?;
                    }
                }
                Some(stream.unwrap_or_default())
            }
        };
        let program = match params.one("program")? {
            None => None,
            Some(text) => Some(program_filter(call, &text).await?),
        };
        let kind = params
            .one_of(
                "entitlementType",
                EntitlementKind::parse,
                EntitlementKind::expected,
            )?
            .and_then(|text| EntitlementKind::parse(&text))
            .unwrap_or(EntitlementKind::Cash);
        let principal = &call.principal;
        Ok(EntitlementQuery {
            beneficiary,
            program,
            cycle: params.one("cycle")?,
            state: params.one_of("state", EntitlementState::parse, EntitlementState::expected)?,
            kind,
            valid_from: date_param(params, "validFrom")?,
            valid_until: date_param(params, "validUntil")?,
            last_updated: with_default(params.instants("_lastUpdated")?, Comparator::Ge),
            allowed: principal.program_limit(),
            visibility: principal.visibility(),
        })
    }
}

/// The cycle a body names: as an entitlement command sees it (`facts`), and what an answer
/// renders it and its program by (its name, the program's identifier).
struct NamedCycle {
    facts: CycleFacts,
    name: String,
    program_key: Option<String>,
}

/// The cycle a body names (`Cycle/{name}`); one the caller may not see is no cycle (422).
async fn cycle_facts(call: &Call, body: &EntitlementResource) -> Result<NamedCycle, ApiError> {
    let name = named(&body.cycle, "Cycle", "cycle")?;
    let no_cycle = || ApiError::unprocessable("cycle", "no such Cycle");
    let located = Cycle::locate(call, &name)
        .await
        .map_err(|error| error.not_found_as(no_cycle))?;
    let cycle = located.current.ok_or_else(no_cycle)?.state;
    let program = view::get::<Program>(&call.state.pool, "program_view", &cycle.program)
        .await?
        .ok_or_else(no_cycle)?;
    if let Some(reference) = &body.program {
        let named = crate::http::delivery::program_of(call, reference).await?.0;
        if named != cycle.program {
            return Err(ApiError::unprocessable(
                "program",
                "must be the cycle's program (or left out)",
            ));
        }
    }
    Ok(NamedCycle {
        program_key: Program::key(&cycle.program, &program.state),
        name: cycle.name,
        facts: CycleFacts {
            stream: located.stream,
            program: cycle.program,
            state: cycle.state.unwrap_or(CycleState::Draft),
            start_date: cycle.start_date.unwrap_or_default(),
            currency: program.state.currency,
        },
    })
}

/// Goods are a Product that exists, counted in a unit of measure that exists, collected at a
/// service point that exists (422 naming `servicePoint`, `items[0].product` or
/// `items[0].quantity.unit` otherwise). A product is named as OpenSPP looks it up (by default
/// code, else by name) and recorded by its key; a unit is named by its name (or its code) and
/// recorded by its name: both as OpenSPP shows them.
async fn known_goods(call: &Call, benefit: &mut Benefit) -> Result<(), ApiError> {
    let Benefit::Inkind {
        product,
        service_point,
        unit,
        ..
    } = benefit
    else {
        return Ok(());
    };
    let pool = &call.state.pool;
    if let Some(name) = service_point {
        let identifier = openspp_aggregates::service_point::name_identifier(name);
        if claims::resolve(pool, "ServicePoint", &identifier)
            .await?
            .is_none()
        {
            return Err(ApiError::unprocessable(
                "servicePoint",
                "no such ServicePoint",
            ));
        }
    }
    match openspp_projections::product::locate(pool, product).await? {
        None => {
            return Err(ApiError::unprocessable(
                "items[0].product",
                "no such Product",
            ))
        }
        Some((_, row)) => {
            if let Some(row) = row {
                *product = row.state.details.key().to_owned();
            }
        }
    }
    let catalog = call.state.vocabulary.catalog();
    let named = catalog
        .vocabulary(UNIT_OF_MEASURE)
        .and_then(|units| units.named(unit));
    match named {
        Some(code) => {
            code.display.clone_into(unit);
            Ok(())
        }
        None => Err(ApiError::unprocessable(
            "items[0].quantity.unit",
            format!("no such UnitOfMeasure; see {UNIT_OF_MEASURE}"),
        )),
    }
}

crate::http::search_route!(Entitlement, envelope: result(EntitlementResource), "entitlement:read",
    /// Search entitlements, newest first.
    params(
        ("beneficiary" = Option<String>, Query, description = "`{system}|{value}` of the beneficiary (or `Individual/…`, `Group/…`)"),
        ("program" = Option<String>, Query, description = "A part of the program's name (any case), or `Program/{system}|{value}`"),
        ("cycle" = Option<String>, Query, description = "A part of the cycle's name (any case)"),
        ("state" = Option<String>, Query),
        ("entitlementType" = Option<String>, Query, description = "`cash` (the default) or `inkind`"),
        ("validFrom" = Option<String>, Query, description = "Valid from this date or later"),
        ("validUntil" = Option<String>, Query, description = "Valid until this date or earlier"),
    )
);

/// Entitle a beneficiary enrolled in the program to cash or goods in a draft cycle.
#[utoipa::path(post, path = "/Entitlement", tag = "Entitlement", request_body = EntitlementResource,
    responses(
        (status = 201, body = EntitlementResource, description = "`Location` names the minted code"),
        (status = 409, body = OperationOutcome, description = "The cycle is not draft"),
        (status = 422, body = OperationOutcome, description = "Unknown cycle or beneficiary, not enrolled, wrong currency …"),
    ),
    security(("bearer" = ["entitlement:create"])))]
async fn create(
    call: Call,
    body: Result<ApiJson<EntitlementResource>, ApiError>,
) -> Result<Answer, ApiError> {
    call.open(SCOPE, Action::Create, RESOURCE, Interaction::CREATE)?;
    let ApiJson(body) = body?;
    // The aggregate's own consent check refused (or the consent was withdrawn meanwhile): the
    // same answer as for a beneficiary that does not exist. A cycle or enrolment that changed
    // before the commit: decided again on what now holds (`commit_afresh`).
    let beneficiary = Beneficiary::parse(&body.beneficiary.reference);
    let answer = resource::commit_afresh(&call, || creation(&call, &body)).await;
    match beneficiary {
        Ok(beneficiary) => answer.map_err(|e| beneficiary.unknown_if_not_found(e)),
        Err(_) => answer,
    }
}

/// The creation `body` asks for, decided on the cycle and the enrolment as they now stand.
async fn creation(call: &Call, body: &EntitlementResource) -> Result<Write<Entitlement>, ApiError> {
    let NamedCycle {
        facts: cycle,
        name,
        program_key,
    } = cycle_facts(call, body).await?;
    let beneficiary = Beneficiary::parse(&body.beneficiary.reference)?;
    let mut details = body.clone().into_details()?;
    known_goods(call, &mut details.benefit).await?;
    let subject = beneficiary.find(call, CONSENT_RESOURCE).await?;
    let membership = ProgramMembership::stream_id(&cycle.program, &subject.stream);
    let enrolled = membership::get(&call.state.pool, &membership)
        .await?
        .is_some_and(|row| row.state.status == Some(MembershipStatus::Enrolled));
    // Rendered from what was found, not read back after the commit.
    let known = subject
        .references_in(&cycle.program, program_key)
        .map(|references| EntitlementContext {
            references,
            cycles: HashMap::from([(cycle.stream.clone(), name)]),
        });
    let kind = beneficiary.kind;
    let create = |beneficiary, access| EntitlementCommand::Create {
        cycle,
        beneficiary,
        beneficiary_type: kind,
        enrolled,
        details,
        access,
    };
    let stream = uuid::Uuid::now_v7().to_string();
    Ok(Beneficiary::write::<Entitlement>(
        subject, stream, create, known,
    ))
}

/// Move an entitlement along OpenSPP's states (impossible moves are 409 naming the allowed
/// ones; approval needs its cycle under approval or approved, payment an approved or
/// distributed cycle); the rest of the body restates the entitlement.
#[utoipa::path(put, path = "/Entitlement/{id}", tag = "Entitlement", request_body = EntitlementResource,
    params(("id" = String, Path, description = "The entitlement's code"), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 200, body = EntitlementResource), (status = 404, body = OperationOutcome),
        (status = 409, body = OperationOutcome, description = "Impossible transition, or the cycle's state forbids it"),
        (status = 412, body = OperationOutcome), (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["entitlement:update"])))]
async fn change(
    call: Call,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Result<ApiJson<EntitlementResource>, ApiError>,
) -> Result<Answer, ApiError> {
    let (body, target) = resource::open_update::<Entitlement, _>(&call, &id, body).await?;
    resource::commit_afresh(&call, || state_change(&call, &body, &target, &if_match)).await
}

/// The change of `target` `body` asks for, decided on its cycle as it now stands.
async fn state_change(
    call: &Call,
    body: &EntitlementResource,
    target: &Located<Entitlement>,
    if_match: &IfMatch,
) -> Result<Write<Entitlement>, ApiError> {
    let cycle = cycle_facts(call, body).await?.facts;
    let beneficiary = Beneficiary::restated(call, &body.beneficiary.reference)
        .await?
        .and_then(|(_, stream)| stream);
    let mut details = body.clone().into_details()?;
    // Goods restated as stored are what the entitlement holds, whatever the catalogue now
    // says (a unit recorded as free text before units were checked, a product since
    // withdrawn): only goods that differ are looked up, and the aggregate then refuses the
    // change of what never changes.
    let stored = target
        .current
        .as_ref()
        .and_then(|row| row.state.benefit.as_ref());
    if stored != Some(&details.benefit) {
        known_goods(call, &mut details.benefit).await?;
    }
    Ok(
        target.write(if_match.clone(), |access| EntitlementCommand::Change {
            cycle,
            beneficiary,
            details,
            access,
        }),
    )
}

crate::http::read_routes!(Entitlement, EntitlementResource, "The entitlement's code",
    routes: (search, create), (read, change));
