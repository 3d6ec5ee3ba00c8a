//! The vendor's kit: `outpost vendor new | package | check | watch` (and
//! `sandbox`, which the test-kit drives), on top of `keygen` and `publish`
//! in `registry`.
//!
//! A plugin crate keeps its version in one place, `Cargo.toml`: its
//! `plugin.toml` leaves `version` and `component` out, and packaging writes
//! both into the package it builds, so the manifest, the crate and `info()`
//! (`env!("CARGO_PKG_VERSION")`) cannot drift apart. A `plugin.toml` that
//! does name a version must name Cargo's.

pub mod sandbox;
mod templates;

use anyhow::{Context, bail};
use outpost::config::Policy;
use outpost::manifest::{MANIFEST_FILE_NAME, Manifest};
use outpost::release_check::{self, CheckedRelease};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

pub use templates::{Kind, new};

/// What `cargo metadata` says of a plugin crate.
#[derive(Debug)]
struct PluginCrate {
    name: String,
    version: String,
    /// The `[lib]` target's name, as the `.wasm` file is called.
    lib_name: String,
    target_dir: PathBuf,
}

impl PluginCrate {
    fn read(folder: &Path) -> anyhow::Result<PluginCrate> {
        let manifest = folder.join("Cargo.toml");
        if !manifest.is_file() {
            bail!(
                "{} has no Cargo.toml: run this in a plugin crate (`outpost vendor new` makes one), or name its folder",
                folder.display()
            );
        }
        // Run in the crate's folder: rustup picks the toolchain (and so the
        // wasm32-wasip2 target) from the crate's rust-toolchain.toml there.
        let output = Command::new(cargo())
            .current_dir(folder)
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--manifest-path",
            ])
            .arg(&manifest)
            .output()
            .context("cannot run `cargo metadata`; is cargo (rustup.rs) installed?")?;
        if !output.status.success() {
            bail!(
                "`cargo metadata` cannot read {}: {}",
                manifest.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let metadata: serde_json::Value =
            serde_json::from_slice(&output.stdout).context("`cargo metadata` answered nonsense")?;
        let wanted = std::fs::canonicalize(&manifest)
            .with_context(|| format!("cannot resolve {}", manifest.display()))?;
        let package = metadata["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| {
                p["manifest_path"]
                    .as_str()
                    .and_then(|m| std::fs::canonicalize(m).ok())
                    .is_some_and(|m| m == wanted)
            })
            .with_context(|| {
                format!(
                    "{} is not a package (a workspace root?)",
                    manifest.display()
                )
            })?;
        let lib = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
            })
            .with_context(|| {
                format!(
                    "{} builds no cdylib: a plugin needs `[lib] crate-type = [\"cdylib\"]`",
                    manifest.display()
                )
            })?;
        let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_string();
        Ok(PluginCrate {
            name: text(&package["name"]),
            version: text(&package["version"]),
            lib_name: text(&lib["name"]).replace('-', "_"),
            target_dir: PathBuf::from(text(&metadata["target_directory"])),
        })
    }

    fn component_name(&self) -> String {
        format!("{}.wasm", self.lib_name)
    }
}

/// The cargo the vendor runs (`CARGO` inside `cargo test`).
fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// How `package` builds.
#[derive(Debug, Default, Clone)]
pub struct PackageOptions {
    /// Where the package goes; default `<target>/outpost/package`.
    pub out: Option<PathBuf>,
    /// Cargo's target folder; default the crate's own.
    pub target_dir: Option<PathBuf>,
    /// Cargo's output only on failure.
    pub quiet: bool,
}

/// Builds the crate in `folder` for `wasm32-wasip2` and makes its package
/// folder: the component, a complete `plugin.toml` and `assets/`.
pub fn package(folder: &Path, options: &PackageOptions) -> anyhow::Result<PathBuf> {
    let krate = PluginCrate::read(folder)?;
    let source_manifest = folder.join(MANIFEST_FILE_NAME);
    let source = std::fs::read_to_string(&source_manifest).with_context(|| {
        format!(
            "cannot read {}: a plugin crate has a plugin.toml beside its Cargo.toml",
            source_manifest.display()
        )
    })?;
    let manifest = complete_manifest(&source, &krate).with_context(|| {
        format!(
            "{} does not agree with Cargo.toml",
            source_manifest.display()
        )
    })?;

    let target_dir = options
        .target_dir
        .clone()
        .unwrap_or(krate.target_dir.clone());
    let mut build = Command::new(cargo());
    build
        .current_dir(folder)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--lib"])
        .arg("--manifest-path")
        .arg(folder.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    let built = if options.quiet {
        let output = build.output().context("cannot run cargo")?;
        if !output.status.success() {
            eprint!("{}", String::from_utf8_lossy(&output.stderr));
        }
        output.status
    } else {
        build.status().context("cannot run cargo")?
    };
    if !built.success() {
        bail!(
            "cargo could not build {} for wasm32-wasip2 (its errors are above; `rustup target add wasm32-wasip2` if the target is missing)",
            krate.name
        );
    }
    let wasm = target_dir
        .join("wasm32-wasip2/release")
        .join(krate.component_name());

    let out = options
        .out
        .clone()
        .unwrap_or_else(|| krate.target_dir.join("outpost/package"));
    // Made beside its place and moved in whole: a failed packaging leaves
    // the last good package, and only a folder this command made before
    // (it holds the marker) is ever replaced.
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot make {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".outpost-package-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot make a folder in {}", parent.display()))?;
    let fresh = staging.path();
    std::fs::write(
        fresh.join(PACKAGE_MARKER),
        "made by `outpost vendor package`\n",
    )
    .with_context(|| format!("cannot write in {}", fresh.display()))?;
    std::fs::copy(&wasm, fresh.join(krate.component_name()))
        .with_context(|| format!("cannot copy {}", wasm.display()))?;
    std::fs::write(fresh.join(MANIFEST_FILE_NAME), manifest)
        .with_context(|| format!("cannot write in {}", fresh.display()))?;
    let assets = folder.join("assets");
    if assets.is_dir() {
        copy_tree(&assets, &fresh.join("assets"))?;
    }
    move_into_place(staging, &out)?;
    Ok(out)
}

/// Puts the package made in `staging` at `out`, replacing only a package
/// this command made there before.
fn move_into_place(staging: tempfile::TempDir, out: &Path) -> anyhow::Result<()> {
    if std::fs::symlink_metadata(out).is_ok() {
        if out.is_symlink() || !out.join(PACKAGE_MARKER).is_file() {
            bail!(
                "{} exists and is not a package `outpost vendor package` made; choose another --out (it replaces only its own packages)",
                out.display()
            );
        }
        std::fs::remove_dir_all(out)
            .with_context(|| format!("cannot replace {}", out.display()))?;
    }
    let fresh = staging.keep();
    std::fs::rename(&fresh, out)
        .with_context(|| format!("cannot move the package to {}", out.display()))
}

/// The file that marks a folder as a package this command made, so it may
/// replace it.
const PACKAGE_MARKER: &str = ".outpost-package";

/// `plugin.toml` with `version` and `component` from the crate. Either may
/// already be there, but only with the crate's value.
fn complete_manifest(source: &str, krate: &PluginCrate) -> anyhow::Result<String> {
    let table: toml::Table = source.parse().context("plugin.toml is not valid TOML")?;
    let plugin = table
        .get("plugin")
        .and_then(toml::Value::as_table)
        .context("plugin.toml has no [plugin] table")?;
    let mut missing = Vec::new();
    match plugin.get("version").map(|v| v.as_str()) {
        None => missing.push(format!(
            "version = \"{}\"  # from Cargo.toml (outpost vendor package)",
            krate.version
        )),
        Some(Some(version)) if version == krate.version => {}
        Some(other) => bail!(
            "plugin.toml says version {} but Cargo.toml says {}; remove `version` from plugin.toml (packaging takes Cargo.toml's) so the version lives in one place",
            other.map_or("(not a string)".to_string(), |v| format!("{v:?}")),
            krate.version
        ),
    }
    let component = krate.component_name();
    match plugin.get("component").map(|v| v.as_str()) {
        None => missing.push(format!(
            "component = \"{component}\"  # the crate's build (outpost vendor package)"
        )),
        Some(Some(name)) if name == component => {}
        Some(other) => bail!(
            "plugin.toml names component {} but the crate builds {component}; remove `component` from plugin.toml (packaging fills it in)",
            other.map_or("(not a string)".to_string(), |v| format!("{v:?}"))
        ),
    }
    // Inserted as lines under `[plugin]`, so the vendor's comments stay.
    let mut lines: Vec<String> = source.lines().map(str::to_string).collect();
    let header = lines
        .iter()
        .position(|line| is_plugin_header(line))
        .context("plugin.toml's [plugin] table must be written as a `[plugin]` header")?;
    for (offset, line) in missing.into_iter().enumerate() {
        lines.insert(header + 1 + offset, line);
    }
    Ok(lines.join("\n") + "\n")
}

/// `[plugin]`, `[ plugin ]`, `[plugin]  # comment`.
fn is_plugin_header(line: &str) -> bool {
    let code = line.split('#').next().unwrap_or_default().trim();
    code.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|name| name.trim() == "plugin")
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot make {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        } else {
            bail!(
                "{} is not a file or a folder; a package's assets are plain files",
                entry.path().display()
            );
        }
    }
    Ok(())
}

/// The package to check: `path` itself when it is a package folder, else
/// the one `package` builds from the crate there.
pub fn package_of(path: &Path, options: &PackageOptions) -> anyhow::Result<PathBuf> {
    if path.join("Cargo.toml").is_file() {
        return package(path, options);
    }
    if path.join(MANIFEST_FILE_NAME).is_file() {
        return Ok(path.to_path_buf());
    }
    bail!(
        "{} holds neither a plugin crate (Cargo.toml) nor a package (plugin.toml)",
        path.display()
    )
}

/// Every check a default node makes at install, with no node: the
/// install checks (world, imports against grants, `info()`'s version
/// against plugin.toml's) and the manifest against a default node's policy.
///
/// With `beyond_default_policy`, a manifest asking for more than a default
/// node allows (a plugin meant for nodes whose operators raised a limit)
/// passes with a warning instead.
pub fn check(package: &Path, beyond_default_policy: bool) -> anyhow::Result<CheckedRelease> {
    let manifest_path = package.join(MANIFEST_FILE_NAME);
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let manifest = Manifest::parse(&text)
        .with_context(|| format!("{} is not valid", manifest_path.display()))?;
    if let Err(error) = manifest.limits_under(&Policy::default()) {
        if !beyond_default_policy {
            return Err(anyhow::Error::new(error).context(format!(
                "{}: a default node refuses this; ask for less, or pass --beyond-default-policy if it is meant only for nodes whose operators raised the limit",
                manifest_path.display()
            )));
        }
        eprintln!(
            "warning: {}: {error}; default nodes will refuse it, only nodes whose operators raised the limit install it",
            manifest_path.display()
        );
    }
    let checked = release_check::check_folder(package).with_context(|| {
        format!(
            "{} is not a release any node would install",
            package.display()
        )
    })?;
    Ok(checked)
}

/// `outpost vendor check`: package (from a crate), check, say what passed.
pub fn check_command(path: &Path, beyond_default_policy: bool) -> anyhow::Result<()> {
    let package = package_of(path, &PackageOptions::default())?;
    let checked = check(&package, beyond_default_policy)?;
    println!(
        "{}@{} ({}) passes a node's install checks: its world, imports within its grants ({}), info() reporting {}, limits within a default node's policy",
        checked.id,
        checked.version,
        checked.world,
        if checked.grants.is_empty() {
            "none".to_string()
        } else {
            checked.grants.clone()
        },
        checked.version
    );
    println!("package: {}", package.display());
    Ok(())
}

/// `outpost vendor package`.
pub fn package_command(
    folder: &Path,
    out: Option<PathBuf>,
    target_dir: Option<PathBuf>,
    quiet: bool,
) -> anyhow::Result<()> {
    let options = PackageOptions {
        out,
        target_dir,
        quiet,
    };
    let package = package(folder, &options)?;
    let checked = check(&package, true)?;
    println!(
        "packaged {}@{} in {}; it passes a node's install checks",
        checked.id,
        checked.version,
        package.display()
    );
    Ok(())
}

/// `outpost vendor watch`: package and (re)install into a local node at
/// every change of the crate's sources, until interrupted.
pub fn watch(
    folder: &Path,
    data_dir: &Path,
    config: Option<&Path>,
    every: Duration,
) -> anyhow::Result<()> {
    if data_dir == Path::new(crate::service::SERVICE_DATA_DIR) {
        bail!(
            "vendor watch installs unsigned development builds, approving what they ask for: it will not touch the service's node at {}; give it a node of its own with --data-dir (e.g. /tmp/dev-node)",
            data_dir.display()
        );
    }
    let options = PackageOptions {
        quiet: true,
        ..PackageOptions::default()
    };
    let mut seen = None;
    loop {
        let now = newest_change(folder);
        if seen != Some(now) {
            seen = Some(now);
            match reload(folder, data_dir, config, &options) {
                Ok(line) => println!("{line}"),
                Err(error) => eprintln!("error: {error:#}\n(waiting for the next change)"),
            }
        }
        std::thread::sleep(every);
    }
}

fn reload(
    folder: &Path,
    data_dir: &Path,
    config: Option<&Path>,
    options: &PackageOptions,
) -> anyhow::Result<String> {
    let package = package(folder, options)?;
    // The dev node's own policy decides at install.
    let checked = check(&package, true)?;
    // The same version rebuilt is a new component under an old number,
    // which a node refuses: it is removed first (its data kept) and added
    // again. A new version goes through the update path, `migrate` and all.
    let installed = crate::plugins::installed_version(data_dir, config, &checked.id)?;
    if installed.as_deref() == Some(checked.version.to_string().as_str()) {
        crate::plugins::remove_quietly(data_dir, config, &checked.id)?;
    }
    crate::plugins::add(data_dir, config, &package, true)?;
    Ok(format!(
        "reloaded {}@{} into the node at {}",
        checked.id,
        checked.version,
        data_dir.display()
    ))
}

/// The newest modification time under the crate's sources.
fn newest_change(folder: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut pending = vec![
        folder.join("src"),
        folder.join("assets"),
        folder.join("wit"),
        folder.join("build.rs"),
        folder.join("Cargo.toml"),
        folder.join("Cargo.lock"),
        folder.join(MANIFEST_FILE_NAME),
    ];
    while let Some(path) = pending.pop() {
        // Links are not followed: one pointing at `/` or back up the tree
        // would have this walk the disk every tick.
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if let Ok(modified) = metadata.modified() {
            newest = newest.max(modified);
        }
        if metadata.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            pending.extend(entries.flatten().map(|e| e.path()));
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn krate(version: &str) -> PluginCrate {
        PluginCrate {
            name: "zpl-printer".into(),
            version: version.into(),
            lib_name: "zpl_printer".into(),
            target_dir: PathBuf::from("target"),
        }
    }

    const SOURCE: &str = "# the driver\n[plugin]\nid = \"acme/zpl-printer\"\nworld = \"outpost:plugins/printer-driver@0.1.0\"\n\n[grants]\nkv = { quota-bytes = 4096 }\n";

    #[test]
    fn packaging_takes_the_version_and_component_from_the_crate() {
        let manifest = complete_manifest(SOURCE, &krate("1.2.0")).expect("complete");
        let parsed = Manifest::parse(&manifest).expect("a valid manifest");
        assert_eq!(parsed.version.to_string(), "1.2.0");
        assert_eq!(parsed.component, "zpl_printer.wasm");
        assert!(manifest.starts_with("# the driver\n[plugin]\nversion = \"1.2.0\""));
    }

    #[test]
    fn the_plugin_header_may_be_spaced_or_commented() {
        let source = SOURCE.replace("[plugin]\n", "[ plugin ]  # the driver\n");
        let manifest = complete_manifest(&source, &krate("1.2.0")).expect("complete");
        assert_eq!(
            Manifest::parse(&manifest)
                .expect("valid")
                .version
                .to_string(),
            "1.2.0"
        );
        assert!(!is_plugin_header("[plugins]") && !is_plugin_header("# [plugin]"));
    }

    #[test]
    fn packaging_replaces_only_its_own_package() {
        let root = tempfile::tempdir().expect("temp");
        let stage = || {
            let staging = tempfile::tempdir_in(root.path()).expect("staging");
            std::fs::write(staging.path().join(PACKAGE_MARKER), "").expect("marker");
            staging
        };
        // A folder of the vendor's (the crate, their home) is never emptied.
        let theirs = root.path().join("theirs");
        std::fs::create_dir(&theirs).expect("folder");
        std::fs::write(theirs.join("keep.txt"), "mine").expect("file");
        let error = move_into_place(stage(), &theirs).expect_err("not a package");
        assert!(error.to_string().contains("is not a package"), "{error}");
        assert!(theirs.join("keep.txt").is_file());
        // A package it made is replaced.
        let out = root.path().join("package");
        move_into_place(stage(), &out).expect("first");
        std::fs::write(out.join("old.wasm"), "old").expect("file");
        move_into_place(stage(), &out).expect("again");
        assert!(!out.join("old.wasm").exists() && out.join(PACKAGE_MARKER).is_file());
    }

    #[test]
    fn a_plugin_toml_naming_another_version_is_refused() {
        let source = SOURCE.replace("[plugin]\n", "[plugin]\nversion = \"1.2.1\"\n");
        let error = complete_manifest(&source, &krate("1.2.0")).expect_err("two versions");
        assert!(
            error
                .to_string()
                .contains("plugin.toml says version \"1.2.1\" but Cargo.toml says 1.2.0"),
            "{error}"
        );
        let same = SOURCE.replace("[plugin]\n", "[plugin]\nversion = \"1.2.0\"\n");
        complete_manifest(&same, &krate("1.2.0")).expect("the same version is fine");
        let other = SOURCE.replace("[plugin]\n", "[plugin]\ncomponent = \"old.wasm\"\n");
        assert!(complete_manifest(&other, &krate("1.2.0")).is_err());
    }
}
