//! `/Individual`: register, read, replace and search people (CONTRACT §4).

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path};
use axum::Json;
use openspp_aggregates::{ExtendedResource, Individual, IndividualCommand};
use openspp_projections::household::InHousehold;
use openspp_projections::individual::{self as view, GroupMembershipRow, IndividualQuery};
use openspp_projections::search::SortKey;
use serde_json::Value;

use crate::api::group::GroupMembershipList;
use crate::api::individual::IndividualResource;
use crate::api::params::{code_of, Params, GROUP_MEMBERSHIP_TYPE};
use crate::api::schema::{OperationOutcome, SearchResult};
use crate::api::stated::Stated;
use crate::error::ApiError;
use crate::resource::{
    self, grants_for, locate_registrant, locate_registrant_to_render, Call, Grant, Located,
    Registrant, Resource, Searchable, Snapshot,
};

const SCOPE: &str = "individual";
const EXTENDED: ExtendedResource = ExtendedResource::Individual;

/// An individual's current group memberships, by individual stream.
type Memberships = HashMap<String, Vec<GroupMembershipRow>>;

impl Resource for Individual {
    const SCOPE: &'static str = SCOPE;
    const VIEW: Option<&'static str> = Some("individual_view");
    const EXTENDED: Option<ExtendedResource> = Some(EXTENDED);
    type Rendered = IndividualResource;
    type Context = Memberships;

    async fn locate(call: &Call, id: &str) -> Result<Located<Self>, ApiError> {
        locate_registrant(call, id).await
    }

    async fn locate_to_render(call: &Call, id: &str) -> Result<Located<Self>, ApiError> {
        locate_registrant_to_render(call, id).await
    }

    /// Current group memberships, keeping for a consent-bound caller only the groups it may
    /// see itself: a household's identifier is the household's data.
    async fn context(call: &Call, snapshots: &[&Snapshot<Self>]) -> Result<Memberships, ApiError> {
        let ids: Vec<String> = snapshots.iter().map(|s| s.aggregate_id.clone()).collect();
        let mut memberships = view::group_memberships(&call.state.pool, &ids).await?;
        if call.principal.require_consent {
            let groups: Vec<String> = memberships
                .values()
                .flatten()
                .map(|m| m.group_id.clone())
                .collect();
            let visible = grants_for(call, "group", &groups).await?;
            for rows in memberships.values_mut() {
                rows.retain(|m| visible.contains_key(&m.group_id));
            }
        }
        Ok(memberships)
    }

    const CONTEXT_BESIDE: Option<&'static str> = Some(view::MEMBERSHIPS_OF_ROW);

    /// The groups read beside the row: a caller not bound by consent sees every one.
    fn context_beside(stream: &str, beside: Option<Value>) -> Result<Memberships, ApiError> {
        let mine = view::memberships_of_row(beside)?;
        Ok(if mine.is_empty() {
            Memberships::new()
        } else {
            Memberships::from([(stream.to_owned(), mine)])
        })
    }

    /// A new individual's stream was minted for its registration: no group can list it yet.
    fn created_context() -> Option<Memberships> {
        Some(Memberships::new())
    }

    /// Group memberships live in other streams: a past version shows none.
    async fn past_context(_call: &Call, _latest: &Snapshot<Self>) -> Result<Memberships, ApiError> {
        Ok(Memberships::new())
    }

    fn render(call: &Call, memberships: &Memberships, row: &Snapshot<Self>) -> IndividualResource {
        let mine = memberships
            .get(&row.aggregate_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        IndividualResource::render(
            row,
            mine,
            &call.state.vocabulary,
            call.extensions_shown(EXTENDED, &row.state.extension),
        )
    }

    /// The groups `groupMembership` names.
    fn mentioned(
        memberships: &Memberships,
        row: &Snapshot<Self>,
        grant: &Grant,
    ) -> Vec<(String, String)> {
        if !grant.allows("groupMembership") {
            return Vec::new();
        }
        memberships
            .get(&row.aggregate_id)
            .into_iter()
            .flatten()
            .map(|m| (format!("Group/{}", m.group_identifier), m.group_id.clone()))
            .collect()
    }

    fn key(_stream: &str, state: &Self) -> Option<String> {
        state.live_identifiers().next().map(|i| i.key())
    }
}

impl Registrant for Individual {
    type Body = IndividualResource;
    const READ_ONLY: &'static [&'static str] = &["meta", "groupMembership"];

    async fn registration(
        _call: &Call,
        body: IndividualResource,
    ) -> Result<(Option<String>, IndividualCommand), ApiError> {
        let details = body.into_details()?;
        let subject = details.identifiers.first().map(|i| i.key());
        Ok((subject, IndividualCommand::Register(details)))
    }

    async fn replacement(
        _call: &Call,
        target: &Located<Self>,
        Stated { body, fields }: Stated<IndividualResource>,
    ) -> Result<IndividualCommand, ApiError> {
        Ok(IndividualCommand::Replace {
            details: body.into_details()?,
            stated: fields,
            access: target.access.clone(),
        })
    }
}

impl Searchable for Individual {
    type Query = IndividualQuery;

    async fn query(call: &Call, params: &mut Params) -> Result<IndividualQuery, ApiError> {
        Ok(IndividualQuery {
            identifier: params.identifier()?,
            name: params.one("name")?,
            birth_date: params.dates("birthdate")?,
            gender: params
                .one("gender")?
                .map(|g| g.rsplit('|').next().unwrap_or_default().to_owned()),
            address: params.one("address")?,
            last_updated: params.instants("_lastUpdated")?,
            active: params.boolean("active")?,
            extension: call.extension_filters(EXTENDED, params)?,
            household: InHousehold {
                group: resource::referenced(call, params, "group", "Group").await?,
                role: params
                    .one("membership-role")?
                    .map(|role| code_of(&role, GROUP_MEMBERSHIP_TYPE, "membership-role"))
                    .transpose()?,
            },
            visibility: call.principal.visibility(),
            sort: params.sort(&view::SORT_COLUMNS, SortKey::NEWEST_FIRST)?,
        })
    }
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
        ("group" = Option<String>, Query, description = "`Group/{system}|{value}` (or `{system}|{value}`): current members of that group"),
        ("membership-role" = Option<String>, Query, description = "A role code of `urn:openspp:vocab:group-membership-type` (or `system|code`): individuals holding it in a current group"),
        ("_lastUpdated" = Option<String>, Query, description = "Instant or date with prefix; repeatable"),
        ("_count" = Option<i64>, Query, description = "1-100, default 20"),
        ("_offset" = Option<i64>, Query),
        ("_sort" = Option<String>, Query, description = "name, given, birthdate, _lastUpdated; `-` for descending"),
        ("_elements" = Option<String>, Query, description = "Comma-separated top-level fields each result shows (and `type`, `identifier`, `meta`)"),
        ("_extensions" = Option<String>, Query, description = "`*`, or the URIs or names of the extensions to show in each result; none by default (as OpenSPP)"),
        ("extension.{key}.{property}" = Option<String>, Query, description = "A property an extension's schema marks `x-openspp-searchable` equals this value (a list property: holds it); repeatable; `/metadata` lists them"),
    ),
    responses(
        (status = 200, body = SearchResult<IndividualResource>),
        (status = 400, body = OperationOutcome),
    ),
    security(("bearer" = ["individual:search"])))]
async fn search(
    call: Call,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<SearchResult<Value>>, ApiError> {
    resource::search::<Individual>(&call, &uri).await.map(Json)
}

/// The individual's current group memberships, in OpenSPP's `GroupMembershipList` shape: read
/// exactly as `GET /Individual/{id}` reads it (scope, consent, access log), so a group the
/// caller may not see, or a grant that hides `groupMembership`, lists nothing.
#[utoipa::path(get, path = "/Individual/{id}/groups", tag = "Individual",
    params(("id" = String, Path, description = "`system|value`, URL-encoded")),
    responses(
        (status = 200, body = GroupMembershipList),
        (status = 400, body = OperationOutcome),
        (status = 401, body = OperationOutcome),
        (status = 403, body = OperationOutcome),
        (status = 404, body = OperationOutcome),
    ),
    security(("bearer" = ["individual:read"])))]
async fn groups(
    call: Call,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<GroupMembershipList>, ApiError> {
    let read = resource::read::<Individual>(&call, &id, &uri).await?;
    Ok(Json(GroupMembershipList::of(&read.body)))
}

crate::http::registrant_routes!(Individual, IndividualResource,
    create:
    /// Register an individual.
    replace:
    /// Replace an individual's data; only what changed is recorded, as specific events. Fields the
    /// client may not see must be left out, and stay as they are.
    patch:
    /// Change some of an individual's data with a JSON Merge Patch (RFC 7396), as OpenSPP does: the
    /// patch is merged into the individual as this client sees it and written as a `PUT` of the
    /// result would be, so only what changed is recorded, as specific events. Without `If-Match`
    /// it applies to the current version; it never overwrites a version it was not merged into.
);

crate::http::read_routes!(Individual, IndividualResource, "`system|value`, URL-encoded",
    routes: (search, create), (read, replace, patch), (groups));
