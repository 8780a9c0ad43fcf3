//! The sandbox proper: a compiled guest, a pool of its instances, and the call discipline
//! (deadline, memory limit, replacement after a trap, validation, hot swap).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ots_protocol::model::{PrimaryKeyValue, RowChange};
use ots_protocol::record::TunnelRecord;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{ResourceLimiter, Store, Trap};

use crate::bindings::{self as wit, v0_2, v0_3};
use crate::convert::{self, Reads};
use crate::engine::{engine, ticks};
use crate::error::{SandboxError, SandboxErrorKind};
use crate::source::{GuestSource, Stamp};
use crate::wasi;

/// The limits every guest call runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long one call (`init` or `process`) may run.
    pub call_timeout: Duration,
    /// The most linear memory an instance may have.
    pub memory_bytes: usize,
    /// Log messages kept per call; the rest are counted and reported once.
    pub log_messages_per_call: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(10),
            memory_bytes: 64 << 20,
            log_messages_per_call: 100,
        }
    }
}

/// The result of processing a batch of records.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed<'a> {
    /// The row changes to write, in record order. A record the guest kept as it came is
    /// borrowed from the batch, so its cells are not copied to be written.
    pub changes: Vec<Cow<'a, RowChange>>,
    /// For each change, the index in the batch of the record it came from.
    pub origins: Vec<usize>,
    /// For each change, the table the guest routed it to (one of the sandbox's
    /// [`tables`](Sandbox::route_to)), or `None` for the replication's destination.
    pub tables: Vec<Option<Arc<str>>>,
    /// Records the guest asked to set aside, for the dead-letter sink.
    pub skipped: Vec<Skipped>,
}

/// A record the guest skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// Its index in the batch.
    pub index: usize,
    /// The guest's reason.
    pub message: String,
}

/// The share of the memory limit past which an instance is replaced after its call.
const RECYCLE_AT: f64 = 0.75;

/// How many of the last lines a guest wrote to stderr a trap's message carries.
const STDERR_TAIL_LINES: usize = 20;

/// Per-instance host state: the memory limiter, the log budget and WASI's (empty) context.
struct HostState {
    guest: Arc<str>,
    memory_bytes: usize,
    memory_denied: bool,
    /// The most linear memory the instance has grown to.
    memory_peak: usize,
    logs_left: u32,
    logs_dropped: u64,
    wasi: wasi::GuestWasi,
}

impl HostState {
    /// Logs `message` if the call's budget allows, or counts it.
    fn log(&mut self, level: wit::LogLevel, message: &str) {
        if self.logs_left == 0 {
            self.logs_dropped += 1;
            return;
        }
        self.logs_left -= 1;
        let guest = &*self.guest;
        match level {
            wit::LogLevel::Debug => tracing::debug!(guest, "{message}"),
            wit::LogLevel::Info => tracing::info!(guest, "{message}"),
            wit::LogLevel::Warn => tracing::warn!(guest, "{message}"),
            wit::LogLevel::Error => tracing::error!(guest, "{message}"),
        }
    }

    /// Logs what the guest printed in the call, and returns the last lines of its stderr: a
    /// Python traceback or a JavaScript exception, which a trap's message then carries.
    fn log_printed(&mut self) -> Option<String> {
        let (stdout, stderr, dropped) = self.wasi.take_printed();
        for line in stdout {
            self.log(wit::LogLevel::Info, &line);
        }
        let tail = stderr[stderr.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
        for line in stderr {
            self.log(wit::LogLevel::Warn, &line);
        }
        if dropped > 0 {
            tracing::warn!(guest = %self.guest, bytes = dropped, "guest output over the limit was dropped");
        }
        (!tail.is_empty()).then_some(tail)
    }
}

impl wasmtime_wasi::WasiView for HostState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        self.wasi.view()
    }
}

impl wasi::HasWasi for HostState {
    fn bounded_clock(&mut self) -> wasi::BoundedClockView<'_> {
        self.wasi.bounded_clock()
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_denied = true;
            return Ok(false);
        }
        self.memory_peak = self.memory_peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl v0_3::ProcessorImports for HostState {
    fn log(&mut self, level: wit::LogLevel, message: String) {
        HostState::log(self, level, &message);
    }
}

impl v0_3::ots::processor::types::Host for HostState {}

/// One compiled version of the guest.
struct Loaded {
    generation: u64,
    component: Component,
    reads: Reads,
    stamp: Stamp,
}

/// A live instance of one version.
struct Instance {
    generation: u64,
    store: Store<HostState>,
    processor: Bindings,
    /// Whether the guest imports WASI, whose blocking calls need a thread outside any Tokio
    /// runtime.
    wasi: bool,
}

/// An instance's exports, by the WIT version the guest was built against.
enum Bindings {
    V0_3(v0_3::Processor),
    V0_2(v0_2::Processor),
}

impl Bindings {
    fn call_init(
        &self,
        store: &mut Store<HostState>,
        options: &str,
    ) -> wasmtime::Result<Result<wit::ProcessorInfo, String>> {
        match self {
            Self::V0_3(p) => p.call_init(store, options),
            Self::V0_2(p) => p.call_init(store, options),
        }
    }

    fn call_process(
        &self,
        store: &mut Store<HostState>,
        batch: &wit::Batch,
    ) -> wasmtime::Result<Result<wit::RoutedOutput, wit::ProcessorError>> {
        match self {
            Self::V0_3(p) => p.call_process(store, batch),
            Self::V0_2(p) => Ok(p.call_process(store, batch)?.map(wit::into_routed)),
        }
    }
}

/// What compiles, instantiates and calls one guest.
struct Runtime {
    name: Arc<str>,
    source: GuestSource,
    options: String,
    limits: Limits,
    linker: Linker<HostState>,
    generations: AtomicU64,
}

/// The WIT version a component was built against, from the `types` interface it imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WitVersion {
    V0_3,
    V0_2,
}

/// What a component imports, once checked: its WIT version and whether it links WASI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Imports {
    version: WitVersion,
    wasi: bool,
}

/// A guest processor, ready to process batches from any number of threads.
pub struct Sandbox {
    runtime: Runtime,
    target_table: Option<String>,
    /// The tables the guest may route changes to.
    tables: Vec<Arc<str>>,
    current: RwLock<Arc<Loaded>>,
    /// The stamp of a file version that failed to load, so it is not retried every batch.
    rejected: Mutex<Stamp>,
    pool: Mutex<Vec<Instance>>,
}

impl Sandbox {
    /// Compiles the guest from `source`, instantiates it and runs its `init` with `options`
    /// (a JSON object), so that a bad guest or bad options fail here.
    pub fn load(
        source: GuestSource,
        options: &serde_json::Value,
        limits: Limits,
    ) -> Result<Self, SandboxError> {
        let name: Arc<str> = source.name().into();
        let mut linker = Linker::new(engine());
        // One linker serves guests of both versions: the `log` import is the same function,
        // and 0.2.0's `types` interface holds only types.
        v0_3::Processor::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .and_then(|()| linker.instance(wit::TYPES_V0_2).map(drop))
            .and_then(|()| wasi::add_to_linker(&mut linker))
            .map_err(|e| error(&name, SandboxErrorKind::Load(format!("{e:#}")), None))?;
        let runtime = Runtime {
            name,
            source,
            options: options.to_string(),
            limits,
            linker,
            generations: AtomicU64::new(0),
        };
        let (loaded, instance, info) = runtime.compile()?;
        Ok(Self {
            runtime,
            target_table: info.target_table,
            tables: Vec::new(),
            current: RwLock::new(Arc::new(loaded)),
            rejected: Mutex::new(None),
            pool: Mutex::new(vec![instance]),
        })
    }

    /// The guest's name (a built-in's name or the file name).
    pub fn name(&self) -> &str {
        &self.runtime.name
    }

    /// The table the guest asked to write to instead of the configured one.
    pub fn target_table(&self) -> Option<&str> {
        self.target_table.as_deref()
    }

    /// The guest's component bytes as they are now (a file is read again): what tells
    /// processes that the guest was replaced, before a batch swaps it in.
    pub fn source_bytes(&self) -> std::io::Result<Vec<u8>> {
        self.runtime.source.read()
    }

    /// Lets the guest route row changes to `tables` (besides the replication's destination);
    /// a change routed to any other table is invalid output.
    pub fn route_to(mut self, tables: impl IntoIterator<Item = String>) -> Self {
        self.tables = tables.into_iter().map(Arc::from).collect();
        self
    }

    /// Runs the guest over `records` of `table` and returns the validated row changes. A failed
    /// batch leaves nothing behind: the caller must not write or checkpoint any of it.
    pub fn process<'a>(
        &self,
        table: &str,
        records: &'a [TunnelRecord],
    ) -> Result<Processed<'a>, SandboxError> {
        self.swap_if_changed();
        let loaded = self
            .current
            .read()
            .map(|l| l.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        let mut remaining: Vec<usize> = (0..records.len()).collect();
        let mut skipped = Vec::new();
        loop {
            let batch_records: Cow<'_, [TunnelRecord]> = if skipped.is_empty() {
                Cow::Borrowed(records)
            } else {
                Cow::Owned(remaining.iter().map(|&i| records[i].clone()).collect())
            };
            let describe = |i: Option<usize>| match i.and_then(|i| remaining.get(i)) {
                Some(&original) => Some(describe_record(original, &records[original])),
                None => describe_batch(&batch_records),
            };
            let batch =
                convert::lower(table, &batch_records, &loaded.reads).map_err(|(i, m)| {
                    self.runtime.error(
                        SandboxErrorKind::InvalidOutput(format!("cannot pass record: {m}")),
                        describe(i),
                    )
                })?;
            let mut instance = self.instance(&loaded)?;
            let result = self
                .runtime
                .call(&mut instance, |p, store| p.call_process(store, &batch));
            let output = match result {
                Err(kind) => return Err(self.runtime.error(kind, describe(None))),
                Ok(output) => output,
            };
            match output {
                Ok(output) => {
                    let lifted = convert::lift(&batch_records, &batch, output, &self.tables);
                    self.put_back(instance);
                    let lifted = lifted.map_err(|(i, m)| {
                        self.runtime
                            .error(SandboxErrorKind::InvalidOutput(m), describe(i))
                    })?;
                    let mut processed = Processed {
                        changes: Vec::with_capacity(lifted.len()),
                        origins: Vec::with_capacity(lifted.len()),
                        tables: Vec::with_capacity(lifted.len()),
                        skipped,
                    };
                    for change in lifted {
                        let origin = if processed.skipped.is_empty() {
                            change.origin
                        } else {
                            remaining[change.origin]
                        };
                        processed.origins.push(origin);
                        processed.tables.push(change.table);
                        processed.changes.push(match change.change {
                            // A kept record's own change, borrowed from `batch_records`, which
                            // may be a copy: borrow the caller's record instead.
                            Cow::Borrowed(_) => Cow::Borrowed(&records[origin].change),
                            Cow::Owned(change) => Cow::Owned(change),
                        });
                    }
                    return Ok(processed);
                }
                Err(failure) => {
                    self.put_back(instance);
                    let index = failure.record.map(|i| i as usize);
                    match (failure.action, index) {
                        (wit::FailureAction::Skip, Some(i)) if i < remaining.len() => {
                            skipped.push(Skipped {
                                index: remaining.remove(i),
                                message: failure.message,
                            });
                            if remaining.is_empty() {
                                return Ok(Processed {
                                    changes: Vec::new(),
                                    origins: Vec::new(),
                                    tables: Vec::new(),
                                    skipped,
                                });
                            }
                        }
                        (action, _) => {
                            let message = match action {
                                wit::FailureAction::Skip => format!(
                                    "{} (asked to skip without naming a record of the batch)",
                                    failure.message
                                ),
                                _ => failure.message,
                            };
                            let retry = action == wit::FailureAction::Retry;
                            return Err(self.runtime.error(
                                SandboxErrorKind::Failed { message, retry },
                                describe(index),
                            ));
                        }
                    }
                }
            }
        }
    }

    /// Swaps in a changed guest file, at this batch boundary. A version that fails to load is
    /// reported once and the running one is kept.
    fn swap_if_changed(&self) {
        let Ok(stamp) = self.runtime.source.stamp() else {
            return;
        };
        let current = self.current.read().map(|l| l.stamp).unwrap_or(None);
        if stamp.is_none() || stamp == current {
            return;
        }
        {
            let mut rejected = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
            if *rejected == stamp {
                return;
            }
            *rejected = stamp;
        }
        match self.runtime.compile() {
            Ok((loaded, instance, info)) if info.target_table == self.target_table => {
                tracing::info!(guest = %self.runtime.name, generation = loaded.generation, "guest file changed; the new version takes over at this batch");
                if let Ok(mut current) = self.current.write() {
                    *current = Arc::new(loaded);
                }
                self.put_back(instance);
            }
            Ok(_) => tracing::error!(
                guest = %self.runtime.name,
                "the changed guest asks for another target table; keeping the running version (restart to change tables)"
            ),
            Err(e) => {
                tracing::error!(guest = %self.runtime.name, "the changed guest file cannot be used; keeping the running version: {e}")
            }
        }
    }

    fn instance(&self, loaded: &Loaded) -> Result<Instance, SandboxError> {
        let pooled = {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            pool.retain(|i| i.generation >= loaded.generation);
            pool.pop()
        };
        if let Some(instance) = pooled {
            return Ok(instance);
        }
        let mut instance = self
            .runtime
            .instantiate(&loaded.component, loaded.generation)?;
        let options = self.runtime.options.clone();
        self.runtime
            .call(&mut instance, |p, store| p.call_init(store, &options))
            .map_err(|k| self.runtime.error(k, None))?
            .map_err(|m| self.runtime.error(SandboxErrorKind::Init(m), None))?;
        Ok(instance)
    }

    /// Returns an instance to the pool after a successful call, unless its memory has grown
    /// past [`RECYCLE_AT`] of the limit: a garbage-collected runtime (JavaScript's) may only
    /// collect when its heap is large, and linear memory never shrinks, so an instance left to
    /// grow would hit the limit on a batch it could have processed. The next batch gets a
    /// fresh one, initialised with the same options.
    fn put_back(&self, instance: Instance) {
        let state = instance.store.data();
        if state.memory_peak as f64 > state.memory_bytes as f64 * RECYCLE_AT {
            tracing::debug!(guest = %self.runtime.name, peak = state.memory_peak, "instance replaced: its memory is near the limit");
            return;
        }
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(instance);
    }
}

impl Runtime {
    /// Compiles the current file, instantiates it and runs `init`.
    fn compile(&self) -> Result<(Loaded, Instance, wit::ProcessorInfo), SandboxError> {
        let load_error = |m: String| self.error(SandboxErrorKind::Load(m), None);
        let stamp = self.source.stamp().map_err(|e| load_error(e.to_string()))?;
        let bytes = self.source.read().map_err(|e| load_error(e.to_string()))?;
        let component = crate::engine::compile(&bytes).map_err(|e| load_error(format!("{e:#}")))?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let mut instance = self.instantiate(&component, generation)?;
        let options = self.options.clone();
        let info = self
            .call(&mut instance, |p, store| p.call_init(store, &options))
            .map_err(|k| self.error(k, None))?
            .map_err(|m| self.error(SandboxErrorKind::Init(m), None))?;
        let reads = Reads::from(&info.interest);
        Ok((
            Loaded {
                generation,
                component,
                reads,
                stamp,
            },
            instance,
            info,
        ))
    }

    fn instantiate(
        &self,
        component: &Component,
        generation: u64,
    ) -> Result<Instance, SandboxError> {
        let mut store = Store::new(
            engine(),
            HostState {
                guest: self.name.clone(),
                memory_bytes: self.limits.memory_bytes,
                memory_denied: false,
                memory_peak: 0,
                logs_left: 0,
                logs_dropped: 0,
                wasi: wasi::GuestWasi::new(),
            },
        );
        store.limiter(|state| state);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks(self.limits.call_timeout));
        let load_error =
            |e: wasmtime::Error| self.error(SandboxErrorKind::Load(format!("{e:#}")), None);
        let imports =
            check_imports(component).map_err(|m| self.error(SandboxErrorKind::Load(m), None))?;
        let processor = match imports.version {
            WitVersion::V0_3 => Bindings::V0_3(
                v0_3::Processor::instantiate(&mut store, component, &self.linker)
                    .map_err(load_error)?,
            ),
            WitVersion::V0_2 => Bindings::V0_2(
                v0_2::Processor::instantiate(&mut store, component, &self.linker)
                    .map_err(load_error)?,
            ),
        };
        Ok(Instance {
            generation,
            store,
            processor,
            wasi: imports.wasi,
        })
    }

    /// Calls into the guest under the deadline and the log budget. A trap consumes the
    /// instance's usefulness: the caller drops it (it is not put back).
    fn call<R: Send>(
        &self,
        instance: &mut Instance,
        f: impl FnOnce(&Bindings, &mut Store<HostState>) -> wasmtime::Result<R> + Send,
    ) -> Result<R, SandboxErrorKind> {
        let store = &mut instance.store;
        store.set_epoch_deadline(ticks(self.limits.call_timeout));
        store.data_mut().logs_left = self.limits.log_messages_per_call;
        store.data_mut().wasi.start_call(self.limits.call_timeout);
        let processor = &instance.processor;
        // WASI's blocking calls (a print, a sleep) block on a Tokio runtime of their own, which
        // cannot be entered from a runtime's thread: such a guest's call gets a thread of its own.
        let result = if instance.wasi && tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|scope| {
                scope
                    .spawn(|| f(processor, store))
                    .join()
                    .unwrap_or_else(|_| {
                        Err(wasmtime::format_err!("a host call of the guest panicked"))
                    })
            })
        } else {
            f(processor, store)
        };
        let state = store.data_mut();
        let stderr = state.log_printed();
        let result = if state.wasi.waited_past_deadline() {
            result.and_then(|_| Err(wasmtime::Error::from(Trap::Interrupt)))
        } else {
            result
        };
        if state.logs_dropped > 0 {
            tracing::warn!(guest = %self.name, dropped = state.logs_dropped, "guest log messages over the limit were dropped");
            state.logs_dropped = 0;
        }
        result
            .map_err(|e| {
                if state.memory_denied {
                    SandboxErrorKind::MemoryLimit {
                        bytes: self.limits.memory_bytes,
                    }
                } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                    SandboxErrorKind::Timeout {
                        millis: self.limits.call_timeout.as_millis(),
                    }
                } else if let Some(stderr) = stderr {
                    SandboxErrorKind::Trap(format!("{e:#}\nits stderr ended with:\n{stderr}"))
                } else {
                    SandboxErrorKind::Trap(format!("{e:#}"))
                }
            })
            .map_err(|kind| {
                tracing::warn!(guest = %self.name, "instance discarded after: {kind}");
                kind
            })
    }

    fn error(&self, kind: SandboxErrorKind, record: Option<String>) -> SandboxError {
        error(&self.name, kind, record)
    }
}

/// Checks what `component` imports: the `ots:processor/types` interface names the WIT version
/// it was built against, and anything besides that, `log` and the WASI the sandbox provides is
/// refused, by name.
fn check_imports(component: &Component) -> Result<Imports, String> {
    let imports: Vec<String> = component
        .component_type()
        .imports(engine())
        .map(|(name, _)| name.to_owned())
        .collect();
    let version = if imports.iter().any(|i| i == wit::TYPES_V0_3) {
        WitVersion::V0_3
    } else if imports.iter().any(|i| i == wit::TYPES_V0_2) {
        WitVersion::V0_2
    } else {
        return Err(format!(
            "it is not an ots:processor guest of a version this host runs (0.3.0 or 0.2.0): it imports {}",
            if imports.is_empty() {
                "nothing".to_owned()
            } else {
                imports.join(", ")
            }
        ));
    };
    let refused: Vec<&str> = imports
        .iter()
        .map(String::as_str)
        .filter(|i| {
            !(*i == "log" || *i == wit::TYPES_V0_3 || *i == wit::TYPES_V0_2 || wasi::provides(i))
        })
        .collect();
    if !refused.is_empty() {
        return Err(format!(
            "it imports {}, which the sandbox does not provide (a guest gets `log` and WASI 0.2's io, clocks, random, cli, filesystem and sockets, which grant nothing; a JavaScript guest is built with `componentize-js --disable http fetch-event`)",
            refused.join(", ")
        ));
    }
    Ok(Imports {
        version,
        wasi: imports.iter().any(|i| wasi::is_wasi(i)),
    })
}

fn error(guest: &str, kind: SandboxErrorKind, record: Option<String>) -> SandboxError {
    SandboxError {
        guest: guest.to_owned(),
        kind,
        record,
    }
}

fn describe_record(index: usize, record: &TunnelRecord) -> String {
    format!("record {index} of the batch, key {}", key_text(record))
}

fn describe_batch(records: &[TunnelRecord]) -> Option<String> {
    let (first, last) = (records.first()?, records.last()?);
    Some(format!(
        "a batch of {} records, keys {} to {}",
        records.len(),
        key_text(first),
        key_text(last)
    ))
}

fn key_text(record: &TunnelRecord) -> String {
    let columns: Vec<String> = record
        .change
        .primary_key()
        .0
        .iter()
        .map(|c| {
            let value = match &c.value {
                PrimaryKeyValue::Integer(i) => i.to_string(),
                PrimaryKeyValue::String(s) => format!("{s:?}"),
                PrimaryKeyValue::Binary(b) => format!(
                    "0x{}",
                    b.iter().map(|x| format!("{x:02x}")).collect::<String>()
                ),
                other => format!("{other:?}"),
            };
            format!("{}={value}", c.name)
        })
        .collect();
    format!("({})", columns.join(", "))
}
