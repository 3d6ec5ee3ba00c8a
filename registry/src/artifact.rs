//! A plugin as an OCI artifact, in the CNCF Wasm layout: an image manifest
//! whose config is `application/vnd.wasm.config.v0+json` (the component's
//! imports and exports, from oci-wasm) and whose first layer is the
//! component, `application/wasm`. Outpost adds what a node needs to
//! install it: `plugin.toml` as a layer of its own media type, and each
//! asset file as one more layer, every layer titled with its path in the
//! package folder. Generic Wasm tools see an ordinary Wasm artifact; the
//! extra layers ride along.

use oci_client::manifest::{OciDescriptor, OciImageManifest};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Component, Path};

pub const MANIFEST_MEDIA_TYPE: &str = oci_wasm::WASM_MANIFEST_MEDIA_TYPE;
pub const CONFIG_MEDIA_TYPE: &str = oci_wasm::WASM_MANIFEST_CONFIG_MEDIA_TYPE;
pub const WASM_MEDIA_TYPE: &str = oci_wasm::WASM_LAYER_MEDIA_TYPE;
pub const PLUGIN_MANIFEST_MEDIA_TYPE: &str = "application/vnd.outpost.plugin.manifest.v1+toml";
pub const ASSET_MEDIA_TYPE: &str = "application/vnd.outpost.plugin.asset.v1";
pub const TITLE: &str = "org.opencontainers.image.title";
pub const VERSION: &str = "org.opencontainers.image.version";
pub const PLUGIN_MANIFEST_FILE: &str = "plugin.toml";

/// The creation time every artifact records (see `build`).
pub const REPRODUCIBLE_CREATED: &str = "1970-01-01T00:00:00Z";

/// Manifests are small; anything bigger is refused before it is parsed.
pub const MAX_MANIFEST_BYTES: u64 = 256 << 10;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("the manifest is not an OCI image manifest: {0}")]
    NotManifest(String),
    #[error(
        "the artifact's config is {0:?}; Outpost plugins use the Wasm artifact layout (config {CONFIG_MEDIA_TYPE})"
    )]
    NotWasm(String),
    #[error("the artifact must have exactly one {WASM_MEDIA_TYPE} layer; it has {0}")]
    WasmLayers(usize),
    #[error(
        "the artifact has no {PLUGIN_MANIFEST_MEDIA_TYPE} layer, so a node cannot install it (push it with `outpost vendor publish`)"
    )]
    NoPluginManifest,
    #[error("layer {digest} has no usable title ({detail})")]
    Title { digest: String, detail: String },
    #[error("the {what} is not a WebAssembly component: {detail}")]
    NotComponent { what: String, detail: String },
    #[error("{what}: {detail}")]
    Describe { what: String, detail: String },
    #[error("layer {digest} has an invalid size {size}")]
    Size { digest: String, size: i64 },
    #[error("layer {digest} has an invalid digest (sha256:<64 lowercase hex> expected)")]
    Digest { digest: String },
}

pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// What goes into an artifact.
#[derive(Debug, Clone)]
pub struct Parts {
    /// The component's file name, as `plugin.toml` names it.
    pub component_name: String,
    pub component: Vec<u8>,
    pub plugin_manifest: Vec<u8>,
    /// (path inside assets/, bytes)
    pub assets: Vec<(String, Vec<u8>)>,
    pub version: String,
}

/// A built artifact: the manifest bytes and every blob by digest.
#[derive(Debug, Clone)]
pub struct Built {
    pub manifest: Vec<u8>,
    pub digest: String,
    pub config: (String, Vec<u8>),
    pub layers: Vec<(OciDescriptor, Vec<u8>)>,
}

fn descriptor(media_type: &str, bytes: &[u8], title: Option<&str>) -> OciDescriptor {
    OciDescriptor {
        media_type: media_type.to_string(),
        digest: digest_of(bytes),
        size: bytes.len() as i64,
        urls: None,
        artifact_type: None,
        annotations: title.map(|t| BTreeMap::from([(TITLE.to_string(), t.to_string())])),
    }
}

/// Builds the artifact for `parts`.
pub fn build(parts: &Parts) -> Result<Built, ArtifactError> {
    check_component("component", &parts.component)?;
    let (config, _) = oci_wasm::WasmConfig::from_raw_component(parts.component.clone(), None)
        .map_err(|e| ArtifactError::Describe {
            what: parts.component_name.clone(),
            detail: format!("{e:#}"),
        })?;
    // The same package always makes the same artifact (and digest), so a
    // publish that failed half-way can simply be run again: the creation
    // time is the epoch, as reproducible builds do.
    let mut config = serde_json::to_value(&config).map_err(|e| ArtifactError::Describe {
        what: "config".into(),
        detail: e.to_string(),
    })?;
    if let Some(created) = config.get_mut("created") {
        *created = serde_json::Value::String(REPRODUCIBLE_CREATED.into());
    }
    let config_bytes = serde_json::to_vec(&config).map_err(|e| ArtifactError::Describe {
        what: "config".into(),
        detail: e.to_string(),
    })?;
    let mut layers = vec![
        (
            descriptor(
                WASM_MEDIA_TYPE,
                &parts.component,
                Some(&parts.component_name),
            ),
            parts.component.clone(),
        ),
        (
            descriptor(
                PLUGIN_MANIFEST_MEDIA_TYPE,
                &parts.plugin_manifest,
                Some(PLUGIN_MANIFEST_FILE),
            ),
            parts.plugin_manifest.clone(),
        ),
    ];
    for (path, bytes) in &parts.assets {
        let title = format!("assets/{path}");
        layers.push((
            descriptor(ASSET_MEDIA_TYPE, bytes, Some(&title)),
            bytes.clone(),
        ));
    }
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.to_string()),
        config: descriptor(CONFIG_MEDIA_TYPE, &config_bytes, None),
        layers: layers.iter().map(|(d, _)| d.clone()).collect(),
        subject: None,
        artifact_type: None,
        annotations: Some(BTreeMap::from([(
            VERSION.to_string(),
            parts.version.clone(),
        )])),
    };
    let manifest_bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|e| ArtifactError::Describe {
            what: "manifest".into(),
            detail: e.to_string(),
        })?;
    Ok(Built {
        digest: digest_of(&manifest_bytes),
        manifest: manifest_bytes,
        config: (digest_of(&config_bytes), config_bytes),
        layers,
    })
}

/// Checks that `bytes` is a valid WebAssembly component (not a core module).
pub fn check_component(what: &str, bytes: &[u8]) -> Result<(), ArtifactError> {
    if !wasmparser::Parser::is_component(bytes) {
        let detail = if wasmparser::Parser::is_core_wasm(bytes) {
            "it is a core module; build for wasm32-wasip2 so cargo emits a component".to_string()
        } else {
            "it does not start with the WebAssembly header".to_string()
        };
        return Err(ArtifactError::NotComponent {
            what: what.into(),
            detail,
        });
    }
    let mut validator = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
    validator
        .validate_all(bytes)
        .map(|_| ())
        .map_err(|e| ArtifactError::NotComponent {
            what: what.into(),
            detail: e.to_string(),
        })
}

/// A parsed manifest that passed the layout checks.
#[derive(Debug, Clone)]
pub struct Layout {
    pub manifest: OciImageManifest,
}

/// One file of the package a layer becomes, by its relative path.
#[derive(Debug, Clone)]
pub struct LayerFile<'a> {
    pub path: String,
    pub descriptor: &'a OciDescriptor,
}

/// Parses `bytes` and checks it has the Outpost plugin layout.
pub fn parse(bytes: &[u8]) -> Result<Layout, ArtifactError> {
    // oci-client's type ignores `mediaType` and unknown fields: an index
    // carrying a config and layers would otherwise pass for a manifest.
    let raw: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ArtifactError::NotManifest(e.to_string()))?;
    match raw.get("mediaType").and_then(|m| m.as_str()) {
        Some(MANIFEST_MEDIA_TYPE) | None => {}
        Some(other) => {
            return Err(ArtifactError::NotManifest(format!(
                "its mediaType is {other}, not {MANIFEST_MEDIA_TYPE}"
            )));
        }
    }
    if raw.get("manifests").is_some() {
        return Err(ArtifactError::NotManifest(
            "it has a manifests list, as an index does".into(),
        ));
    }
    let manifest: OciImageManifest =
        serde_json::from_value(raw).map_err(|e| ArtifactError::NotManifest(e.to_string()))?;
    if manifest.schema_version != 2 {
        return Err(ArtifactError::NotManifest(format!(
            "schemaVersion {} (2 expected)",
            manifest.schema_version
        )));
    }
    if manifest.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(ArtifactError::NotWasm(manifest.config.media_type.clone()));
    }
    let wasm = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == WASM_MEDIA_TYPE)
        .count();
    if wasm != 1 {
        return Err(ArtifactError::WasmLayers(wasm));
    }
    for descriptor in std::iter::once(&manifest.config).chain(&manifest.layers) {
        if !crate::store::is_digest(&descriptor.digest) {
            return Err(ArtifactError::Digest {
                digest: descriptor.digest.clone(),
            });
        }
        if descriptor.size < 0 {
            return Err(ArtifactError::Size {
                digest: descriptor.digest.clone(),
                size: descriptor.size,
            });
        }
    }
    Ok(Layout { manifest })
}

impl Layout {
    /// The package files the layers become; refuses a title that would
    /// land outside the package folder, or two layers with one path.
    pub fn files(&self) -> Result<Vec<LayerFile<'_>>, ArtifactError> {
        let mut files: Vec<LayerFile<'_>> = Vec::new();
        let mut has_manifest = false;
        for layer in &self.manifest.layers {
            let title = layer
                .annotations
                .as_ref()
                .and_then(|a| a.get(TITLE))
                .ok_or_else(|| ArtifactError::Title {
                    digest: layer.digest.clone(),
                    detail: format!("no {TITLE} annotation"),
                })?;
            let bad = |detail: &str| ArtifactError::Title {
                digest: layer.digest.clone(),
                detail: format!("{title:?} {detail}"),
            };
            let path = Path::new(title);
            // Every segment a plain name a file system takes: no empty or
            // `.` segments (which `components` would quietly drop), no
            // trailing slash, nothing longer than a file name may be.
            let plain_segments = title
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part.len() <= 255);
            if title.is_empty()
                || !plain_segments
                || !path.components().all(|c| matches!(c, Component::Normal(_)))
                || title.contains('\\')
            {
                return Err(bad("is not a plain relative path"));
            }
            match layer.media_type.as_str() {
                PLUGIN_MANIFEST_MEDIA_TYPE if title == PLUGIN_MANIFEST_FILE => has_manifest = true,
                PLUGIN_MANIFEST_MEDIA_TYPE => return Err(bad("must be plugin.toml")),
                ASSET_MEDIA_TYPE if !title.starts_with("assets/") => {
                    return Err(bad("must be inside assets/"));
                }
                WASM_MEDIA_TYPE if title.contains('/') || title == PLUGIN_MANIFEST_FILE => {
                    return Err(bad("must be a file name beside plugin.toml"));
                }
                ASSET_MEDIA_TYPE | WASM_MEDIA_TYPE => {}
                other => {
                    return Err(ArtifactError::Title {
                        digest: layer.digest.clone(),
                        detail: format!("unknown layer media type {other}"),
                    });
                }
            }
            if files.iter().any(|f| f.path == *title) {
                return Err(bad("is used by two layers"));
            }
            // `assets/a` and `assets/a/b` cannot both be files.
            if files.iter().any(|f| {
                f.path.starts_with(&format!("{title}/"))
                    || title.starts_with(&format!("{}/", f.path))
            }) {
                return Err(bad("is both a file and a folder of another layer"));
            }
            files.push(LayerFile {
                path: title.clone(),
                descriptor: layer,
            });
        }
        if !has_manifest {
            return Err(ArtifactError::NoPluginManifest);
        }
        Ok(files)
    }

    /// Every blob: config first, then layers.
    pub fn blobs(&self) -> impl Iterator<Item = &OciDescriptor> {
        std::iter::once(&self.manifest.config).chain(&self.manifest.layers)
    }
}
