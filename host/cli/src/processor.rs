//! `otsrep processor`, the guest dev kit on the command line:
//! - `new`: a guest crate outside this repository, with its own SDK and WIT copies;
//! - `build`: that crate built for wasm32 and turned into a component;
//! - `test`: one guest over records from a JSON-lines file or sampled from a live source
//!   table, printing what it made of them, or comparing that with an expected-output file
//!   (exit code 2 on a difference), so guest authors can test in their CI.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use ots_client::rows::{RangeQuery, ReadOptions};
use ots_guest_kit::toolchain::{self, Toolchain};
use ots_guest_kit::{check, scaffold};
use ots_protocol::json;
use ots_protocol::model::RowChange;
use ots_protocol::record::TunnelRecord;
use ots_replicator::config::{ProcessorConfig, ProcessorSource, ReplicatorConfig};

/// What `otsrep processor` does.
#[derive(Debug, Subcommand)]
pub enum ProcessorCommand {
    /// Create a guest crate (its own SDK and WIT copies included) in a new directory.
    New(NewArgs),
    /// Build a guest crate into a component, `NAME.wasm` in the crate's directory.
    Build(BuildArgs),
    /// Run a guest over records and print the row changes and errors it produced.
    Test(TestArgs),
}

/// Arguments of `processor new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The guest's crate name: lowercase letters, digits, `-` and `_`.
    name: String,
    /// The directory to create it in.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

/// Arguments of `processor build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The guest crate's directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Where to write the component (default: `NAME.wasm` in the crate's directory).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Arguments of `processor test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// A built-in guest (`replicate`, `filter`, `rename`, `route`).
    #[arg(long, conflicts_with = "file")]
    name: Option<String>,
    /// A component file of your own.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The options handed to the guest's init, a JSON object.
    #[arg(long, default_value = "{}")]
    options: String,
    /// A table the guest may route row changes to (the processor config's `tables`); repeat
    /// for several.
    #[arg(long = "route-to", value_name = "TABLE")]
    tables: Vec<String>,
    /// Records to run, one JSON object per line (`-` for standard input); the format is in
    /// docs/guests.md.
    #[arg(
        long,
        required_unless_present = "sample_from",
        conflicts_with = "sample_from"
    )]
    records: Option<PathBuf>,
    /// Instead of a file: read the first `--rows` rows of this config's source table (as
    /// full-data records).
    #[arg(long)]
    sample_from: Option<PathBuf>,
    /// How many rows `--sample-from` reads.
    #[arg(long, default_value_t = 10, requires = "sample_from")]
    rows: usize,
    /// The source table's name the guest sees (with `--sample-from`, the config's).
    #[arg(long, default_value = "source", conflicts_with = "sample_from")]
    table: String,
    /// Compare the output with this file's lines instead of printing it; exit 2 on a
    /// difference.
    #[arg(long)]
    expect: Option<PathBuf>,
}

/// Runs `otsrep processor ...`.
pub async fn processor(command: ProcessorCommand) -> anyhow::Result<ExitCode> {
    match command {
        ProcessorCommand::New(args) => {
            let dir = scaffold::scaffold(&args.dir, &args.name)?;
            println!(
                "created the guest {} in {}; build it with `otsrep processor build {}`",
                args.name,
                dir.display(),
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        ProcessorCommand::Build(args) => {
            build(args)?;
            Ok(ExitCode::SUCCESS)
        }
        ProcessorCommand::Test(args) => test(args).await,
    }
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("opening the guest crate {}", args.dir.display()))?;
    let manifest_path = dir.join("Cargo.toml");
    let manifest: toml::Table = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?
        .parse()
        .with_context(|| format!("{} is not valid TOML", manifest_path.display()))?;
    let Some(name) = manifest
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
    else {
        bail!("{} has no package.name", manifest_path.display());
    };
    let toolchain = Toolchain::detect()?;
    eprintln!("building {name} with {}", toolchain.description);
    let target_dir = dir.join("target");
    toolchain.build(&dir, &target_dir, false)?;
    let component = toolchain::componentize(&toolchain::module_path(&target_dir, name))?;
    let out = args.out.unwrap_or_else(|| dir.join(format!("{name}.wasm")));
    std::fs::write(&out, &component).with_context(|| format!("writing {}", out.display()))?;
    println!("{}: {} bytes", out.display(), component.len());
    Ok(())
}

async fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let options: serde_json::Value =
        serde_json::from_str(&args.options).context("--options is not JSON")?;
    if !options.is_object() {
        bail!("--options must be a JSON object, got {options}");
    }
    let config = ProcessorConfig {
        source: match (args.name, args.file) {
            (_, Some(file)) => ProcessorSource::File(file),
            (Some(name), None) => ProcessorSource::Builtin(name),
            (None, None) => ProcessorSource::Builtin("replicate".into()),
        },
        options,
        tables: args.tables.clone(),
        ..ProcessorConfig::default()
    };
    let (table, records) = match (&args.records, &args.sample_from) {
        (Some(path), _) => (args.table.clone(), read_records(path)?),
        (None, Some(config)) => sample(config, args.rows).await?,
        (None, None) => bail!("give --records FILE or --sample-from CONFIG"),
    };
    let description = match &config.source {
        ProcessorSource::Builtin(name) => format!("the built-in guest {name:?}"),
        ProcessorSource::File(file) => format!("the guest {}", file.display()),
    };
    let sandbox = ots_replicator::processor::load_sandbox(&config)
        .with_context(|| format!("loading {description}"))?;
    let (lines, note) = check::run(&sandbox, &table, &records);
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    match args.expect {
        None => {
            let mut out = std::io::stdout().lock();
            for line in &lines {
                writeln!(out, "{line}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(path) => {
            let expected = read_lines(&path, |line| {
                serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))
            })?;
            let differences = check::differences(&lines, &expected);
            for difference in &differences {
                eprintln!("{}: {difference}", path.display());
            }
            if differences.is_empty() {
                eprintln!(
                    "{} records gave the {} expected lines of {}",
                    records.len(),
                    expected.len(),
                    path.display()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "{} of {} lines differ from {}",
                    differences.len(),
                    lines.len().max(expected.len()),
                    path.display()
                );
                Ok(ExitCode::from(2))
            }
        }
    }
}

fn read_records(path: &Path) -> anyhow::Result<Vec<TunnelRecord>> {
    read_lines(path, json::parse_record)
}

/// Parses each non-blank line of `path` (`-`: standard input); an error names the line.
fn read_lines<T>(path: &Path, parse: impl Fn(&str) -> Result<T, String>) -> anyhow::Result<Vec<T>> {
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        ))
    };
    let mut items = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let item =
            parse(&line).map_err(|e| anyhow::anyhow!("{}, line {}: {e}", path.display(), n + 1))?;
        items.push(item);
    }
    Ok(items)
}

/// The first `rows` rows of the config's source table, as full-data records.
async fn sample(config: &Path, rows: usize) -> anyhow::Result<(String, Vec<TunnelRecord>)> {
    let config = ReplicatorConfig::load(config)
        .with_context(|| format!("invalid config {}", config.display()))?;
    let table = config.source.table_name.clone();
    let client = config.source.client().context("source client")?;
    let description = client
        .describe_table(&table)
        .await
        .with_context(|| format!("describing the source table {table}"))?;
    let rows = client
        .get_range(RangeQuery {
            limit: Some(rows),
            ..RangeQuery::whole_table(&description.table_meta, ReadOptions::default())
        })
        .collect_all()
        .await
        .with_context(|| format!("reading rows of {table}"))?;
    let records = rows
        .into_iter()
        .map(|row| TunnelRecord {
            change: RowChange::Put {
                primary_key: row.primary_key,
                cells: row.cells,
            },
            sequence_info: None,
        })
        .collect();
    Ok((table, records))
}
