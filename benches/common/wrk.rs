//! Load from `wrk`, a C client, as pgbench is one: an in-process Rust client would take a good
//! share of this machine's two cores from the server it measures, and the ratio to pgbench
//! would then say as much about the client as about the server.

use std::process::Command;
use std::time::Duration;

/// What one `wrk` run measured.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub requests: u64,
    /// Answers outside 2xx/3xx, and socket errors.
    pub failed: u64,
}

impl Load {
    pub fn summary(&self) -> String {
        format!(
            "{:>7.0} req/s  p50 {}{:>7.2} ms  p99 {:>7.2} ms  ({} requests{})",
            self.rps,
            if self.requests == 0 { "≥" } else { "" },
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.requests,
            if self.failed > 0 {
                format!(", {} FAILED", self.failed)
            } else {
                String::new()
            }
        )
    }
}

/// A Lua string literal holding `text` as it is.
pub fn lua_string(text: &str) -> String {
    let mut level = 0;
    while text.contains(&format!("]{}]", "=".repeat(level))) {
        level += 1;
    }
    let eq = "=".repeat(level);
    format!("[{eq}[{text}]{eq}]")
}

/// Runs `wrk` against `base` for `seconds` with `connections` connections on two threads;
/// `script` defines `request()` and may use `tid` (0 or 1, the thread) and `THREADS` (2).
/// Every request carries `token` and a JSON content type.
pub fn run(base: &str, token: &str, seconds: u64, connections: usize, script: &str) -> Load {
    let text = drive(base, token, seconds, connections, script);
    parse(&text).unwrap_or_else(|| panic!("unreadable wrk output: {text}"))
}

/// Warms the server's and the database's caches with `script`; the report is not read, since
/// a cold first search may answer nothing within the warm-up's seconds.
pub fn warm(base: &str, token: &str, seconds: u64, connections: usize, script: &str) {
    drive(base, token, seconds, connections, script);
}

/// Runs `wrk` with `script` and returns its report.
fn drive(base: &str, token: &str, seconds: u64, connections: usize, script: &str) -> String {
    let lua = format!(
        "wrk.headers[\"Authorization\"] = {}\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n\
         THREADS = 2\n\
         local started = 0\n\
         function setup(thread) thread:set(\"tid\", started); started = started + 1 end\n\
         {script}\n",
        lua_string(&format!("Bearer {token}"))
    );
    let file = std::env::temp_dir().join(format!(
        "openspp-wrk-{}-{}.lua",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&file, lua).expect("a temporary file");
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--timeout",
            "10s",
            "--latency",
            "-s",
        ])
        .arg(&file)
        .arg(base)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// Reads `wrk --latency`'s report.
fn parse(text: &str) -> Option<Load> {
    let mut load = Load {
        rps: 0.0,
        p50: Duration::ZERO,
        p99: Duration::ZERO,
        requests: 0,
        failed: 0,
    };
    let mut phase = None;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Running", length, "test", ..] => phase = duration(length),
            ["Requests/sec:", rps] => load.rps = rps.parse().ok()?,
            ["50%", latency] => load.p50 = duration(latency)?,
            ["99%", latency] => load.p99 = duration(latency)?,
            [requests, "requests", "in", ..] => load.requests = requests.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => load.failed += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                load.failed += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    if load.requests == 0 {
        // Nothing answered within the phase: every latency was at least the phase's length,
        // which is the honest lower bound to report (wrk prints zeros).
        let phase = phase?;
        load.p50 = phase;
        load.p99 = phase;
        return Some(load);
    }
    (load.rps > 0.0).then_some(load)
}

/// `wrk`'s `850.00us`, `12.34ms`, `1.02s`, `2.00m`.
fn duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// A script posting `body` to `path`, where every `{N}` in the body becomes a number no other
/// request of the run uses (`THREADS * n + tid`).
pub fn post_script(path: &str, body: &serde_json::Value) -> String {
    let text = body.to_string();
    let parts: Vec<String> = text.split("{N}").map(lua_string).collect();
    assert!(parts.len() > 1, "the body has {{N}}");
    format!(
        "local n = 0\n\
         request = function()\n\
           local i = n * THREADS + tid\n\
           n = n + 1\n\
           return wrk.format(\"POST\", {}, nil, {})\n\
         end",
        lua_string(path),
        parts.join(" .. i .. ")
    )
}

/// A script reading `{prefix}{n}` for a random `n` below `below`.
pub fn random_get_script(prefix: &str, below: usize) -> String {
    format!(
        "function init(args) math.randomseed(7919 * tid + 1) end\n\
         request = function()\n\
           return wrk.format(\"GET\", {} .. math.random(0, {}))\n\
         end",
        lua_string(prefix),
        below - 1
    )
}

/// A script reading `path`.
pub fn get_script(path: &str) -> String {
    format!(
        "request = function() return wrk.format(\"GET\", {}) end",
        lua_string(path)
    )
}
