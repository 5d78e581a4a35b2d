//! `openspp verify`: walk every stream's hash chain and report each first broken link; exits
//! non-zero when any is found.

use anyhow::bail;
use futures_util::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;

use openspp_projections::events::{scan_streams, StreamRange};

use crate::store::verify::Chain;

pub async fn run(pool: &PgPool) -> anyhow::Result<()> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}")
            .expect("a valid template"),
    );
    let mut connection = pool.acquire().await?;
    let mut rows = scan_streams(&mut connection, &StreamRange::default());
    let mut current: Option<(String, String)> = None;
    let mut chain = Chain::default();
    let mut stream_broken = false;
    let (mut streams, mut broken) = (0u64, Vec::new());
    while let Some(event) = rows.try_next().await? {
        let stream = (event.aggregate_type.clone(), event.aggregate_id.clone());
        if current.as_ref() != Some(&stream) {
            current = Some(stream);
            chain = Chain::default();
            stream_broken = false;
            streams += 1;
        }
        if !stream_broken {
            if let Err(reason) = chain.push(&event) {
                stream_broken = true;
                broken.push(serde_json::json!({
                    "resource": event.aggregate_type,
                    "first_broken_version": event.sequence,
                    "reason": reason,
                    "stream": event.aggregate_id,
                }));
            }
        }
        bar.inc(1);
    }
    bar.finish();
    println!(
        "{}",
        serde_json::json!({"valid": broken.is_empty(), "streams": streams, "events": total, "broken": broken})
    );
    if !broken.is_empty() {
        bail!("{} stream(s) have a broken hash chain", broken.len());
    }
    Ok(())
}
