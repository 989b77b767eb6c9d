//! `tapedeck migrate-pytp` (being written).

use anyhow::Result;
use clap::Args;
use tapedeck::config::Config;

#[derive(Debug, Args)]
pub struct MigrateArgs {}

pub fn run(_args: MigrateArgs, _config: &Config) -> Result<()> {
    Ok(())
}
