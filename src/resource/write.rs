//! Commands: run one against a stream, and answer with the resource as the caller may now see
//! it. Domain and store failures become API errors here, in one place.

use axum::http::{header, StatusCode};
use openspp_aggregates::DomainError;

use crate::api::json::ApiJson;
use crate::api::preconditions::IfMatch;
use crate::auth::Action;
use crate::error::ApiError;
use crate::resource::answer::{answer, show, show_with, Answer};
use crate::resource::audit::Interaction;
use crate::resource::call::Call;
use crate::resource::clash_alert;
use crate::resource::grant::identity_only;
use crate::resource::traits::{note_returned, Located, Resource, Snapshot, Write};
use crate::store::transaction::{self, Transaction};
use crate::store::{CommandMetadata, StoreError};

/// Opens a change of the `R` that `id` names (a `PUT`, an operation on it): the scope check and
/// the access-log entry first, then the body (one that did not parse is answered before the
/// subject is looked up), then the subject located.
pub async fn open_update<R: Resource, B>(
    call: &Call,
    id: &str,
    body: Result<ApiJson<B>, ApiError>,
) -> Result<(B, Located<R>), ApiError> {
    call.open(R::SCOPE, Action::Update, R::TYPE, Interaction::UPDATE)?;
    let ApiJson(body) = body?;
    let target = R::locate(call, id).await?;
    Ok((body, target))
}

/// Runs `write` and answers with the resource as it now is, shown as the caller may see it.
///
/// A 2xx means the events are committed, and nothing after the commit can turn it into a
/// failure: if what follows (the caller's grant, the references a rendering needs) cannot be
/// read, the answer is the committed version with its identity only.
/// The answer is rendered with the context the write holds (`Write::known`), else with the
/// one read after the commit.
pub async fn commit<R: Resource>(call: &Call, mut write: Write<R>) -> Result<Answer, ApiError> {
    let (status, known) = (write.status, write.known.take());
    let snapshot = execute(call, write).await?;
    Ok(committed_answer(call, status, &snapshot, known).await)
}

/// How many times a write whose facts changed before it could commit is decided again
/// (`commit_afresh`) before its writer is told to retry.
const FACT_ATTEMPTS: u32 = 4;

/// Commits the write `decide` prepares from what the read models now show. When a status it was
/// decided on (an entitlement's cycle, an enrolment: `Stored::relies_on`) changed before it
/// could commit, nothing was written, and it is prepared and decided again from what now
/// holds: the answer is the one a request sent after that change gets.
pub async fn commit_afresh<R, F, Fut>(call: &Call, decide: F) -> Result<Answer, ApiError>
where
    R: Resource,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Write<R>, ApiError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut write = decide().await?;
        let (status, known) = (write.status, write.known.take());
        let expected = write.if_match.clone().version_of(R::RENDERS_OTHERS)?;
        match run(call, write, expected).await {
            Err(StoreError::FactChanged) if attempt < FACT_ATTEMPTS => continue,
            outcome => {
                let snapshot = outcome.map_err(|error| store_error(error, R::TYPE))?;
                return Ok(committed_answer(call, status, &snapshot, known).await);
            }
        }
    }
}

/// The answer to a committed write: the resource as the caller may now see it, or, if what
/// that needs cannot be read, the committed version with its identity only (`commit`).
/// `known`: the context to render with, when the writer holds it (`Write::known`).
pub async fn committed_answer<R: Resource>(
    call: &Call,
    status: StatusCode,
    snapshot: &Snapshot<R>,
    known: Option<R::Context>,
) -> Answer {
    match shown_after(call, status, snapshot, known).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(%error, "a committed write is answered with its identity only");
            let bare = R::render(call, &R::Context::default(), snapshot);
            let body = serde_json::to_value(bare).unwrap_or_default();
            answer::<R>(status, snapshot, identity_only(body), None)
        }
    }
}

/// Runs `write`; once it returns Ok the events are committed, with every read model they
/// change (one statement, one commit), and the snapshot is the state they produced: nothing is
/// read back.
pub async fn execute<R: Resource>(call: &Call, write: Write<R>) -> Result<Snapshot<R>, ApiError> {
    // A malformed If-Match is answered here, once the path and the body have been judged.
    let expected = write.if_match.clone().version_of(R::RENDERS_OTHERS)?;
    run(call, write, expected)
        .await
        .map_err(|error| store_error(error, R::TYPE))
}

/// `execute` once If-Match is judged: `expected` is the version it names.
async fn run<R: Resource>(
    call: &Call,
    write: Write<R>,
    expected: Option<u64>,
) -> Result<Snapshot<R>, StoreError<DomainError>> {
    let state = &call.state;
    let metadata = metadata(call, &write.consent);
    let executed = match transaction::current() {
        // Inside a `$batch` transaction the command is decided into its batch, committed with
        // every other entry's once all have succeeded.
        Some(transaction) => {
            decide_in(
                &transaction,
                call,
                &write.stream,
                expected,
                write.command,
                &metadata,
            )
            .await
        }
        None => state
            .store
            .execute::<R>(
                &write.stream,
                expected,
                write.command,
                &state.services,
                &metadata,
            )
            .await
            .map(Into::into),
    };
    if let Err(StoreError::IdentifierInUse(_)) = &executed {
        clash_alert::count(state, &metadata.client_id, &metadata.request_id, R::TYPE).await;
    }
    executed
}

/// Decides `command` on `stream` into the open `$batch` transaction, to be committed with
/// every other entry's once all have succeeded; the snapshot is the state it produced.
pub(crate) async fn decide_in<R: Resource>(
    transaction: &Transaction,
    call: &Call,
    stream: &str,
    expected: Option<u64>,
    command: R::Command,
    metadata: &CommandMetadata,
) -> Result<Snapshot<R>, StoreError<DomainError>> {
    transaction
        .decide::<R>(
            stream,
            expected,
            command,
            &call.state.services,
            metadata,
            |state| R::key(stream, state).into_iter().collect(),
        )
        .await
        .map(|(aggregate, version)| Snapshot {
            aggregate_id: stream.to_owned(),
            version: version as i64,
            state: aggregate,
            last_updated: chrono::Utc::now(),
            source: Some(metadata.source_system.clone()),
        })
}

/// The provenance a write's events are recorded with, relying on `consent` (the consent and
/// the subject it is relied on for), which the store holds in force until they commit.
pub(crate) fn metadata(call: &Call, consent: &Option<(String, String)>) -> CommandMetadata {
    let metadata = call.provenance.metadata(
        &call.principal.client_id,
        consent.as_ref().map(|c| c.0.clone()),
    );
    match consent {
        Some((_, subject)) => metadata.relied_on_for(subject, &call.principal.organization),
        None => metadata,
    }
}

/// Creates a resource in a new stream: `subject` is how the request named it (its first
/// identifier), recorded in the access log before the command runs, so a refused creation
/// names what was attempted.
pub async fn create<R: Resource>(
    call: &Call,
    subject: Option<String>,
    command: R::Command,
) -> Result<Answer, ApiError> {
    if let Some(subject) = subject {
        call.audit
            .returned(format!("{}/{subject}", R::TYPE), None, None);
    }
    let write = Write::<R> {
        stream: uuid::Uuid::now_v7().to_string(),
        if_match: IfMatch::LATEST,
        command,
        consent: None,
        status: StatusCode::CREATED,
        known: R::created_context(),
    };
    commit(call, write).await
}

/// The committed write as the caller may see it now, noted in the access log. A context the
/// writer already holds (`known`) is not read again (one round trip less).
async fn shown_after<R: Resource>(
    call: &Call,
    status: StatusCode,
    snapshot: &Snapshot<R>,
    known: Option<R::Context>,
) -> Result<Answer, ApiError> {
    let mut grants = R::grants(call, &[snapshot]).await?;
    let grant = grants.remove(&snapshot.aggregate_id);
    note_returned(call, snapshot, grant.as_ref());
    match known {
        Some(context) => Ok(show_with(call, status, snapshot, grant.as_ref(), context)),
        None => show(call, status, snapshot, grant.as_ref()).await,
    }
}

pub fn domain_error(error: DomainError) -> ApiError {
    match error {
        DomainError::Invalid { field, message } => ApiError::unprocessable(&field, message),
        DomainError::Conflict { field, message } => ApiError::conflict(field.as_deref(), message),
        DomainError::Forbidden { field, message } => ApiError::forbidden(Some(&field), message),
        DomainError::NotFound { what } => ApiError::not_found(&what),
        DomainError::AlreadyExists => ApiError::conflict(None, "already registered"),
    }
}

/// `resource` names the resource in not-found answers.
pub fn store_error(error: StoreError<DomainError>, resource: &str) -> ApiError {
    match error {
        StoreError::Domain(e) => domain_error(e),
        StoreError::PreconditionFailed { current } => ApiError::precondition_failed(format!(
            "If-Match names a stale version; the current version is {current}"
        )),
        StoreError::Conflict => {
            ApiError::conflict(None, "the resource is being changed concurrently; retry")
                .with_header(header::RETRY_AFTER, "1")
        }
        StoreError::IdentifierInUse(identifier) => ApiError::conflict(
            Some("identifier"),
            format!("identifier {} is already in use", identifier.key()),
        ),
        // The consent was withdrawn while the command ran: from now on the subject is unknown
        // to this client, and the answer is exactly the one for an unknown subject.
        StoreError::ConsentLapsed => ApiError::not_found(resource),
        // Decided again until it stopped changing (`commit_afresh`), or where it cannot be.
        StoreError::FactChanged => ApiError::conflict(
            None,
            "what the write was decided on changed while it was being committed; retry",
        )
        .with_header(header::RETRY_AFTER, "1"),
        StoreError::FactChangedAlongside => ApiError::conflict(
            None,
            "the cycle or enrolment this write relies on is changed by the same request; send \
             this write in a request of its own once that change has committed",
        ),
        StoreError::Unavailable(error) => {
            tracing::warn!(%error, "database unavailable; nothing was written");
            ApiError::unavailable("the database is unavailable; nothing was written, retry")
                .with_header(header::RETRY_AFTER, "1")
        }
        StoreError::OutcomeUnknown => {
            tracing::error!("connection lost while committing; the outcome is unknown");
            ApiError::unavailable(
                "the connection to the database was lost while this write was committing: it \
                 may have been recorded; read the resource before sending it again",
            )
        }
        StoreError::Corrupt(reason) => {
            tracing::error!(%reason, "unreadable event stream");
            ApiError::internal()
        }
        StoreError::Database(e) => e.into(),
    }
}
