//! `openspp extension add|list|retire`: the registry of extension fields (CONTRACT §8). An
//! extension is a URI, the resources it extends, and the JSON Schema `extension.<uri>` data
//! must satisfy; once registered (and confirmed by the running servers), registrants may carry
//! it, and `/metadata` lists it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use openspp_aggregates::{
    DomainError, ExtendedResource, ExtensionCommand, ExtensionDefinition, ExtensionRegistration,
    SchemaCompiler,
};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::extensions::{ExtensionCatalog, JsonSchemaCompiler};
use crate::operator::{record, ChangeArgs};

#[derive(clap::Subcommand, Debug)]
pub enum ExtensionCommandArgs {
    /// Register an extension, or change its name, resources or schema.
    Add {
        /// A short human-readable name (`farmer`).
        #[arg(long)]
        name: String,
        /// The extension's URI, the key of its data under `extension`.
        #[arg(long)]
        uri: String,
        /// A resource it extends: Individual or Group (repeat for both).
        #[arg(long = "resource", required = true)]
        resources: Vec<String>,
        /// The JSON Schema of its data (an object).
        #[arg(long)]
        schema: PathBuf,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// List every extension ever registered, retired ones included.
    List,
    /// Stop accepting data for an extension (data recorded stays in its registrants' history).
    Retire {
        #[arg(long)]
        uri: String,
        #[command(flatten)]
        change: ChangeArgs,
    },
}

fn describe(error: DomainError) -> anyhow::Error {
    match error {
        DomainError::Invalid { field, message } => anyhow!("--{field}: {message}"),
        other => anyhow!("{other}"),
    }
}

pub async fn run(pool: &PgPool, command: ExtensionCommandArgs) -> anyhow::Result<()> {
    let compiler: Arc<dyn SchemaCompiler> = Arc::new(JsonSchemaCompiler);
    match command {
        ExtensionCommandArgs::Add {
            name,
            uri,
            resources,
            schema,
            change,
        } => {
            let resources = resources
                .iter()
                .map(|r| {
                    ExtendedResource::parse(r)
                        .ok_or_else(|| anyhow!("--resource {r}: use Individual or Group"))
                })
                .collect::<anyhow::Result<BTreeSet<_>>>()?;
            let text = std::fs::read_to_string(&schema)
                .with_context(|| format!("cannot read {}", schema.display()))?;
            let schema: Value = serde_json::from_str(&text)
                .map_err(|e| anyhow!("{}: line {}: {e}", schema.display(), e.line()))?;
            let recorded = record::<ExtensionRegistration>(
                pool,
                &uri,
                ExtensionCommand::Register {
                    uri: uri.clone(),
                    definition: ExtensionDefinition {
                        name,
                        resources,
                        schema,
                    },
                },
                &compiler,
                &change,
                "manual",
                describe,
            )
            .await?;
            println!("{}", recorded.json(json!({"uri": uri})));
        }
        ExtensionCommandArgs::Retire { uri, change } => {
            let recorded = record::<ExtensionRegistration>(
                pool,
                &uri,
                ExtensionCommand::Retire { uri: uri.clone() },
                &compiler,
                &change,
                "manual",
                describe,
            )
            .await?;
            println!("{}", recorded.json(json!({"uri": uri, "active": false})));
        }
        ExtensionCommandArgs::List => {
            let catalog = ExtensionCatalog::load(&mut *pool.acquire().await?).await?;
            for extension in catalog.all() {
                println!(
                    "{}",
                    json!({
                        "uri": extension.uri,
                        "name": extension.definition.name,
                        "resources": extension.definition.resources,
                        "active": extension.active,
                        "fields": extension.fields(),
                        "version": extension.version,
                        "changed_at": extension.changed_at.to_rfc3339(),
                        "changed_by": extension.changed_by,
                    })
                );
            }
        }
    }
    Ok(())
}
