use clap::{Parser, Subcommand};
use openspp::{auth, config, db, server};

/// OpenSPP API V2, event-sourced.
#[derive(Parser)]
#[command(name = "openspp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (applies migrations first).
    Serve(config::ServeArgs),
    /// Apply the database migrations and exit.
    Migrate(config::DatabaseArgs),
    /// Manage API clients (the only way to create them).
    Client {
        #[command(flatten)]
        database: config::DatabaseArgs,
        #[command(subcommand)]
        command: auth::cli::ClientCommand,
    },
    /// Manage token-signing keys.
    Key {
        #[command(flatten)]
        database: config::DatabaseArgs,
        #[command(subcommand)]
        command: auth::cli::KeyCommand,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    openspp::telemetry::init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(args) => server::run(args).await,
        Command::Migrate(args) => db::connect_and_migrate(&args).await.map(|_| ()),
        Command::Client { database, command } => match db::connect_and_migrate(&database).await {
            Ok(pool) => auth::cli::run(&pool, command).await,
            Err(error) => Err(error),
        },
        Command::Key { database, command } => match db::connect_and_migrate(&database).await {
            Ok(pool) => auth::cli::run_key(&pool, command).await,
            Err(error) => Err(error),
        },
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("openspp: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
