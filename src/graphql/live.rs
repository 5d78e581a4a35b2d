//! Live events (CONTRACT §7): `subscription { events(after: cursor) { … } }` delivers committed
//! events of registrants, programs and memberships in commit order, each with the fields it
//! changed and its provenance, only where the client may see the subject and only the fields
//! it may see.
//!
//! Delivery follows the registry feed follower's checkpoint (`projections::runner`), reading
//! the events up to it with `feed::read_between`: everything up to the checkpoint has committed
//! for good, in the feed's one order, so a subscriber on any server process sees the same
//! events in the same order as every other, and a cursor (an event's place in the feed) resumes
//! a subscription right after that event with no gap and no duplicate.
//!
//! What the client may see is decided from the read models as they are when the events are
//! sent (the client's record, its scopes and allowed programs, the subjects' consents), not
//! when the subscription started, nor when a page of events was read: a decision older than
//! `OPENSPP_SUBSCRIPTION_RECHECK_MS` (default 20 ms) is checked again before anything more of
//! it is sent, so that a consent withdrawn stops the subject's events as soon as it commits,
//! however long they waited for a slow socket. The check asks what the decision depended on:
//! the client's record, the day (consents end on a date), and whether a consent, a group's
//! members (a household's consent covers its current members) or a subject it queued events
//! of (its identifier, which names it) changed since (`feed::touched_since`). If any did, the
//! decision is dropped with what it queued and the feed read again from the last event sent;
//! if none did, it holds, as deciding again would decide the same. (Deciding again every 20 ms instead cost a subscriber that had fallen
//! behind most of its time: 16 subscribers fell 8 s behind 1,300 events/s of writes.) A
//! client deactivated ends its subscriptions. Each decision that disclosed something is one
//! access in the access log, naming the subjects it disclosed.

use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_graphql::{Context, SimpleObject, Subscription};
use chrono::NaiveDate;
use cqrs_es::Aggregate;
use futures_util::Stream;
use openspp_aggregates::{
    Consent, Group, GroupEvent, Individual, IndividualEvent, MembershipEvent, Program,
    ProgramEvent, ProgramMembership,
};
use openspp_projections::feed::{read_between, touched_since};
use openspp_projections::view;
use openspp_projections::{FeedPosition, StoredEvent};
use serde_json::Value;

use crate::api::bundle::Provenance;
use crate::api::provenance::Provenance as RequestProvenance;
use crate::app::AppState;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::graphql::context::{bad_argument, gql, RESOURCE};
use crate::graphql::nodes::{render, Linked, Unseen};
use crate::resource::{reference_of, today, Audit, Call, Grant, Interaction};

/// Events read from the feed at once.
const PAGE: i64 = 500;
/// The longest a subscriber waits for the checkpoint to move before reading it from the table
/// (a lost notification costs at most this).
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// How long what a decision queued may still be sent (`OPENSPP_SUBSCRIPTION_RECHECK_MS`,
/// default 20 ms): after that, it is decided again.
fn recheck() -> Duration {
    static RECHECK: OnceLock<Duration> = OnceLock::new();
    *RECHECK.get_or_init(|| {
        let ms = std::env::var("OPENSPP_SUBSCRIPTION_RECHECK_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n: &u64| *n >= 1)
            .unwrap_or(20);
        Duration::from_millis(ms)
    })
}

/// The aggregates whose events change what a client may see of other subjects' events: a
/// consent, and a group's members (a household's consent covers its current members). What
/// else a decision reads is the client's record and the day.
const DECIDING: [&str; 2] = [Consent::TYPE, Group::TYPE];

/// How a page delivered is named in the access log.
const DELIVERY: Interaction = Interaction::new("subscription", "R");

/// Who subscribed: the client `connection_init` authenticated, and the request that opened
/// the WebSocket (its id traces every delivery).
#[derive(Clone)]
pub struct Session {
    pub state: AppState,
    pub principal: Principal,
    pub request_id: String,
}

/// An event as a subscriber receives it.
#[derive(SimpleObject, Clone, Debug)]
pub struct Event {
    /// The event's place in the feed: `events(after:)` with it resumes right after it.
    pub cursor: String,
    /// `Individual`, `Group`, `Program` or `ProgramMembership`.
    pub resource_type: String,
    /// The resource's identifier (`system|value`) as it is now.
    pub external_id: Option<String>,
    /// The event (`NameChanged`, …), or `Changed` where it changed nothing the client may see.
    pub event_type: String,
    /// The resource's version after the event (REST's `meta.versionId`).
    pub version_id: String,
    /// The top-level REST fields it changed that the client may see; an extension's data is
    /// `extension.<uri>`.
    pub changed_fields: Vec<String>,
    pub provenance: Provenance,
}

/// A cursor as `events(after:)` takes it.
pub fn format_cursor(position: FeedPosition) -> String {
    format!("{}.{}", position.tx_id, position.position)
}

fn parse_cursor(text: &str) -> Option<FeedPosition> {
    let (tx_id, position) = text.split_once('.')?;
    Some(FeedPosition {
        tx_id: tx_id.parse().ok().filter(|n: &i64| *n >= 0)?,
        position: position.parse().ok().filter(|n: &i64| *n >= 0)?,
    })
}

/// A resource whose events are delivered: which REST fields each of its events changes.
pub trait Followed: Linked {
    fn changed(event: &<Self as Aggregate>::Event) -> Vec<String>;

    /// The fields a stored event changed; none when it cannot be read (a newer version).
    fn fields(payload: &Value) -> Vec<String> {
        serde_json::from_value::<<Self as Aggregate>::Event>(payload.clone())
            .map(|event| Self::changed(&event))
            .unwrap_or_default()
    }
}

fn names(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|f| (*f).to_owned()).collect()
}

fn extension(url: &str) -> Vec<String> {
    vec![format!("extension.{url}")]
}

impl Followed for Individual {
    fn changed(event: &IndividualEvent) -> Vec<String> {
        use IndividualEvent::*;
        match event {
            IndividualRegistered { .. } => names(&[
                "name",
                "birthDate",
                "birthDateEstimated",
                "gender",
                "telecom",
                "address",
                "active",
            ]),
            IdentifierAdded { .. } | IdentifierInvalidated { .. } => names(&["identifier"]),
            NameChanged { .. } => names(&["name"]),
            BirthDateChanged { .. } => names(&["birthDate", "birthDateEstimated"]),
            GenderChanged { .. } => names(&["gender"]),
            TelecomChanged { .. } => names(&["telecom"]),
            AddressChanged { .. } => names(&["address"]),
            PhotoChanged { .. } => names(&["photo"]),
            IndividualDeactivated | IndividualReactivated => names(&["active"]),
            ExtensionRecorded { url, .. } | ExtensionRemoved { url } => extension(url),
        }
    }
}

impl Followed for Group {
    fn changed(event: &GroupEvent) -> Vec<String> {
        use GroupEvent::*;
        match event {
            GroupRegistered { .. } => names(&["groupType", "name", "address", "active"]),
            IdentifierAdded { .. } | IdentifierInvalidated { .. } => names(&["identifier"]),
            GroupRenamed { .. } => names(&["name"]),
            GroupTypeChanged { .. } => names(&["groupType"]),
            GroupAddressChanged { .. } => names(&["address"]),
            GroupDeactivated | GroupReactivated => names(&["active"]),
            MemberAdded { .. }
            | MemberRolesChanged { .. }
            | MemberStartDateChanged { .. }
            | MembershipEnded { .. }
            | GroupMerged { .. }
            | GroupSplit { .. } => names(&["member", "quantity"]),
            ExtensionRecorded { url, .. } | ExtensionRemoved { url } => extension(url),
        }
    }
}

impl Followed for Program {
    fn changed(event: &ProgramEvent) -> Vec<String> {
        use ProgramEvent::*;
        match event {
            ProgramCreated { .. } => names(&[
                "name",
                "description",
                "programType",
                "targetType",
                "currency",
                "eligibilityCriteria",
                "period",
                "status",
                "active",
            ]),
            IdentifierAdded { .. } | IdentifierInvalidated { .. } => names(&["identifier"]),
            ProgramRenamed { .. } => names(&["name"]),
            ProgramDescribed { .. } => {
                names(&["description", "eligibilityCriteria", "programType"])
            }
            TargetTypeChanged { .. } => names(&["targetType"]),
            StartDateChanged { .. } | ProgramEnded { .. } => names(&["period", "status"]),
            CurrencyChanged { .. } => names(&["currency"]),
            ProgramArchived | ProgramReactivated => names(&["status", "active"]),
        }
    }
}

impl Followed for ProgramMembership {
    fn changed(event: &MembershipEvent) -> Vec<String> {
        use MembershipEvent::*;
        match event {
            MembershipRecorded { .. } => {
                names(&["program", "beneficiary", "status", "enrollmentDate"])
            }
            IdentifierAdded { .. } => names(&["identifier"]),
            MembershipStatusChanged { .. } => names(&[
                "status",
                "enrollmentDate",
                "exitDate",
                "exitReason",
                "active",
            ]),
        }
    }
}

/// What the client may see of one subject of a page.
struct Seen {
    external_id: Option<String>,
    grant: Grant,
}

/// The subjects of `R` the page's events are about that the client may see now (none without
/// `R`'s read scope), rendered as a read would render them, so the access log records them.
async fn seen<R: Followed>(
    call: &Call,
    events: &[StoredEvent],
) -> Result<HashMap<String, Seen>, ApiError> {
    if call.principal.require(R::SCOPE, Action::Read).is_err() {
        return Ok(HashMap::new());
    }
    let Some(table) = R::VIEW else {
        return Ok(HashMap::new());
    };
    let mut streams: Vec<String> = events
        .iter()
        .filter(|e| e.aggregate_type == R::TYPE)
        .map(|e| e.aggregate_id.clone())
        .collect();
    streams.sort();
    streams.dedup();
    if streams.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = view::rows_where::<R>(&call.state.pool, table, "aggregate_id", &streams).await?;
    let nodes = render(call, rows, Unseen::Drop).await?;
    let prefix = format!("{}/", R::TYPE);
    Ok(nodes
        .into_iter()
        .filter_map(|node| {
            let grant = node.grant?;
            let external_id = reference_of(&node.snapshot.aggregate_id, &node.snapshot.state)
                .map(|r| r.strip_prefix(&prefix).unwrap_or(&r).to_owned());
            Some((node.snapshot.aggregate_id, Seen { external_id, grant }))
        })
        .collect())
}

/// The page's events of `R` the client may see, by their index in the page.
async fn deliverable<R: Followed>(
    call: &Call,
    events: &[StoredEvent],
    out: &mut Vec<(usize, Event)>,
) -> Result<(), ApiError> {
    let seen = seen::<R>(call, events).await?;
    for (index, event) in events.iter().enumerate() {
        if event.aggregate_type != R::TYPE {
            continue;
        }
        let Some(subject) = seen.get(&event.aggregate_id) else {
            continue;
        };
        let changed: Vec<String> = R::fields(&event.payload)
            .into_iter()
            .filter(|field| subject.grant.allows(field))
            .collect();
        // As a limited caller's history shows it: that the resource changed, and when, but
        // not what where it may not see (`resource::history::bundle`).
        let event_type = if subject.grant.is_limited() && changed.is_empty() {
            "Changed".to_owned()
        } else {
            event.event_type.clone()
        };
        out.push((
            index,
            Event {
                cursor: format_cursor(event.feed),
                resource_type: R::TYPE.to_owned(),
                external_id: subject.external_id.clone(),
                event_type,
                version_id: event.sequence.to_string(),
                changed_fields: changed,
                provenance: Provenance::of_event(&event.metadata, event.recorded_at, &event.hash),
            },
        ));
    }
    Ok(())
}

/// What a decision read, to tell later whether deciding again would decide the same
/// (`Follower::holds`).
struct Basis {
    /// The client as the decision saw it.
    principal: Principal,
    /// A place the feed follower had reached before the decision read anything: every event
    /// that committed after the decision read follows it.
    checkpoint: FeedPosition,
    day: NaiveDate,
    /// The streams of the events it queued: their identifiers (`external_id`) were read with
    /// it, and a later event of one of them may change which identifier names it.
    streams: Vec<String>,
}

/// What of a page of the feed the client may receive, each event with its place, in feed
/// order, and what that decision read (`checkpoint`: where the feed follower stood before it
/// read anything). The page is one access in the access log (recorded only if it disclosed
/// something). `None`: the client is gone.
async fn deliver(
    session: &Session,
    events: &[StoredEvent],
    checkpoint: FeedPosition,
) -> Result<Option<(Basis, Vec<(FeedPosition, Event)>)>, ApiError> {
    let day = today();
    let state = &session.state;
    // The client as it is now: deactivated, it receives nothing more; its scopes and allowed
    // programs as they now are, never more than its token had.
    let Some(principal) = Principal::resume(
        &state.pool,
        &session.principal.client_id,
        &session.principal.scopes,
    )
    .await?
    else {
        return Ok(None);
    };
    let audit = Audit::default();
    audit.open(&principal, &session.request_id, RESOURCE, DELIVERY);
    let call = Call::new(
        state.clone(),
        principal.clone(),
        RequestProvenance::internal(session.request_id.clone()),
        audit.clone(),
    );
    let mut out = Vec::new();
    deliverable::<Individual>(&call, events, &mut out).await?;
    deliverable::<Group>(&call, events, &mut out).await?;
    deliverable::<Program>(&call, events, &mut out).await?;
    deliverable::<ProgramMembership>(&call, events, &mut out).await?;
    out.sort_by_key(|(index, _)| *index);
    if let Some(entry) = audit.finish(200) {
        if !out.is_empty() {
            state.access_log.record(entry).await;
        }
    }
    let mut streams: Vec<String> = out
        .iter()
        .map(|(index, _)| events[*index].aggregate_id.clone())
        .collect();
    streams.sort();
    streams.dedup();
    let basis = Basis {
        principal,
        checkpoint,
        day,
        streams,
    };
    Ok(Some((
        basis,
        out.into_iter()
            .map(|(index, event)| (events[index].feed, event))
            .collect(),
    )))
}

/// One subscriber's place in the feed and what is ready to send.
struct Follower {
    session: Session,
    /// Read and decided up to here.
    cursor: FeedPosition,
    /// The last event sent (or where the subscription started): a decision dropped resumes
    /// from here.
    sent: FeedPosition,
    /// What the last decision let through and is not sent yet, each with its place.
    ready: VecDeque<(FeedPosition, Event)>,
    /// When the last decision was made or last found to hold, what it read, and how many of
    /// its events were sent.
    decided: Instant,
    basis: Option<Basis>,
    taken: i64,
    /// Events read at once: halved when a decision goes stale before its events are sent, so
    /// that a slow reader costs few decisions of few events; doubled when a page is all sent.
    page: i64,
    moves: tokio::sync::watch::Receiver<FeedPosition>,
    /// The client is gone: the subscription has said so and ends.
    ended: bool,
}

impl Follower {
    /// The next event the client may receive; `None` ends the subscription (the client is
    /// gone).
    async fn next(&mut self) -> Option<async_graphql::Result<Event>> {
        if self.ended {
            return None;
        }
        // Decided too long ago (the socket was slow to take the last event): unless what it
        // read is unchanged, decide again what is left. Checked once per call, when the socket
        // asks for the next event: within the call nothing waits for the socket, and a decision
        // that itself took longer than the bound (a loaded database) would otherwise be dropped
        // again and again, sending nothing.
        if !self.ready.is_empty() && self.decided.elapsed() > recheck() {
            // As a decision's age counts from before it reads, so does a check's.
            let checked = Instant::now();
            if self.holds().await {
                self.decided = checked;
            } else {
                self.ready.clear();
                self.cursor = self.sent;
                self.page = (self.taken * 2).clamp(1, PAGE);
            }
        }
        loop {
            if let Some((position, event)) = self.ready.pop_front() {
                self.sent = position;
                self.taken += 1;
                if self.ready.is_empty() {
                    // All sent in time: all read is dealt with, and the next page may be
                    // larger.
                    self.sent = self.cursor;
                    self.page = (self.page * 2).min(PAGE);
                }
                return Some(Ok(event));
            }
            let checkpoints = &self.session.state.checkpoints;
            let upto = checkpoints.current();
            if upto <= self.cursor {
                tokio::select! {
                    moved = self.moves.changed() => {
                        if moved.is_err() {
                            return None;
                        }
                    }
                    _ = tokio::time::sleep(IDLE_CHECK) => {
                        if let Err(error) = checkpoints.refresh().await {
                            tracing::warn!(%error, "cannot read the feed checkpoint");
                        }
                    }
                }
                continue;
            }
            let pool = &self.session.state.pool;
            let events = match read_between(pool, self.cursor, upto, self.page).await {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the feed for a subscription");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let Some(last) = events.last().map(|e| e.feed) else {
                self.cursor = upto;
                self.sent = upto;
                continue;
            };
            let decided = Instant::now();
            match deliver(&self.session, &events, upto).await {
                Ok(Some((basis, delivered))) => {
                    self.basis = Some(basis);
                    self.ready.extend(delivered);
                    self.cursor = last;
                    if self.ready.is_empty() {
                        // Nothing to send from here: none of it is read again.
                        self.sent = last;
                    }
                    self.decided = decided;
                    self.taken = 0;
                }
                Ok(None) => {
                    self.ended = true;
                    return Some(Err(gql(ApiError::new(
                        axum::http::StatusCode::UNAUTHORIZED,
                        "login",
                        "the client is deactivated",
                    ))));
                }
                Err(error) => {
                    tracing::warn!(detail = %error.detail(), "cannot deliver a page of events");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Whether the last decision would decide the same now: the same client record, the same
    /// day, and no consent or group change (`DECIDING`), nor any event of a subject it queued
    /// events of, committed since it read. Moves the basis on to the follower's place when it
    /// holds, so that the next check reads only what came after. Any doubt (a read that fails)
    /// is a no.
    async fn holds(&mut self) -> bool {
        let Some(basis) = &mut self.basis else {
            return false;
        };
        if basis.day != today() {
            return false;
        }
        let state = &self.session.state;
        // Read before the checks: everything up to it has committed, and they see it.
        let reached = state.checkpoints.current();
        let client = Principal::resume(
            &state.pool,
            &self.session.principal.client_id,
            &self.session.principal.scopes,
        )
        .await;
        if !matches!(client, Ok(Some(now)) if now == basis.principal) {
            return false;
        }
        match touched_since(&state.pool, basis.checkpoint, &DECIDING, &basis.streams).await {
            Ok(false) => {
                basis.checkpoint = basis.checkpoint.max(reached);
                true
            }
            Ok(true) => false,
            Err(error) => {
                tracing::warn!(%error, "cannot check a subscription's decision");
                false
            }
        }
    }
}

pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Committed events, in commit order, of the individuals, groups, programs and program
    /// memberships the client may see (each needs its `read` scope), from right after `after`
    /// (a cursor an event carried), or from now.
    async fn events(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Event>>> {
        let session = ctx.data::<Session>().map_err(|_| {
            gql(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "login",
                "subscriptions are served at /api/v2/graphql/ws, with the token in \
                 connection_init",
            ))
        })?;
        let readable = ["individual", "group", "program", "program_membership"]
            .iter()
            .any(|scope| session.principal.require(scope, Action::Read).is_ok());
        if !readable {
            return Err(gql(session
                .principal
                .require("individual", Action::Read)
                .unwrap_err()));
        }
        let state = &session.state;
        let cursor = match after {
            Some(text) => parse_cursor(&text).ok_or_else(|| {
                bad_argument(
                    "after",
                    "must be a cursor an event carried (`<tx>.<position>`)",
                )
            })?,
            None => state.checkpoints.current(),
        };
        let follower = Follower {
            session: session.clone(),
            cursor,
            sent: cursor,
            ready: VecDeque::new(),
            decided: Instant::now(),
            basis: None,
            taken: 0,
            page: PAGE,
            moves: state.checkpoints.subscribe(),
            ended: false,
        };
        Ok(futures_util::stream::unfold(
            follower,
            |mut follower| async move { follower.next().await.map(|item| (item, follower)) },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_survive_their_text() {
        let position = FeedPosition {
            tx_id: 981,
            position: 12,
        };
        assert_eq!(parse_cursor(&format_cursor(position)), Some(position));
        for bad in ["", "1", "a.b", "1.-2", "-1.2", "1.2.3"] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_extension_event_names_its_extension() {
        let event = IndividualEvent::ExtensionRemoved {
            url: "urn:x:farmer".to_owned(),
        };
        let payload = serde_json::to_value(&event).unwrap();
        assert_eq!(Individual::fields(&payload), ["extension.urn:x:farmer"]);
        assert!(Individual::fields(&serde_json::json!({"Unheard": {}})).is_empty());
    }
}
