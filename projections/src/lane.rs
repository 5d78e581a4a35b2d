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
//! before anyone relies on it; and a closed pool gets every connection back within `KEEP`
//! (`Pool::close` waits for them).
//!
//! `&Lane` is an executor, as `&PgPool` is: a function that takes `impl PgExecutor` runs its
//! statement on the lane when given one.
//!
//! Only for statements outside a transaction: a transaction's end is not known to be sent
//! until a later round trip, which is exactly what the lane skips.

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

/// How long a connection waits in the lane for its next statement before it goes back to the
/// pool. Under load it is taken again within microseconds.
const KEEP: Duration = Duration::from_millis(100);

/// Connections kept for single statements (see the module comment). Cheap to clone.
#[derive(Clone)]
pub struct Lane(Arc<Inner>);

struct Inner {
    pool: PgPool,
    /// Released connections, the most recent last, with when each was released.
    idle: Mutex<Vec<(PoolConnection<Postgres>, Instant)>>,
    /// The most connections the lane keeps: half the pool's, the rest stays with the pool.
    most: usize,
    /// Tells the sweeper that a connection was kept.
    kept: Notify,
    sweeping: AtomicBool,
}

impl Lane {
    pub fn new(pool: PgPool) -> Self {
        let most = (pool.options().get_max_connections() as usize / 2).max(1);
        Self(Arc::new(Inner {
            most,
            pool,
            idle: Mutex::new(Vec::new()),
            kept: Notify::new(),
            sweeping: AtomicBool::new(false),
        }))
    }

    /// The pool the lane takes its connections from.
    pub fn pool(&self) -> &PgPool {
        &self.0.pool
    }

    /// A connection for one statement: the one released last if it is still fresh, else one
    /// from the pool.
    pub async fn acquire(&self) -> sqlx::Result<Leased> {
        let fresh = {
            let mut idle = self.0.idle.lock().expect("the lane's lock");
            match idle.pop() {
                Some((connection, at)) if at.elapsed() < KEEP => Some(connection),
                // The most recent is stale, so all are: back to the pool, outside the lock.
                Some(stale) => {
                    let mut stale = vec![stale];
                    stale.append(&mut idle);
                    drop(idle);
                    drop(stale);
                    None
                }
                None => None,
            }
        };
        let connection = match fresh {
            Some(connection) => connection,
            None => self.0.pool.acquire().await?,
        };
        Ok(Leased {
            connection: Some(connection),
            lane: self.clone(),
        })
    }

    /// How many connections the lane holds now (for tests).
    pub fn idle(&self) -> usize {
        self.0.idle.lock().expect("the lane's lock").len()
    }

    fn keep(&self, connection: PoolConnection<Postgres>) {
        if self.0.pool.is_closed() || connection.is_in_transaction() {
            return drop(connection);
        }
        {
            let mut idle = self.0.idle.lock().expect("the lane's lock");
            if idle.len() >= self.0.most {
                drop(idle);
                return drop(connection);
            }
            idle.push((connection, Instant::now()));
        }
        if !self.0.sweeping.swap(true, Ordering::AcqRel) {
            tokio::spawn(sweep(Arc::downgrade(&self.0)));
        }
        self.0.kept.notify_one();
    }
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane").field("idle", &self.idle()).finish()
    }
}

/// Sends connections idle for `KEEP` back to the pool, all of them once it is closed; ends
/// within a second of the lane.
async fn sweep(lane: Weak<Inner>) {
    loop {
        let Some(inner) = lane.upgrade() else { return };
        let (stale, empty) = {
            let mut idle = inner.idle.lock().expect("the lane's lock");
            let closed = inner.pool.is_closed();
            let fresh = idle
                .iter()
                .position(|(_, at)| !closed && at.elapsed() < KEEP)
                .unwrap_or(idle.len());
            let stale: Vec<_> = idle.drain(..fresh).collect();
            (stale, idle.is_empty())
        };
        drop(stale);
        if empty {
            // Nothing to sweep until a connection is kept (a keep since the check left a
            // permit). The timeout lets the sweeper notice that the lane is gone.
            let _ = tokio::time::timeout(KEEP * 10, inner.kept.notified()).await;
        } else {
            drop(inner);
            tokio::time::sleep(KEEP / 2).await;
        }
    }
}

/// A connection taken from the lane: give it back with [`release`](Leased::release) once its
/// statement succeeded; dropped, it goes back to the pool with sqlx's ping.
pub struct Leased {
    connection: Option<PoolConnection<Postgres>>,
    lane: Lane,
}

impl Leased {
    /// Its statement completed: the connection is ready for the next one as it is.
    pub fn release(mut self) {
        if let Some(connection) = self.connection.take() {
            self.lane.keep(connection);
        }
    }
}

impl Deref for Leased {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.connection.as_ref().expect("a leased connection")
    }
}

impl DerefMut for Leased {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.connection.as_mut().expect("a leased connection")
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
