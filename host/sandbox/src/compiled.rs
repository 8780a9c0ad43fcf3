//! The compiled cache: guests' machine code saved across processes, so a large component (a
//! Python guest is 18 MB of WebAssembly, 16 s of compilation) is compiled once per machine, not
//! at every start.
//!
//! An entry is wasmtime's serialized component, named by the SHA-256 of the component's bytes
//! and a hash of the engine's compilation settings (a new wasmtime or another `Config` misses
//! instead of loading code made for something else). Its first 32 bytes are the SHA-256 of the
//! rest: wasmtime trusts serialized code, so a damaged entry must be caught before it is
//! loaded; it is then compiled again and replaced. Entries are written to a temporary file and
//! renamed into place, so a process killed mid-write leaves no half entry.
//!
//! The directory is `OTSREP_COMPILED_CACHE` (`off` turns the cache off), else
//! `$XDG_CACHE_HOME/otsrep/compiled`, else `~/.cache/otsrep/compiled`. Whoever can write it can
//! run code in the host: it must not be a guest directory.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The environment variable that names the cache directory, or `off`.
pub const CACHE_ENV: &str = "OTSREP_COMPILED_CACHE";

/// The cache directory, if there is one (read once per process).
pub fn dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        match var(CACHE_ENV) {
            Some(v) if v == "off" => None,
            Some(v) => Some(PathBuf::from(v)),
            None => var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".cache")))
                .map(|base| base.join("otsrep").join("compiled")),
        }
    })
    .as_deref()
}

/// The component of `bytes` (whose SHA-256 is `digest`): loaded from the cache, or compiled
/// and saved there. A cache that cannot be read or written costs a compilation, never a load.
pub fn load_or_compile(
    engine: &Engine,
    digest: &[u8; 32],
    bytes: &[u8],
) -> wasmtime::Result<Component> {
    let Some(dir) = dir() else {
        return Component::new(engine, bytes);
    };
    let path = dir.join(entry_name(engine, digest));
    let started = Instant::now();
    match load(engine, &path) {
        Ok(Some(component)) => {
            tracing::debug!(entry = %path.display(), millis = started.elapsed().as_millis(), "guest component loaded from the compiled cache");
            return Ok(component);
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(entry = %path.display(), "compiled cache entry unusable, compiling again: {e}")
        }
    }
    let serialized = engine.precompile_component(bytes)?;
    // SAFETY: these bytes were serialized by this engine a moment ago.
    let component = unsafe { Component::deserialize(engine, &serialized)? };
    tracing::info!(
        megabytes = bytes.len() as f64 / 1e6,
        seconds = started.elapsed().as_secs_f64(),
        "guest component compiled"
    );
    if let Err(e) = save(dir, &path, &serialized) {
        tracing::warn!(dir = %dir.display(), "cannot save the compiled guest to the cache: {e}");
    }
    Ok(component)
}

/// The entry's file name: the component's digest and the engine's compatibility hash.
fn entry_name(engine: &Engine, digest: &[u8; 32]) -> String {
    // SipHash with its fixed keys: the same settings give the same name in every process of
    // one build, and a rebuilt wasmtime differs anyway.
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{:016x}.cwasm", hasher.finish())
}

/// Reads and checks an entry; `None` if there is none.
fn load(engine: &Engine, path: &Path) -> Result<Option<Component>, String> {
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let (sum, code) = data
        .split_at_checked(32)
        .ok_or("shorter than its checksum")?;
    if Sha256::digest(code).as_slice() != sum {
        return Err("its checksum does not match its contents".into());
    }
    // SAFETY: the checksum shows these are the bytes `save` wrote, which this host's engine
    // serialized; wasmtime itself refuses code of another version or configuration.
    unsafe { Component::deserialize(engine, code) }
        .map(Some)
        .map_err(|e| format!("{e:#}"))
}

/// Writes an entry: checksum and code into a temporary file, then renamed into place.
fn save(dir: &Path, path: &Path, code: &[u8]) -> std::io::Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(
        ".{}.{}.tmp",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let mut data = Vec::with_capacity(32 + code.len());
    data.extend_from_slice(&Sha256::digest(code));
    data.extend_from_slice(code);
    std::fs::write(&temporary, &data)
        .and_then(|()| std::fs::rename(&temporary, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
}
