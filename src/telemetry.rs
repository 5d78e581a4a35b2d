//! Logging. Logs carry request ids, routes, statuses and timings — never bodies, tokens,
//! secrets or personal data.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_env("OPENSPP_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("OPENSPP_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
