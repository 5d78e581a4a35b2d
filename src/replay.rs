//! `openspp replay`: drop the read models and rebuild them from the event log, with a progress
//! bar and the final rate. The result is the same as what the live projector built.

use std::time::Instant;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use openspp_projections::rebuild::rebuild;
use openspp_projections::REGISTRY_PROJECTION;
use sqlx::PgPool;

pub async fn run(pool: &PgPool, projection: Option<String>) -> anyhow::Result<()> {
    if let Some(name) = &projection {
        if name != REGISTRY_PROJECTION {
            bail!("unknown projection `{name}`; the projections are: {REGISTRY_PROJECTION}");
        }
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}  eta {eta}")
            .expect("a valid template"),
    );
    let started = Instant::now();
    let rebuilt = rebuild(pool, |n| bar.inc(n as u64)).await?;
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    let millis = |d: std::time::Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "projection": REGISTRY_PROJECTION,
            "events": rebuilt.events,
            "streams": rebuilt.streams,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "load_seconds": millis(rebuilt.load),
            "index_seconds": millis(rebuilt.indexes),
            "events_per_second": (rebuilt.events as f64 / seconds.max(1e-9)).round(),
        })
    );
    Ok(())
}
