//! `openspp vocabulary …` and `openspp extension …`: how operators change what the registry
//! accepts, without SQL (CONTRACT §8). Each change is a command on its own event stream through
//! the event store, recorded with who made it (`--actor`, else the operating-system user) and
//! when; the command returns once every running server has loaded it (`catalog_sync`).
//! Output is JSON, one object per line, for scripts.

use std::time::Duration;

use anyhow::{anyhow, bail};
use cqrs_es::Aggregate;
use openspp_aggregates::DomainError;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::catalog_sync;
use crate::store::{CommandMetadata, EventStore, StoreError, Stored};

pub mod extension;
pub mod vocabulary;

/// What every change command takes besides its own arguments.
#[derive(clap::Args, Debug)]
pub struct ChangeArgs {
    /// Who makes the change, as recorded with it (default: the operating-system user).
    #[arg(long, env = "OPENSPP_ACTOR")]
    pub actor: Option<String>,
    /// How long to wait for running servers to confirm they serve the change, in seconds.
    #[arg(long, default_value_t = 10)]
    pub wait_secs: u64,
}

impl ChangeArgs {
    /// The operator, as the event's source (`urn:openspp:operator:{actor}`).
    fn actor(&self) -> anyhow::Result<String> {
        let actor = self
            .actor
            .clone()
            .or_else(os_user)
            .filter(|a| !a.trim().is_empty())
            .ok_or_else(|| anyhow!("name who makes this change with --actor"))?;
        if actor.chars().count() > 100 || actor.chars().any(|c| c.is_control()) {
            bail!("--actor must be at most 100 printable characters");
        }
        Ok(actor)
    }

    fn metadata(&self, collection_method: &str) -> anyhow::Result<CommandMetadata> {
        Ok(CommandMetadata {
            // Not an API client: the operator is named by the source instead.
            client_id: String::new(),
            source_system: format!("urn:openspp:operator:{}", self.actor()?),
            source_reference: None,
            collection_method: collection_method.to_owned(),
            request_id: uuid::Uuid::new_v4().to_string(),
            consent_id: None,
            consent_subject: None,
            consent_recipient: None,
        })
    }
}

/// The operating-system user running the command: `$USER`, `$LOGNAME`, else the name the
/// password database gives the process's uid (services often run without a login
/// environment), else `uid:N`.
fn os_user() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let from_env = ["USER", "LOGNAME"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    if from_env.is_some() {
        return from_env;
    }
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let named = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 2 && fields[2] == uid.to_string()).then(|| fields[0].to_owned())
    });
    Some(named.unwrap_or_else(|| format!("uid:{uid}")))
}

/// What one change did.
pub struct Recorded {
    /// Whether anything was recorded (false: it already said so).
    pub changed: bool,
    pub version: u64,
    pub reach: Option<catalog_sync::Reach>,
}

impl Recorded {
    pub fn json(&self, mut fields: Value) -> Value {
        if let Value::Object(map) = &mut fields {
            map.insert("changed".into(), self.changed.into());
            map.insert("version".into(), self.version.into());
            map.insert(
                "servers".into(),
                match &self.reach {
                    Some(reach) => json!(reach),
                    None => Value::Null,
                },
            );
        }
        fields
    }
}

/// Runs `command` on stream `stream` and waits for the running servers to serve the result.
/// `describe` turns a refusal into the operator's terms (a field into a file line).
pub async fn record<A>(
    pool: &PgPool,
    stream: &str,
    command: A::Command,
    services: &A::Services,
    args: &ChangeArgs,
    collection_method: &str,
    describe: impl Fn(DomainError) -> anyhow::Error,
) -> anyhow::Result<Recorded>
where
    A: Stored + Aggregate<Error = DomainError>,
{
    let metadata = args.metadata(collection_method)?;
    // Listen before committing, so no server's confirmation can be missed.
    let mut confirmations = catalog_sync::confirmations(pool).await?;
    let store = EventStore::new(pool.clone());
    let committed = match store
        .execute::<A>(stream, None, command, services, &metadata)
        .await
    {
        Ok(committed) => committed,
        Err(StoreError::Domain(error)) => return Err(describe(error)),
        Err(other) => return Err(other.into()),
    };
    let reach = match committed.position {
        None => None,
        Some(position) => Some(
            catalog_sync::await_servers(
                pool,
                &mut confirmations,
                position.tx_id,
                Duration::from_secs(args.wait_secs),
            )
            .await?,
        ),
    };
    if let Some(reach) = &reach {
        if reach.confirmed < reach.running {
            eprintln!(
                "openspp: recorded; {} of {} running servers confirmed within {} s \
                 (the others load it when they next hear of a change or restart)",
                reach.confirmed, reach.running, args.wait_secs
            );
        }
    }
    Ok(Recorded {
        changed: committed.position.is_some(),
        version: committed.version,
        reach,
    })
}
