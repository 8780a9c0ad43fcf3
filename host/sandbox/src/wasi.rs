//! The capability-free WASI 0.2 that guests built by `componentize-py` or `componentize-js` import:
//! their language runtimes link `wasi:io`, `wasi:clocks`, `wasi:random`, `wasi:cli`,
//! `wasi:filesystem` and `wasi:sockets` whether or not the guest's code uses them.
//!
//! Every interface is linked and none grants anything: no preopened directories (a file cannot
//! be named, let alone opened), no environment or arguments, an empty stdin, no sockets, no name
//! lookup. What a guest prints goes to its log, under the log budget. Clocks and randomness are
//! WASI's own, with one change: a sleep never outlasts the call's deadline, because a guest
//! blocked in a host call is out of reach of the epoch interruption that enforces it.
//!
//! A guest that imports anything else (say `wasi:http`) is refused at load, naming the import.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamResult, subscribe};
use wasmtime_wasi::{WasiCtx, WasiCtxView};

/// The WASI packages a guest may import (version 0.2.x); their interfaces grant nothing.
const PACKAGES: [&str; 6] = [
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// The most a guest may print in one call; the rest is counted and dropped, so printing can
/// neither fill the host's memory nor fail the guest.
const OUTPUT_BYTES_PER_CALL: usize = 64 << 10;

/// Whether `import` names a WASI interface the sandbox provides.
pub fn provides(import: &str) -> bool {
    PACKAGES.iter().any(|p| import.starts_with(p)) && import.contains("@0.2.")
}

/// Whether `import` is any WASI interface (provided or not).
pub fn is_wasi(import: &str) -> bool {
    import.starts_with("wasi:")
}

/// Links the capability-free WASI into `linker`; `T`'s state gives the context
/// ([`GuestWasi`]).
pub fn add_to_linker<T: wasmtime_wasi::WasiView + HasWasi>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    // The monotonic clock's sleeps are bounded by the call's deadline: it replaces WASI's own.
    linker.allow_shadowing(true);
    monotonic_clock::add_to_linker::<T, BoundedClock>(linker, |state| state.bounded_clock())?;
    linker.allow_shadowing(false);
    Ok(())
}

/// What the host state gives the bounded clock.
pub trait HasWasi {
    /// The clock's view of the state.
    fn bounded_clock(&mut self) -> BoundedClockView<'_>;
}

/// One instance's WASI state.
pub struct GuestWasi {
    ctx: WasiCtx,
    table: ResourceTable,
    stdout: Arc<Mutex<Printed>>,
    stderr: Arc<Mutex<Printed>>,
    /// When the running call's deadline passes; a sleep ends there at the latest.
    deadline: Instant,
    /// Whether the running call asked to wait past its deadline.
    waited_past_deadline: bool,
}

impl GuestWasi {
    /// A context that grants nothing, printing into buffers the host drains after each call.
    pub fn new() -> Self {
        let stdout = Arc::new(Mutex::new(Printed::default()));
        let stderr = Arc::new(Mutex::new(Printed::default()));
        let mut builder = WasiCtx::builder();
        builder
            .stdout(Capture(stdout.clone()))
            .stderr(Capture(stderr.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        Self {
            ctx: builder.build(),
            table: ResourceTable::new(),
            stdout,
            stderr,
            deadline: Instant::now(),
            waited_past_deadline: false,
        }
    }

    /// The context and resource table, for `WasiView`.
    pub fn view(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }

    /// The clock's view.
    pub fn bounded_clock(&mut self) -> BoundedClockView<'_> {
        BoundedClockView {
            table: &mut self.table,
            deadline: self.deadline,
            waited_past_deadline: &mut self.waited_past_deadline,
        }
    }

    /// Sets the deadline of the call about to start.
    pub fn start_call(&mut self, timeout: Duration) {
        self.deadline = Instant::now() + timeout;
        self.waited_past_deadline = false;
    }

    /// Whether the call asked to wait past its deadline: its sleep was cut short, and it ran
    /// out of time as surely as a guest the deadline interrupted (nothing else a guest can wait
    /// on becomes ready: it has no files and no network).
    pub fn waited_past_deadline(&self) -> bool {
        self.waited_past_deadline
    }

    /// Takes what the guest printed during the call: complete lines and any unfinished last
    /// line, of stdout and of stderr, and how many bytes were over the limit.
    pub fn take_printed(&mut self) -> (Vec<String>, Vec<String>, usize) {
        let mut out = lock(&self.stdout);
        let mut err = lock(&self.stderr);
        let dropped = out.dropped + err.dropped;
        (out.take(), err.take(), dropped)
    }
}

impl Default for GuestWasi {
    fn default() -> Self {
        Self::new()
    }
}

/// Bytes a guest printed to one stream during a call.
#[derive(Default)]
struct Printed {
    bytes: Vec<u8>,
    dropped: usize,
}

impl Printed {
    fn take(&mut self) -> Vec<String> {
        self.dropped = 0;
        let bytes = std::mem::take(&mut self.bytes);
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = OUTPUT_BYTES_PER_CALL.saturating_sub(self.bytes.len());
        let kept = bytes.len().min(room);
        self.bytes.extend_from_slice(&bytes[..kept]);
        self.dropped += bytes.len() - kept;
    }
}

fn lock(printed: &Mutex<Printed>) -> std::sync::MutexGuard<'_, Printed> {
    printed.lock().unwrap_or_else(|p| p.into_inner())
}

/// A guest's stdout or stderr: always writable, never failing.
#[derive(Clone)]
struct Capture(Arc<Mutex<Printed>>);

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        lock(&self.0).push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(4096)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        lock(&self.0).push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// `wasi:clocks/monotonic-clock` with sleeps cut at the call's deadline.
pub struct BoundedClock;

impl HasData for BoundedClock {
    type Data<'a> = BoundedClockView<'a>;
}

/// The state the bounded clock works on.
pub struct BoundedClockView<'a> {
    table: &'a mut ResourceTable,
    deadline: Instant,
    waited_past_deadline: &'a mut bool,
}

/// The clock's origin: the first time any guest read it.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl BoundedClockView<'_> {
    fn sleep_until(&mut self, wake: Instant) -> wasmtime::Result<Resource<DynPollable>> {
        if wake > self.deadline {
            *self.waited_past_deadline = true;
        }
        let sleep = self.table.push(Sleep(wake.min(self.deadline).into()))?;
        subscribe(self.table, sleep)
    }
}

impl monotonic_clock::Host for BoundedClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(origin().elapsed().as_nanos() as u64)
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(1)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let wake = origin()
            .checked_add(Duration::from_nanos(when))
            .unwrap_or(self.deadline);
        self.sleep_until(wake)
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let wake = Instant::now()
            .checked_add(Duration::from_nanos(duration))
            .unwrap_or(self.deadline);
        self.sleep_until(wake)
    }
}

/// A pollable that is ready at an instant.
struct Sleep(tokio::time::Instant);

#[wasmtime_wasi::async_trait]
impl Pollable for Sleep {
    async fn ready(&mut self) {
        tokio::time::sleep_until(self.0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wasi_0_2_packages_that_grant_nothing_are_provided() {
        assert!(provides("wasi:io/poll@0.2.9"));
        assert!(provides("wasi:sockets/tcp@0.2.12"));
        assert!(!provides("wasi:http/types@0.2.10"));
        assert!(!provides("wasi:io/poll@0.3.0"));
        assert!(is_wasi("wasi:http/types@0.2.10"));
        assert!(!is_wasi("ots:processor/types@0.3.0"));
    }

    #[test]
    fn printing_keeps_lines_up_to_the_limit_and_counts_the_rest() {
        let mut printed = Printed::default();
        printed.push(b"first\nsecond");
        printed.push(&vec![b'x'; OUTPUT_BYTES_PER_CALL]);
        assert_eq!(printed.dropped, 12);
        let lines = printed.take();
        assert_eq!(lines[0], "first");
        assert!(lines[1].starts_with("secondxxx"));
        assert_eq!(lines[1].len(), OUTPUT_BYTES_PER_CALL - 6);
        assert_eq!(printed.dropped, 0);
        assert!(printed.take().is_empty());
    }
}
