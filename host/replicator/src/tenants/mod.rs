//! Tenant isolation (`[tenants]`): each tenant's records run through its own chain into its own
//! destination, and a tenant whose guest fails is quarantined alone.
//!
//! A batch is split by tenant ([`TenantRules`]); a tenant's guests see only its records. Before
//! applying a tenant's records the applier reads the tenant's head in the [`Backlog`]: while the
//! tenant is quarantined, or older records of it wait there, its records are set aside in the
//! backlog instead, in order, and the batch still counts as done, so checkpoints advance for
//! everyone. A guest that traps, runs past its deadline or memory, returns invalid output or
//! asks to stop quarantines its tenant (its records of the failing batch, none of which were
//! applied, and every later one go to the backlog); a guest asking for a retry fails the batch,
//! as without tenants.
//!
//! [`Tenants::drain`] runs in every worker process: it resumes a quarantined tenant whose
//! guests were replaced (their files' digest differs from the one recorded at the quarantine),
//! and replays an active tenant's backlog in order through its chain under a lease, removing
//! what it applied. A page is given well under the lease's time, so a stalled process cannot
//! write a page after another has taken over; a replay that fails for good (the guest, or a
//! row the destination refuses) quarantines the tenant again. New records of the tenant keep going to the backlog until it is empty, so
//! a row's changes are applied in the order they were made.

mod backlog;
mod rules;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ots_protocol::record::TunnelRecord;

pub use backlog::{Backlog, BacklogError, Head, Status, TenantState};
pub use rules::TenantRules;

use crate::apply::{ApplyError, write_changes};
use crate::config::{DEFAULT_TENANT, ReplicatorConfig};
use crate::processor::{DeadLetters, Processor, StageReport, load_chain};
use crate::writer::RowWriter;

/// How many backlog records one replay step reads and applies.
const REPLAY_PAGE: usize = 200;
/// How long replaying one page may take: well under [`backlog::LEASE`], so the lease cannot
/// pass to another process while a page is still being written.
const PAGE_DEADLINE: Duration = Duration::from_secs(15);
/// How often a waiting backlog is counted for the metrics (counting reads every key).
const COUNT_INTERVAL: Duration = Duration::from_secs(10);

/// One tenant: its chain, its destination, and what this process counted for it.
pub struct Tenant {
    /// Its name (`default` for rows no rule matches).
    pub name: String,
    /// Its chain.
    pub processor: Arc<dyn Processor>,
    /// Its destination table.
    pub destination: String,
    writer: RowWriter,
    counts: TenantCounts,
}

/// What one process did for a tenant.
#[derive(Debug, Default)]
struct TenantCounts {
    applied: AtomicU64,
    set_aside: AtomicU64,
    replayed: AtomicU64,
    quarantines: AtomicU64,
    /// What the last look at the backlog table saw.
    quarantined: AtomicBool,
    backlog: AtomicU64,
    counted_at: Mutex<Option<Instant>>,
}

/// A tenant's counters in this process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantSnapshot {
    /// Records run through its chain and applied as they arrived.
    pub applied: u64,
    /// Records set aside in the backlog.
    pub set_aside: u64,
    /// Backlog records replayed and applied.
    pub replayed: u64,
    /// Times this process quarantined it.
    pub quarantines: u64,
    /// Whether it was quarantined at the last look (about every second).
    pub quarantined: bool,
    /// Records in its backlog when last counted (about every 10 s while there are any).
    pub backlog: u64,
}

/// The tenants of a replication and their shared backlog.
pub struct Tenants {
    rules: TenantRules,
    tenants: Vec<Tenant>,
    backlog: Backlog,
    dead_letters: Arc<DeadLetters>,
    /// This process, as a replay lease holder.
    me: String,
}

/// Why the tenants could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    /// A tenant's chain could not be loaded.
    #[error("tenant {tenant}")]
    Load {
        /// The tenant.
        tenant: String,
        /// Why.
        #[source]
        source: Box<crate::processor::ChainLoadError>,
    },
    /// The backlog table could not be created.
    #[error(transparent)]
    Backlog(#[from] BacklogError),
}

impl Tenants {
    /// Loads every tenant's chain for `config`'s `[tenants]` section (the default tenant runs
    /// `default_processor`, the replication's own chain), writing through `writer` (the
    /// destination's) to each tenant's table.
    pub fn load(
        config: &ReplicatorConfig,
        default_processor: Arc<dyn Processor>,
        default_destination: &str,
        writer: &RowWriter,
        dead_letters: Arc<DeadLetters>,
        client: ots_client::Client,
        me: String,
    ) -> Result<Option<Self>, TenantsError> {
        let Some(section) = &config.tenants else {
            return Ok(None);
        };
        let mut tenants = Vec::with_capacity(section.rules.len() + 1);
        for rule in &section.rules {
            let processor = load_chain(
                rule.processors.as_deref().unwrap_or(&config.processors),
                &config.source.table_name,
            )
            .map_err(|source| TenantsError::Load {
                tenant: rule.name.clone(),
                source: Box::new(source),
            })?;
            let destination = rule
                .destination
                .clone()
                .or_else(|| processor.target_table().map(str::to_owned))
                .unwrap_or_else(|| default_destination.to_owned());
            tenants.push(Tenant {
                name: rule.name.clone(),
                writer: writer.to_table(destination.clone()),
                destination,
                processor,
                counts: TenantCounts::default(),
            });
        }
        tenants.push(Tenant {
            name: DEFAULT_TENANT.to_owned(),
            writer: writer.to_table(default_destination.to_owned()),
            destination: default_destination.to_owned(),
            processor: default_processor,
            counts: TenantCounts::default(),
        });
        Ok(Some(Self {
            rules: TenantRules::new(section),
            tenants,
            backlog: Backlog::new(client, section.backlog_table.clone()),
            dead_letters,
            me,
        }))
    }

    /// The tenants, rules first and the default last.
    pub fn tenants(&self) -> &[Tenant] {
        &self.tenants
    }

    /// The shared backlog.
    pub fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    /// Applies `records` of `channel`: each tenant's through its chain to its destination, or
    /// into the backlog. Returns once everything is durable.
    pub async fn apply(&self, channel: &str, records: &[TunnelRecord]) -> Result<(), ApplyError> {
        for (t, indices) in self.rules.partition(records) {
            let tenant = &self.tenants[t];
            let mine: Cow<'_, [TunnelRecord]> = if indices.len() == records.len() {
                Cow::Borrowed(records)
            } else {
                Cow::Owned(indices.iter().map(|&i| records[i].clone()).collect())
            };
            let head = self.backlog.head(&tenant.name).await?;
            if head.blocks() {
                self.set_aside(tenant, channel, &mine).await?;
                continue;
            }
            match tenant.processor.process(&mine) {
                Ok(changes) => {
                    write_changes(changes, &self.dead_letters, &tenant.writer).await?;
                    tenant
                        .counts
                        .applied
                        .fetch_add(mine.len() as u64, Ordering::Relaxed);
                }
                Err(error) if error.is_retriable() => {
                    return Err(ApplyError::Processor {
                        processor: format!("{} (tenant {})", tenant.processor.name(), tenant.name),
                        source: error,
                    });
                }
                Err(error) => {
                    self.set_aside(tenant, channel, &mine).await?;
                    self.quarantine(tenant, &error.to_string()).await?;
                }
            }
        }
        Ok(())
    }

    async fn set_aside(
        &self,
        tenant: &Tenant,
        channel: &str,
        records: &[TunnelRecord],
    ) -> Result<(), BacklogError> {
        self.backlog.append(&tenant.name, channel, records).await?;
        tenant
            .counts
            .set_aside
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn quarantine(&self, tenant: &Tenant, error: &str) -> Result<(), BacklogError> {
        let fingerprint = tenant.processor.fingerprint();
        self.backlog
            .quarantine(&tenant.name, error, fingerprint.as_deref())
            .await?;
        tenant.counts.quarantines.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            tenant = %tenant.name,
            processor = tenant.processor.name(),
            %error,
            "tenant quarantined: its records go to the backlog until its guest is replaced or `otsrep tenants resume` is run; the other tenants go on"
        );
        Ok(())
    }

    /// One pass over the tenants: resumes those whose guests were replaced, and replays the
    /// backlog of every active tenant this process can lease. Returns how many records it
    /// replayed.
    pub async fn drain(&self) -> u64 {
        let mut replayed = 0;
        for tenant in &self.tenants {
            match self.drain_tenant(tenant).await {
                Ok(n) => replayed += n,
                // One tenant's trouble does not hold the others back; the next pass tries again.
                Err(error) => {
                    tracing::warn!(tenant = %tenant.name, %error, "looking after the tenant's backlog failed")
                }
            }
        }
        replayed
    }

    async fn drain_tenant(&self, tenant: &Tenant) -> Result<u64, ApplyError> {
        let head = self.backlog.head(&tenant.name).await?;
        self.observe(tenant, &head).await?;
        if head.status() == Status::Quarantined {
            // Resumed when its guests differ from those that failed; a quarantine recorded
            // without a digest (a file unreadable then) waits for an operator's resume.
            let recorded = head.state.as_ref().and_then(|s| s.fingerprint.as_deref());
            match (tenant.processor.fingerprint(), recorded) {
                (Some(now), Some(then)) if now != then => {
                    if self.backlog.resume(&tenant.name).await? {
                        tracing::info!(tenant = %tenant.name, "the tenant's guest was replaced: resuming it, its backlog replays first");
                    }
                }
                _ => return Ok(0),
            }
        } else if !head.has_records {
            return Ok(0);
        }
        self.replay(tenant).await
    }

    /// Updates the tenant's state and backlog gauges from `head`.
    async fn observe(&self, tenant: &Tenant, head: &Head) -> Result<(), BacklogError> {
        let c = &tenant.counts;
        c.quarantined
            .store(head.status() == Status::Quarantined, Ordering::Relaxed);
        if !head.has_records {
            c.backlog.store(0, Ordering::Relaxed);
            return Ok(());
        }
        let due = c
            .counted_at
            .lock()
            .map(|at| at.is_none_or(|t| t.elapsed() >= COUNT_INTERVAL))
            .unwrap_or(true);
        if due {
            let count = self.backlog.count(&tenant.name).await?;
            c.backlog.store(count, Ordering::Relaxed);
            if let Ok(mut at) = c.counted_at.lock() {
                *at = Some(Instant::now());
            }
        }
        Ok(())
    }

    /// Replays `tenant`'s backlog in order while this process holds the lease.
    async fn replay(&self, tenant: &Tenant) -> Result<u64, ApplyError> {
        let mut replayed = 0;
        while self.backlog.lease(&tenant.name, &self.me).await? {
            let page = tokio::time::timeout(PAGE_DEADLINE, self.replay_page(tenant)).await;
            match page {
                Ok(Ok(0)) => {
                    self.backlog.release(&tenant.name, &self.me).await?;
                    if replayed > 0 {
                        tracing::info!(tenant = %tenant.name, replayed, "the tenant's backlog is replayed; its records apply as they arrive again");
                    }
                    break;
                }
                Ok(Ok(n)) => replayed += n,
                Ok(Err(error)) if error.is_retriable() => {
                    tracing::warn!(tenant = %tenant.name, %error, "replaying the tenant's backlog failed; trying again later");
                    self.backlog.release(&tenant.name, &self.me).await?;
                    break;
                }
                Ok(Err(error)) => {
                    self.quarantine(tenant, &format!("replaying its backlog: {error}"))
                        .await?;
                    break;
                }
                // Abandoned well before the lease runs out: no other process can have taken
                // the page over yet, and it is replayed again from its first record.
                Err(_) => {
                    tracing::warn!(tenant = %tenant.name, deadline = ?PAGE_DEADLINE, "a backlog page took too long to replay; trying again later");
                    self.backlog.release(&tenant.name, &self.me).await?;
                    break;
                }
            }
        }
        Ok(replayed)
    }

    /// Replays the first page of `tenant`'s backlog: through its chain, written, then removed.
    /// Returns how many records it replayed (none: the backlog is empty).
    async fn replay_page(&self, tenant: &Tenant) -> Result<u64, ApplyError> {
        let entries = self.backlog.entries(&tenant.name, REPLAY_PAGE).await?;
        if entries.is_empty() {
            return Ok(0);
        }
        let (positions, records): (Vec<Vec<u8>>, Vec<TunnelRecord>) =
            entries.into_iter().map(|e| (e.position, e.record)).unzip();
        let changes =
            tenant
                .processor
                .process(&records)
                .map_err(|source| ApplyError::Processor {
                    processor: tenant.processor.name().to_owned(),
                    source,
                })?;
        write_changes(changes, &self.dead_letters, &tenant.writer).await?;
        self.backlog.remove(&tenant.name, &positions).await?;
        tenant
            .counts
            .replayed
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(records.len() as u64)
    }

    /// Each tenant's guests' statistics, labelled with the tenant.
    pub fn stages(&self) -> Vec<StageReport> {
        self.tenants
            .iter()
            .flat_map(|t| {
                t.processor.stages().into_iter().map(|s| StageReport {
                    tenant: Some(t.name.clone()),
                    ..s
                })
            })
            .collect()
    }

    /// Each tenant's counters in this process.
    pub fn snapshots(&self) -> Vec<(String, TenantSnapshot)> {
        self.tenants
            .iter()
            .map(|t| {
                let c = &t.counts;
                (
                    t.name.clone(),
                    TenantSnapshot {
                        applied: c.applied.load(Ordering::Relaxed),
                        set_aside: c.set_aside.load(Ordering::Relaxed),
                        replayed: c.replayed.load(Ordering::Relaxed),
                        quarantines: c.quarantines.load(Ordering::Relaxed),
                        quarantined: c.quarantined.load(Ordering::Relaxed),
                        backlog: c.backlog.load(Ordering::Relaxed),
                    },
                )
            })
            .collect()
    }
}

/// The Prometheus text of each tenant's counters.
pub fn render_tenants(tenants: &[(String, TenantSnapshot)]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    type Family = (&'static str, &'static str, fn(&TenantSnapshot) -> u64);
    let families: [Family; 4] = [
        (
            "tenant_records_applied_total",
            "Records run through the tenant's chain as they arrived.",
            |s| s.applied,
        ),
        (
            "tenant_records_set_aside_total",
            "Records set aside in the tenant's backlog.",
            |s| s.set_aside,
        ),
        (
            "tenant_records_replayed_total",
            "Backlog records replayed through the tenant's chain.",
            |s| s.replayed,
        ),
        (
            "tenant_quarantines_total",
            "Times this process quarantined the tenant.",
            |s| s.quarantines,
        ),
    ];
    let gauges: [Family; 2] = [
        (
            "tenant_quarantined",
            "1 while the tenant is quarantined (its records go to the backlog).",
            |s| u64::from(s.quarantined),
        ),
        (
            "tenant_backlog_records",
            "Records waiting in the tenant's backlog, counted about every 10 s.",
            |s| s.backlog,
        ),
    ];
    for (kind, list) in [("counter", &families[..]), ("gauge", &gauges[..])] {
        for (name, help, value) in list {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (tenant, snapshot) in tenants {
                let _ = writeln!(out, "{name}{{tenant=\"{tenant}\"}} {}", value(snapshot));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_metrics_name_each_tenant() {
        let quarantined = TenantSnapshot {
            set_aside: 40,
            quarantines: 1,
            quarantined: true,
            backlog: 38,
            ..TenantSnapshot::default()
        };
        let text = render_tenants(&[
            ("acme".into(), quarantined),
            (
                "default".into(),
                TenantSnapshot {
                    applied: 7,
                    ..TenantSnapshot::default()
                },
            ),
        ]);
        for line in [
            "tenant_records_set_aside_total{tenant=\"acme\"} 40",
            "tenant_quarantines_total{tenant=\"acme\"} 1",
            "tenant_records_applied_total{tenant=\"default\"} 7",
            "# TYPE tenant_quarantined gauge",
            "tenant_quarantined{tenant=\"acme\"} 1",
            "tenant_quarantined{tenant=\"default\"} 0",
            "tenant_backlog_records{tenant=\"acme\"} 38",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
