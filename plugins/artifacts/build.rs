//! Compiles every plugin under `plugins/` (each folder with a `plugin.toml`) for
//! `wasm32-wasip2`, assembles each into an installable package folder
//! (manifest, component, assets), and writes Rust constants naming them.
//!
//! The guests are built by a nested `cargo build` into their own target folder
//! (`target/wasm-plugins`), so they never share a lock or a profile with the
//! host build that runs this script. Nothing prebuilt is committed: a fresh
//! clone builds its plugins the first time anything depends on this crate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "plugin";

struct Plugin {
    /// Folder name under `plugins/`, which is also the Cargo package name.
    name: String,
    source: PathBuf,
    /// The component file name the manifest names.
    component_file: String,
}

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let plugins_dir = manifest_dir
        .parent()
        .expect("plugins/artifacts has a parent folder")
        .to_path_buf();
    let workspace = plugins_dir
        .parent()
        .expect("plugins/ sits in the workspace root")
        .to_path_buf();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("wasm-plugins");

    let plugins = discover(&plugins_dir);
    for watched in [
        "wit",
        "sdk",
        "Cargo.lock",
        "Cargo.toml",
        "rust-toolchain.toml",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    for plugin in &plugins {
        println!("cargo:rerun-if-changed={}", plugin.source.display());
    }

    ensure_target_installed();
    build(&workspace, &target_dir, &plugins);

    let mut generated = String::new();
    let mut all = Vec::new();
    for plugin in &plugins {
        let package = assemble(&target_dir, plugin);
        let constant = plugin.name.to_uppercase().replace('-', "_");
        let component = package.join(&plugin.component_file);
        writeln!(
            generated,
            "/// The `{name}` plugin, built from `plugins/{name}`.\n\
             pub const {constant}: Artifact = Artifact {{\n    \
                 name: {name:?},\n    \
                 package_dir: {package:?},\n    \
                 component: {component:?},\n\
             }};",
            name = plugin.name,
            package = package.display().to_string(),
            component = component.display().to_string(),
        )
        .expect("writing to a String cannot fail");
        if !plugin.name.starts_with("test-") {
            embed(&mut generated, &constant, &package);
        }
        all.push(constant);
    }
    writeln!(
        generated,
        "/// Every plugin, reference and test-only.\npub const ALL: &[Artifact] = &[{}];",
        all.join(", ")
    )
    .expect("writing to a String cannot fail");
    let out = PathBuf::from(env("OUT_DIR")).join("artifacts.rs");
    std::fs::write(&out, generated).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}

/// Every folder under `plugins/` with a `plugin.toml`, in name order.
fn discover(plugins_dir: &Path) -> Vec<Plugin> {
    let entries = std::fs::read_dir(plugins_dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", plugins_dir.display()));
    let mut plugins = Vec::new();
    for entry in entries {
        let source = entry.expect("reading plugins/").path();
        let manifest_path = source.join("plugin.toml");
        if !manifest_path.is_file() {
            continue;
        }
        let name = source
            .file_name()
            .and_then(|n| n.to_str())
            .expect("plugin folder names are UTF-8")
            .to_string();
        let text = std::fs::read_to_string(&manifest_path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", manifest_path.display()));
        let manifest: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", manifest_path.display()));
        let component_file = manifest
            .get("plugin")
            .and_then(|p| p.get("component"))
            .and_then(|c| c.as_str())
            .unwrap_or_else(|| panic!("{} needs [plugin] component", manifest_path.display()))
            .to_string();
        let built_as = format!("{}.wasm", name.replace('-', "_"));
        assert_eq!(
            component_file,
            built_as,
            "{}: `component` must be {built_as:?}, the file cargo builds for package {name:?}",
            manifest_path.display()
        );
        plugins.push(Plugin {
            name,
            source,
            component_file,
        });
    }
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    plugins
}

/// A fresh machine may have the pinned toolchain without the wasm target if
/// rustup installed the toolchain before `rust-toolchain.toml` listed it; add
/// it rather than fail with "can't find crate for `core`".
fn ensure_target_installed() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let installed = sysroot
        .as_ref()
        .is_some_and(|root| root.join("lib/rustlib").join(TARGET).is_dir());
    if installed {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup (needed to build plugins)");
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", TARGET]);
    if let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") {
        rustup.args(["--toolchain", &toolchain]);
    }
    let status = rustup.status();
    if !matches!(status, Ok(s) if s.success()) {
        panic!(
            "the {TARGET} Rust target is not installed and `rustup target add {TARGET}` \
             failed ({status:?}); install it by hand, then build again"
        );
    }
}

/// Builds each plugin as a `cdylib` for the wasm target. The crates are plain
/// libraries in the workspace (a native cdylib cannot link the component
/// export names), so the crate type is asked for here, one package at a time
/// as `cargo rustc` requires.
fn build(workspace: &Path, target_dir: &Path, plugins: &[Plugin]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for plugin in plugins {
        let mut command = Command::new(&cargo);
        command
            .current_dir(workspace)
            .args(["rustc", "--lib", "--crate-type", "cdylib"])
            .args(["--target", TARGET, "--profile", PROFILE])
            .arg("--target-dir")
            .arg(target_dir)
            .arg("--manifest-path")
            .arg(workspace.join("Cargo.toml"))
            .args(["-p", &plugin.name]);
        // WebAssembly SIMD: wasmtime compiles it on x86-64 and aarch64 alike,
        // and without it LLVM cannot vectorise the forecaster's interleaved
        // grid search, which then runs about 2x native instead of 1.3-1.5x.
        command.args(["--", "-C", "target-feature=+simd128"]);
        // What the outer build was told applies to the host, not to the
        // guests: its rustflags, its clippy wrapper, its target and its
        // target folder.
        for variable in [
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "RUSTC_WORKSPACE_WRAPPER",
            "CLIPPY_ARGS",
            "CARGO_BUILD_TARGET",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_RUSTFLAGS",
        ] {
            command.env_remove(variable);
        }
        let status = command
            .status()
            .unwrap_or_else(|e| panic!("could not run cargo to build the plugins: {e}"));
        assert!(
            status.success(),
            "building plugin {} for {TARGET} failed ({status}); the errors are above",
            plugin.name
        );
    }
}

/// Copies manifest, component and assets into `packages/<name>/`, the layout
/// `outpost plugin add` installs from.
fn assemble(target_dir: &Path, plugin: &Plugin) -> PathBuf {
    let package = target_dir.join("packages").join(&plugin.name);
    if package.exists() {
        std::fs::remove_dir_all(&package)
            .unwrap_or_else(|e| panic!("clearing {}: {e}", package.display()));
    }
    std::fs::create_dir_all(&package)
        .unwrap_or_else(|e| panic!("creating {}: {e}", package.display()));
    let built = target_dir
        .join(TARGET)
        .join(PROFILE)
        .join(&plugin.component_file);
    copy(&built, &package.join(&plugin.component_file));
    copy(
        &plugin.source.join("plugin.toml"),
        &package.join("plugin.toml"),
    );
    let assets = plugin.source.join("assets");
    if assets.is_dir() {
        copy_dir(&assets, &package.join("assets"));
    }
    package
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("listing {}: {e}", from.display()));
    for entry in entries {
        let path = entry.expect("reading an assets folder").path();
        let name = path.file_name().expect("entries have names");
        if path.is_dir() {
            copy_dir(&path, &to.join(name));
        } else {
            copy(&path, &to.join(name));
        }
    }
}

/// Embeds a reference plugin's package files, so the `outpost` binary can
/// write out and install its reference plugins anywhere (`outpost demo`).
fn embed(generated: &mut String, constant: &str, package: &Path) {
    let mut files = Vec::new();
    collect_files(package, package, &mut files);
    files.sort();
    let entries: String = files
        .iter()
        .map(|(relative, absolute)| {
            format!("    ({relative:?}, include_bytes!({absolute:?}) as &[u8]),\n")
        })
        .collect();
    writeln!(
        generated,
        "/// Every file of the `{constant}` package, for writing it out anywhere.\n\
         pub const {constant}_FILES: &[(&str, &[u8])] = &[\n{entries}];"
    )
    .expect("writing to a String cannot fail");
}

fn collect_files(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("reading a package folder").path();
        if path.is_dir() {
            collect_files(root, &path, files);
        } else {
            let relative = path
                .strip_prefix(root)
                .expect("inside the package")
                .to_string_lossy()
                .replace('\\', "/");
            files.push((relative, path.display().to_string()));
        }
    }
}
