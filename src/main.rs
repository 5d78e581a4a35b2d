use clap::{Parser, Subcommand};

/// A request allocates and frees many small values (JSON, SQL arguments, rendered bodies) on
/// whichever worker thread runs it; mimalloc serves them from per-thread pages, where glibc's
/// malloc spent about a fifth of the server's CPU under a write load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use openspp::{auth, config, db, server};

/// OpenSPP API V2, event-sourced.
#[derive(Parser)]
#[command(name = "openspp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: openspp::telemetry::LogArgs,
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
        #[command(flatten)]
        key_encryption: auth::key_sealing::KeyEncryptionArgs,
        #[command(subcommand)]
        command: auth::cli::KeyCommand,
    },
    /// Manage vocabularies and identifier systems (every running server sees a change at once).
    Vocabulary {
        #[command(flatten)]
        database: config::DatabaseArgs,
        #[command(subcommand)]
        command: openspp::operator::vocabulary::VocabularyCommandArgs,
    },
    /// Manage extension fields: the JSON Schemas `extension.<uri>` data must satisfy.
    Extension {
        #[command(flatten)]
        database: config::DatabaseArgs,
        #[command(subcommand)]
        command: openspp::operator::extension::ExtensionCommandArgs,
    },
    /// DCI interoperability: senders and their signing keys, identifier types.
    Dci {
        #[command(flatten)]
        database: config::DatabaseArgs,
        #[command(subcommand)]
        command: openspp::dci::senders::DciCommand,
    },
    /// Load registrants, groups, programs and memberships from NDJSON or CSV (CONTRACT §10).
    Import {
        #[command(flatten)]
        database: config::DatabaseArgs,
        #[command(flatten)]
        args: openspp::import::ImportArgs,
    },
    /// Load a deterministic synthetic population through the import (the sandbox).
    Seed {
        #[command(flatten)]
        database: config::DatabaseArgs,
        #[command(flatten)]
        args: openspp::import::seed::SeedArgs,
    },
    /// Drop the read models and rebuild them from the event log.
    Replay {
        #[command(flatten)]
        database: config::DatabaseArgs,
        /// Only this projection (there is one: `registry`).
        #[arg(long)]
        projection: Option<String>,
    },
    /// Recompute every stream's hash chain; exits non-zero if any link is broken.
    Verify {
        #[command(flatten)]
        database: config::DatabaseArgs,
        /// Every stream (the default; accepted for scripts that say so).
        #[arg(long)]
        all: bool,
    },
}

async fn run(command: Command) -> anyhow::Result<()> {
    // Each command closes its database when done, which stops a private cluster it started.
    match command {
        Command::Serve(args) => server::run(args).await,
        Command::Migrate(database) => {
            db::connect_and_migrate(&database).await?.close().await;
            Ok(())
        }
        Command::Client { database, command } => {
            let db = db::connect_and_migrate(&database).await?;
            let done = auth::cli::run(&db.pool, command).await;
            db.close().await;
            done
        }
        Command::Key {
            database,
            key_encryption,
            command,
        } => {
            let db = db::connect_and_migrate(&database).await?;
            let done =
                auth::cli::run_key(&db.pool, command, &key_encryption, &database.data_dir).await;
            db.close().await;
            done
        }
        Command::Vocabulary { database, command } => {
            let db = db::connect_and_migrate(&database).await?;
            let done = openspp::operator::vocabulary::run(&db.pool, command).await;
            db.close().await;
            done
        }
        Command::Extension { database, command } => {
            let db = db::connect_and_migrate(&database).await?;
            let done = openspp::operator::extension::run(&db.pool, command).await;
            db.close().await;
            done
        }
        Command::Dci { database, command } => {
            let db = db::connect_and_migrate(&database).await?;
            let done = openspp::dci::senders::run(&db.pool, command).await;
            db.close().await;
            done
        }
        Command::Import { database, args } => {
            let db = db::connect_and_migrate(&database).await?;
            let done = openspp::import::run(&db.pool, args).await;
            db.close().await;
            done
        }
        Command::Seed { database, args } => {
            let db = db::connect_and_migrate(&database).await?;
            let done = openspp::import::seed::run(&db.pool, args).await;
            db.close().await;
            done
        }
        Command::Replay {
            database,
            projection,
        } => {
            let db = db::connect_and_migrate(&database).await?;
            let done = openspp::replay::run(&db.pool, projection).await;
            db.close().await;
            done
        }
        Command::Verify { database, all: _ } => {
            let db = db::connect_and_migrate(&database).await?;
            let done = openspp::verify::run(&db.pool).await;
            db.close().await;
            done
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    openspp::telemetry::init(&cli.log);
    match run(cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("openspp: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Each subcommand's `--help` says what that subcommand does (a merge once gave `import`
    /// the description of `replay`, and `replay` none).
    #[test]
    fn every_subcommand_is_described_as_itself() {
        let cli = super::Cli::command();
        let about = |name: &str| {
            cli.find_subcommand(name)
                .and_then(|command| command.get_about())
                .map(|about| about.to_string())
                .unwrap_or_default()
        };
        assert!(
            about("import").starts_with("Load registrants"),
            "{}",
            about("import")
        );
        assert!(
            about("replay").starts_with("Drop the read models"),
            "{}",
            about("replay")
        );
        for command in cli.get_subcommands() {
            assert!(
                command.get_about().is_some(),
                "`openspp {}` has no description",
                command.get_name()
            );
        }
    }
}
