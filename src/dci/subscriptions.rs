//! Subscriptions (CONTRACT §9): `subscribe` registers a filter over one kind of registry event
//! (`REGISTER`, `UPDATE`, `NewHouseHoldMember`) with the sender's principal; [`follow`] reads
//! the event feed (the ordered reader every follower uses) from each subscription's stored
//! position, and for each change of that kind (the events of one commit on one subject: one
//! notification for a registration with its identifiers, or for an update of several fields)
//! whose subject the filter finds — searched through
//! `resource::search` under the subscriber's principal, so consent and the access log hold —
//! enqueues a `notify` in the outbox and advances the position in the same transaction. The
//! outbox delivers a subscription's notifications one at a time in order: at least once, in
//! commit order.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::Uri;
use openspp_aggregates::{Group, Individual};
use openspp_projections::events::StoredEvent;
use openspp_projections::feed::read_page;
use openspp_projections::view;
use openspp_projections::FeedPosition;
use serde_json::{json, Value};

use crate::api::provenance::Provenance;
use crate::app::AppState;
use crate::auth::{Action, Principal};
use crate::dci::envelope::{batch, callback_header, fresh_id, now, DciError, VERSION};
use crate::dci::idtypes::IdTypes;
use crate::dci::outbox::CHANNEL;
use crate::dci::query::{translate, Rejected, Target};
use crate::dci::records::record;
use crate::dci::search::REG_TYPE;
use crate::resource::{self, Audit, Call, Interaction, Resource};
use crate::store::EVENTS_CHANNEL;
use openspp_projections::begin::begin;

/// The event kinds a subscription may follow.
const EVENT_TYPES: [&str; 3] = ["REGISTER", "UPDATE", "NewHouseHoldMember"];
/// The kinds a `notify` may name: the spec's `reg_event_type` there is an enum without
/// `UPDATE`. The field is optional, so an `UPDATE` notification leaves it out; its
/// subscription code (header `meta`) says what it follows, as `on-subscribe` told.
const NOTIFIED_EVENT_TYPES: [&str; 2] = ["REGISTER", "NewHouseHoldMember"];
/// Events read per subscription per round.
const PAGE: i64 = 200;

/// One `subscribe_request`, checked: its target, translated filter, and event kind.
pub struct Checked {
    pub target: Target,
    pub criteria: Value,
    pub event_type: String,
}

/// Checks a `subscribe_criteria`: a known event kind, a filter this registry can evaluate,
/// on a record type the event concerns.
pub fn check(criteria: &Value, ids: &IdTypes) -> Result<Checked, Rejected> {
    let event_type = criteria["reg_event_type"].as_str().unwrap_or_default();
    let event_type = event_type.rsplit(':').next().unwrap_or(event_type);
    if !EVENT_TYPES.contains(&event_type) {
        return Err(Rejected {
            code: "rjct.notify_types.invalid",
            message: format!(
                "reg_event_type `{event_type}` is not offered; use {}",
                EVENT_TYPES.join(", ")
            ),
        });
    }
    let filter_type = criteria["filter_type"].as_str().unwrap_or("expression");
    let as_search = json!({
        "query_type": filter_type,
        "query": criteria["filter"],
        "reg_record_type": criteria["notify_record_type"],
    });
    let translated = translate(&as_search, ids).map_err(|r| Rejected {
        code: "rjct.notify_details.invalid",
        message: r.message,
    })?;
    if event_type == "NewHouseHoldMember" && translated.target != Target::Group {
        return Err(Rejected {
            code: "rjct.notify_details.invalid",
            message: "NewHouseHoldMember notifies Group records".into(),
        });
    }
    Ok(Checked {
        target: translated.target,
        criteria: as_search,
        event_type: event_type.to_owned(),
    })
}

/// The end of the feed now: a new subscription notifies only what commits after it.
pub async fn feed_end(tx: &mut sqlx::PgConnection) -> sqlx::Result<FeedPosition> {
    let end: Option<(i64, i64)> = sqlx::query_as(
        "SELECT tx_id::text::bigint, global_position FROM events \
         ORDER BY tx_id DESC, global_position DESC LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await?;
    Ok(end
        .map(|(tx_id, position)| FeedPosition { tx_id, position })
        .unwrap_or_default())
}

/// Where notifications go: the `sender_uri` of the subscribe request with its last segment
/// `on-subscribe` replaced by `notify` (the spec's paths), or else that URI itself.
pub fn notify_uri(sender_uri: &str) -> String {
    match sender_uri.strip_suffix("on-subscribe") {
        Some(base) => format!("{base}notify"),
        None => sender_uri.to_owned(),
    }
}

/// Follows the feed for every active subscription until the task is aborted.
pub async fn follow(state: AppState) {
    let mut listener = crate::dci::listening(&state.pool, EVENTS_CHANNEL).await;
    loop {
        let again = match round(&state).await {
            Ok(again) => again,
            Err(error) => {
                tracing::warn!(%error, "cannot follow the feed for DCI subscriptions");
                true
            }
        };
        // At most one round per `ROUND_SPACING`: under a write load every commit is announced
        // (up to a hundred a second per process), and one round answers every announcement
        // received before it starts, so the ones that came meanwhile are taken together.
        tokio::time::sleep(ROUND_SPACING).await;
        let mut announced = false;
        while listener.next_buffered().is_some() {
            announced = true;
        }
        if again || announced {
            continue;
        }
        tokio::select! {
            received = listener.recv() => {
                if received.is_err() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            _ = tokio::time::sleep(IDLE_CHECK) => {}
        }
    }
}

/// The shortest time between two rounds of the follower.
const ROUND_SPACING: Duration = Duration::from_millis(100);
/// The longest an idle follower waits without an announcement.
const IDLE_CHECK: Duration = Duration::from_secs(30);

/// One pass over the active subscriptions; whether to look again soon.
async fn round(state: &AppState) -> Result<bool, String> {
    let codes: Vec<String> =
        sqlx::query_scalar("SELECT code FROM dci_subscriptions WHERE active ORDER BY code")
            .fetch_all(&state.pool)
            .await
            .map_err(|e| e.to_string())?;
    let mut again = false;
    for code in codes {
        again |= advance(state, &code).await?;
    }
    Ok(again)
}

#[derive(sqlx::FromRow)]
struct Subscription {
    code: String,
    transaction_id: String,
    client_id: String,
    scopes: Vec<String>,
    sender_id: String,
    notify_uri: String,
    event_type: String,
    criteria: Value,
    locale: Option<String>,
    feed_tx: i64,
    feed_position: i64,
}

/// Follows one subscription a page further; whether more may wait. The subscription's row is
/// locked for the page (another process skips it), and its notifications and new position
/// commit together.
async fn advance(state: &AppState, code: &str) -> Result<bool, String> {
    let failed = |e: sqlx::Error| e.to_string();
    let mut tx = begin(&state.pool).await.map_err(failed)?;
    let subscription: Option<Subscription> = sqlx::query_as(
        "SELECT code, transaction_id, client_id, scopes, sender_id, notify_uri, event_type, \
                criteria, locale, feed_tx, feed_position \
         FROM dci_subscriptions WHERE code = $1 AND active FOR UPDATE SKIP LOCKED",
    )
    .bind(code)
    .fetch_optional(&mut *tx)
    .await
    .map_err(failed)?;
    let Some(subscription) = subscription else {
        return Ok(false);
    };
    let after = FeedPosition {
        tx_id: subscription.feed_tx,
        position: subscription.feed_position,
    };
    let page = read_page(&state.pool, after, PAGE).await.map_err(failed)?;
    let events = whole_changes(&page.events, PAGE);
    let Some(last) = events.last().map(|e| e.feed) else {
        return Ok(page.held_back);
    };
    let ids = IdTypes::load(&state.pool).await.map_err(failed)?;
    let principal = Principal::resume(&state.pool, &subscription.client_id, &subscription.scopes)
        .await
        .map_err(|e| e.diagnostics)?;
    let Some(principal) = principal else {
        // The client is gone: the subscription ends.
        sqlx::query(
            "UPDATE dci_subscriptions SET active = false, ended_at = now() WHERE code = $1",
        )
        .bind(code)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        return Ok(false);
    };
    let audit = Audit::default();
    let call = Call::new(
        state.clone(),
        principal,
        Provenance::internal(format!("dci-subscription-{code}")),
        audit.clone(),
    );
    let translated = translate(&subscription.criteria, &ids).map_err(|r| r.message)?;
    let target = translated.target;
    let mut notified = 0;
    for change in changes(events) {
        if !concerns(&subscription.event_type, target, &change) {
            continue;
        }
        let subject = &change[0].aggregate_id;
        let Some(found) = matching(&call, &translated.params, target, subject, &ids).await? else {
            continue;
        };
        let envelope = notification(state, &subscription, &found, target);
        sqlx::query(
            "INSERT INTO dci_outbox (client_id, uri, action, ordering_key, envelope) \
             VALUES ($1, $2, 'notify', $3, $4)",
        )
        .bind(&subscription.client_id)
        .bind(&subscription.notify_uri)
        .bind(&subscription.code)
        .bind(&envelope)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        notified += 1;
    }
    sqlx::query("UPDATE dci_subscriptions SET feed_tx = $2, feed_position = $3 WHERE code = $1")
        .bind(code)
        .bind(last.tx_id)
        .bind(last.position)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    if notified > 0 {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)?;
    audit.record(&state.access_log, 200).await;
    Ok(page.held_back || page.events.len() as i64 == PAGE)
}

/// `events` (a page of at most `limit`) without the change the page may have cut short: a full
/// page ends before its last subject's events of its last commit, unless that is all of it. A
/// change is then notified once, and as what it is (the rest of a registration would otherwise
/// read as an update). Cutting at the subject rather than the commit lets a commit larger than
/// a page (a `$batch` household, an import batch) go out over several pages, each subject whole.
fn whole_changes(events: &[StoredEvent], limit: i64) -> &[StoredEvent] {
    if (events.len() as i64) < limit {
        return events;
    }
    let Some(last) = events.last() else {
        return events;
    };
    let same_change = |e: &StoredEvent| {
        e.feed.tx_id == last.feed.tx_id
            && e.aggregate_type == last.aggregate_type
            && e.aggregate_id == last.aggregate_id
    };
    match events.iter().position(same_change) {
        Some(cut) if cut > 0 => &events[..cut],
        _ => events,
    }
}

/// The events of one commit on one subject: what one notification is about (a registration
/// with its identifiers and members, an update of several fields), in feed order.
fn changes(events: &[StoredEvent]) -> Vec<Vec<&StoredEvent>> {
    let mut changes: Vec<Vec<&StoredEvent>> = Vec::new();
    let mut at: HashMap<(i64, &str, &str), usize> = HashMap::new();
    for event in events {
        let key = (
            event.feed.tx_id,
            event.aggregate_type.as_str(),
            event.aggregate_id.as_str(),
        );
        match at.get(&key) {
            Some(&index) => changes[index].push(event),
            None => {
                at.insert(key, changes.len());
                changes.push(vec![event]);
            }
        }
    }
    changes
}

/// Whether `change` is of the kind the subscription follows, on the record type it notifies:
/// `REGISTER` a registration, `UPDATE` any other change, `NewHouseHoldMember` a member added to
/// a group registered before.
fn concerns(event_type: &str, target: Target, change: &[&StoredEvent]) -> bool {
    if change.first().map(|e| e.aggregate_type.as_str()) != Some(target.resource_type()) {
        return false;
    }
    let has = |kinds: &[&str]| {
        change
            .iter()
            .any(|e| kinds.contains(&e.event_type.as_str()))
    };
    let registered = has(&["IndividualRegistered", "GroupRegistered"]);
    match event_type {
        "REGISTER" => registered,
        "NewHouseHoldMember" => !registered && has(&["MemberAdded"]),
        _ => !registered,
    }
}

/// `subject` as the subscriber sees it now, if the filter finds it: the filter's
/// search narrowed to the subject's identifier, run as the subscriber.
async fn matching(
    call: &Call,
    filter: &[(String, String)],
    target: Target,
    subject: &str,
    ids: &IdTypes,
) -> Result<Option<Value>, String> {
    let pool = &call.state.pool;
    let key = match target {
        Target::Individual => view::get::<Individual>(pool, "individual_view", subject)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|row| Individual::key(&row.aggregate_id, &row.state)),
        Target::Group => view::get::<Group>(pool, "group_view", subject)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|row| Group::key(&row.aggregate_id, &row.state)),
    };
    let Some(key) = key else {
        return Ok(None);
    };
    let mut params: Vec<(String, String)> = filter
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "_count" | "_offset" | "_sort"))
        .cloned()
        .collect();
    params.push(("identifier".into(), key));
    params.push(("_count".into(), "1".into()));
    let query = serde_urlencoded::to_string(&params).map_err(|e| e.to_string())?;
    let uri: Uri = format!("/dci_api/v1/social/registry/notify?{query}")
        .parse()
        .map_err(|_| "the filter cannot be encoded".to_owned())?;
    call.open(
        target.scope(),
        Action::Search,
        target.resource_type(),
        Interaction::SEARCH,
    )
    .map_err(|e| e.diagnostics)?;
    let found = match target {
        Target::Individual => resource::search::<Individual>(call, &uri).await,
        Target::Group => resource::search::<Group>(call, &uri).await,
    };
    match found {
        Ok(result) => Ok(result.data.first().map(|r| record(target, r, ids))),
        // A filter the search refuses (a field the client may no longer search) matches nothing.
        Err(error) if error.status.is_client_error() => Ok(None),
        Err(error) => Err(error.diagnostics),
    }
}

/// The `notify` envelope for one record.
fn notification(
    state: &AppState,
    subscription: &Subscription,
    found: &Value,
    target: Target,
) -> Value {
    let mut header = callback_header(
        &state.dci.registry_id,
        "notify",
        "succ",
        &subscription.sender_id,
        1,
        1,
    );
    header["meta"] = json!({"subscription_code": subscription.code});
    let mut event = json!({
        "reference_id": fresh_id(),
        "timestamp": now(),
        "data": {
            "version": VERSION,
            "reg_type": REG_TYPE,
            "reg_record_type": target.record_type(),
            "reg_records": found,
        },
    });
    if NOTIFIED_EVENT_TYPES.contains(&subscription.event_type.as_str()) {
        event["data"]["reg_event_type"] = json!(subscription.event_type);
    }
    if let Some(locale) = &subscription.locale {
        event["locale"] = json!(locale);
    }
    json!({
        "header": header,
        "message": {"transaction_id": subscription.transaction_id, "notify_event": [event]},
    })
}

/// The subscribe requests of `message`, checked, with the scopes they need.
pub async fn prepare(
    call: &Call,
    message: &Value,
) -> Result<(Vec<Result<Checked, Rejected>>, IdTypes), DciError> {
    let items = batch(message, "subscribe_request")?;
    let ids = IdTypes::load(&call.state.pool)
        .await
        .map_err(crate::dci::txn::database)?;
    let checked: Vec<Result<Checked, Rejected>> = items
        .iter()
        .map(|item| check(&item["subscribe_criteria"], &ids))
        .collect();
    for target in checked
        .iter()
        .filter_map(|c| c.as_ref().ok().map(|c| c.target))
    {
        call.principal.require(target.scope(), Action::Search)?;
    }
    Ok((checked, ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(tx_id: i64, position: i64, aggregate: (&str, &str), event_type: &str) -> StoredEvent {
        StoredEvent {
            aggregate_type: aggregate.0.into(),
            aggregate_id: aggregate.1.into(),
            sequence: position,
            event_type: event_type.into(),
            event_version: "1".into(),
            payload: Value::Null,
            metadata: Value::Null,
            recorded_at: chrono::Utc::now(),
            prev_hash: None,
            hash: Vec::new(),
            feed: FeedPosition { tx_id, position },
        }
    }

    #[test]
    fn one_commit_on_one_subject_is_one_change_of_one_kind() {
        let person = ("Individual", "p");
        let household = ("Group", "h");
        let events = [
            event(1, 1, person, "IndividualRegistered"),
            event(1, 2, person, "IdentifierAdded"),
            event(2, 3, household, "GroupRegistered"),
            event(2, 4, household, "MemberAdded"),
            event(3, 5, household, "MemberAdded"),
            event(3, 6, person, "AddressChanged"),
            event(3, 7, household, "MemberAdded"),
        ];
        let changes = changes(&events);
        let kinds: Vec<(usize, Vec<&str>)> = changes
            .iter()
            .map(|change| {
                let first = change[0].feed.position as usize;
                let names = ["REGISTER", "UPDATE", "NewHouseHoldMember"];
                let target = if change[0].aggregate_type == "Group" {
                    Target::Group
                } else {
                    Target::Individual
                };
                (
                    first,
                    names
                        .into_iter()
                        .filter(|kind| concerns(kind, target, change))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (1, vec!["REGISTER"]),
                (3, vec!["REGISTER"]),
                (5, vec!["UPDATE", "NewHouseHoldMember"]),
                (6, vec!["UPDATE"]),
            ]
        );
        assert_eq!(changes[2].len(), 2, "both members of commit 3, one change");
        assert!(!concerns("REGISTER", Target::Individual, &changes[1]));
    }

    #[test]
    fn a_full_page_ends_before_a_change_it_may_have_cut() {
        let person = ("Individual", "p");
        let spouse = ("Individual", "s");
        let events = [
            event(1, 1, person, "NameChanged"),
            event(2, 2, person, "IndividualRegistered"),
            event(2, 3, person, "IdentifierAdded"),
        ];
        assert_eq!(whole_changes(&events, 3).len(), 1);
        assert_eq!(whole_changes(&events, 4).len(), 3, "not full: nothing cut");
        assert_eq!(whole_changes(&events[1..], 2).len(), 2, "one change: kept");
        // One commit larger than a page (a household in one `$batch`): the page ends before
        // the subject it may have cut, and the next page starts with that subject whole.
        let household = [
            event(3, 4, person, "IndividualRegistered"),
            event(3, 5, person, "IdentifierAdded"),
            event(3, 6, spouse, "IndividualRegistered"),
        ];
        assert_eq!(whole_changes(&household, 3).len(), 2);
    }
}
