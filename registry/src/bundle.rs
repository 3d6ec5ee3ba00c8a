//! A signed bundle: everything a node needs to install releases without a
//! network, in one tar file an operator carries on a USB stick.
//!
//! ```text
//! outpost-bundle.json      format marker and what it holds (informational)
//! tuf/1.root.json …        every root version, then timestamp.json and the
//! tuf/timestamp.json       snapshot, targets and vendor metadata they name
//! blobs/sha256:<hex>       each release's manifest and blobs
//! ```
//!
//! Nothing in a bundle is trusted because it is in the bundle: the node
//! verifies the metadata with tough from the root it trusts (walking the
//! root versions the bundle carries), and every blob against the signed
//! digests, exactly as when installing from a registry.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const MARKER: &str = "outpost-bundle.json";
pub const FORMAT: &str = "outpost-bundle/1";
/// A bundle larger than this is refused before it is read.
pub const MAX_BUNDLE_BYTES: u64 = 1 << 30;
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read the bundle {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the bundle {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not an Outpost bundle ({detail}); make one with `outpost bundle export` on a connected machine"
    )]
    NotBundle { path: PathBuf, detail: String },
    #[error("{path} is damaged or was cut short ({detail}); copy it again")]
    Damaged { path: PathBuf, detail: String },
    #[error("{path} is {size} bytes; bundles are limited to {MAX_BUNDLE_BYTES} bytes")]
    TooLarge { path: PathBuf, size: u64 },
}

/// A bundle's contents.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    /// TUF metadata files by name.
    pub metadata: BTreeMap<String, Vec<u8>>,
    /// Manifests and blobs by digest.
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// The releases the exporter put in, `acme/zpl-printer@1.2.0`.
    pub releases: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    format: String,
    releases: Vec<String>,
}

impl Bundle {
    /// Writes the bundle to `path` (through a temporary file, so a full disk
    /// or a pulled stick never leaves half a bundle under the final name).
    pub fn write(&self, path: &Path) -> Result<(), BundleError> {
        let error = |source| BundleError::Write {
            path: path.to_path_buf(),
            source,
        };
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let temp = tempfile::NamedTempFile::new_in(folder).map_err(error)?;
        {
            let mut builder = tar::Builder::new(temp.as_file());
            let marker = serde_json::to_vec_pretty(&Marker {
                format: FORMAT.into(),
                releases: self.releases.clone(),
            })
            .unwrap_or_default();
            append(&mut builder, MARKER, &marker).map_err(error)?;
            for (name, bytes) in &self.metadata {
                append(&mut builder, &format!("tuf/{name}"), bytes).map_err(error)?;
            }
            for (digest, bytes) in &self.blobs {
                append(&mut builder, &format!("blobs/{digest}"), bytes).map_err(error)?;
            }
            builder.finish().map_err(error)?;
        }
        temp.as_file().sync_all().map_err(error)?;
        temp.persist(path).map_err(|e| error(e.error))?;
        Ok(())
    }

    /// Reads the bundle at `path`.
    pub fn read(path: &Path) -> Result<Bundle, BundleError> {
        let read_error = |source| BundleError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let size = file.metadata().map_err(read_error)?.len();
        if size > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge {
                path: path.to_path_buf(),
                size,
            });
        }
        let damaged = |detail: String| BundleError::Damaged {
            path: path.to_path_buf(),
            detail,
        };
        let mut archive = tar::Archive::new(file);
        let mut bundle = Bundle::default();
        let mut marker = None;
        let entries = archive.entries().map_err(|e| damaged(e.to_string()))?;
        for (count, entry) in entries.enumerate() {
            if count >= MAX_ENTRIES {
                return Err(damaged(format!("more than {MAX_ENTRIES} entries")));
            }
            let mut entry = entry.map_err(|e| damaged(e.to_string()))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry
                .path()
                .map_err(|e| damaged(e.to_string()))?
                .to_string_lossy()
                .to_string();
            let mut bytes = Vec::new();
            (&mut entry)
                .take(MAX_BUNDLE_BYTES)
                .read_to_end(&mut bytes)
                .map_err(|e| damaged(format!("{name}: {e}")))?;
            if bytes.len() as u64 != entry.header().size().unwrap_or(0) {
                return Err(damaged(format!("{name} is cut short")));
            }
            if name == MARKER {
                let parsed: Marker =
                    serde_json::from_slice(&bytes).map_err(|e| BundleError::NotBundle {
                        path: path.to_path_buf(),
                        detail: format!("{MARKER}: {e}"),
                    })?;
                marker = Some(parsed);
            } else if let Some(file) = name.strip_prefix("tuf/") {
                if !file.contains('/') && file.ends_with(".json") {
                    bundle.metadata.insert(file.to_string(), bytes);
                }
            } else if let Some(digest) = name.strip_prefix("blobs/")
                && crate::store::is_digest(digest)
            {
                bundle.blobs.insert(digest.to_string(), bytes);
            }
        }
        let Some(marker) = marker else {
            return Err(BundleError::NotBundle {
                path: path.to_path_buf(),
                detail: format!("it has no {MARKER}"),
            });
        };
        if marker.format != FORMAT {
            return Err(BundleError::NotBundle {
                path: path.to_path_buf(),
                detail: format!(
                    "its format is {:?}; this node reads {FORMAT}",
                    marker.format
                ),
            });
        }
        bundle.releases = marker.releases;
        Ok(bundle)
    }
}

fn append<W: std::io::Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, bytes)
}

/// Whether `path` looks like a bundle (by its first bytes: a tar whose first
/// entry is the marker).
pub fn looks_like_bundle(path: &Path) -> bool {
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 100];
    file.read_exact(&mut head).is_ok() && head.starts_with(MARKER.as_bytes())
}
