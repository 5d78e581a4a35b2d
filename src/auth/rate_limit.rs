//! Fixed-window rate limits kept in PostgreSQL, so every server process counts against the same
//! budget (an in-memory limiter per process would multiply it by the number of processes).

use sqlx::PgPool;

use crate::error::ApiError;

/// Counts one request against `key`'s current minute and returns the 429 to answer if the
/// count exceeds `limit` (0 = unlimited).
pub async fn per_minute(pool: &PgPool, key: &str, limit: u32) -> Result<(), ApiError> {
    if limit == 0 {
        return Ok(());
    }
    let (used, seconds_left): (i32, i32) = sqlx::query_as(
        "INSERT INTO rate_counters (key, window_start, used) \
         VALUES ($1, date_trunc('minute', now()), 1) \
         ON CONFLICT (key, window_start) DO UPDATE SET used = rate_counters.used + 1 \
         RETURNING used, \
             ceil(extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now()))::int",
    )
    .bind(key)
    .fetch_one(pool)
    .await?;
    check(used, limit as i32, seconds_left)
}

/// The 429 for a window whose budget is spent.
pub fn check(used: i32, limit: i32, seconds_left: i32) -> Result<(), ApiError> {
    if limit > 0 && used > limit {
        Err(too_many(seconds_left))
    } else {
        Ok(())
    }
}

pub fn too_many(seconds_left: i32) -> ApiError {
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

    #[test]
    fn the_limit_itself_is_allowed_and_one_more_is_not() {
        assert!(check(60, 60, 10).is_ok());
        let error = check(61, 60, 10).unwrap_err();
        assert_eq!(error.status.as_u16(), 429);
        assert!(error
            .headers
            .iter()
            .any(|(name, value)| name == "retry-after" && value == "10"));
        assert!(check(1_000, 0, 10).is_ok(), "0 means unlimited");
    }
}
