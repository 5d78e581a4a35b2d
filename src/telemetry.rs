//! Logging. Logs carry request ids, routes, statuses and timings — never bodies, tokens,
//! secrets or personal data.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logging settings, shared by every command.
#[derive(clap::Args, Clone, Debug)]
pub struct LogArgs {
    /// Log filter (`info`, `warn`, `openspp=debug,sqlx=warn`, …).
    #[arg(
        long = "log",
        env = "OPENSPP_LOG",
        default_value = "info",
        global = true
    )]
    pub filter: String,
    /// `text` for people, `json` for log collectors.
    #[arg(long, env = "OPENSPP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

pub fn init(args: &LogArgs) {
    let filter = EnvFilter::try_new(&args.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
