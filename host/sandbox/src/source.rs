//! Where a guest's component bytes come from: the components built into the binary, or a file
//! in a guest directory opened with `cap-std` (names cannot escape the directory).

use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use cap_std::time::SystemTime;

/// The components shipped with the tool, built from `guest-processors/`.
const BUILTIN: [(&str, &[u8]); 4] = [
    (
        "replicate",
        include_bytes!("../../../guest-processors/components/replicate.wasm"),
    ),
    (
        "filter",
        include_bytes!("../../../guest-processors/components/filter.wasm"),
    ),
    (
        "rename",
        include_bytes!("../../../guest-processors/components/rename.wasm"),
    ),
    (
        "route",
        include_bytes!("../../../guest-processors/components/route.wasm"),
    ),
];

/// A guest component's origin.
#[derive(Debug)]
pub enum GuestSource {
    /// A component compiled into the binary.
    Builtin {
        /// Its name.
        name: &'static str,
        /// Its bytes.
        bytes: &'static [u8],
    },
    /// A component file inside a guest directory; watched for changes.
    File {
        /// The directory, the only place the file may be.
        dir: Dir,
        /// The file's path relative to `dir`.
        file: String,
    },
}

/// A file's identity for change detection: modification time and length.
pub type Stamp = Option<(SystemTime, u64)>;

impl GuestSource {
    /// The built-in guest `name` (`replicate`, `filter` or `rename`).
    pub fn builtin(name: &str) -> Option<Self> {
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(name, bytes)| Self::Builtin { name, bytes })
    }

    /// The names of the built-in guests.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(n, _)| *n)
    }

    /// The component `file` (relative, inside `dir`) of the guest directory `dir`.
    pub fn file(dir: &Path, file: &str) -> std::io::Result<Self> {
        let opened = Dir::open_ambient_dir(dir, ambient_authority()).map_err(|e| {
            std::io::Error::new(e.kind(), format!("guest directory {}: {e}", dir.display()))
        })?;
        Ok(Self::File {
            dir: opened,
            file: file.to_owned(),
        })
    }

    /// A short name for messages: the built-in's name or the file name.
    pub fn name(&self) -> String {
        match self {
            Self::Builtin { name, .. } => (*name).to_owned(),
            Self::File { file, .. } => file.clone(),
        }
    }

    /// The component's bytes.
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Self::Builtin { bytes, .. } => Ok(bytes.to_vec()),
            Self::File { dir, file } => dir.read(file),
        }
    }

    /// The file's current stamp (`None` for built-ins, which never change).
    pub fn stamp(&self) -> std::io::Result<Stamp> {
        match self {
            Self::Builtin { .. } => Ok(None),
            Self::File { dir, file } => {
                let meta = dir.metadata(file)?;
                Ok(Some((meta.modified()?, meta.len())))
            }
        }
    }
}
