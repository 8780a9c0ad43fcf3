//! The compiled cache across processes: this test runs itself as a child process (the cache
//! directory is read once per process, and a process reuses its own compilations in memory),
//! each child loading a guest with `OTSREP_COMPILED_CACHE` set to a temporary directory.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ots_sandbox::{COMPILED_CACHE_ENV, GuestSource, Limits, Sandbox};
use serde_json::json;

const CHILD: &str = "OTS_COMPILED_CACHE_TEST_CHILD";
const TEST: &str = "a_second_start_loads_the_compiled_code_and_a_damaged_entry_is_replaced";

/// In a child: loads `replicate` and checks it works.
fn child() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-processors/components");
    let source = GuestSource::file(&dir, "replicate.wasm").unwrap();
    let sandbox = Sandbox::load(source, &json!({}), Limits::default()).unwrap();
    assert!(sandbox.process("src", &[]).unwrap().changes.is_empty());
}

fn start(cache: &Path) {
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST])
        .env(CHILD, "1")
        .env(COMPILED_CACHE_ENV, cache)
        .status()
        .unwrap();
    assert!(status.success(), "the child failed: {status}");
}

fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    found.sort();
    found
}

#[test]
fn a_second_start_loads_the_compiled_code_and_a_damaged_entry_is_replaced() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("compiled");

    start(&cache);
    let found = entries(&cache);
    assert_eq!(found.len(), 1, "one entry, no temporary file: {found:?}");
    let entry = &found[0];
    assert!(entry.to_string_lossy().ends_with(".cwasm"), "{entry:?}");
    let first = std::fs::metadata(entry).unwrap();

    // A second start loads the entry: a compilation would have written a new file in its place.
    start(&cache);
    assert_eq!(entries(&cache), found);
    assert_eq!(std::fs::metadata(entry).unwrap().ino(), first.ino());

    // A damaged entry is not loaded: the guest is compiled again and the entry replaced.
    let mut bytes = std::fs::read(entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(entry, &bytes).unwrap();
    let damaged = std::fs::metadata(entry).unwrap().ino();
    start(&cache);
    assert_eq!(entries(&cache), found);
    assert_ne!(std::fs::metadata(entry).unwrap().ino(), damaged);
    assert_ne!(
        std::fs::read(entry).unwrap(),
        bytes,
        "the entry was rewritten"
    );

    // Without the variable the cache is under XDG_CACHE_HOME; `off` turns it off.
    for (setting, expected) in [(None, 1), (Some("off"), 0)] {
        let xdg = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", TEST])
            .env(CHILD, "1")
            .env("XDG_CACHE_HOME", xdg.path());
        match setting {
            Some(value) => child.env(COMPILED_CACHE_ENV, value),
            None => child.env_remove(COMPILED_CACHE_ENV),
        };
        assert!(child.status().unwrap().success());
        let under_xdg = entries(&xdg.path().join("otsrep/compiled"));
        assert_eq!(under_xdg.len(), expected, "{setting:?}: {under_xdg:?}");
    }
}
