//! A plugin package on disk: `plugin.toml`, the component it names, and an
//! optional `assets/` folder.
//!
//! The operator points the node at a package folder, at its `plugin.toml`, or
//! at the component with `plugin.toml` beside it. Everything inside is read
//! through a cap-std `Dir` opened on that folder, so no name in the manifest
//! can reach outside it; symbolic links and special files in `assets/` are
//! refused rather than followed, and sizes are capped before anything is read
//! whole.

use crate::manifest::{MANIFEST_FILE_NAME, Manifest, ManifestError};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest component a package may hold.
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;
const MAX_MANIFEST_BYTES: u64 = 64 << 10;
const MAX_ASSET_DEPTH: usize = 16;
pub const ASSETS_DIR: &str = "assets";

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot open the package folder {path}: {source}")]
    OpenFolder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{folder} has no {MANIFEST_FILE_NAME}; a package folder holds {MANIFEST_FILE_NAME}, the component it names, and optionally assets/"
    )]
    NoManifest { folder: PathBuf },
    #[error("{path}: {source}")]
    Manifest {
        path: PathBuf,
        source: ManifestError,
    },
    #[error(
        "{manifest} names component {named:?}, but the path given was {given:?}; point at the folder, or fix [plugin] component"
    )]
    ComponentMismatch {
        manifest: PathBuf,
        named: String,
        given: String,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{path} is {kind}; package assets must be plain files and folders")]
    NotPlain { path: PathBuf, kind: &'static str },
    #[error("{folder}: [grants] assets is set but the package has no assets/ folder")]
    NoAssets { folder: PathBuf },
    #[error("{path} nests folders more than {MAX_ASSET_DEPTH} deep")]
    TooDeep { path: PathBuf },
}

/// A file from `assets/`, by its path inside that folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetFile {
    pub relative: PathBuf,
    pub bytes: Vec<u8>,
}

/// A package, read and with its manifest parsed.
#[derive(Debug)]
pub struct Package {
    pub folder: PathBuf,
    pub manifest: Manifest,
    pub component: Vec<u8>,
    /// `None` when the package has no `assets/` folder.
    pub assets: Option<Vec<AssetFile>>,
}

fn read_capped(dir: &Dir, name: &Path, shown: &Path, limit: u64) -> Result<Vec<u8>, PackageError> {
    let read_error = |source| PackageError::Read {
        path: shown.to_path_buf(),
        source,
    };
    let file = dir.open(name).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    if size > limit {
        return Err(PackageError::TooLarge {
            path: shown.to_path_buf(),
            size,
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > limit {
        return Err(PackageError::TooLarge {
            path: shown.to_path_buf(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Reads the package at `path`, with at most `max_assets_bytes` of assets.
pub fn read(path: &Path, max_assets_bytes: u64) -> Result<Package, PackageError> {
    if !path.exists() {
        return Err(PackageError::Missing {
            path: path.to_path_buf(),
        });
    }
    let (folder, given_file) = if path.is_dir() {
        (path.to_path_buf(), None)
    } else {
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let file = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned());
        (folder, file)
    };
    let dir = Dir::open_ambient_dir(&folder, ambient_authority()).map_err(|source| {
        PackageError::OpenFolder {
            path: folder.clone(),
            source,
        }
    })?;
    read_dir(&dir, &folder, given_file, max_assets_bytes)
}

/// Reads the package in `dir`, naming its files in messages as if it were at
/// `folder`. `given_file` is the file the operator pointed at, if any.
pub fn read_dir(
    dir: &Dir,
    folder: &Path,
    given_file: Option<String>,
    max_assets_bytes: u64,
) -> Result<Package, PackageError> {
    let folder = folder.to_path_buf();
    let manifest_path = folder.join(MANIFEST_FILE_NAME);
    if !dir.is_file(MANIFEST_FILE_NAME) {
        return Err(PackageError::NoManifest { folder });
    }
    let manifest_bytes = read_capped(
        dir,
        Path::new(MANIFEST_FILE_NAME),
        &manifest_path,
        MAX_MANIFEST_BYTES,
    )?;
    let manifest_text = String::from_utf8(manifest_bytes).map_err(|_| PackageError::Manifest {
        path: manifest_path.clone(),
        source: ManifestError::Syntax("the file is not UTF-8 text".into()),
    })?;
    let manifest = Manifest::parse(&manifest_text).map_err(|source| PackageError::Manifest {
        path: manifest_path.clone(),
        source,
    })?;
    if let Some(given) = given_file
        && given != MANIFEST_FILE_NAME
        && given != manifest.component
    {
        return Err(PackageError::ComponentMismatch {
            manifest: manifest_path,
            named: manifest.component.clone(),
            given,
        });
    }
    let component_path = folder.join(&manifest.component);
    let component = read_capped(
        dir,
        Path::new(&manifest.component),
        &component_path,
        MAX_COMPONENT_BYTES,
    )?;
    let assets = if dir.is_dir(ASSETS_DIR) {
        let mut files = Vec::new();
        let mut budget = max_assets_bytes;
        let assets_dir = dir
            .open_dir(ASSETS_DIR)
            .map_err(|source| PackageError::Read {
                path: folder.join(ASSETS_DIR),
                source,
            })?;
        collect_assets(
            &assets_dir,
            &folder.join(ASSETS_DIR),
            Path::new(""),
            0,
            &mut budget,
            max_assets_bytes,
            &mut files,
        )?;
        files.sort_by(|a, b| a.relative.cmp(&b.relative));
        Some(files)
    } else {
        None
    };
    if manifest.grants.assets && assets.is_none() {
        return Err(PackageError::NoAssets { folder });
    }
    Ok(Package {
        folder,
        manifest,
        component,
        assets,
    })
}

fn collect_assets(
    dir: &Dir,
    shown: &Path,
    relative: &Path,
    depth: usize,
    budget: &mut u64,
    limit: u64,
    files: &mut Vec<AssetFile>,
) -> Result<(), PackageError> {
    if depth > MAX_ASSET_DEPTH {
        return Err(PackageError::TooDeep {
            path: shown.to_path_buf(),
        });
    }
    let read_error = |path: &Path, source| PackageError::Read {
        path: path.to_path_buf(),
        source,
    };
    for entry in dir.entries().map_err(|e| read_error(shown, e))? {
        let entry = entry.map_err(|e| read_error(shown, e))?;
        let name = PathBuf::from(entry.file_name());
        let entry_shown = shown.join(&name);
        // The entry's own type: a symlink is reported as a symlink, never
        // followed.
        let file_type = entry.file_type().map_err(|e| read_error(&entry_shown, e))?;
        if file_type.is_symlink() {
            return Err(PackageError::NotPlain {
                path: entry_shown,
                kind: "a symbolic link",
            });
        }
        if file_type.is_dir() {
            let child = entry.open_dir().map_err(|e| read_error(&entry_shown, e))?;
            collect_assets(
                &child,
                &entry_shown,
                &relative.join(&name),
                depth + 1,
                budget,
                limit,
                files,
            )?;
        } else if file_type.is_file() {
            let bytes =
                read_capped(dir, &name, &entry_shown, *budget).map_err(|error| match error {
                    PackageError::TooLarge { .. } => PackageError::TooLarge {
                        path: shown.to_path_buf(),
                        size: limit + 1,
                        limit,
                    },
                    other => other,
                })?;
            *budget -= bytes.len() as u64;
            files.push(AssetFile {
                relative: relative.join(&name),
                bytes,
            });
        } else {
            return Err(PackageError::NotPlain {
                path: entry_shown,
                kind: "a device, socket or pipe",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "[plugin]\nid = \"acme/p\"\nversion = \"1.0.0\"\n\
        world = \"printer-driver@0.1.0\"\ncomponent = \"p.wasm\"\n\n[grants]\nassets = true\n";

    fn package(dir: &Path) {
        std::fs::write(dir.join(MANIFEST_FILE_NAME), MANIFEST).expect("write");
        std::fs::write(dir.join("p.wasm"), b"\0asm").expect("write");
        std::fs::create_dir_all(dir.join("assets/fonts")).expect("mkdir");
        std::fs::write(dir.join("assets/logo.pbm"), b"P4 1 1 \x80").expect("write");
        std::fs::write(dir.join("assets/fonts/a.txt"), b"abc").expect("write");
    }

    #[test]
    fn reads_a_folder_its_manifest_or_its_component() {
        let dir = tempfile::tempdir().expect("temp dir");
        package(dir.path());
        for path in [
            dir.path().to_path_buf(),
            dir.path().join(MANIFEST_FILE_NAME),
            dir.path().join("p.wasm"),
        ] {
            let package = read(&path, 1 << 20).expect("reads");
            assert_eq!(package.manifest.id.as_str(), "acme/p");
            assert_eq!(package.component, b"\0asm");
            let assets = package.assets.expect("has assets");
            let names: Vec<_> = assets.iter().map(|a| a.relative.clone()).collect();
            assert_eq!(
                names,
                [PathBuf::from("fonts/a.txt"), PathBuf::from("logo.pbm")]
            );
        }
        std::fs::write(dir.path().join("other.wasm"), b"x").expect("write");
        assert!(matches!(
            read(&dir.path().join("other.wasm"), 1 << 20),
            Err(PackageError::ComponentMismatch { .. })
        ));
    }

    #[test]
    fn links_and_oversized_assets_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        package(dir.path());
        assert!(matches!(
            read(dir.path(), 4),
            Err(PackageError::TooLarge { .. })
        ));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/passwd", dir.path().join("assets/passwd"))
                .expect("link");
            let error = read(dir.path(), 1 << 20).err().map(|e| e.to_string());
            assert!(error.unwrap_or_default().contains("symbolic link"));
        }
    }

    #[test]
    fn missing_pieces_say_what_is_missing() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(matches!(
            read(dir.path(), 1 << 20),
            Err(PackageError::NoManifest { .. })
        ));
        std::fs::write(dir.path().join(MANIFEST_FILE_NAME), MANIFEST).expect("write");
        let error = read(dir.path(), 1 << 20)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("p.wasm"), "{error}");
        std::fs::write(dir.path().join("p.wasm"), b"\0asm").expect("write");
        assert!(matches!(
            read(dir.path(), 1 << 20),
            Err(PackageError::NoAssets { .. })
        ));
    }
}
