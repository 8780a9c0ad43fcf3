//! Building guests: a cargo build for `wasm32-unknown-unknown`, then the core module turned
//! into a component. Shared by `cargo xtask build-guests` (the shipped guests) and
//! `otsrep processor build` (a guest crate of the user's).
//!
//! The rustup target is used when it is installed; otherwise Debian's `rustc-web` builds the
//! standard library from source (`-Zbuild-std`, see docs/guests.md). Paths are remapped in the
//! output, so a build is byte-for-byte the same from any directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every guest is built for.
pub const TARGET: &str = "wasm32-unknown-unknown";

const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";

/// Why a guest could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Neither the rustup target nor Debian's toolchain is installed.
    #[error(
        "no wasm toolchain: install the rustup target `{TARGET}`, or Debian's rustc-web cargo-web rust-web-src lld-22"
    )]
    NoToolchain,
    /// A program could not be run.
    #[error("running {program}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `cargo build` failed (its own output says why).
    #[error("cargo build in {} failed ({status})", .dir.display())]
    Cargo {
        /// Where it ran.
        dir: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// The built module could not be read.
    #[error("reading the built module {}", .path.display())]
    Read {
        /// The module's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The module is not a guest of the WIT world.
    #[error("turning the module into a component: {0}")]
    Componentize(String),
    /// Neither `CARGO_HOME` nor `HOME` is set, so the registry path cannot be remapped.
    #[error("neither CARGO_HOME nor HOME is set")]
    NoCargoHome,
}

/// The compiler guests are built with on this machine.
#[derive(Debug, Clone)]
pub struct Toolchain {
    build_std: bool,
    /// What built them, for a manifest: the rustc version and how.
    pub description: String,
}

impl Toolchain {
    /// The rustup target if it is installed, else Debian's `rustc-web` with build-std.
    pub fn detect() -> Result<Self, BuildError> {
        if rustup_has_target() {
            return Ok(Self {
                build_std: false,
                description: format!("{} (rustup target)", rustc_version("rustc")?),
            });
        }
        if !(Path::new(DEBIAN_RUSTC).exists() && Path::new(DEBIAN_CARGO).exists()) {
            return Err(BuildError::NoToolchain);
        }
        Ok(Self {
            build_std: true,
            description: format!("{} (build-std)", rustc_version(DEBIAN_RUSTC)?),
        })
    }

    /// Builds the cargo package or workspace in `dir` in release mode into `target_dir`;
    /// `locked` passes `--locked`. Paths under `dir` appear as `/src` in the output.
    pub fn build(&self, dir: &Path, target_dir: &Path, locked: bool) -> Result<(), BuildError> {
        let mut command = if self.build_std {
            let mut command = Command::new(DEBIAN_CARGO);
            command
                .args(["build", "--release", "-Zbuild-std=std,panic_abort"])
                .env("RUSTC", DEBIAN_RUSTC)
                .env("RUSTC_BOOTSTRAP", "1");
            command
        } else {
            let mut command = Command::new("cargo");
            command.args(["build", "--release"]);
            command
        };
        let cargo_home = std::env::var("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .map_err(|_| BuildError::NoCargoHome)?;
        let rustflags = format!(
            "--remap-path-prefix={}=/src --remap-path-prefix={}=/cargo",
            dir.display(),
            cargo_home.join("registry/src").display()
        );
        command
            .args(["--target", TARGET])
            .current_dir(dir)
            .env("RUSTFLAGS", rustflags)
            .env("CARGO_TARGET_DIR", target_dir)
            .env_remove("CARGO_ENCODED_RUSTFLAGS");
        if locked {
            command.arg("--locked");
        }
        let status = command.status().map_err(|source| BuildError::Spawn {
            program: "cargo".into(),
            source,
        })?;
        if !status.success() {
            return Err(BuildError::Cargo {
                dir: dir.to_owned(),
                status,
            });
        }
        Ok(())
    }
}

/// Where `build` leaves the core module of crate `crate_name`.
pub fn module_path(target_dir: &Path, crate_name: &str) -> PathBuf {
    target_dir
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", crate_name.replace('-', "_")))
}

/// Reads the core module at `path` and turns it into a component.
pub fn componentize(path: &Path) -> Result<Vec<u8>, BuildError> {
    let module = std::fs::read(path).map_err(|source| BuildError::Read {
        path: path.to_owned(),
        source,
    })?;
    wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| BuildError::Componentize(format!("{e:#}")))
}

fn rustup_has_target() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == TARGET)
        })
}

fn rustc_version(rustc: &str) -> Result<String, BuildError> {
    let spawn = |source| BuildError::Spawn {
        program: format!("{rustc} --version"),
        source,
    };
    let out = Command::new(rustc)
        .arg("--version")
        .output()
        .map_err(spawn)?;
    if !out.status.success() {
        return Err(spawn(std::io::Error::other("it failed")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
