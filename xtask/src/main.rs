//! Project automation.
//!
//! - `cargo xtask build-guests`: builds every guest in `guest-processors/` for
//!   `wasm32-unknown-unknown`, turns each into a component and writes it to
//!   `guest-processors/components/` (the shipped guests, with the manifest of them all) or,
//!   for the test-only guests, `guest-processors/test-components/`.
//! - `cargo xtask check-guests`: rebuilds them and fails if the committed components are stale:
//!   their sources changed since the build, or (with the same toolchain) the bytes differ.
//! - `cargo xtask build-py-js-guests`: builds the Python guests (`guest-processors/python/`,
//!   with componentize-py) and the JavaScript ones (`guest-processors/js/`, with the
//!   componentize-js that `package-lock.json` pins) into `guest-processors/target/components/`.
//!   Those are built from source, not committed: they are 12–19 MB each, and neither tool
//!   builds the same bytes twice, so a committed file could not be checked against its source.
//!
//! The build ([`ots_guest_kit::toolchain`]) uses the rustup `wasm32-unknown-unknown` target when
//! it is installed, and otherwise Debian's `rustc-web` with `-Zbuild-std` (see `docs/guests.md`).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail, ensure};
use ots_guest_kit::toolchain::{self, Toolchain};
use sha2::{Digest, Sha256};

/// The guest SDK's directory under `guest-processors/`; every other directory holding a
/// `Cargo.toml` is a guest, crate `ots-guest-<directory>`.
const SDK: &str = "sdk";
const MANIFEST: &str = "MANIFEST";
/// Guests that only the tests load: they are not shipped with the tool.
const TEST_GUESTS: [&str; 1] = ["misbehave"];

/// Where the component of guest `name` is committed.
fn component_path(root: &Path, name: &str) -> std::path::PathBuf {
    let dir = if TEST_GUESTS.contains(&name) {
        "test-components"
    } else {
        "components"
    };
    root.join("guest-processors")
        .join(dir)
        .join(format!("{name}.wasm"))
}

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask lives in the repository root")?
        .to_path_buf();
    match std::env::args().nth(1).as_deref() {
        Some("build-guests") => build_guests(&root),
        Some("check-guests") => check_guests(&root),
        Some("build-py-js-guests") => build_py_js_guests(&root),
        _ => bail!("usage: cargo xtask (build-guests | check-guests | build-py-js-guests)"),
    }
}

/// What a build produced: components by guest name, and the manifest describing them.
struct Build {
    components: BTreeMap<String, Vec<u8>>,
    manifest: Manifest,
}

/// The record of a build committed beside the components.
#[derive(Debug, PartialEq)]
struct Manifest {
    toolchain: String,
    sources: String,
    components: BTreeMap<String, String>,
}

impl Manifest {
    fn render(&self) -> String {
        let mut text = format!(
            "# Written by `cargo xtask build-guests`; checked by `cargo xtask check-guests`.\ntoolchain {}\nsources {}\n",
            self.toolchain, self.sources
        );
        for (name, hash) in &self.components {
            text.push_str(&format!("component {name} {hash}\n"));
        }
        text
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        let mut manifest = Manifest {
            toolchain: String::new(),
            sources: String::new(),
            components: BTreeMap::new(),
        };
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (key, rest) = line.split_once(' ').context("malformed manifest line")?;
            match key {
                "toolchain" => manifest.toolchain = rest.to_owned(),
                "sources" => manifest.sources = rest.to_owned(),
                "component" => {
                    let (name, hash) = rest.split_once(' ').context("malformed component line")?;
                    manifest.components.insert(name.to_owned(), hash.to_owned());
                }
                other => bail!("unknown manifest key {other:?}"),
            }
        }
        Ok(manifest)
    }
}

fn build_guests(root: &Path) -> anyhow::Result<()> {
    let build = build(root)?;
    let out = root.join("guest-processors/components");
    for (name, bytes) in &build.components {
        let path = component_path(root, name);
        fs::create_dir_all(path.parent().expect("a file in a directory"))?;
        fs::write(&path, bytes)?;
        println!("{}: {} bytes", path.display(), bytes.len());
    }
    fs::write(out.join(MANIFEST), build.manifest.render())?;
    println!("manifest written to {}", out.join(MANIFEST).display());
    Ok(())
}

fn check_guests(root: &Path) -> anyhow::Result<()> {
    let dir = root.join("guest-processors/components");
    let committed = Manifest::parse(
        &fs::read_to_string(dir.join(MANIFEST)).context("reading the components' MANIFEST")?,
    )?;
    let sources = source_hash(root)?;
    ensure!(
        committed.sources == sources,
        "the guest sources (guest-processors/, wit/) changed since the committed components were built; run `cargo xtask build-guests` and commit guest-processors/components"
    );
    let build = build(root)?;
    let same_toolchain = build.manifest.toolchain == committed.toolchain;
    for (name, bytes) in &build.components {
        let on_disk = fs::read(component_path(root, name)).with_context(|| {
            format!("reading the committed {name}.wasm; run `cargo xtask build-guests`")
        })?;
        ensure!(
            committed.components.get(name) == Some(&sha256(&on_disk)),
            "{name}.wasm does not match the MANIFEST; run `cargo xtask build-guests`"
        );
        if same_toolchain {
            ensure!(
                bytes == &on_disk,
                "{name}.wasm differs from a fresh build of its sources; run `cargo xtask build-guests` and commit guest-processors/components"
            );
        }
    }
    let built: Vec<&String> = build.components.keys().collect();
    let listed: Vec<&String> = committed.components.keys().collect();
    ensure!(
        built == listed,
        "the MANIFEST lists the components {listed:?} but the guests are {built:?}; run `cargo xtask build-guests`"
    );
    if same_toolchain {
        println!(
            "guest components match a fresh build ({} guests)",
            build.components.len()
        );
    } else {
        println!(
            "warning: the components were built with `{}`, this machine has `{}`; sources match, bytes not compared",
            committed.toolchain, build.manifest.toolchain
        );
    }
    Ok(())
}

/// Builds every guest and componentizes it.
fn build(root: &Path) -> anyhow::Result<Build> {
    let guests_dir = root.join("guest-processors");
    let target_dir = guests_dir.join("target");
    let toolchain = Toolchain::detect()?;
    toolchain
        .build(&guests_dir, &target_dir, true)
        .context("building the guests")?;

    let mut components = BTreeMap::new();
    let mut hashes = BTreeMap::new();
    for name in guest_names(&guests_dir)? {
        let module = toolchain::module_path(&target_dir, &format!("ots-guest-{name}"));
        let component = toolchain::componentize(&module)
            .with_context(|| format!("turning {name} into a component"))?;
        hashes.insert(name.clone(), sha256(&component));
        components.insert(name, component);
    }
    Ok(Build {
        components,
        manifest: Manifest {
            toolchain: toolchain.description,
            sources: source_hash(root)?,
            components: hashes,
        },
    })
}

/// The guests: the directories of `guest-processors/` with a `Cargo.toml`, but the SDK's.
fn guest_names(guests_dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(guests_dir).context("listing guest-processors/")? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.join("Cargo.toml").is_file() && name != SDK {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// A hash over the guests' sources and the WIT package: every file under `guest-processors/`
/// (but its build output and components) and `wit/`, by relative path.
fn source_hash(root: &Path) -> anyhow::Result<String> {
    let mut files = Vec::new();
    collect(root, &root.join("guest-processors"), &mut files)?;
    collect(root, &root.join("wit"), &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    for rel in files {
        let bytes = fs::read(root.join(&rel))?;
        hasher.update(rel.as_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(hex(&hasher.finalize()))
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            // The Python and JavaScript guests are not in the committed components.
            let skipped = ["target", "components", "test-components", "python", "js"];
            if !skipped.contains(&name) {
                collect(root, &path, files)?;
            }
        } else {
            let rel = path
                .strip_prefix(root)?
                .to_string_lossy()
                .replace('\\', "/");
            files.push(rel);
        }
    }
    Ok(())
}

/// The Python and JavaScript guests: (language directory, guest directory, component name).
/// Each guest directory holds `app.py` or `app.js`; the SDK is the language's `sdk/`.
const PY_JS_GUESTS: [(&str, &str, &str); 4] = [
    ("python", "mask", "mask"),
    ("python", "misbehave", "misbehave-py"),
    ("js", "compute", "compute"),
    ("js", "misbehave", "misbehave-js"),
];

fn build_py_js_guests(root: &Path) -> anyhow::Result<()> {
    let guests = root.join("guest-processors");
    let out = guests.join("target/components");
    fs::create_dir_all(&out)?;
    let wit = root.join("wit");
    let componentize_js = guests.join("js/node_modules/.bin/componentize-js");
    for (language, dir, name) in PY_JS_GUESTS {
        let source = guests.join(language).join(dir);
        let component = out.join(format!("{name}.wasm"));
        let started = std::time::Instant::now();
        let status = if language == "python" {
            let mut c = Command::new("componentize-py");
            c.arg("-d")
                .arg(&wit)
                .args(["-w", "processor", "componentize", "app"]);
            c.arg("-p")
                .arg(&source)
                .arg("-p")
                .arg(guests.join("python/sdk"));
            c.arg("-o").arg(&component);
            c.status()
        } else {
            let mut c = Command::new(&componentize_js);
            c.arg("--wit").arg(&wit).args(["--world-name", "processor"]);
            // Unless `fetch-event` is disabled too, the component imports wasi:http, refused at load.
            // `--disable` takes a list, so `-o` ends it before the source file.
            c.args(["--disable", "http", "fetch-event"]);
            c.arg("-o").arg(&component).arg(source.join("app.js"));
            c.status()
        };
        let tool = if language == "python" {
            "componentize-py"
        } else {
            "componentize-js"
        };
        let status = status
            .with_context(|| format!("running {tool} (install it with `bash scripts/setup.sh`)"))?;
        ensure!(status.success(), "{tool} failed to build {name} ({status})");
        let bytes = fs::metadata(&component)?.len();
        println!(
            "{}: {bytes} bytes in {:.1} s",
            component.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
