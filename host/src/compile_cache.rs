//! Machine code for installed plugins, compiled once and kept on disk.
//!
//! Compiling a component takes tens of milliseconds; loading precompiled code
//! takes well under one. Entries are named by the component's sha-256, the
//! engine kind and the engine's compatibility fingerprint (wasmtime version,
//! target, settings), so a node upgrade or a config change simply misses and
//! recompiles. The sha-256 of each entry is recorded in the node database and
//! checked before the code is loaded: loading machine code runs it, so a
//! damaged or swapped file is recompiled instead of trusted.

use crate::engine::EngineKind;
use crate::store::{NodeStore, StoreError};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("the component does not compile: {0}")]
    Invalid(String),
    #[error("cannot write compiled code to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a component was obtained, for logs and benches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from the cache.
    Hit,
    /// Compiled now (and cached).
    Compiled,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[derive(Debug)]
pub struct CompileCache {
    dir: PathBuf,
}

fn engine_fingerprint(engine: &Engine) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

impl CompileCache {
    pub fn new(dir: &Path) -> Result<CompileCache, CompileError> {
        std::fs::create_dir_all(dir).map_err(|source| CompileError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(CompileCache {
            dir: dir.to_path_buf(),
        })
    }

    /// Names the machine code of the component with sha-256 `digest` for
    /// `engine`: code under one key runs on any engine with that key's
    /// fingerprint.
    pub(crate) fn key(engine: &Engine, kind: EngineKind, digest: &str) -> String {
        format!("{digest}-{}-{}", kind.tag(), engine_fingerprint(engine))
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    /// The machine code cached under `key`, if its sha-256 is the one
    /// recorded when it was written.
    pub(crate) fn verified_code(
        &self,
        key: &str,
        store: &NodeStore,
    ) -> Result<Option<Vec<u8>>, CompileError> {
        let path = self.path(key);
        let Some(expected) = store.compiled_digest(key)? else {
            return Ok(None);
        };
        let Ok(code) = std::fs::read(&path) else {
            return Ok(None);
        };
        if sha256_hex(&code) == expected {
            Ok(Some(code))
        } else {
            tracing::warn!(
                path = %path.display(),
                "cached code does not match its recorded digest; recompiling"
            );
            Ok(None)
        }
    }

    /// Caches `code` under `key`. `code` must be what `precompile_component`
    /// made for an engine with the key's fingerprint, such as
    /// [`CompileCache::verified_code`] of another cache: loading it runs it.
    pub(crate) fn adopt(
        &self,
        key: &str,
        store: &NodeStore,
        code: &[u8],
    ) -> Result<(), CompileError> {
        self.write_atomically(&self.path(key), code)?;
        store.set_compiled_digest(key, &sha256_hex(code))?;
        Ok(())
    }

    /// The component with sha-256 `digest`: from the cache if a verified
    /// entry exists, else compiled from `wasm()` and cached.
    pub fn load(
        &self,
        engine: &Engine,
        kind: EngineKind,
        digest: &str,
        store: &NodeStore,
        wasm: impl FnOnce() -> Result<Vec<u8>, CompileError>,
    ) -> Result<(Component, CacheOutcome), CompileError> {
        let key = Self::key(engine, kind, digest);
        if let Some(code) = self.verified_code(&key, store)? {
            // SAFETY: these bytes are exactly what `precompile_component`
            // produced for an engine with this fingerprint: their sha-256
            // was recorded in the node database when they were written.
            match unsafe { Component::deserialize(engine, &code) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(error) => tracing::warn!(
                    path = %self.path(&key).display(),
                    "cached code would not load ({error:#}); recompiling"
                ),
            }
        }
        let wasm = wasm()?;
        let code = engine
            .precompile_component(&wasm)
            .map_err(|e| CompileError::Invalid(format!("{e:#}")))?;
        crate::failpoint::reached("during:compile");
        self.adopt(&key, store, &code)?;
        // SAFETY: `code` was produced just now by `precompile_component` on
        // this same engine.
        let component = unsafe { Component::deserialize(engine, &code) }
            .map_err(|e| CompileError::Invalid(format!("{e:#}")))?;
        Ok((component, CacheOutcome::Compiled))
    }

    /// Writes next to the target and renames over it, so a crash leaves either
    /// the old entry or the new one, never half of one.
    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<(), CompileError> {
        let write_error = |source| CompileError::Write {
            path: path.to_path_buf(),
            source,
        };
        let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
        let mut file = std::fs::File::create(&temporary).map_err(write_error)?;
        file.write_all(bytes).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        drop(file);
        std::fs::rename(&temporary, path).map_err(write_error)?;
        Ok(())
    }

    /// Deletes entries for components no installed version uses any more.
    pub fn retain(&self, digests_in_use: &[String]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let digest = name.split('-').next().unwrap_or_default();
            let in_use = digests_in_use.iter().any(|d| d == digest);
            if !in_use || name.contains(".tmp-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
