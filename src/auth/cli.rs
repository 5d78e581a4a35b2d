//! `openspp client …`: the operator's only way to manage API clients.

use sqlx::PgPool;

#[derive(clap::Subcommand, Debug)]
pub enum ClientCommand {
    /// List clients.
    List,
}

pub async fn run(_pool: &PgPool, _command: ClientCommand) -> anyhow::Result<()> {
    anyhow::bail!("not yet built")
}
