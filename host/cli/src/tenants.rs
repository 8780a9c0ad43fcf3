//! `otsrep tenants`: each tenant's state, backlog size and last error, read from the backlog
//! table every worker process shares; and `resume`, which lets a quarantined tenant's backlog
//! replay through its (fixed) chain.

use std::fmt::Write as _;

use anyhow::Context as _;
use clap::Subcommand;
use ots_replicator::config::{DEFAULT_TENANT, ReplicatorConfig, TenantsConfig};
use ots_replicator::tenants::{Backlog, Status};

/// What `otsrep tenants` does.
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// List each tenant's state, backlog size and last error.
    List {
        /// The replication's config.
        #[arg(short, long)]
        config: std::path::PathBuf,
    },
    /// Resume a quarantined tenant: its backlog replays in order before its new records.
    Resume {
        /// The replication's config.
        #[arg(short, long)]
        config: std::path::PathBuf,
        /// The tenant's name (`default` for rows no rule matches).
        tenant: String,
    },
}

/// Runs `otsrep tenants ...`.
pub async fn tenants(command: TenantsCommand) -> anyhow::Result<()> {
    match command {
        TenantsCommand::List { config } => {
            let config = ReplicatorConfig::load(&config)?;
            print!("{}", tenant_table(&config).await?);
            Ok(())
        }
        TenantsCommand::Resume { config, tenant } => {
            let config = ReplicatorConfig::load(&config)?;
            let (section, backlog) = backlog(&config)?;
            if !names(section).any(|n| n == tenant) {
                anyhow::bail!(
                    "no tenant {tenant:?} in the config; its tenants are {}",
                    names(section).collect::<Vec<_>>().join(", ")
                );
            }
            if backlog.resume(&tenant).await? {
                println!(
                    "resumed tenant {tenant}: a running replicator replays its backlog within seconds"
                );
            } else {
                println!("tenant {tenant} is not quarantined; nothing to resume");
            }
            Ok(())
        }
    }
}

fn backlog(config: &ReplicatorConfig) -> anyhow::Result<(&TenantsConfig, Backlog)> {
    let section = config
        .tenants
        .as_ref()
        .context("the config has no [tenants] section")?;
    let client = config.destination.client().context("destination client")?;
    Ok((section, Backlog::new(client, section.backlog_table.clone())))
}

fn names(section: &TenantsConfig) -> impl Iterator<Item = &str> {
    section
        .rules
        .iter()
        .map(|r| r.name.as_str())
        .chain([DEFAULT_TENANT])
}

/// The tenants table: state, backlog size and last error of each.
pub async fn tenant_table(config: &ReplicatorConfig) -> anyhow::Result<String> {
    let (section, backlog) = backlog(config)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<12} {:>9}  LAST ERROR",
        "TENANT", "STATE", "BACKLOG"
    );
    for name in names(section) {
        let state = backlog.state(name).await?;
        let count = backlog.count(name).await?;
        let status = match (&state, count) {
            (Some(s), _) if s.status == Status::Quarantined => "quarantined",
            (_, n) if n > 0 => "replaying",
            _ => "active",
        };
        let error = state
            .as_ref()
            .and_then(|s| s.last_error.as_deref())
            .unwrap_or("-");
        let _ = writeln!(out, "{name:<16} {status:<12} {count:>9}  {error}");
    }
    Ok(out)
}
