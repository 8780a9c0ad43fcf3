//! `otsrep processor new`: a guest crate of its own, outside this repository, that builds with
//! `otsrep processor build` and tests with `otsrep processor test`.
//!
//! The crate carries what it needs: the WIT package (`wit/`) and a copy of the guest SDK
//! (`vendor/ots-guest-sdk`, whose bindings read `../../wit`, the crate's own), both taken from
//! this build of `otsrep`, so the guest is built against the interface the host speaks.

use std::path::{Path, PathBuf};

/// The WIT package the host implements.
const WIT: &str = include_str!("../../../wit/processor.wit");
const SDK_LIB: &str = include_str!("../../../guest-processors/sdk/src/lib.rs");
const SDK_OPTIONS: &str = include_str!("../../../guest-processors/sdk/src/options.rs");
/// The guests' workspace manifest: the SDK's dependency versions come from it.
const GUESTS_MANIFEST: &str = include_str!("../../../guest-processors/Cargo.toml");
/// The guests' lock file, so a new guest resolves the versions the shipped ones are built with.
const GUESTS_LOCK: &str = include_str!("../../../guest-processors/Cargo.lock");

/// Why a guest crate could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not a crate name of lowercase letters, digits, `-` and `_`.
    #[error(
        "{0:?} is not a guest name: use lowercase letters, digits, `-` and `_`, starting with a letter"
    )]
    BadName(String),
    /// The directory is there already; nothing is overwritten.
    #[error("{} exists already; choose another name or directory", .0.display())]
    Exists(PathBuf),
    /// A file could not be written.
    #[error("writing {}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Creates the guest crate `name` in `parent/name` and returns its directory.
pub fn scaffold(parent: &Path, name: &str) -> Result<PathBuf, ScaffoldError> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    for (path, text) in files(name) {
        let path = dir.join(path);
        let write = |path: &Path| {
            std::fs::create_dir_all(path.parent().expect("a file in the crate"))?;
            std::fs::write(path, &text)
        };
        write(&path).map_err(|source| ScaffoldError::Write { path, source })?;
    }
    Ok(dir)
}

/// The crate's files: relative path and contents.
fn files(name: &str) -> Vec<(&'static str, String)> {
    let dependency = |crate_name: &str| {
        GUESTS_MANIFEST
            .lines()
            .find(|l| l.starts_with(&format!("{crate_name} =")))
            .unwrap_or_else(|| panic!("guest-processors/Cargo.toml names {crate_name}"))
            .to_owned()
    };
    let wit_bindgen = dependency("wit-bindgen");
    let serde_json = dependency("serde_json");
    vec![
        (
            "Cargo.toml",
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
ots-guest-sdk = {{ path = "vendor/ots-guest-sdk" }}

# A workspace of its own, wherever the crate is put.
[workspace]
members = [".", "vendor/ots-guest-sdk"]

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true
debug = false
"#
            ),
        ),
        ("Cargo.lock", GUESTS_LOCK.to_owned()),
        ("src/lib.rs", template(name)),
        ("wit/processor.wit", WIT.to_owned()),
        (
            "vendor/ots-guest-sdk/Cargo.toml",
            format!(
                r#"[package]
name = "ots-guest-sdk"
description = "Write a Tablestore record processor guest in a few lines (copied by otsrep processor new)"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
{wit_bindgen}
{serde_json}
"#
            ),
        ),
        ("vendor/ots-guest-sdk/src/lib.rs", SDK_LIB.to_owned()),
        ("vendor/ots-guest-sdk/src/options.rs", SDK_OPTIONS.to_owned()),
        (
            "tests/records.jsonl",
            concat!(
                r#"{"kind":"put","key":[{"id":1}],"columns":[{"name":"status","value":"draft","timestamp":1000}]}"#,
                "\n",
                r#"{"kind":"put","key":[{"id":2}],"columns":[{"name":"status","value":"live","timestamp":1000}]}"#,
                "\n",
                r#"{"kind":"delete","key":[{"id":1}],"sequence":{"epoch":0,"timestamp":2000000,"row_index":0}}"#,
                "\n",
            )
            .to_owned(),
        ),
        (
            "tests/expected.jsonl",
            concat!(
                r#"{"record":1,"change":{"kind":"put","key":[{"id":2}],"columns":[{"name":"status","value":"live","timestamp":1000}]}}"#,
                "\n",
                r#"{"record":2,"change":{"kind":"delete","key":[{"id":1}]}}"#,
                "\n",
            )
            .to_owned(),
        ),
        ("README.md", readme(name)),
        (".gitignore", "/target\n/*.wasm\n".to_owned()),
    ]
}

fn template(name: &str) -> String {
    format!(
        r#"//! `{name}`: a Tablestore record processor guest.
//!
//! As created by `otsrep processor new`, it drops every record that writes `"draft"` to the
//! column named by the option `column` (default `status`) and keeps the rest. Change
//! `process` to do what you need; `tests/` holds records and what this guest makes of them.

use ots_guest_sdk::*;

struct Guest {{
    column: String,
}}

impl Processor for Guest {{
    fn init(options: Options) -> Result<(Self, ProcessorInfo), String> {{
        options.only(&["column"])?;
        let column = options.string("column")?.unwrap_or_else(|| "status".into());
        let info = ProcessorInfo::reads(false, ColumnInterest::Named(vec![column.clone()]));
        Ok((Guest {{ column }}, info))
    }}

    fn process(&mut self, batch: Batch) -> Result<BatchOutput, ProcessorError> {{
        let Some(column) = batch.name_id(&self.column) else {{
            return Ok(BatchOutput::all_kept());
        }};
        let actions = batch
            .records
            .iter()
            .map(|record| match record.written(column) {{
                Some(Value::String(s)) if s == "draft" => Action::Drop,
                _ => Action::Keep,
            }})
            .collect();
        Ok(BatchOutput::actions(actions))
    }}
}}

processor!(Guest);
"#
    )
}

fn readme(name: &str) -> String {
    format!(
        r#"# {name}

A record processor guest for `otsrep`: a WebAssembly component that decides what each
Tablestore record becomes in the destination. Created by `otsrep processor new`; the guest
SDK (`vendor/ots-guest-sdk`) and the WIT package (`wit/`) are copies from that `otsrep`.

Build the component (`{name}.wasm` here) and test it:

```sh
otsrep processor build .
otsrep processor test --file {name}.wasm --records tests/records.jsonl --expect tests/expected.jsonl
```

`otsrep processor build` runs `cargo build --release --target wasm32-unknown-unknown` (with the
rustup target, or Debian's `rustc-web cargo-web rust-web-src lld-22` and `-Zbuild-std` where the
target cannot be installed) and turns the module into a component. Use it in a replication with

```toml
[processor]
file = "{name}.wasm"
guestDir = "/path/to/this/directory"
```
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_crate_is_written_once_with_its_sdk_and_wit() {
        let parent = tempfile::tempdir().unwrap();
        let dir = scaffold(parent.path(), "drop-drafts").unwrap();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"drop-drafts\""), "{manifest}");
        let sdk = std::fs::read_to_string(dir.join("vendor/ots-guest-sdk/Cargo.toml")).unwrap();
        assert!(sdk.contains("wit-bindgen = {"), "{sdk}");
        assert_eq!(
            std::fs::read_to_string(dir.join("wit/processor.wit")).unwrap(),
            WIT
        );
        assert!(
            SDK_LIB.contains("path: \"../../wit\""),
            "the SDK's bindings read the WIT two levels up, where the crate has it"
        );
        assert!(matches!(
            scaffold(parent.path(), "drop-drafts"),
            Err(ScaffoldError::Exists(_))
        ));
        for bad in ["", "Drafts", "1st", "a b", "../x"] {
            assert!(
                matches!(scaffold(parent.path(), bad), Err(ScaffoldError::BadName(_))),
                "{bad:?}"
            );
        }
    }
}
