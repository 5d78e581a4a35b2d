//! Connections for single statements on the request path, handed back without a round trip.
//!
//! sqlx pings every connection that returns to its pool (`PoolConnection::return_to_pool`, no
//! setting turns it off): a round trip after every statement, so a `GET /Individual/{id}`,
//! whose answer is one statement, cost two. The ping is how sqlx makes a connection whose
//! statement was abandoned half way safe for the next user. A statement that completed needs
//! no such care: its connection is ready as it is.
//!
//! So a caller takes a connection from the lane ([`Lane::acquire`]), runs its statement and,
//! once it succeeded, gives the connection back with [`Leased::release`]: the lane keeps it
//! for the next caller, unpinged. A lease dropped without `release` (an error, a caller that
//! gave up half way, a transaction still open) goes back to the pool the ordinary way, with
//! its ping. A connection idle in the lane for longer than `KEEP` goes back to the pool too,
//! so that an idle server holds no connections outside it and a connection the lane has not
//! used lately is tested (`db.rs` pings one idle for over a second before handing it out)
//! before anyone relies on it; and a closed pool gets every connection back at once
//! (`Pool::close` waits for them). A connection also goes back to the pool once a minute
//! (where sqlx retires it at its `max_lifetime`), and whenever the pool has none left for
//! others: statements on the lane never jump the queue of those waiting for the pool.
//!
//! `&Lane` is an executor, as `&PgPool` is: a function that takes `impl PgExecutor` runs its
//! statement on the lane when given one.
//!
//! Only for statements outside a transaction, and nothing that changes the session (`SET`,
//! advisory locks): a transaction's end is not known to be sent until a later round trip,
//! which is exactly what the lane skips, and the next user of the connection is anyone.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt, TryStreamExt};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Connection, Describe, Either, Execute, Executor, PgConnection, PgPool, Postgres};
use tokio::sync::Notify;

use crate::together::Queues;

/// How long a connection waits in the lane for its next statement before it goes back to the
/// pool. Under load it is taken again within microseconds.
const KEEP: Duration = Duration::from_millis(100);

/// How long a connection may go from statement to statement in the lane without passing
/// through the pool, where sqlx checks it against the pool's `max_lifetime`.
const TURN: Duration = Duration::from_secs(60);

/// Connections kept for single statements (see the module comment). Cheap to clone.
#[derive(Clone)]
pub struct Lane(Arc<Inner>);

struct Inner {
    pool: PgPool,
    /// Released connections, the most recent last.
    idle: Mutex<Vec<Kept>>,
    /// The most connections the lane keeps: half the pool's (none of a pool of one), the rest
    /// stays with the pool.
    most: usize,
    keep: Duration,
    /// Tells the sweeper that a connection was kept.
    kept: Notify,
    sweeping: AtomicBool,
    /// Reads by identifier waiting to be asked for together (`together.rs`).
    together: Queues,
}

/// A connection waiting in the lane.
struct Kept {
    connection: PoolConnection<Postgres>,
    /// When it came from the pool.
    since: Instant,
    /// When its last statement completed.
    released: Instant,
}

impl Lane {
    pub fn new(pool: PgPool) -> Self {
        Self::keeping(pool, KEEP)
    }

    /// A lane whose connections wait `keep` for their next statement (tests lengthen it).
    pub fn keeping(pool: PgPool, keep: Duration) -> Self {
        let most = pool.options().get_max_connections() as usize / 2;
        Self(Arc::new(Inner {
            most,
            keep,
            pool,
            idle: Mutex::new(Vec::new()),
            kept: Notify::new(),
            sweeping: AtomicBool::new(false),
            together: Queues::default(),
        }))
    }

    /// A connection for one statement: the one released last if it is still fresh, else one
    /// from the pool.
    pub async fn acquire(&self) -> sqlx::Result<Leased> {
        let (fresh, stale) = {
            let mut idle = self.0.idle.lock().expect("the lane's lock");
            let stale = self.0.stale(&mut idle);
            (idle.pop(), stale)
        };
        // Back to the pool, outside the lock.
        drop(stale);
        let (connection, since) = match fresh {
            Some(kept) => (kept.connection, kept.since),
            None => (self.0.pool.acquire().await?, Instant::now()),
        };
        Ok(Leased {
            connection,
            since,
            lane: self.clone(),
        })
    }

    /// The reads by identifier waiting on this lane to be asked for together: a queue of the
    /// lane's own, as its statements read the lane's database.
    pub(crate) fn together(&self) -> &Queues {
        &self.0.together
    }

    /// How many connections the lane holds now (for tests).
    pub fn idle(&self) -> usize {
        self.0.idle.lock().expect("the lane's lock").len()
    }

    /// Keeps `connection`, unless it must go back to the pool: the pool is closed or has no
    /// connection left for anyone else, it is inside a transaction, its turn is over, or the
    /// lane is full.
    fn keep(&self, connection: PoolConnection<Postgres>, since: Instant) {
        let pool = &self.0.pool;
        let exhausted = pool.size() >= pool.options().get_max_connections() && pool.num_idle() == 0;
        if pool.is_closed()
            || exhausted
            || connection.is_in_transaction()
            || since.elapsed() >= TURN
        {
            return drop(connection);
        }
        {
            let mut idle = self.0.idle.lock().expect("the lane's lock");
            if idle.len() >= self.0.most {
                drop(idle);
                return drop(connection);
            }
            idle.push(Kept {
                connection,
                since,
                released: Instant::now(),
            });
        }
        if !self.0.sweeping.swap(true, Ordering::AcqRel) {
            tokio::spawn(sweep(Arc::downgrade(&self.0)));
        }
        self.0.kept.notify_one();
    }
}

impl Inner {
    /// Takes out of `idle` the connections that must go back to the pool: those idle for
    /// `keep`, all of them once the pool is closed. `idle` is oldest first, so they lead it.
    fn stale(&self, idle: &mut Vec<Kept>) -> Vec<Kept> {
        let closed = self.pool.is_closed();
        let fresh = idle
            .iter()
            .position(|kept| !closed && kept.released.elapsed() < self.keep)
            .unwrap_or(idle.len());
        idle.drain(..fresh).collect()
    }
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane").field("idle", &self.idle()).finish()
    }
}

/// How often the sweeper looks while the lane holds connections.
const SWEEP: Duration = Duration::from_millis(20);

/// Sends connections idle for `keep` back to the pool, all of them once it is closed; ends
/// within a second of the lane.
async fn sweep(lane: Weak<Inner>) {
    loop {
        let Some(inner) = lane.upgrade() else { return };
        let (stale, empty) = {
            let mut idle = inner.idle.lock().expect("the lane's lock");
            let stale = inner.stale(&mut idle);
            (stale, idle.is_empty())
        };
        drop(stale);
        if empty {
            // Nothing to sweep until a connection is kept (a keep since the check left a
            // permit). The timeout lets the sweeper notice that the lane is gone.
            let _ = tokio::time::timeout(Duration::from_secs(1), inner.kept.notified()).await;
        } else {
            // Often enough that a closed pool gets its connections back at once.
            drop(inner);
            tokio::time::sleep(SWEEP).await;
        }
    }
}

/// A connection taken from the lane: give it back with [`release`](Leased::release) once its
/// statement succeeded; dropped, it goes back to the pool with sqlx's ping.
pub struct Leased {
    connection: PoolConnection<Postgres>,
    /// When the connection came from the pool.
    since: Instant,
    lane: Lane,
}

impl Leased {
    /// Its statement completed: the connection is ready for the next one as it is.
    pub fn release(self) {
        self.lane.keep(self.connection, self.since);
    }
}

impl Deref for Leased {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.connection
    }
}

impl DerefMut for Leased {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.connection
    }
}

/// One statement on a connection of the lane, released once the statement completed. A
/// stream of rows is read to its end before it is handed on (the connection is released only
/// then): the lane is for statements that answer a few rows.
impl<'c> Executor<'c> for &'_ Lane {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let lane = self.clone();
        stream::once(async move {
            let mut connection = lane.acquire().await?;
            let answered: Vec<_> = (&mut *connection).fetch_many(query).try_collect().await?;
            connection.release();
            Ok::<_, sqlx::Error>(stream::iter(answered.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let lane = self.clone();
        Box::pin(async move {
            let mut connection = lane.acquire().await?;
            let row = (&mut *connection).fetch_optional(query).await?;
            connection.release();
            Ok(row)
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        let pool = self.0.pool.clone();
        Box::pin(async move { (&pool).prepare_with(sql, parameters).await })
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        let pool = self.0.pool.clone();
        Box::pin(async move { (&pool).describe(sql).await })
    }
}
