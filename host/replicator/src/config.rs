//! The replicator's configuration: the replication guide's JSON accepted as is, or a TOML file
//! with the same two sections plus processor, metrics and tuning sections.
//!
//! Both forms go through one walker over a JSON value, so every error names the key path it is
//! about (`ots-writer.batchWriteCount`) and unknown keys are rejected wherever they appear.
//! Credentials may come from the environment instead of the file (see [`ENV_VARS`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use ots_protocol::auth::Credentials;
use ots_protocol::pb::tunnel::TunnelType;
use serde_json::{Map, Value};

/// The most rows one BatchWriteRow request may carry, and so the largest `batchWriteCount`.
pub const MAX_BATCH_WRITE_COUNT: usize = 200;
/// `batchWriteCount` when the file does not set it.
pub const DEFAULT_BATCH_WRITE_COUNT: usize = 100;
/// The format of `startTime` and `endTime`, the guide's (interpreted in the machine's local time zone).
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Environment variables that supply or override credentials, with the key each one sets.
pub const ENV_VARS: [(&str, &str); 6] = [
    ("OTS_READER_ACCESS_ID", "ots-reader.accessId"),
    ("OTS_READER_ACCESS_KEY", "ots-reader.accessKey"),
    ("OTS_READER_SECURITY_TOKEN", "ots-reader.securityToken"),
    ("OTS_WRITER_ACCESS_ID", "ots-writer.accessId"),
    ("OTS_WRITER_ACCESS_KEY", "ots-writer.accessKey"),
    ("OTS_WRITER_SECURITY_TOKEN", "ots-writer.securityToken"),
];

/// A configuration problem, naming the key path it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The text is not valid JSON or TOML.
    #[error("config is not valid {format}: {reason}")]
    Syntax {
        /// "JSON" or "TOML".
        format: &'static str,
        /// The parser's message, with its line and column.
        reason: String,
    },
    /// A key has a bad value, is missing, or is not known.
    #[error("config key `{key}`: {problem}")]
    Key {
        /// Dotted path of the key, e.g. `ots-writer.batchWriteCount`.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

fn key_error(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        problem: problem.into(),
    }
}

/// Where and as whom to connect to one Tablestore instance, and which table to use.
#[derive(Debug, Clone)]
pub struct TableEndpoint {
    /// Base URL of the instance.
    pub endpoint: String,
    /// Instance name.
    pub instance_name: String,
    /// Table name.
    pub table_name: String,
    /// Access key.
    pub credentials: Credentials,
}

impl TableEndpoint {
    /// A client of this endpoint's instance with the default retry policy.
    pub fn client(&self) -> Result<ots_client::Client, ots_client::ClientError> {
        ots_client::Client::new(ots_client::ClientConfig::new(
            self.endpoint.clone(),
            self.instance_name.clone(),
            self.credentials.clone(),
        ))
    }
}

/// Which guest processor transforms records into row changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessorSource {
    /// A guest shipped with the tool: `replicate`, `filter` or `rename`.
    Builtin(String),
    /// A component file of the user's, resolved inside the guest directory.
    File(PathBuf),
}

impl std::fmt::Display for ProcessorConfig {
    /// The key that chose the guest, as the config spells it: `processor.name = "filter"`, or
    /// `processors[1].file = "mask.wasm"` in a chain.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let section = &self.section;
        match &self.source {
            ProcessorSource::Builtin(name) => write!(f, "`{section}.name` = {name:?}"),
            ProcessorSource::File(path) => {
                write!(f, "`{section}.file` = {:?}", path.display().to_string())
            }
        }
    }
}

/// Keys of both the `ots-reader` and the `ots-writer` section.
const ENDPOINT_KEYS: &[&str] = &[
    "endpoint",
    "instanceName",
    "tableName",
    "accessId",
    "accessKey",
    "securityToken",
];

/// Keys of the `processor` section. The config's own sections spell keys in camelCase, like
/// the guide's `ots-reader` and `ots-writer`.
const PROCESSOR_KEYS: &[&str] = &[
    "name",
    "file",
    "options",
    "guestDir",
    "callTimeoutMs",
    "memoryLimitMb",
    "deadLetter",
    "deadLetterTable",
    "tables",
];

/// Earlier spellings of `processor` keys, still accepted: (old, current).
const LEGACY_PROCESSOR_KEYS: &[(&str, &str)] = &[
    ("guest_dir", "guestDir"),
    ("call_timeout_ms", "callTimeoutMs"),
    ("memory_limit_mb", "memoryLimitMb"),
    ("dead_letter", "deadLetter"),
];

/// The names of the guests shipped with the tool.
pub const BUILTIN_PROCESSORS: [&str; 4] = ["replicate", "filter", "rename", "route"];

/// A processor section: which guest and the options passed to its init. A replication runs
/// one (`[processor]`) or a chain of them in order (`[[processors]]`, a JSON array).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorConfig {
    /// Where in the config this processor is set: `processor`, or `processors[i]` in a chain.
    pub section: String,
    /// The guest to run.
    pub source: ProcessorSource,
    /// Options handed to the guest's init as a JSON object.
    pub options: Value,
    /// Directory guest files are loaded from (overrides the built-in components):
    /// `processor.guestDir`.
    pub guest_dir: Option<PathBuf>,
    /// How long one guest call may run.
    pub call_timeout: Duration,
    /// The most memory a guest instance may use, in bytes.
    pub memory_limit: usize,
    /// Where records the guest skips are set aside.
    pub dead_letter: DeadLetter,
    /// The tables besides the destination the guest may route row changes to (WIT 0.3.0's
    /// `routed-change`); each is created from the source table's schema when missing.
    pub tables: Vec<String>,
}

/// Default deadline of one guest call.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Default memory limit of a guest instance.
pub const DEFAULT_MEMORY_LIMIT_MB: usize = 64;
/// Default dead-letter file.
pub const DEFAULT_DEAD_LETTER_TABLE: &str = "otsrep_dead_letter";

/// Where a guest's skipped records are set aside, before their batch counts as done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetter {
    /// A table on the destination instance (`processor.deadLetterTable`, the default), created
    /// on first use: every worker process of the replication reaches it.
    Table(String),
    /// A JSON-lines file on this machine (`processor.deadLetter`).
    File(PathBuf),
}

/// The `[tenants]` section: which primary-key column names a row's tenant, and the rules giving
/// tenants their own processor chain and destination. Rows no rule matches are the `default`
/// tenant's, which runs the replication's `processors` into its destination.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantsConfig {
    /// The primary-key column holding the tenant: `tenants.keyColumn`.
    pub key_column: String,
    /// The table on the destination instance holding quarantined tenants' records and every
    /// tenant's state: `tenants.backlogTable`.
    pub backlog_table: String,
    /// The rules, in the order they are tried.
    pub rules: Vec<TenantRule>,
}

/// One `[[tenants.rules]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRule {
    /// The tenant's name: in logs, metrics, `otsrep status` and the backlog's keys.
    pub name: String,
    /// Which key values are this tenant's.
    pub matcher: TenantMatch,
    /// The tenant's own chain; `None` runs a copy of the replication's `processors`.
    pub processors: Option<Vec<ProcessorConfig>>,
    /// The tenant's own destination table (created from the source schema when missing);
    /// `None` writes to the replication's.
    pub destination: Option<String>,
}

/// How a tenant rule matches the tenant column's value (a string, or an integer in decimal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantMatch {
    /// Exactly this value: `exact`.
    Exact(String),
    /// Any value starting with this: `prefix`.
    Prefix(String),
}

/// The name of the tenant of rows no rule matches.
pub const DEFAULT_TENANT: &str = "default";
/// Default backlog table.
pub const DEFAULT_BACKLOG_TABLE: &str = "otsrep_backlog";

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            section: "processor".into(),
            source: ProcessorSource::Builtin("replicate".into()),
            options: Value::Object(Map::new()),
            guest_dir: None,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            memory_limit: DEFAULT_MEMORY_LIMIT_MB << 20,
            dead_letter: DeadLetter::Table(DEFAULT_DEAD_LETTER_TABLE.into()),
            tables: Vec::new(),
        }
    }
}

/// Tuning of the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    /// How often DescribeTunnel is polled for progress and the end time.
    pub monitor_interval: Duration,
    /// Tag this worker registers with, shown by `status`.
    pub client_tag: Option<String>,
    /// Heartbeat timeout the worker asks the tunnel for.
    pub heartbeat_timeout: Duration,
    /// Bytes the channels' records may take at once (`replicator.memoryBudgetMb`): pages read
    /// ahead, waiting, and being transformed and written; [`Tuning::read_budget`] turns it
    /// into the worker's budget of pages.
    pub memory_budget: usize,
}

/// The default [`Tuning::memory_budget`]: at 232 channels a full copy kept its pace with it
/// and the process peaked at 161–204 MiB (BENCHMARKS.md).
pub const DEFAULT_MEMORY_BUDGET: usize = 128 << 20;

/// About how many bytes of memory a page of records takes, per byte of it on the wire, while
/// it is transformed and written: decoded records, their row changes, the encoded requests,
/// and what the allocator keeps around them. Measured over a full copy of the benchmark rows
/// (ten small cells each): the process's RSS grew by 12–18 MiB per MiB of read budget
/// (BENCHMARKS.md). Pages of large values take less, so the budget errs on the safe side
/// there; pages of many tiny cells take more.
pub const MEMORY_PER_WIRE_BYTE: usize = 16;

impl Tuning {
    /// The worker's read budget (bytes of pages on the wire) that keeps the records'
    /// memory within the memory budget.
    pub fn read_budget(&self) -> usize {
        (self.memory_budget / MEMORY_PER_WIRE_BYTE).max(1)
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            monitor_interval: Duration::from_secs(3),
            client_tag: None,
            heartbeat_timeout: Duration::from_secs(30),
            memory_budget: DEFAULT_MEMORY_BUDGET,
        }
    }
}

/// A complete, validated replicator configuration.
#[derive(Debug, Clone)]
pub struct ReplicatorConfig {
    /// The source table (`ots-reader`).
    pub source: TableEndpoint,
    /// The tunnel to consume, created as BaseAndStream when missing.
    pub tunnel_name: String,
    /// Whether set-up may enable the source table's stream when it is off
    /// (`ots-reader.enableStream`); otherwise a table without one is an error.
    pub enable_stream: bool,
    /// What the tunnel delivers (`ots-reader.tunnelType`): BaseAndStream unless told, Stream
    /// when only changes are wanted (the default with a `startTime`), BaseData for a one-off
    /// copy.
    pub tunnel_type: TunnelType,
    /// Replicate the changes committed since this instant (`ots-reader.startTime`, a Stream
    /// tunnel's start offset); `None` starts when the tunnel is created.
    pub start_time: Option<DateTime<Utc>>,
    /// Records committed after this instant are not applied, and the tunnel is created to end
    /// there; `None` replicates forever.
    pub end_time: Option<DateTime<Utc>>,
    /// The destination table (`ots-writer`).
    pub destination: TableEndpoint,
    /// Rows per BatchWriteRow request.
    pub batch_write_count: usize,
    /// The processors each record goes through, in order (never empty): one from
    /// `[processor]` (the built-in `replicate` when there is none), or the `[[processors]]`
    /// chain.
    pub processors: Vec<ProcessorConfig>,
    /// Tenants with chains and destinations of their own (`[tenants]`), isolated from each
    /// other; `None` runs every record through `processors`.
    pub tenants: Option<TenantsConfig>,
    /// Address of the Prometheus metrics endpoint, if any.
    pub metrics_listen: Option<SocketAddr>,
    /// Pipeline tuning.
    pub tuning: Tuning,
}

/// The text format of a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The guide's JSON.
    Json,
    /// The TOML form.
    Toml,
}

impl Format {
    /// Guesses the format from a file name: `.toml` is TOML, anything else JSON.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("toml") => Self::Toml,
            _ => Self::Json,
        }
    }
}

impl ReplicatorConfig {
    /// Reads and validates a config file, taking credentials from the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, Format::from_path(path), |name| {
            std::env::var(name).ok()
        })
    }

    /// Parses and validates config text; `env` looks up environment variables (see
    /// [`ENV_VARS`]), which take precedence over the file's credentials.
    pub fn parse(
        text: &str,
        format: Format,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut root = match format {
            Format::Json => {
                serde_json::from_str::<Value>(text).map_err(|e| ConfigError::Syntax {
                    format: "JSON",
                    reason: e.to_string(),
                })?
            }
            Format::Toml => {
                let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
                    format: "TOML",
                    reason: e.to_string().trim_end().to_owned(),
                })?;
                toml_to_json(toml::Value::Table(table))
            }
        };
        apply_env(&mut root, &env);
        Self::from_value(root)
    }

    fn from_value(root: Value) -> Result<Self, ConfigError> {
        let mut root = Section::new("", root)?;
        root.allow(&[
            "ots-reader",
            "ots-writer",
            "processor",
            "processors",
            "metrics",
            "replicator",
            "tenants",
        ])?;
        let mut reader = root.section("ots-reader")?;
        reader.allow(
            &[
                ENDPOINT_KEYS,
                &[
                    "tunnelName",
                    "tunnelType",
                    "startTime",
                    "endTime",
                    "enableStream",
                ],
            ]
            .concat(),
        )?;
        let source = table_endpoint(&mut reader)?;
        let tunnel_name = reader.string("tunnelName")?;
        let enable_stream = reader.optional_bool("enableStream")?.unwrap_or(false);
        let mut time = |key: &str| {
            reader
                .optional_string(key)?
                .map(|text| parse_time(&text).map_err(|p| key_error(reader.path(key), p)))
                .transpose()
        };
        let start_time = time("startTime")?;
        let end_time = time("endTime")?;
        let tunnel_type = match reader.optional_string("tunnelType")? {
            None => default_tunnel_type(start_time),
            Some(name) => TunnelType::from_name(&name).ok_or_else(|| {
                key_error(
                    reader.path("tunnelType"),
                    format!(
                        "unknown tunnel type {name:?}; expected BaseAndStream, Stream or BaseData"
                    ),
                )
            })?,
        };
        check_time_range(tunnel_type, start_time, end_time)
            .map_err(|(key, problem)| key_error(reader.path(key), problem))?;

        let mut writer = root.section("ots-writer")?;
        writer.allow(&[ENDPOINT_KEYS, &["batchWriteCount"]].concat())?;
        let destination = table_endpoint(&mut writer)?;
        let batch_write_count = match writer.optional_integer("batchWriteCount")? {
            None => DEFAULT_BATCH_WRITE_COUNT,
            Some(n) if (1..=MAX_BATCH_WRITE_COUNT as i64).contains(&n) => n as usize,
            Some(n) => {
                return Err(key_error(
                    writer.path("batchWriteCount"),
                    format!("must be between 1 and {MAX_BATCH_WRITE_COUNT}, got {n}"),
                ));
            }
        };

        let processors = processors(&mut root)?;
        let tenants = root.optional_section("tenants")?.map(tenants).transpose()?;

        let metrics_listen = match root.optional_section("metrics")? {
            None => None,
            Some(mut section) => {
                section.allow(&["listen"])?;
                section
                    .optional_string("listen")?
                    .map(|text| {
                        text.parse::<SocketAddr>().map_err(|e| {
                            key_error(
                                section.path("listen"),
                                format!("{text:?} is not an address like 127.0.0.1:9898: {e}"),
                            )
                        })
                    })
                    .transpose()?
            }
        };

        let tuning = match root.optional_section("replicator")? {
            None => Tuning::default(),
            Some(mut section) => {
                section.allow(&[
                    "monitorIntervalSecs",
                    "clientTag",
                    "heartbeatTimeoutSecs",
                    "memoryBudgetMb",
                ])?;
                let defaults = Tuning::default();
                Tuning {
                    monitor_interval: section
                        .optional_seconds("monitorIntervalSecs")?
                        .unwrap_or(defaults.monitor_interval),
                    client_tag: section.optional_string("clientTag")?,
                    heartbeat_timeout: section
                        .optional_seconds("heartbeatTimeoutSecs")?
                        .unwrap_or(defaults.heartbeat_timeout),
                    memory_budget: section
                        .optional_mebibytes("memoryBudgetMb", 65536)?
                        .unwrap_or(defaults.memory_budget),
                }
            }
        };

        Ok(Self {
            source,
            tunnel_name,
            enable_stream,
            tunnel_type,
            start_time,
            end_time,
            destination,
            batch_write_count,
            processors,
            tenants,
            metrics_listen,
            tuning,
        })
    }
}

fn table_endpoint(section: &mut Section) -> Result<TableEndpoint, ConfigError> {
    let endpoint = section.string("endpoint")?;
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(key_error(
            section.path("endpoint"),
            format!("{endpoint:?} must start with http:// or https://"),
        ));
    }
    Ok(TableEndpoint {
        endpoint,
        instance_name: section.string("instanceName")?,
        table_name: section.string("tableName")?,
        credentials: Credentials {
            access_key_id: section.string("accessId")?,
            access_key_secret: section.string("accessKey")?,
            security_token: section.optional_string("securityToken")?,
        },
    })
}

/// The `[processor]` section, or the `[[processors]]` chain; not both.
fn processors(root: &mut Section) -> Result<Vec<ProcessorConfig>, ConfigError> {
    let one = root.optional_section("processor")?;
    let chain = root.take("processors");
    match (one, chain) {
        (Some(_), Some(_)) => Err(key_error(
            "processors",
            "set either `processor` (one guest) or `processors` (a chain), not both",
        )),
        (None, None) => Ok(vec![ProcessorConfig::default()]),
        (Some(section), None) => Ok(vec![processor_config(section)?]),
        (None, Some(Value::Array(list))) if list.is_empty() => Err(key_error(
            "processors",
            "must list at least one processor (or leave it out for `replicate`)",
        )),
        (None, Some(Value::Array(list))) => list
            .into_iter()
            .enumerate()
            .map(|(i, value)| processor_config(Section::new(&format!("processors[{i}]"), value)?))
            .collect(),
        (None, Some(other)) => Err(key_error(
            "processors",
            format!(
                "must be an array of processor tables ([[processors]] in TOML), got {}",
                kind(&other)
            ),
        )),
    }
}

fn tenants(mut section: Section) -> Result<TenantsConfig, ConfigError> {
    section.allow(&["keyColumn", "backlogTable", "rules"])?;
    let key_column = section.string("keyColumn")?;
    let backlog_table = section
        .optional_string("backlogTable")?
        .unwrap_or_else(|| DEFAULT_BACKLOG_TABLE.into());
    let rules_key = section.path("rules");
    let list = match section.take("rules") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) | None => {
            return Err(key_error(
                rules_key,
                "must list at least one rule ([[tenants.rules]] with `name` and `exact` or `prefix`)",
            ));
        }
        Some(other) => {
            return Err(key_error(
                rules_key,
                format!("must be an array of rule tables, got {}", kind(&other)),
            ));
        }
    };
    let mut rules: Vec<TenantRule> = Vec::with_capacity(list.len());
    for (i, value) in list.into_iter().enumerate() {
        let mut rule = Section::new(&format!("{rules_key}[{i}]"), value)?;
        rule.allow(&["name", "exact", "prefix", "processors", "destination"])?;
        let name = rule.string("name")?;
        let valid = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid || name.len() > 64 {
            return Err(key_error(
                rule.path("name"),
                format!(
                    "{name:?} is not a tenant name: use letters, digits, `-` and `_`, at most 64"
                ),
            ));
        }
        if name == DEFAULT_TENANT || rules.iter().any(|r| r.name == name) {
            return Err(key_error(
                rule.path("name"),
                format!(
                    "{name:?} is taken (by another rule, or by the tenant of rows no rule matches)"
                ),
            ));
        }
        let matcher = match (
            rule.optional_string("exact")?,
            rule.optional_string("prefix")?,
        ) {
            (Some(value), None) => TenantMatch::Exact(value),
            (None, Some(prefix)) => TenantMatch::Prefix(prefix),
            _ => {
                return Err(key_error(
                    rule.path("exact"),
                    "set exactly one of `exact` (a value) or `prefix`",
                ));
            }
        };
        let processors = match rule.take("processors") {
            None => None,
            Some(Value::Array(list)) if !list.is_empty() => Some(
                list.into_iter()
                    .enumerate()
                    .map(|(j, v)| {
                        processor_config(Section::new(
                            &format!("{}[{j}]", rule.path("processors")),
                            v,
                        )?)
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => {
                return Err(key_error(
                    rule.path("processors"),
                    "must be a non-empty array of processor tables (leave it out for the replication's chain)",
                ));
            }
        };
        let destination = rule.optional_string("destination")?;
        rules.push(TenantRule {
            name,
            matcher,
            processors,
            destination,
        });
    }
    Ok(TenantsConfig {
        key_column,
        backlog_table,
        rules,
    })
}

fn processor_config(mut section: Section) -> Result<ProcessorConfig, ConfigError> {
    let legacy = LEGACY_PROCESSOR_KEYS.iter().map(|(old, _)| *old);
    let known: Vec<&str> = PROCESSOR_KEYS.iter().copied().chain(legacy).collect();
    section.allow(&known)?;
    let section = &mut section;
    let name = section.optional_string("name")?;
    let file = section.optional_string("file")?;
    let source = match (name, file) {
        (Some(_), Some(_)) => {
            return Err(key_error(
                section.path("file"),
                "set either `name` (a built-in guest) or `file` (a component), not both",
            ));
        }
        (None, Some(file)) => ProcessorSource::File(PathBuf::from(file)),
        (Some(name), None) if BUILTIN_PROCESSORS.contains(&name.as_str()) => {
            ProcessorSource::Builtin(name)
        }
        (Some(name), None) => {
            return Err(key_error(
                section.path("name"),
                format!(
                    "unknown processor {name:?}; expected one of {} (or set `file`)",
                    BUILTIN_PROCESSORS.join(", ")
                ),
            ));
        }
        (None, None) => ProcessorSource::Builtin("replicate".into()),
    };
    let options = match section.take("options") {
        None => Value::Object(Map::new()),
        Some(value @ Value::Object(_)) => value,
        Some(other) => {
            return Err(key_error(
                section.path("options"),
                format!("must be a table/object, got {}", kind(&other)),
            ));
        }
    };
    let guest_dir_key = section.spelling("guestDir")?;
    let guest_dir = section.optional_string(guest_dir_key)?.map(PathBuf::from);
    let call_timeout_key = section.spelling("callTimeoutMs")?;
    let call_timeout = match section.optional_integer(call_timeout_key)? {
        None => DEFAULT_CALL_TIMEOUT,
        Some(ms) if (1..=600_000).contains(&ms) => Duration::from_millis(ms as u64),
        Some(ms) => {
            return Err(key_error(
                section.path(call_timeout_key),
                format!("must be between 1 and 600000 milliseconds, got {ms}"),
            ));
        }
    };
    let memory_limit_key = section.spelling("memoryLimitMb")?;
    let memory_limit = section
        .optional_mebibytes(memory_limit_key, 4096)?
        .unwrap_or(DEFAULT_MEMORY_LIMIT_MB << 20);
    let dead_letter_key = section.spelling("deadLetter")?;
    let file = section.optional_string(dead_letter_key)?;
    let table = section.optional_string("deadLetterTable")?;
    let dead_letter = match (file, table) {
        (Some(_), Some(_)) => {
            return Err(key_error(
                section.path("deadLetterTable"),
                format!("set either `{dead_letter_key}` (a file) or `deadLetterTable`, not both"),
            ));
        }
        (Some(file), None) => DeadLetter::File(PathBuf::from(file)),
        (None, Some(table)) => DeadLetter::Table(table),
        (None, None) => DeadLetter::Table(DEFAULT_DEAD_LETTER_TABLE.into()),
    };
    let tables = section.optional_strings("tables")?;
    Ok(ProcessorConfig {
        section: section.path.clone(),
        source,
        options,
        guest_dir,
        call_timeout,
        memory_limit,
        dead_letter,
        tables,
    })
}

/// The tunnel type when the config names none: Stream for the changes since a `startTime`,
/// else the guide's BaseAndStream.
pub fn default_tunnel_type(start_time: Option<DateTime<Utc>>) -> TunnelType {
    match start_time {
        Some(_) => TunnelType::Stream,
        None => TunnelType::BaseAndStream,
    }
}

/// Checks that a tunnel type and a time range go together: a start needs a Stream tunnel
/// (BaseAndStream copies the table as it is now, then its changes), BaseData has no stream to
/// cut, and the end comes after the start. The error names the key and the problem.
pub fn check_time_range(
    tunnel_type: TunnelType,
    start_time: Option<DateTime<Utc>>,
    end_time: Option<DateTime<Utc>>,
) -> Result<(), (&'static str, String)> {
    if start_time.is_some() && tunnel_type != TunnelType::Stream {
        return Err((
            "startTime",
            format!(
                "replicating the changes since a past instant needs tunnelType \"Stream\", not {:?} (a {} tunnel copies the table as it is now)",
                tunnel_type.as_str(),
                tunnel_type.as_str()
            ),
        ));
    }
    if end_time.is_some() && tunnel_type == TunnelType::BaseData {
        return Err((
            "endTime",
            "a BaseData tunnel delivers no changes to stop at; it ends once the table is copied"
                .to_owned(),
        ));
    }
    if let (Some(start), Some(end)) = (start_time, end_time)
        && end <= start
    {
        return Err(("endTime", format!("{end} is not after startTime {start}")));
    }
    Ok(())
}

/// Parses `startTime` and `endTime`: the guide's `yyyy-MM-dd HH:mm:ss` in local time, or
/// RFC 3339.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(text, TIME_FORMAT).map_err(|e| {
        format!("{text:?} is not a time like \"2026-11-24 20:00:00\" (yyyy-MM-dd HH:mm:ss): {e}")
    })?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{text:?} does not exist in the local time zone"))
}

/// Writes the environment's credentials into the tree, creating sections as needed, so the
/// walker sees one source of truth.
fn apply_env(root: &mut Value, env: &impl Fn(&str) -> Option<String>) {
    let Value::Object(map) = root else { return };
    for (var, key) in ENV_VARS {
        let Some(value) = env(var) else { continue };
        let (section, field) = key.split_once('.').expect("ENV_VARS keys are dotted");
        let entry = map
            .entry(section.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(section) = entry {
            section.insert(field.to_owned(), Value::String(value));
        }
    }
}

fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::from(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(k, v)| (k, toml_to_json(v)))
                .collect(),
        ),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One object of the tree being read; remembers its path and rejects keys left unread.
struct Section {
    path: String,
    map: Map<String, Value>,
}

impl Section {
    fn new(path: &str, value: Value) -> Result<Self, ConfigError> {
        match value {
            Value::Object(map) => Ok(Self {
                path: path.to_owned(),
                map,
            }),
            other => Err(key_error(
                if path.is_empty() { "(root)" } else { path },
                format!("must be an object, got {}", kind(&other)),
            )),
        }
    }

    fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    fn section(&mut self, key: &str) -> Result<Section, ConfigError> {
        self.optional_section(key)?
            .ok_or_else(|| key_error(self.path(key), "is required"))
    }

    fn optional_section(&mut self, key: &str) -> Result<Option<Section>, ConfigError> {
        self.take(key)
            .map(|v| Section::new(&self.path(key), v))
            .transpose()
    }

    fn string(&mut self, key: &str) -> Result<String, ConfigError> {
        self.optional_string(key)?
            .ok_or_else(|| key_error(self.path(key), "is required"))
    }

    fn optional_string(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => {
                Err(key_error(self.path(key), "must not be empty"))
            }
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(key_error(
                self.path(key),
                format!("must be a string, got {}", kind(&other)),
            )),
        }
    }

    /// A list of non-empty strings, each once; empty when the key is absent.
    fn optional_strings(&mut self, key: &str) -> Result<Vec<String>, ConfigError> {
        let items = match self.take(key) {
            None => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(key_error(
                    self.path(key),
                    format!("must be a list of strings, got {}", kind(&other)),
                ));
            }
        };
        let mut strings: Vec<String> = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::String(s) if s.trim().is_empty() => {
                    return Err(key_error(
                        format!("{}[{i}]", self.path(key)),
                        "must not be empty",
                    ));
                }
                Value::String(s) if strings.contains(&s) => {
                    return Err(key_error(
                        format!("{}[{i}]", self.path(key)),
                        format!("{s:?} is listed twice"),
                    ));
                }
                Value::String(s) => strings.push(s),
                other => {
                    return Err(key_error(
                        format!("{}[{i}]", self.path(key)),
                        format!("must be a string, got {}", kind(&other)),
                    ));
                }
            }
        }
        Ok(strings)
    }

    fn optional_bool(&mut self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(key_error(
                self.path(key),
                format!("must be true or false, got {}", describe(&other)),
            )),
        }
    }

    fn optional_integer(&mut self, key: &str) -> Result<Option<i64>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
            // The guide's examples sometimes quote numbers; accept a quoted integer too.
            Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => {
                Ok(s.trim().parse::<i64>().ok())
            }
            Some(other) => Err(key_error(
                self.path(key),
                format!("must be an integer, got {}", describe(&other)),
            )),
        }
    }

    /// A size given in MiB, between 1 and `max`, in bytes.
    fn optional_mebibytes(&mut self, key: &str, max: i64) -> Result<Option<usize>, ConfigError> {
        match self.optional_integer(key)? {
            None => Ok(None),
            Some(mb) if (1..=max).contains(&mb) => Ok(Some((mb as usize) << 20)),
            Some(mb) => Err(key_error(
                self.path(key),
                format!("must be between 1 and {max} MiB, got {mb}"),
            )),
        }
    }

    fn optional_seconds(&mut self, key: &str) -> Result<Option<Duration>, ConfigError> {
        match self.optional_integer(key)? {
            None => Ok(None),
            Some(n) if n > 0 => Ok(Some(Duration::from_secs(n as u64))),
            Some(n) => Err(key_error(
                self.path(key),
                format!("must be a positive number of seconds, got {n}"),
            )),
        }
    }

    /// Which spelling of the `processor` key `key` this section uses: `key` itself, or the
    /// earlier spelling [`LEGACY_PROCESSOR_KEYS`] lists for it. Errors then name the key as
    /// written; giving both spellings is an error.
    fn spelling(&self, key: &'static str) -> Result<&'static str, ConfigError> {
        let Some(&(legacy, _)) = LEGACY_PROCESSOR_KEYS.iter().find(|(_, k)| *k == key) else {
            return Ok(key);
        };
        match (self.map.contains_key(key), self.map.contains_key(legacy)) {
            (true, true) => Err(key_error(
                self.path(legacy),
                format!("is the earlier spelling of `{key}`; set only one of them"),
            )),
            (false, true) => Ok(legacy),
            _ => Ok(key),
        }
    }

    /// Rejects any key not in `known`, suggesting the known key it most resembles.
    fn allow(&self, known: &[&str]) -> Result<(), ConfigError> {
        let Some(unknown) = self.map.keys().find(|k| !known.contains(&k.as_str())) else {
            return Ok(());
        };
        let hint = known
            .iter()
            .filter(|k| !self.map.contains_key(**k))
            .map(|k| (edit_distance(&unknown.to_lowercase(), &k.to_lowercase()), k))
            .filter(|(d, _)| *d <= 3)
            .min()
            .map(|(_, k)| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        Err(key_error(
            self.path(unknown),
            format!("is not a known key{hint}; known keys: {}", known.join(", ")),
        ))
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("the string {s:?}"),
        Value::Number(n) => format!("the number {n}"),
        other => kind(other).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUIDE_JSON: &str = r#"{
      "ots-reader": {
        "endpoint": "https://inst.cn-hangzhou.ots.aliyuncs.com",
        "instanceName": "inst", "tableName": "src",
        "accessId": "id1", "accessKey": "key1",
        "tunnelName": "t1", "endTime": "2026-11-24 20:00:00"
      },
      "ots-writer": {
        "endpoint": "https://dst.cn-hangzhou.ots.aliyuncs.com",
        "instanceName": "dst-inst", "tableName": "dst",
        "accessId": "id2", "accessKey": "key2", "batchWriteCount": 100
      }
    }"#;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn error(text: &str, format: Format) -> String {
        ReplicatorConfig::parse(text, format, no_env)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_guide_json_is_accepted_as_is() {
        let config = ReplicatorConfig::parse(GUIDE_JSON, Format::Json, no_env).unwrap();
        assert_eq!(
            config.source.endpoint,
            "https://inst.cn-hangzhou.ots.aliyuncs.com"
        );
        assert_eq!(config.source.instance_name, "inst");
        assert_eq!(config.source.table_name, "src");
        assert_eq!(config.source.credentials.access_key_id, "id1");
        assert_eq!(config.source.credentials.access_key_secret, "key1");
        assert_eq!(config.tunnel_name, "t1");
        let expected = Local
            .with_ymd_and_hms(2026, 11, 24, 20, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(config.end_time, Some(expected));
        assert_eq!(config.destination.table_name, "dst");
        assert_eq!(config.destination.credentials.access_key_id, "id2");
        assert_eq!(config.batch_write_count, 100);
        assert_eq!(config.processors[0], ProcessorConfig::default());
        assert_eq!(config.metrics_listen, None);
    }

    #[test]
    fn end_time_and_batch_size_are_optional() {
        let text = GUIDE_JSON
            .replace(r#", "endTime": "2026-11-24 20:00:00""#, "")
            .replace(r#", "batchWriteCount": 100"#, "");
        let config = ReplicatorConfig::parse(&text, Format::Json, no_env).unwrap();
        assert_eq!(config.end_time, None);
        assert_eq!(config.batch_write_count, DEFAULT_BATCH_WRITE_COUNT);
    }

    #[test]
    fn tunnel_types_and_time_ranges_go_together() {
        let with = |extra: &str| {
            GUIDE_JSON.replace(r#""tunnelName""#, &format!(r#"{extra}, "tunnelName""#))
        };
        let guide = ReplicatorConfig::parse(GUIDE_JSON, Format::Json, no_env).unwrap();
        assert_eq!(guide.tunnel_type, TunnelType::BaseAndStream);
        assert_eq!(guide.start_time, None);

        let since = ReplicatorConfig::parse(
            &with(r#""startTime": "2026-11-24T10:00:00Z""#)
                .replace(r#", "endTime": "2026-11-24 20:00:00""#, ""),
            Format::Json,
            no_env,
        )
        .unwrap();
        assert_eq!(
            since.tunnel_type,
            TunnelType::Stream,
            "a start time means the changes since"
        );
        assert_eq!(
            since.start_time,
            Some(
                DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
                    .unwrap()
                    .with_timezone(&Utc)
            )
        );
        let copy = ReplicatorConfig::parse(
            &with(r#""tunnelType": "BaseData""#)
                .replace(r#", "endTime": "2026-11-24 20:00:00""#, ""),
            Format::Json,
            no_env,
        )
        .unwrap();
        assert_eq!(copy.tunnel_type, TunnelType::BaseData);

        for (extra, says) in [
            (
                r#""tunnelType": "Streem""#,
                "`ots-reader.tunnelType`: unknown tunnel type \"Streem\"",
            ),
            (
                r#""tunnelType": "BaseAndStream", "startTime": "2026-11-24T10:00:00Z""#,
                "`ots-reader.startTime`: replicating the changes since a past instant needs tunnelType \"Stream\"",
            ),
            (
                r#""tunnelType": "BaseData""#,
                "`ots-reader.endTime`: a BaseData tunnel delivers no changes",
            ),
            (
                r#""startTime": "2026-11-25T12:00:00Z""#,
                "`ots-reader.endTime`: ",
            ),
            (
                r#""startTime": "yesterday""#,
                "`ots-reader.startTime`: \"yesterday\" is not a time",
            ),
        ] {
            let message = error(&with(extra), Format::Json);
            assert!(message.contains(says), "{extra}: {message}");
        }
    }

    #[test]
    fn errors_name_the_key_and_the_problem() {
        let too_big = GUIDE_JSON.replace("\"batchWriteCount\": 100", "\"batchWriteCount\": 500");
        assert_eq!(
            error(&too_big, Format::Json),
            "config key `ots-writer.batchWriteCount`: must be between 1 and 200, got 500"
        );
        let misspelt = GUIDE_JSON.replace("\"tunnelName\"", "\"tunelName\"");
        assert_eq!(
            error(&misspelt, Format::Json),
            "config key `ots-reader.tunelName`: is not a known key (did you mean `tunnelName`?); \
             known keys: endpoint, instanceName, tableName, accessId, accessKey, securityToken, \
             tunnelName, tunnelType, startTime, endTime, enableStream"
        );
        let missing = GUIDE_JSON.replace(r#""tunnelName": "t1","#, "");
        assert_eq!(
            error(&missing, Format::Json),
            "config key `ots-reader.tunnelName`: is required"
        );
        let extra = GUIDE_JSON.replace("\"batchWriteCount\"", "\"bogus\": 1, \"batchWriteCount\"");
        assert!(
            error(&extra, Format::Json)
                .starts_with("config key `ots-writer.bogus`: is not a known key; known keys:")
        );
        let bad_time = GUIDE_JSON.replace("2026-11-24 20:00:00", "2026/11/24");
        assert!(
            error(&bad_time, Format::Json)
                .starts_with("config key `ots-reader.endTime`: \"2026/11/24\" is not a time"),
        );
        let bad_endpoint = GUIDE_JSON.replace("https://dst.", "dst.");
        assert!(error(&bad_endpoint, Format::Json).starts_with("config key `ots-writer.endpoint`"));
        let wrong_type = GUIDE_JSON.replace("\"tableName\": \"dst\"", "\"tableName\": 7");
        assert_eq!(
            error(&wrong_type, Format::Json),
            "config key `ots-writer.tableName`: must be a string, got a number"
        );
        assert!(error("{", Format::Json).starts_with("config is not valid JSON"));
        assert_eq!(
            error("{}", Format::Json),
            "config key `ots-reader`: is required"
        );
        assert_eq!(
            error("[]", Format::Json),
            "config key `(root)`: must be an object, got an array"
        );
    }

    #[test]
    fn credentials_come_from_the_environment() {
        let text = GUIDE_JSON
            .replace(r#""accessId": "id1", "accessKey": "key1","#, "")
            .replace(r#""accessId": "id2","#, "");
        assert_eq!(
            error(&text, Format::Json),
            "config key `ots-reader.accessId`: is required"
        );
        let env = |name: &str| match name {
            "OTS_READER_ACCESS_ID" => Some("env-id".to_owned()),
            "OTS_READER_ACCESS_KEY" => Some("env-key".to_owned()),
            "OTS_WRITER_ACCESS_ID" => Some("env-id2".to_owned()),
            "OTS_WRITER_ACCESS_KEY" => Some("env-key2".to_owned()),
            _ => None,
        };
        let config = ReplicatorConfig::parse(&text, Format::Json, env).unwrap();
        assert_eq!(config.source.credentials.access_key_id, "env-id");
        assert_eq!(config.source.credentials.access_key_secret, "env-key");
        assert_eq!(config.destination.credentials.access_key_id, "env-id2");
        assert_eq!(config.destination.credentials.access_key_secret, "env-key2");
    }

    #[test]
    fn toml_form_selects_a_processor_with_options() {
        let text = r#"
            [ots-reader]
            endpoint = "http://127.0.0.1:8800"
            instanceName = "local"
            tableName = "src"
            accessId = "a"
            accessKey = "b"
            tunnelName = "t"
            endTime = "2026-11-24T20:00:00Z"

            [ots-writer]
            endpoint = "http://127.0.0.1:8800"
            instanceName = "local"
            tableName = "dst"
            accessId = "a"
            accessKey = "b"
            batchWriteCount = 50

            [processor]
            name = "rename"
            guest_dir = "/opt/guests"
            options = { columns = { old = "new" } }

            [metrics]
            listen = "127.0.0.1:9898"

            [replicator]
            monitorIntervalSecs = 1
            clientTag = "w1"
        "#;
        let config = ReplicatorConfig::parse(text, Format::Toml, no_env).unwrap();
        assert_eq!(config.batch_write_count, 50);
        assert!(
            !config.enable_stream,
            "set-up leaves the source's stream alone by default"
        );
        let enabling = text.replace(
            "tunnelName = \"t\"",
            "tunnelName = \"t\"\nenableStream = true",
        );
        let enabling = ReplicatorConfig::parse(&enabling, Format::Toml, no_env).unwrap();
        assert!(enabling.enable_stream);
        let bad = text.replace(
            "tunnelName = \"t\"",
            "tunnelName = \"t\"\nenableStream = \"yes\"",
        );
        assert!(error(&bad, Format::Toml).starts_with(
            "config key `ots-reader.enableStream`: must be true or false, got the string \"yes\""
        ));
        assert_eq!(
            config.end_time,
            Some(Utc.with_ymd_and_hms(2026, 11, 24, 20, 0, 0).unwrap())
        );
        assert_eq!(
            config.processors[0].source,
            ProcessorSource::Builtin("rename".into())
        );
        assert_eq!(
            config.processors[0].options,
            serde_json::json!({"columns": {"old": "new"}})
        );
        assert_eq!(
            config.processors[0].guest_dir,
            Some(PathBuf::from("/opt/guests"))
        );
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9898".parse().unwrap())
        );
        assert_eq!(config.tuning.monitor_interval, Duration::from_secs(1));
        assert_eq!(config.tuning.client_tag.as_deref(), Some("w1"));
        assert_eq!(config.tuning.memory_budget, DEFAULT_MEMORY_BUDGET);
        let budgeted = text.replace(
            "clientTag = \"w1\"",
            "clientTag = \"w1\"\nmemoryBudgetMb = 32",
        );
        let budgeted = ReplicatorConfig::parse(&budgeted, Format::Toml, no_env).unwrap();
        assert_eq!(budgeted.tuning.memory_budget, 32 << 20);
        assert_eq!(
            budgeted.tuning.read_budget(),
            2 << 20,
            "a sixteenth, on the wire"
        );
        let unbounded = text.replace(
            "clientTag = \"w1\"",
            "clientTag = \"w1\"\nmemoryBudgetMb = 0",
        );
        assert_eq!(
            error(&unbounded, Format::Toml),
            "config key `replicator.memoryBudgetMb`: must be between 1 and 65536 MiB, got 0"
        );

        assert_eq!(config.processors[0].call_timeout, DEFAULT_CALL_TIMEOUT);
        let limited = text.replace(
            "guest_dir = \"/opt/guests\"",
            "guest_dir = \"/opt/guests\"\ncall_timeout_ms = 250\nmemory_limit_mb = 16\ndead_letter = \"/var/dl.jsonl\"",
        );
        let limited = ReplicatorConfig::parse(&limited, Format::Toml, no_env).unwrap();
        assert_eq!(
            limited.processors[0].call_timeout,
            Duration::from_millis(250)
        );
        assert_eq!(limited.processors[0].memory_limit, 16 << 20);
        assert_eq!(
            limited.processors[0].dead_letter,
            DeadLetter::File(PathBuf::from("/var/dl.jsonl"))
        );
        let camel = text.replace(
            "guest_dir = \"/opt/guests\"",
            "guestDir = \"/opt/g\"\ncallTimeoutMs = 300\nmemoryLimitMb = 8\ndeadLetter = \"/var/x.jsonl\"",
        );
        let camel = ReplicatorConfig::parse(&camel, Format::Toml, no_env).unwrap();
        assert_eq!(camel.processors[0].guest_dir, Some(PathBuf::from("/opt/g")));
        assert_eq!(camel.processors[0].call_timeout, Duration::from_millis(300));
        assert_eq!(camel.processors[0].memory_limit, 8 << 20);
        assert_eq!(
            camel.processors[0].dead_letter,
            DeadLetter::File(PathBuf::from("/var/x.jsonl"))
        );
        assert_eq!(
            config.processors[0].dead_letter,
            DeadLetter::Table(DEFAULT_DEAD_LETTER_TABLE.into()),
            "skipped records go to a table every worker reaches unless told"
        );
        let table = text.replace(
            "guest_dir = \"/opt/guests\"",
            "deadLetterTable = \"skipped\"",
        );
        assert_eq!(
            ReplicatorConfig::parse(&table, Format::Toml, no_env)
                .unwrap()
                .processors[0]
                .dead_letter,
            DeadLetter::Table("skipped".into())
        );
        let both_sinks = text.replace(
            "guest_dir = \"/opt/guests\"",
            "deadLetterTable = \"skipped\"\ndeadLetter = \"x.jsonl\"",
        );
        assert!(error(&both_sinks, Format::Toml).starts_with(
            "config key `processor.deadLetterTable`: set either `deadLetter` (a file) or `deadLetterTable`, not both"
        ));
        let both = text.replace(
            "guest_dir = \"/opt/guests\"",
            "guest_dir = \"/a\"\nguestDir = \"/b\"",
        );
        assert!(error(&both, Format::Toml).starts_with(
            "config key `processor.guest_dir`: is the earlier spelling of `guestDir`; set only one of them"
        ));
        let zero = text.replace("guest_dir = \"/opt/guests\"", "memory_limit_mb = 0");
        assert!(error(&zero, Format::Toml).starts_with(
            "config key `processor.memory_limit_mb`: must be between 1 and 4096 MiB, got 0"
        ));

        let unknown = text.replace("name = \"rename\"", "name = \"upper\"");
        assert!(error(&unknown, Format::Toml).starts_with(
            "config key `processor.name`: unknown processor \"upper\"; expected one of"
        ));
        let bad_listen = text.replace("127.0.0.1:9898", "localhost");
        assert!(error(&bad_listen, Format::Toml).starts_with("config key `metrics.listen`"));
        assert!(error("[x", Format::Toml).starts_with("config is not valid TOML"));
    }

    #[test]
    fn tenants_have_rules_with_their_own_chains_and_destinations() {
        let head = GUIDE_JSON.trim_end().trim_end_matches('}');
        let text = format!(
            r#"{head}, "tenants": {{"keyColumn": "tenant", "rules": [
                {{"name": "acme", "exact": "acme", "destination": "acme_copy",
                  "processors": [{{"name": "filter", "memoryLimitMb": 8}}]}},
                {{"name": "eu", "prefix": "eu-"}}]}}}}"#
        );
        let config = ReplicatorConfig::parse(&text, Format::Json, no_env).unwrap();
        let tenants = config.tenants.unwrap();
        assert_eq!(tenants.key_column, "tenant");
        assert_eq!(tenants.backlog_table, DEFAULT_BACKLOG_TABLE);
        assert_eq!(tenants.rules[0].matcher, TenantMatch::Exact("acme".into()));
        assert_eq!(tenants.rules[0].destination.as_deref(), Some("acme_copy"));
        let chain = tenants.rules[0].processors.as_ref().unwrap();
        assert_eq!(chain[0].section, "tenants.rules[0].processors[0]");
        assert_eq!(chain[0].memory_limit, 8 << 20);
        assert_eq!(tenants.rules[1].matcher, TenantMatch::Prefix("eu-".into()));
        assert!(
            tenants.rules[1].processors.is_none(),
            "the replication's chain"
        );

        let rules =
            |rules: &str| format!(r#"{head}, "tenants": {{"keyColumn": "t", "rules": {rules}}}}}"#);
        for (list, problem) in [
            ("[]", "`tenants.rules`: must list at least one rule"),
            (
                r#"[{"name": "a"}]"#,
                "`tenants.rules[0].exact`: set exactly one of `exact`",
            ),
            (
                r#"[{"name": "a", "exact": "x", "prefix": "y"}]"#,
                "`tenants.rules[0].exact`: set exactly one",
            ),
            (
                r#"[{"name": "default", "exact": "x"}]"#,
                "`tenants.rules[0].name`: \"default\" is taken",
            ),
            (
                r#"[{"name": "a", "exact": "x"}, {"name": "a", "prefix": "y"}]"#,
                "`tenants.rules[1].name`: \"a\" is taken",
            ),
            (
                r#"[{"name": "a b", "exact": "x"}]"#,
                "`tenants.rules[0].name`: \"a b\" is not a tenant name",
            ),
            (
                r#"[{"name": "a", "exact": "x", "processors": []}]"#,
                "`tenants.rules[0].processors`: must be a non-empty array",
            ),
            (
                r#"[{"name": "a", "exact": "x", "chain": []}]"#,
                "`tenants.rules[0].chain`: is not a known key",
            ),
        ] {
            let message = error(&rules(list), Format::Json);
            assert!(
                message.starts_with(&format!("config key {problem}")),
                "{message}"
            );
        }
        let no_key =
            format!(r#"{head}, "tenants": {{"rules": [{{"name": "a", "exact": "x"}}]}}}}"#);
        assert!(
            error(&no_key, Format::Json).starts_with("config key `tenants.keyColumn`: is required")
        );
    }

    #[test]
    fn a_chain_of_processors_runs_in_the_order_listed() {
        let head = GUIDE_JSON.trim_end().trim_end_matches('}');
        let chain = format!(
            r#"{head}, "processors": [
                {{"name": "filter", "options": {{"exclude_columns": ["secret"]}}, "callTimeoutMs": 50}},
                {{"file": "mask.wasm", "memoryLimitMb": 8}},
                {{"name": "rename", "options": {{"columns": {{"a": "b"}}}}}}
            ]}}"#
        );
        let config = ReplicatorConfig::parse(&chain, Format::Json, no_env).unwrap();
        let sections: Vec<String> = config.processors.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            sections,
            [
                "`processors[0].name` = \"filter\"",
                "`processors[1].file` = \"mask.wasm\"",
                "`processors[2].name` = \"rename\"",
            ]
        );
        assert_eq!(config.processors[0].call_timeout, Duration::from_millis(50));
        assert_eq!(config.processors[1].memory_limit, 8 << 20);
        assert_eq!(
            config.processors[1].call_timeout, DEFAULT_CALL_TIMEOUT,
            "each processor has its own limits"
        );
        assert_eq!(
            config.processors[2].options,
            serde_json::json!({"columns": {"a": "b"}})
        );

        let one = format!(r#"{head}, "processor": {{"name": "filter"}}}}"#);
        let one = ReplicatorConfig::parse(&one, Format::Json, no_env).unwrap();
        assert_eq!(one.processors.len(), 1);
        assert_eq!(
            one.processors[0].to_string(),
            "`processor.name` = \"filter\""
        );

        let both = format!(
            r#"{head}, "processor": {{"name": "filter"}}, "processors": [{{"name": "rename"}}]}}"#
        );
        assert!(
            error(&both, Format::Json)
                .starts_with("config key `processors`: set either `processor` (one guest) or")
        );
        let empty = format!(r#"{head}, "processors": []}}"#);
        assert!(
            error(&empty, Format::Json)
                .starts_with("config key `processors`: must list at least one processor")
        );
        let not_a_list = format!(r#"{head}, "processors": {{"name": "filter"}}}}"#);
        assert!(error(&not_a_list, Format::Json).starts_with(
            "config key `processors`: must be an array of processor tables ([[processors]] in TOML), got an object"
        ));
        let routed = format!(
            r#"{head}, "processor": {{"name": "route", "tables": ["audit", "archive"]}}}}"#
        );
        let routed = ReplicatorConfig::parse(&routed, Format::Json, no_env).unwrap();
        assert_eq!(routed.processors[0].tables, ["audit", "archive"]);
        for (tables, problem) in [
            (
                r#""audit""#,
                "`processor.tables`: must be a list of strings, got a string",
            ),
            (
                r#"["a", "a"]"#,
                "`processor.tables[1]`: \"a\" is listed twice",
            ),
            (
                r#"["a", 3]"#,
                "`processor.tables[1]`: must be a string, got a number",
            ),
            (r#"[" "]"#, "`processor.tables[0]`: must not be empty"),
        ] {
            let text = format!(r#"{head}, "processor": {{"tables": {tables}}}}}"#);
            let message = error(&text, Format::Json);
            assert!(
                message.starts_with(&format!("config key {problem}")),
                "{message}"
            );
        }
        let typo = chain.replace("memoryLimitMb", "memoryLimit");
        assert!(
            error(&typo, Format::Json).starts_with(
                "config key `processors[1].memoryLimit`: is not a known key (did you mean `memoryLimitMb`?)"
            ),
            "{}",
            error(&typo, Format::Json)
        );

        let toml = r#"
            [ots-reader]
            endpoint = "http://127.0.0.1:8800"
            instanceName = "local"
            tableName = "src"
            accessId = "a"
            accessKey = "b"
            tunnelName = "t"

            [ots-writer]
            endpoint = "http://127.0.0.1:8800"
            instanceName = "local"
            tableName = "dst"
            accessId = "a"
            accessKey = "b"

            [[processors]]
            name = "filter"

            [[processors]]
            name = "rename"
        "#;
        let config = ReplicatorConfig::parse(toml, Format::Toml, no_env).unwrap();
        let sources: Vec<&ProcessorSource> = config.processors.iter().map(|p| &p.source).collect();
        assert_eq!(
            sources,
            [
                &ProcessorSource::Builtin("filter".into()),
                &ProcessorSource::Builtin("rename".into())
            ]
        );
    }

    #[test]
    fn every_example_config_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let format = match path.extension().and_then(|e| e.to_str()) {
                Some("json") => Format::Json,
                Some("toml") => Format::Toml,
                _ => continue,
            };
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(e) = ReplicatorConfig::parse(&text, format, no_env) {
                panic!("{}: {e}", path.display());
            }
            checked += 1;
        }
        assert!(checked >= 2, "the examples directory holds configs");
    }
}
