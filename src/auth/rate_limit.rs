//! Fixed-window rate limits (per minute and per day), shared by every server process, without a
//! database write per request.
//!
//! The shared count is a row per key and window in `rate_counters` (UNLOGGED). A process does not
//! bump it per request: it *leases* a slice of the window's budget with one statement, admits
//! requests from that slice in memory, and leases again when the slice is spent. Slices are
//! taken from the shared row under its row lock, so all processes together never admit more
//! than the limit. The cost falls on the other side: budget leased by one process and unused
//! when the window ends is lost to the others, so a client spread over P processes may be
//! refused up to (P − 1) × (slice − 1) requests early in a window. A slice is 1 % of the limit
//! (so at most 1 % per other process); limits up to 100 lease one request at a time, which is
//! exact and costs one write per request — a few a minute at such limits. A window whose budget
//! is spent is remembered until it ends, so refused requests cost nothing either, and a client
//! without limits (0) never reaches this module.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::error::ApiError;

/// Requests allowed per minute and per day; 0 = unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub per_minute: u32,
    pub per_day: u32,
}

impl Limits {
    pub fn new(per_minute: i32, per_day: i32) -> Self {
        Self {
            per_minute: per_minute.max(0) as u32,
            per_day: per_day.max(0) as u32,
        }
    }

    fn each(self) -> [u32; 2] {
        [self.per_minute, self.per_day]
    }

    pub fn unlimited(self) -> bool {
        self.per_minute == 0 && self.per_day == 0
    }
}

/// How much of a window's budget one lease takes.
fn slice(limit: u32) -> u32 {
    (limit / 100).max(1)
}

/// This process's share of one window's budget.
#[derive(Clone, Copy, Debug, Default)]
struct Window {
    /// The window's start, as the database names it (Unix seconds).
    start: i64,
    ends: Option<Instant>,
    remaining: u32,
    /// The shared budget is spent: no lease will grant more in this window.
    spent: bool,
    /// How much of the shared budget every process together had leased at this process's
    /// last lease (for `X-RateLimit-Remaining`).
    shared_used: u32,
}

impl Window {
    fn current(&self, now: Instant) -> bool {
        self.ends.is_some_and(|ends| now < ends)
    }

    fn seconds_left(&self, now: Instant) -> u32 {
        let left = self.ends.map_or(Duration::ZERO, |ends| ends - now);
        left.as_secs_f64().ceil().max(1.0) as u32
    }
}

/// Minute and day windows of one key.
#[derive(Default)]
struct Budget {
    windows: Mutex<[Window; 2]>,
    /// One lease at a time per key, so concurrent requests do not each lease a slice.
    leasing: tokio::sync::Mutex<()>,
}

enum Decision {
    Admit,
    Refuse {
        seconds_left: u32,
    },
    /// How much to lease for each window (0 = none needed).
    Lease([u32; 2]),
}

/// Admits `n` requests at once from the windows if each limited one has that much budget
/// left (all `n` or none: a refusal takes nothing).
fn decide(windows: &mut [Window; 2], limits: Limits, now: Instant, n: u32) -> Decision {
    let mut lease = [0; 2];
    for (i, limit) in limits.each().into_iter().enumerate() {
        let window = &windows[i];
        let held = if window.current(now) {
            window.remaining
        } else {
            0
        };
        if limit == 0 || held >= n {
            continue;
        }
        if window.current(now) && window.spent {
            return Decision::Refuse {
                seconds_left: window.seconds_left(now),
            };
        }
        lease[i] = slice(limit).max(n - held);
    }
    if lease != [0, 0] {
        return Decision::Lease(lease);
    }
    for (i, limit) in limits.each().into_iter().enumerate() {
        if limit > 0 {
            windows[i].remaining -= n;
        }
    }
    Decision::Admit
}

/// A client's standing against its rate limit, for the `X-RateLimit-*` response headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window ends.
    pub reset_in: u32,
}

/// Where the request's authentication leaves the caller's quota, for the response layer
/// (`http::conventions`) to put in headers: the layer puts an empty slot in the request's
/// extensions, and whoever counts the request against a limit fills it.
#[derive(Clone, Default)]
pub struct QuotaSlot(Arc<Mutex<Option<Quota>>>);

impl QuotaSlot {
    pub fn set(&self, quota: Option<Quota>) {
        *self.0.lock().expect("quota slot") = quota;
    }

    pub fn get(&self) -> Option<Quota> {
        *self.0.lock().expect("quota slot")
    }
}

/// Every key's budget in this process.
#[derive(Default)]
pub struct Limiter {
    budgets: Mutex<HashMap<String, Arc<Budget>>>,
}

/// Budgets kept before ended ones are forgotten early (addresses on the token endpoint).
const MAX_KEYS: usize = 100_000;

impl Limiter {
    /// Counts one request of `key` against `limits`; the 429 to answer if a window is spent.
    pub async fn admit(&self, pool: &PgPool, key: &str, limits: Limits) -> Result<(), ApiError> {
        self.admit_many(pool, key, limits, 1).await
    }

    /// Counts `n` requests of `key` against `limits` at once (the entries of a `$batch`
    /// transaction): all of them, or, with the 429 to answer, none.
    pub async fn admit_many(
        &self,
        pool: &PgPool,
        key: &str,
        limits: Limits,
        n: u32,
    ) -> Result<(), ApiError> {
        if limits.unlimited() || n == 0 {
            return Ok(());
        }
        let budget = self.budget(key);
        if let Some(decided) = decided(&budget, limits, n) {
            return decided;
        }
        let _leasing = budget.leasing.lock().await;
        // Twice at most: a lease that straddles a window's end may need a second one.
        for _ in 0..2 {
            let wanted = match decide(
                &mut budget.windows.lock().expect("limiter lock"),
                limits,
                Instant::now(),
                n,
            ) {
                Decision::Admit => return Ok(()),
                Decision::Refuse { seconds_left } => return Err(too_many(seconds_left)),
                Decision::Lease(wanted) => wanted,
            };
            let granted = lease(pool, key, limits, wanted).await?;
            let now = Instant::now();
            let mut windows = budget.windows.lock().expect("limiter lock");
            for (i, grant) in granted.into_iter().enumerate() {
                let Some(grant) = grant else { continue };
                let window = &mut windows[i];
                if window.start != grant.start || !window.current(now) {
                    *window = Window {
                        start: grant.start,
                        ends: Some(now + grant.left),
                        ..Window::default()
                    };
                }
                window.remaining += grant.amount;
                window.spent = grant.amount < wanted[i];
                window.shared_used = grant.used;
            }
        }
        Err(too_many(1))
    }

    /// Where `key` stands against `limits` now, in the tightest limited window, as
    /// `X-RateLimit-*` tell it: what every process together has not yet leased, plus what this
    /// process holds unused. `None` for a key without limits or not yet counted.
    pub fn quota(&self, key: &str, limits: Limits) -> Option<Quota> {
        if limits.unlimited() {
            return None;
        }
        let budget = self.budgets.lock().expect("limiter lock").get(key)?.clone();
        let windows = *budget.windows.lock().expect("limiter lock");
        let now = Instant::now();
        limits
            .each()
            .into_iter()
            .zip(windows)
            .filter(|(limit, window)| *limit > 0 && window.current(now))
            .map(|(limit, window)| Quota {
                limit,
                remaining: if window.spent && window.remaining == 0 {
                    0
                } else {
                    (limit - window.shared_used.min(limit) + window.remaining).min(limit)
                },
                reset_in: window.seconds_left(now),
            })
            .min_by_key(|quota| quota.remaining)
    }

    fn budget(&self, key: &str) -> Arc<Budget> {
        let mut budgets = self.budgets.lock().expect("limiter lock");
        if let Some(budget) = budgets.get(key) {
            return budget.clone();
        }
        if budgets.len() >= MAX_KEYS {
            forget_ended(&mut budgets);
        }
        budgets.entry(key.to_owned()).or_default().clone()
    }

    /// Forgets budgets whose windows have all ended; run now and then.
    pub fn prune(&self) {
        forget_ended(&mut self.budgets.lock().expect("limiter lock"));
    }
}

fn forget_ended(budgets: &mut HashMap<String, Arc<Budget>>) {
    let now = Instant::now();
    budgets.retain(|_, budget| {
        budget
            .windows
            .try_lock()
            .map_or(true, |windows| windows.iter().any(|w| w.current(now)))
    });
}

/// The fast path: a decision without the database, if one can be made.
fn decided(budget: &Budget, limits: Limits, n: u32) -> Option<Result<(), ApiError>> {
    match decide(
        &mut budget.windows.lock().expect("limiter lock"),
        limits,
        Instant::now(),
        n,
    ) {
        Decision::Admit => Some(Ok(())),
        Decision::Refuse { seconds_left } => Some(Err(too_many(seconds_left))),
        Decision::Lease(_) => None,
    }
}

/// What one lease granted for one window.
struct Grant {
    start: i64,
    left: Duration,
    amount: u32,
    /// The shared count after this lease, capped at the limit.
    used: u32,
}

/// Takes `wanted[i]` from the shared count of each window (0 = leave it), in one statement.
/// The row always grows by what was asked; the grant is what was still under the limit.
async fn lease(
    pool: &PgPool,
    key: &str,
    limits: Limits,
    wanted: [u32; 2],
) -> Result<[Option<Grant>; 2], ApiError> {
    type Row = (
        Option<i64>,
        Option<i64>,
        Option<f64>,
        Option<i64>,
        Option<i64>,
        Option<f64>,
    );
    let row: Row = sqlx::query_as(
        "WITH m AS ( \
             INSERT INTO rate_counters AS c (key, window_start, used) \
             SELECT 'm:' || $1, date_trunc('minute', now()), $2 WHERE $2 > 0 \
             ON CONFLICT (key, window_start) DO UPDATE SET used = c.used + EXCLUDED.used \
             RETURNING used, window_start \
         ), d AS ( \
             INSERT INTO rate_counters AS c (key, window_start, used) \
             SELECT 'd:' || $1, date_trunc('day', now()), $3 WHERE $3 > 0 \
             ON CONFLICT (key, window_start) DO UPDATE SET used = c.used + EXCLUDED.used \
             RETURNING used, window_start \
         ) \
         SELECT (SELECT used::bigint FROM m), \
                (SELECT extract(epoch FROM window_start)::bigint FROM m), \
                (SELECT extract(epoch FROM window_start + interval '1 minute' - now())::float8 FROM m), \
                (SELECT used::bigint FROM d), \
                (SELECT extract(epoch FROM window_start)::bigint FROM d), \
                (SELECT extract(epoch FROM window_start + interval '1 day' - now())::float8 FROM d)",
    )
    .bind(key)
    .bind(wanted[0] as i32)
    .bind(wanted[1] as i32)
    .fetch_one(pool)
    .await?;
    let grant =
        |used: Option<i64>, start: Option<i64>, left: Option<f64>, limit: u32, asked: u32| {
            let (used, start, left) = (used?, start?, left?);
            let before = used - i64::from(asked);
            let amount = (i64::from(limit) - before).clamp(0, i64::from(asked)) as u32;
            Some(Grant {
                start,
                left: Duration::from_secs_f64(left.max(0.0)),
                amount,
                used: used.clamp(0, i64::from(limit)) as u32,
            })
        };
    Ok([
        grant(row.0, row.1, row.2, limits.per_minute, wanted[0]),
        grant(row.3, row.4, row.5, limits.per_day, wanted[1]),
    ])
}

pub fn too_many(seconds_left: u32) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "throttled",
        "rate limit exceeded; retry after the number of seconds in Retry-After",
    )
    .with_header(
        axum::http::header::RETRY_AFTER,
        &seconds_left.max(1).to_string(),
    )
}

/// Forgets windows that ended long ago; run now and then.
pub async fn prune(pool: &PgPool) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM rate_counters WHERE window_start < now() - interval '2 days'")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(remaining: u32, spent: bool, now: Instant) -> Window {
        Window {
            start: 1,
            ends: Some(now + Duration::from_secs(10)),
            remaining,
            spent,
            shared_used: 0,
        }
    }

    #[test]
    fn quota_reports_the_tightest_window_and_zero_once_spent() {
        let limiter = Limiter::default();
        let now = Instant::now();
        let limits = Limits::new(60, 10_000);
        assert_eq!(limiter.quota("k", limits), None, "not counted yet");
        let budget = limiter.budget("k");
        *budget.windows.lock().unwrap() = [
            Window {
                shared_used: 10,
                ..window(2, false, now)
            },
            Window {
                shared_used: 100,
                ..window(50, false, now)
            },
        ];
        let quota = limiter.quota("k", limits).unwrap();
        assert_eq!((quota.limit, quota.remaining), (60, 52));
        assert!((1..=10).contains(&quota.reset_in));
        budget.windows.lock().unwrap()[0] = Window {
            shared_used: 60,
            ..window(0, true, now)
        };
        assert_eq!(limiter.quota("k", limits).unwrap().remaining, 0);
        assert_eq!(limiter.quota("k", Limits::new(0, 0)), None);
    }

    #[test]
    fn budget_in_hand_admits_without_a_lease() {
        let now = Instant::now();
        let mut windows = [window(2, false, now), window(5, false, now)];
        let limits = Limits::new(60, 10_000);
        assert!(matches!(
            decide(&mut windows, limits, now, 1),
            Decision::Admit
        ));
        assert_eq!((windows[0].remaining, windows[1].remaining), (1, 4));
        assert!(matches!(
            decide(&mut windows, limits, now, 1),
            Decision::Admit
        ));
        match decide(&mut windows, limits, now, 1) {
            Decision::Lease(wanted) => assert_eq!(wanted, [1, 0]),
            _ => panic!("the minute's slice is used up"),
        }
        assert_eq!(
            windows[1].remaining, 3,
            "nothing is taken before both have budget"
        );
    }

    #[test]
    fn a_spent_window_refuses_until_it_ends() {
        let now = Instant::now();
        let mut day = window(5, false, now);
        day.ends = Some(now + Duration::from_secs(1000));
        let mut windows = [window(0, true, now), day];
        match decide(&mut windows, Limits::new(60, 10_000), now, 1) {
            Decision::Refuse { seconds_left } => assert_eq!(seconds_left, 10),
            _ => panic!("spent"),
        }
        assert_eq!(windows[1].remaining, 5);
        let later = now + Duration::from_secs(11);
        assert!(matches!(
            decide(&mut windows, Limits::new(60, 10_000), later, 1),
            Decision::Lease([1, 0])
        ));
    }

    #[test]
    fn only_limited_windows_count() {
        let now = Instant::now();
        let mut windows = [Window::default(), window(1, false, now)];
        assert!(matches!(
            decide(&mut windows, Limits::new(0, 500), now, 1),
            Decision::Admit
        ));
        assert!(Limits::new(0, 0).unlimited());
        assert_eq!(slice(60), 1);
        assert_eq!(slice(10_000), 100);
    }

    #[test]
    fn many_are_admitted_all_or_none() {
        let now = Instant::now();
        let limits = Limits::new(0, 10_000);
        let mut windows = [Window::default(), window(5, false, now)];
        assert!(matches!(
            decide(&mut windows, limits, now, 5),
            Decision::Admit
        ));
        assert_eq!(windows[1].remaining, 0);
        match decide(&mut windows, limits, now, 300) {
            Decision::Lease(wanted) => assert_eq!(wanted, [0, 300], "more than a slice"),
            _ => panic!("the day's budget in hand is spent"),
        }
        windows[1] = window(7, true, now);
        assert!(matches!(
            decide(&mut windows, limits, now, 8),
            Decision::Refuse { .. }
        ));
        assert_eq!(windows[1].remaining, 7, "a refusal takes nothing");
        assert!(matches!(
            decide(&mut windows, limits, now, 7),
            Decision::Admit
        ));
    }

    #[test]
    fn a_refusal_carries_retry_after() {
        let error = too_many(10);
        assert_eq!(error.status.as_u16(), 429);
        assert!(error
            .headers
            .iter()
            .any(|(name, value)| name == "retry-after" && value == "10"));
    }
}
