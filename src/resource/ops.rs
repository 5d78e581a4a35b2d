//! The operations every resource shares, written once: read, the resource at an instant, its
//! history, one past version, the verification of its hash chain, and the end of every search.
//! Each checks its scope and opens the request's access-log entry before anything else.

use std::collections::HashMap;
use std::future::Future;

use axum::http::{StatusCode, Uri};
use openspp_projections::search::{Found, Page};
use openspp_projections::view::{self, ViewQuery};
use serde_json::Value;

use crate::api::advanced_search::{SearchBundle, SearchRequest};
use crate::api::bundle::{HistoryBundle, ResourceVersion};
use crate::api::params::{cursor_link, envelope, Params, DEFAULT_COUNT, MAX_COUNT};
use crate::api::reference::path_segment;
use crate::api::schema::SearchResult;
use crate::api::search_params::{Param, Preset};
use crate::api::BASE;
use crate::auth::Action;
use crate::error::ApiError;
use crate::extensions::Shown;
use crate::resource::answer::{answer, rendered, show, show_with, Answer};
use crate::resource::audit::Interaction;
use crate::resource::call::Call;
use crate::resource::grant::Grant;
use crate::resource::history::{self, Version};
use crate::resource::traits::{note_returned, Located, Resource, Snapshot};
use crate::store::verify::Verification;

/// The scope auditors' operations need.
const AUDIT: &str = "audit";

/// Takes `_extensions` of a resource that has extensions and notes on the call which
/// extensions its answers show (`default` without the parameter). For other resources the
/// parameter is left to be refused as unknown.
pub(crate) fn choose_extensions<R: Resource>(
    call: &Call,
    params: &mut Params,
    default: Shown,
) -> Result<(), ApiError> {
    let Some(resource) = R::EXTENDED else {
        return Ok(());
    };
    let shown = match params.one("_extensions")? {
        None => default,
        Some(names) => call
            .state
            .extensions
            .catalog()
            .choose(resource, &names)
            .map_err(|name| {
                ApiError::bad_request(
                    Some("_extensions"),
                    format!(
                        "`{name}` is not an extension registered for {}; use `*`, or URIs or \
                         names /metadata lists",
                        R::TYPE
                    ),
                )
            })?,
    };
    call.show_extensions(shown);
    Ok(())
}

/// Takes `_elements` (a comma-separated list of top-level fields; OpenSPP's sparse fieldsets)
/// and notes on the call that answers show only those, plus what identifies the resource.
pub(crate) fn choose_elements(call: &Call, params: &mut Params) -> Result<(), ApiError> {
    if let Some(list) = params.one("_elements")? {
        let elements: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        if elements.is_empty() {
            return Err(ApiError::bad_request(
                Some("_elements"),
                "name one or more top-level fields, separated by commas",
            ));
        }
        call.limit_elements(elements);
    }
    Ok(())
}

/// Which extensions the answer to a write shows: those `_extensions` of its URI names, else
/// `stated` (the extensions its body wrote). Other query parameters of a write are ignored.
pub fn answer_extensions<R: Resource>(
    call: &Call,
    uri: &Uri,
    stated: Shown,
) -> Result<(), ApiError> {
    choose_extensions::<R>(call, &mut Params::from_uri(uri)?, stated)
}

/// `GET /{R}/{id}`: the resource as it is now, or with `_at` as it was then.
pub async fn read<R: Resource>(call: &Call, id: &str, uri: &Uri) -> Result<Answer, ApiError> {
    call.open(R::SCOPE, Action::Read, R::TYPE, Interaction::READ)?;
    let mut params = Params::from_uri(uri)?;
    let instant = params.one("_at")?;
    choose_extensions::<R>(call, &mut params, Shown::None)?;
    choose_elements(call, &mut params)?;
    let id = &R::address(call, id, &mut params).await?;
    params.finish()?;
    if let Some(instant) = instant {
        return at::<R>(call, id, &instant).await;
    }
    let mut located = R::locate_to_render(call, id).await?;
    let snapshot = located.take_current(call).await?;
    match located.context.take() {
        // Read beside the row, in the statement that found it.
        Some(context) => Ok(show_with(
            call,
            StatusCode::OK,
            &snapshot,
            Some(&located.grant),
            context,
        )),
        None => show(call, StatusCode::OK, &snapshot, Some(&located.grant)).await,
    }
}

/// `GET /{R}/{id}?_at=…`: the version current at an instant (the caller opened the access).
pub async fn at<R: Resource>(call: &Call, id: &str, instant: &str) -> Result<Answer, ApiError> {
    let (located, versions, context) = located_versions::<R>(call, id).await?;
    let version = history::at_instant(versions, instant, R::TYPE)?;
    Ok(past::<R>(call, &located, &context, version))
}

/// `GET /{R}/{id}/_history`: every version, newest first, with what changed and who changed it.
/// Its job is to show every change, so versions show every extension unless `_extensions`
/// narrows them.
pub async fn history<R: Resource>(
    call: &Call,
    id: &str,
    uri: &Uri,
) -> Result<HistoryBundle<ResourceVersion<Value>>, ApiError> {
    call.open(AUDIT, Action::Read, R::TYPE, Interaction::HISTORY)?;
    let mut params = Params::from_uri(uri)?;
    choose_extensions::<R>(call, &mut params, Shown::All)?;
    let (located, versions, context) = located_versions::<R>(call, id).await?;
    let path = format!("{BASE}/{}/{}", R::TYPE, path_segment(id));
    history::bundle(
        uri,
        params,
        &path,
        &versions,
        Some(&located.grant),
        |version| {
            let snapshot = version.snapshot(&located.stream);
            serde_json::to_value(R::render(call, &context, &snapshot)).unwrap_or_default()
        },
    )
}

/// `GET /{R}/{id}/_history/{versionId}`: the resource exactly as it was at one version.
pub async fn vread<R: Resource>(
    call: &Call,
    id: &str,
    version: &str,
    uri: &Uri,
) -> Result<Answer, ApiError> {
    call.open(AUDIT, Action::Read, R::TYPE, Interaction::VREAD)?;
    let mut params = Params::from_uri(uri)?;
    choose_extensions::<R>(call, &mut params, Shown::None)?;
    params.finish()?;
    let (located, versions, context) = located_versions::<R>(call, id).await?;
    let version = history::at_version(versions, version, R::TYPE)?;
    Ok(past::<R>(call, &located, &context, version))
}

/// `GET /{R}/{id}/_history/$verify`. The chain is checked on the stored events, not on folded
/// versions, so that a payload edited beyond reading is reported, not a fault.
pub async fn verify<R: Resource>(call: &Call, id: &str) -> Result<Verification, ApiError> {
    call.open(AUDIT, Action::Read, R::TYPE, Interaction::VERIFY)?;
    let located = R::locate(call, id).await?;
    history::verify_stream(&call.state, R::TYPE, &located.stream).await
}

/// The subject `id`, its versions, and what rendering them needs; the access log names the
/// subjects the versions mention.
async fn located_versions<R: Resource>(
    call: &Call,
    id: &str,
) -> Result<(Located<R>, Vec<Version<R>>, R::Context), ApiError> {
    let located = R::locate(call, id).await?;
    let versions = history::versions::<R>(&call.state, &located.stream).await?;
    let context = match versions.last() {
        Some(latest) => {
            let latest = latest.snapshot(&located.stream);
            let context = R::past_context(call, &latest).await?;
            call.audit
                .mentioning(R::mentioned(&context, &latest, &located.grant));
            context
        }
        None => R::Context::default(),
    };
    Ok((located, versions, context))
}

/// A past version, answered as a read answered then.
fn past<R: Resource>(
    call: &Call,
    located: &Located<R>,
    context: &R::Context,
    version: Version<R>,
) -> Answer {
    let snapshot = version.snapshot(&located.stream);
    let body = rendered(call, context, &snapshot, Some(&located.grant));
    answer::<R>(StatusCode::OK, &snapshot, body, Some(&located.grant))
}

/// The end of every search: what the caller may see of each row, the rendering, the access-log
/// entry naming every subject returned and mentioned, and the envelope.
pub async fn page<R: Resource>(
    call: &Call,
    uri: &Uri,
    page: Page,
    found: Found<Snapshot<R>>,
) -> Result<SearchResult<Value>, ApiError> {
    let rows: Vec<&Snapshot<R>> = found.rows.iter().collect();
    let grants: HashMap<String, Grant> = R::grants(call, &rows).await?;
    let context = R::context(call, &rows).await?;
    for row in &rows {
        let grant = grants.get(&row.aggregate_id);
        note_returned(call, row, grant);
        if let Some(grant) = grant {
            call.audit.mentioning(R::mentioned(&context, row, grant));
        }
    }
    Ok(envelope(uri, page, found, |row| {
        rendered(call, &context, &row, grants.get(&row.aggregate_id))
    }))
}

/// A resource with a search: how its query parameters become a query of its read model. The
/// scope check, paging, unknown parameters, consent and the access log are [`search`]'s.
pub trait Searchable: Resource {
    type Query: ViewQuery<State = Self> + Send + Sync;

    /// Whether `query` pages by cursor (`_lastId`): its `next` link then names the last row
    /// instead of an offset, and there is no `prev`.
    fn cursor(_query: &Self::Query) -> bool {
        false
    }

    /// Takes the parameters this resource accepts (`_count` and `_offset` are taken already).
    fn query(
        call: &Call,
        params: &mut Params,
    ) -> impl Future<Output = Result<Self::Query, ApiError>> + Send;

    /// The page of rows `query` finds in the read model. A search on a field the client's own
    /// field filter hides is refused, naming the parameter.
    fn find(
        call: &Call,
        query: &Self::Query,
        page: Page,
    ) -> impl Future<Output = Result<Found<Snapshot<Self>>, ApiError>> + Send {
        async move {
            call.principal.may_search_on(Self::SCOPE, &query.fields())?;
            let page = call.principal.countable(page);
            Ok(view::search_view(&call.state.pool, query, page).await?)
        }
    }

    /// The page of rows any of `queries` matches (`POST /{R}/_search` with OR logic), each
    /// under the same rules as [`Searchable::find`].
    fn find_any(
        call: &Call,
        queries: &[Self::Query],
        page: Page,
    ) -> impl Future<Output = Result<Found<Snapshot<Self>>, ApiError>> + Send {
        async move {
            for query in queries {
                call.principal.may_search_on(Self::SCOPE, &query.fields())?;
            }
            let page = call.principal.countable(page);
            Ok(view::search_view_any(&call.state.pool, queries, page).await?)
        }
    }
}

/// `POST /{R}/_search`: OpenSPP's advanced search, its conditions turned into alternatives of
/// this resource's own search parameters (`params`; presets `presets`), answered as a
/// `searchset` Bundle. `_count` and `_offset` in the URL (the Bundle's `next` link) take
/// precedence over the body's `pagination`; `_extensions` and `_elements` shape the entries.
pub async fn advanced_search<R: Searchable>(
    call: &Call,
    uri: &Uri,
    body: Result<Value, ApiError>,
    params: &[Param],
    presets: &[Preset],
) -> Result<SearchBundle, ApiError> {
    call.open(R::SCOPE, Action::Search, R::TYPE, Interaction::SEARCH)?;
    let request = SearchRequest::from_body(body?)?;
    let mut url = Params::from_uri(uri)?;
    let body = request.pagination.as_ref();
    let count = body.and_then(|p| p.count).unwrap_or(DEFAULT_COUNT);
    let offset = body.and_then(|p| p.offset).unwrap_or(0);
    if !(1..=MAX_COUNT).contains(&count) || offset < 0 {
        return Err(ApiError::bad_request(
            Some("pagination"),
            format!("count is 1 to {MAX_COUNT}, offset 0 or more"),
        ));
    }
    let paging = Page {
        count: url.integer("_count", count, (1, MAX_COUNT))?,
        offset: url.integer("_offset", offset, (0, i64::MAX))?,
        total: url.total()?,
    };
    choose_extensions::<R>(call, &mut url, Shown::None)?;
    choose_elements(call, &mut url)?;
    url.finish()?;
    let mut queries = Vec::new();
    for alternative in request.alternatives(params, presets)? {
        let mut given = Params::new(alternative);
        queries.push(R::query(call, &mut given).await?);
        given.finish()?;
    }
    let found = R::find_any(call, &queries, paging).await?;
    page::<R>(call, uri, paging, found)
        .await
        .map(SearchBundle::from)
}

/// `GET /{R}?…`: a search, answered in OpenSPP's envelope.
pub async fn search<R: Searchable>(
    call: &Call,
    uri: &Uri,
) -> Result<SearchResult<Value>, ApiError> {
    call.open(R::SCOPE, Action::Search, R::TYPE, Interaction::SEARCH)?;
    let mut params = Params::from_uri(uri)?;
    let paging = params.page()?;
    choose_extensions::<R>(call, &mut params, Shown::None)?;
    choose_elements(call, &mut params)?;
    let query = R::query(call, &mut params).await?;
    params.finish()?;
    let cursor = R::cursor(&query);
    if cursor && paging.offset > 0 {
        return Err(ApiError::bad_request(
            Some("_offset"),
            "`_lastId` says where the page starts; leave out `_offset`",
        ));
    }
    let found = R::find(call, &query, paging).await?;
    let last = found
        .rows
        .last()
        .filter(|_| (found.rows.len() as i64) < found.total)
        .and_then(|row| R::key(&row.aggregate_id, &row.state));
    let mut result = page::<R>(call, uri, paging, found).await?;
    if cursor {
        result.links.prev = None;
        result.links.next = last.map(|key| cursor_link(uri, &key));
    }
    Ok(result)
}
