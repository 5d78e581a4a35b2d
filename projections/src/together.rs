//! Reads by identifier that arrive together, asked for in one statement.
//!
//! Under load, little of a `GET /Individual/{id}`'s cost is PostgreSQL's two index lookups:
//! most is the round trip around them (the statement's message and its answer, each side's
//! wake-up, the executor started and stopped), paid once per statement on both sides of
//! loopback. So reads of one kind (`IdentifierRead`: a read model, a type, what is read beside the row) that
//! arrive while one of their kind is in flight wait for it to end, and the next statement asks
//! for all of them at once, up to `READ_TOGETHER` (`view::TOGETHER_KEYS`: a statement each
//! connection keeps, planned once as two index lookups a key). A read that finds none of its
//! kind in flight is asked for at once, alone, in the statement it always was: no read waits
//! for company. Measured at 1,000,000 individuals, 16 clients: ~4 reads a statement, 15,700–19,600
//! reads/s against 12,700–14,700 alone, p99 unchanged.
//!
//! Two statements of a kind may be in flight: the second once `CROWD` reads wait, so that a
//! burst does not queue behind one round trip. (One place only left a core a quarter idle; two
//! always open halved what a statement carries and lost the gain.)
//!
//! Every read is answered, exactly once:
//! - by the statement that asked for it;
//! - with that statement's failure, of the same class (`shared`: a database unavailable stays
//!   unavailable, a 503), never by asking again alone: a statement the database dropped or
//!   refused would be asked again into the same condition, and a read that waited for a lock
//!   would wait for it again (a request hung that way until its client gave up);
//! - by a statement of its own, if the read that led its statement was dropped before it
//!   answered (its client went away).
//!
//! Read-your-writes holds: a read is asked for by a statement sent after it joined the queue
//! (a leader takes the reads waiting once it holds a connection, then sends), so the statement
//! sees every commit acknowledged before the read began.
//!
//! Only on the lane (`lane.rs`), whose connections any caller may use: a read in a transaction
//! sees what the transaction sees, which another read's statement would not.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::Row;
use tokio::sync::{oneshot, Notify, Semaphore};

use crate::error::is_unavailable;
use crate::lane::Lane;
use crate::view::{self, ByIdentifier, IdentifierRead, ViewRow, READ_TOGETHER};

/// Reads waiting that open the second place (see the module comment). 2, 4 and 8 measured the
/// same within the noise.
const CROWD: usize = 4;

/// A read by identifier, asked for together with the reads of its kind that arrive with it
/// (see the module comment).
pub async fn by_identifier_with<A: DeserializeOwned>(
    lane: &Lane,
    read: IdentifierRead,
    system: &str,
    value: &str,
) -> sqlx::Result<ByIdentifier<A>> {
    lane.together()
        .queue(read)
        .read(lane, system, value)
        .await?
        .as_ref()
        .map(view::found_by_identifier)
        .transpose()
}

/// `by_identifier_with`, without anything beside the row: as `view::by_identifier`.
pub async fn by_identifier<A: DeserializeOwned>(
    lane: &Lane,
    table: &'static str,
    aggregate_type: &'static str,
    system: &str,
    value: &str,
) -> sqlx::Result<Option<(String, Option<ViewRow<A>>)>> {
    let read = IdentifierRead::new(table, aggregate_type);
    let found = by_identifier_with(lane, read, system, value).await?;
    Ok(view::without_beside(found))
}

/// The queues of a lane, one for each kind of read (`Lane::together`).
#[derive(Default)]
pub struct Queues(Mutex<HashMap<IdentifierRead, Arc<Queue>>>);

impl Queues {
    fn queue(&self, read: IdentifierRead) -> Arc<Queue> {
        let mut queues = self.0.lock().expect("the queues' lock");
        queues
            .entry(read)
            .or_insert_with(|| Arc::new(Queue::new(read)))
            .clone()
    }
}

/// The reads of one kind waiting for a statement, and the two places from which statements
/// are led.
struct Queue {
    kind: IdentifierRead,
    /// The statement asking for many (`IdentifierRead::statement`).
    together: String,
    waiting: Mutex<VecDeque<Waiter>>,
    first: Semaphore,
    second: Semaphore,
    /// Told when `CROWD` reads wait: the second place may open.
    crowded: Notify,
}

/// A read waiting for its answer: its row, if the identifier is claimed.
struct Waiter {
    system: String,
    value: String,
    answer: oneshot::Sender<sqlx::Result<Option<PgRow>>>,
}

impl Queue {
    fn new(kind: IdentifierRead) -> Self {
        Self {
            kind,
            together: kind.statement(true),
            waiting: Mutex::new(VecDeque::new()),
            first: Semaphore::new(1),
            second: Semaphore::new(1),
            crowded: Notify::new(),
        }
    }

    /// Waits in the queue until a statement answers the read, leading statements (its own or
    /// others') whenever a place is free.
    async fn read(&self, lane: &Lane, system: &str, value: &str) -> sqlx::Result<Option<PgRow>> {
        let (answer, mut answered) = oneshot::channel();
        let waiting = {
            let mut waiting = self.waiting.lock().expect("the queue's lock");
            waiting.push_back(Waiter {
                system: system.to_owned(),
                value: value.to_owned(),
                answer,
            });
            waiting.len()
        };
        if waiting >= CROWD {
            // One waiting read tries the second place (all of them would be woken for nothing
            // once a long queue forms).
            self.crowded.notify_one();
        }
        loop {
            tokio::select! {
                biased;
                answer = &mut answered => {
                    return match answer {
                        Ok(answer) => answer,
                        // The read that led its statement was dropped before it answered.
                        Err(_) => self.kind.row(lane, system, value).await,
                    };
                }
                place = self.first.acquire() => {
                    let _place = place.expect("the place is never closed");
                    self.lead(lane).await;
                }
                () = self.crowded.notified() => {
                    if let Ok(_place) = self.second.try_acquire() {
                        self.lead(lane).await;
                    }
                }
            }
        }
    }

    /// Asks for the reads waiting (up to `READ_TOGETHER`) in one statement, and answers each.
    async fn lead(&self, lane: &Lane) {
        // The connection first: reads arriving meanwhile join this statement.
        let connection = lane.acquire().await;
        let mut reads: Vec<Waiter> = {
            let mut waiting = self.waiting.lock().expect("the queue's lock");
            let most = waiting.len().min(READ_TOGETHER);
            waiting.drain(..most).collect()
        };
        // Those whose readers gave up.
        reads.retain(|read| !read.answer.is_closed());
        let mut connection = match connection {
            Ok(connection) if reads.is_empty() => return connection.release(),
            Ok(connection) => connection,
            Err(error) => return fail(reads, &error),
        };
        let asked = match reads.as_slice() {
            [read] => self
                .kind
                .row(&mut *connection, &read.system, &read.value)
                .await
                .map(|row| vec![row]),
            _ => {
                let (systems, values): (Vec<&str>, Vec<&str>) = reads
                    .iter()
                    .map(|read| (read.system.as_str(), read.value.as_str()))
                    .unzip();
                sqlx::query(&self.together)
                    .bind(self.kind.aggregate_type)
                    .bind(systems)
                    .bind(values)
                    .fetch_all(&mut *connection)
                    .await
                    .and_then(|rows| by_ordinal(rows, reads.len()))
            }
        };
        match asked {
            Ok(rows) => {
                connection.release();
                for (read, row) in reads.into_iter().zip(rows) {
                    // A reader that gave up meanwhile drops its answer.
                    let _ = read.answer.send(Ok(row));
                }
            }
            Err(error) => fail(reads, &error),
        }
    }
}

/// The rows of a statement asking for `asked` reads, each in its read's place.
fn by_ordinal(rows: Vec<PgRow>, asked: usize) -> sqlx::Result<Vec<Option<PgRow>>> {
    let mut answers: Vec<Option<PgRow>> = (0..asked).map(|_| None).collect();
    for row in rows {
        let ordinal: i32 = row.try_get("ordinal")?;
        let place = usize::try_from(ordinal - 1)
            .ok()
            .and_then(|place| answers.get_mut(place))
            .ok_or_else(|| sqlx::Error::Decode(format!("no read numbered {ordinal}").into()))?;
        *place = Some(row);
    }
    Ok(answers)
}

/// Answers every read with the failure of their statement.
fn fail(reads: Vec<Waiter>, error: &sqlx::Error) {
    for read in reads {
        let _ = read.answer.send(Err(shared(error)));
    }
}

/// `error`, for each of the reads its statement asked for (sqlx's errors cannot be cloned): of
/// the same class, so that each is answered as the lone read would have been; a database that
/// could not be used just now is still that (`is_unavailable`), anything else a fault.
fn shared(error: &sqlx::Error) -> sqlx::Error {
    let told = format!("a statement reading by identifier failed: {error}");
    if is_unavailable(error) {
        sqlx::Error::Io(std::io::Error::other(told))
    } else {
        sqlx::Error::AnyDriverError(told.into())
    }
}
