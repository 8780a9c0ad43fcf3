//! The backup store: where segments, log indexes and the manifest live — a local directory
//! (the default) or S3-compatible object storage, both through `object_store`, whose puts are
//! atomic (a local put writes a temporary file, syncs it and renames it), so an object is
//! either whole or absent after a crash.
//!
//! The manifest is `manifest.json`: `{"sha256": ..., "manifest": {...}}`, the checksum over
//! the manifest's JSON, so a damaged manifest is refused rather than half-trusted.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use ots_protocol::pb::table::DescribeTableResponse;
use serde::{Deserialize, Serialize};

use crate::manifest::{IndexRef, Manifest, SegmentRef};
use crate::segment::{self, Entry, SegmentError, SegmentKind};

/// The manifest's object name.
pub const MANIFEST: &str = "manifest.json";

/// Why the backup store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The location is not a directory path or an `s3://bucket/prefix` URL.
    #[error("backup store {location:?}: {reason}")]
    Location {
        /// What was given.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// An object could not be read, written, listed or deleted.
    #[error("backup store {store}: {action} {path}: {source}")]
    Object {
        /// The store.
        store: String,
        /// What was being done.
        action: &'static str,
        /// The object.
        path: String,
        /// The failure (boxed: the store's errors are large).
        #[source]
        source: Box<object_store::Error>,
    },
    /// There is no manifest: not a backup, or one that never stored its first manifest.
    #[error(
        "backup store {store} has no {MANIFEST}: it holds no backup (start one with `otsrep backup run`)"
    )]
    NoManifest {
        /// The store.
        store: String,
    },
    /// The manifest does not parse, fails its checksum, or is of another format.
    #[error("backup store {store}: {MANIFEST} is damaged: {reason}")]
    BadManifest {
        /// The store.
        store: String,
        /// What is wrong.
        reason: String,
    },
    /// A referenced object is missing.
    #[error("backup store {store}: {path} is missing (the manifest lists it)")]
    Missing {
        /// The store.
        store: String,
        /// The object.
        path: String,
    },
    /// A referenced object is not what the manifest says.
    #[error("backup store {store}: {path} is damaged: {reason}")]
    Damaged {
        /// The store.
        store: String,
        /// The object.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// How the manifest is stored: with its checksum.
#[derive(Serialize, Deserialize)]
struct Sealed {
    sha256: String,
    manifest: serde_json::Value,
}

/// A backup store.
#[derive(Debug, Clone)]
pub struct BackupStore {
    inner: Arc<dyn ObjectStore>,
    /// The location as given, for messages.
    name: String,
}

impl BackupStore {
    /// Opens `location`: `s3://bucket/prefix` (credentials, region and endpoint from the
    /// usual `AWS_*` variables, e.g. `AWS_ENDPOINT` and `AWS_ALLOW_HTTP=true` for a local
    /// S3-compatible server), or a directory, created if missing.
    pub fn open(location: &str) -> Result<Self, StoreError> {
        let location_error = |reason: String| StoreError::Location {
            location: location.to_owned(),
            reason,
        };
        let inner: Arc<dyn ObjectStore> = if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(location_error("no bucket after s3://".into()));
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| location_error(e.to_string()))?;
            let prefix = prefix.trim_matches('/');
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
            }
        } else if location.contains("://") {
            return Err(location_error(
                "only directories and s3:// URLs are supported".into(),
            ));
        } else {
            std::fs::create_dir_all(location)
                .map_err(|e| location_error(format!("cannot create the directory: {e}")))?;
            Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(location)
                    .map_err(|e| location_error(e.to_string()))?
                    .with_fsync(true),
            )
        };
        Ok(Self {
            inner,
            name: location.to_owned(),
        })
    }

    /// The location as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn object_error(
        &self,
        action: &'static str,
        path: &str,
    ) -> impl FnOnce(object_store::Error) -> StoreError {
        let (store, path) = (self.name.clone(), path.to_owned());
        move |source| match source {
            object_store::Error::NotFound { .. } => StoreError::Missing { store, path },
            source => StoreError::Object {
                store,
                action,
                path,
                source: Box::new(source),
            },
        }
    }

    async fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.inner
            .put(&Path::from(path), PutPayload::from(bytes))
            .await
            .map_err(self.object_error("writing", path))?;
        Ok(())
    }

    async fn get(&self, path: &str) -> Result<bytes::Bytes, StoreError> {
        let result = self
            .inner
            .get(&Path::from(path))
            .await
            .map_err(self.object_error("reading", path))?;
        result
            .bytes()
            .await
            .map_err(self.object_error("reading", path))
    }

    /// Deletes an object; one already gone is fine.
    pub async fn delete(&self, path: &str) -> Result<(), StoreError> {
        match self.inner.delete(&Path::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.object_error("deleting", path)(e)),
        }
    }

    /// Every object path under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let prefix_path = Path::from(prefix);
        let objects: Vec<_> = self
            .inner
            .list(Some(&prefix_path))
            .try_collect()
            .await
            .map_err(self.object_error("listing", prefix))?;
        Ok(objects
            .into_iter()
            .map(|o| o.location.to_string())
            .collect())
    }

    /// Reads and checks the manifest.
    pub async fn load_manifest(&self) -> Result<Manifest, StoreError> {
        let bytes = match self.get(MANIFEST).await {
            Err(StoreError::Missing { .. }) => {
                return Err(StoreError::NoManifest {
                    store: self.name.clone(),
                });
            }
            other => other?,
        };
        let bad = |reason: String| StoreError::BadManifest {
            store: self.name.clone(),
            reason,
        };
        let sealed: Sealed =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        let body = serde_json::to_vec(&sealed.manifest).expect("a JSON value serializes");
        let found = segment::sha256_hex(&body);
        if found != sealed.sha256 {
            return Err(bad(format!(
                "its checksum says {} but it hashes to {found}",
                sealed.sha256
            )));
        }
        let manifest: Manifest = serde_json::from_value(sealed.manifest)
            .map_err(|e| bad(format!("unexpected contents: {e}")))?;
        manifest.validate().map_err(bad)?;
        Ok(manifest)
    }

    /// The source table's schema recorded in `manifest`, read from this store.
    pub fn schema(&self, manifest: &Manifest) -> Result<DescribeTableResponse, StoreError> {
        manifest.schema().map_err(|reason| StoreError::BadManifest {
            store: self.name.clone(),
            reason,
        })
    }

    /// Whether the store has a manifest.
    pub async fn has_manifest(&self) -> Result<bool, StoreError> {
        match self.inner.head(&Path::from(MANIFEST)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.object_error("reading", MANIFEST)(e)),
        }
    }

    /// Stores the manifest (atomically replacing the previous one).
    pub async fn save_manifest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let value = serde_json::to_value(manifest).expect("the manifest serializes");
        let body = serde_json::to_vec(&value).expect("a JSON value serializes");
        let sealed = Sealed {
            sha256: segment::sha256_hex(&body),
            manifest: value,
        };
        let mut bytes = serde_json::to_vec_pretty(&sealed).expect("the manifest serializes");
        bytes.push(b'\n');
        self.put(MANIFEST, bytes).await
    }

    fn damaged(&self, path: &str, reason: String) -> StoreError {
        StoreError::Damaged {
            store: self.name.clone(),
            path: path.to_owned(),
            reason,
        }
    }

    /// Reads an object the manifest lists with SHA-256 `sha256`, checking it.
    async fn get_checked(&self, path: &str, sha256: &str) -> Result<bytes::Bytes, StoreError> {
        let bytes = self.get(path).await?;
        let found = segment::sha256_hex(&bytes);
        if found != sha256 {
            return Err(self.damaged(
                path,
                format!("the manifest says SHA-256 {sha256} but it hashes to {found}"),
            ));
        }
        Ok(bytes)
    }

    /// Writes a segment of `entries` at `path`; returns its manifest entry.
    pub async fn write_segment(
        &self,
        path: String,
        kind: SegmentKind,
        entries: &[Entry],
    ) -> Result<SegmentRef, StoreError> {
        let times = entries
            .iter()
            .filter_map(|e| e.record.sequence_info.map(|s| s.timestamp));
        let (first_us, last_us) =
            times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
        let (first_us, last_us) = if first_us > last_us {
            (0, 0)
        } else {
            (first_us, last_us)
        };
        let bytes = segment::encode(kind, entries);
        let reference = SegmentRef {
            path: path.clone(),
            sha256: segment::sha256_hex(&bytes),
            bytes: bytes.len() as u64,
            entries: entries.len() as u64,
            first_us,
            last_us,
        };
        self.put(&path, bytes).await?;
        Ok(reference)
    }

    /// Reads a segment and checks it against its manifest entry.
    pub async fn read_segment(
        &self,
        reference: &SegmentRef,
        kind: SegmentKind,
    ) -> Result<Vec<Entry>, StoreError> {
        let bytes = self.get_checked(&reference.path, &reference.sha256).await?;
        let damaged = |reason: String| self.damaged(&reference.path, reason);
        let entries =
            segment::decode(kind, &bytes).map_err(|e: SegmentError| damaged(e.to_string()))?;
        if entries.len() as u64 != reference.entries {
            return Err(damaged(format!(
                "the manifest says {} entries, it holds {}",
                reference.entries,
                entries.len()
            )));
        }
        Ok(entries)
    }

    /// Writes a sealed run of log segments, numbered `first_segment..=last_segment`, as an
    /// index object at `path`.
    pub async fn write_index(
        &self,
        path: String,
        (first_segment, last_segment): (u64, u64),
        segments: &[SegmentRef],
    ) -> Result<IndexRef, StoreError> {
        let bytes = serde_json::to_vec(segments).expect("segment refs serialize");
        let reference = IndexRef {
            path: path.clone(),
            first_segment,
            last_segment,
            sha256: segment::sha256_hex(&bytes),
            segments: segments.len() as u64,
            first_us: segments.iter().map(|s| s.first_us).min().unwrap_or(0),
            last_us: segments.iter().map(|s| s.last_us).max().unwrap_or(0),
        };
        self.put(&path, bytes).await?;
        Ok(reference)
    }

    /// Reads an index object and checks it against its manifest entry.
    pub async fn read_index(&self, reference: &IndexRef) -> Result<Vec<SegmentRef>, StoreError> {
        let bytes = self.get_checked(&reference.path, &reference.sha256).await?;
        let damaged = |reason: String| self.damaged(&reference.path, reason);
        let segments: Vec<SegmentRef> =
            serde_json::from_slice(&bytes).map_err(|e| damaged(format!("not an index: {e}")))?;
        if segments.len() as u64 != reference.segments {
            return Err(damaged(format!(
                "the manifest says {} segments, it lists {}",
                reference.segments,
                segments.len()
            )));
        }
        Ok(segments)
    }
}
