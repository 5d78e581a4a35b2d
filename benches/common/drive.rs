//! Load from this process (reqwest), for what `wrk` cannot send: requests that need a
//! WebSocket, a signature computed per request, or a count of requests rather than a time.
//! The client shares the machine with the server, so figures measured this way say so.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests/s, p50 and p99 latency of one run.
pub type Measured = (f64, Duration, Duration);

/// When a run ends: after a number of requests, or after a time.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    Requests(usize),
    Elapsed(Duration),
}

/// Runs `total` requests from `concurrency` workers; returns requests/s and latency percentiles.
pub async fn drive<F, Fut>(concurrency: usize, total: usize, request: F) -> Measured
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = u16> + Send,
{
    run(concurrency, Until::Requests(total), request, 0).await
}

/// As `drive`, where every answer must be `expected` (0: any 2xx).
pub async fn drive_any<F, Fut>(
    concurrency: usize,
    total: usize,
    request: F,
    expected: u16,
) -> Measured
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = u16> + Send,
{
    run(concurrency, Until::Requests(total), request, expected).await
}

/// Runs `request(n)` for n = 0, 1, … from `concurrency` workers until `until`; every answer
/// must be `expected` (0: any 2xx). Returns requests/s and latency percentiles.
pub async fn run<F, Fut>(concurrency: usize, until: Until, request: F, expected: u16) -> Measured
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = u16> + Send,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let request = request.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let n = match until {
                        Until::Requests(total) => {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            if n >= total {
                                return latencies;
                            }
                            n
                        }
                        Until::Elapsed(length) => {
                            if started.elapsed() >= length {
                                return latencies;
                            }
                            next.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    let t = Instant::now();
                    let status = request(n).await;
                    if expected == 0 {
                        assert!(status < 300, "request {n} answered {status}");
                    } else {
                        assert_eq!(status, expected, "request {n}");
                    }
                    latencies.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    (
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    )
}

/// The `q` quantile of `sorted` (zero when empty).
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// Milliseconds, as the tables print them.
pub fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1e3)
}
