//! `outpost vendor new`: a plugin crate that builds, tests and passes a
//! node's install checks as it is made, for each of the four worlds.
//!
//! The templates are files under `templates/`, embedded in the binary and
//! filled by plain replacement of `{{placeholders}}`, so what a vendor gets
//! can be read (and is compiled by the e2e vendor test) as ordinary files.

use anyhow::{Context, bail};
use outpost::manifest::PluginId;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The toolchain a new crate pins: the one this node is built and tested
/// with (a test checks it against the workspace's rust-toolchain.toml).
pub const TOOLCHAIN: &str = "1.95.0";

/// The plugin worlds, as `outpost vendor new` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    #[value(alias = "printer")]
    PrinterDriver,
    #[value(alias = "tokenizer")]
    PaymentTokenizer,
    #[value(alias = "courier")]
    CourierAdapter,
    Forecaster,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::PrinterDriver => "printer-driver",
            Kind::PaymentTokenizer => "payment-tokenizer",
            Kind::CourierAdapter => "courier-adapter",
            Kind::Forecaster => "forecaster",
        }
    }

    /// The function the README's `outpost call` line shows.
    fn example_function(self) -> &'static str {
        match self {
            Kind::PrinterDriver => "render-label",
            Kind::PaymentTokenizer => "tokenize",
            Kind::CourierAdapter => "request-quotes",
            Kind::Forecaster => "forecast",
        }
    }

    /// The kind's own files: (path in the crate, template).
    fn files(self) -> &'static [(&'static str, &'static str)] {
        macro_rules! kind_files {
            ($kind:literal: $($example:literal),*) => {
                &[
                    ("src/lib.rs", include_str!(concat!("templates/", $kind, "/lib.rs"))),
                    ("plugin.toml", include_str!(concat!("templates/", $kind, "/plugin.toml"))),
                    ("tests/sandbox.rs", include_str!(concat!("templates/", $kind, "/sandbox.rs"))),
                    $((
                        concat!("examples/", $example, ".json"),
                        include_str!(concat!("templates/", $kind, "/examples/", $example, ".json")),
                    ),)*
                ]
            };
        }
        match self {
            Kind::PrinterDriver => {
                kind_files!("printer-driver": "render-label", "render-receipt", "status-request", "parse-status")
            }
            Kind::PaymentTokenizer => {
                kind_files!("payment-tokenizer": "tokenize", "authorize-offline")
            }
            Kind::CourierAdapter => {
                kind_files!("courier-adapter": "request-quotes", "book", "booking-status", "track", "cancel")
            }
            Kind::Forecaster => kind_files!("forecaster": "forecast"),
        }
    }
}

/// Files every kind's crate has.
const COMMON: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("templates/common/Cargo.toml.tmpl"),
    ),
    (
        "rust-toolchain.toml",
        include_str!("templates/common/rust-toolchain.toml"),
    ),
    (".gitignore", include_str!("templates/common/gitignore")),
    ("README.md", include_str!("templates/common/README.md.tmpl")),
];

/// Where the new crate's `outpost-sdk` comes from besides its version pin.
fn sdk_source(explicit: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    if let Some(path) = explicit {
        let path = std::path::absolute(path)
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        if !path.join("Cargo.toml").is_file() || !path.join("testkit/Cargo.toml").is_file() {
            bail!(
                "{} is not Outpost's sdk folder (it has no Cargo.toml and testkit/)",
                path.display()
            );
        }
        return Ok(Some(path));
    }
    // Built from a source tree that is still there (`cargo install --path
    // host` from a checkout): its SDK is the one that matches exactly. Only
    // a tree of this user's that nobody else may change: the new crate
    // builds whatever code is there.
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    match std::fs::canonicalize(&built_from) {
        Ok(sdk) if sdk.join("testkit/Cargo.toml").is_file() && only_mine(&sdk) => Ok(Some(sdk)),
        _ => Ok(None),
    }
}

/// True when this user owns `folder` and its parent and neither is writable
/// by others.
fn only_mine(folder: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let me = unsafe { libc::geteuid() };
    [Some(folder), folder.parent()]
        .into_iter()
        .flatten()
        .all(|path| std::fs::metadata(path).is_ok_and(|m| m.uid() == me && m.mode() & 0o022 == 0))
}

/// Rust's keywords, which cargo refuses as a package name.
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "box", "break", "const", "continue", "crate", "dyn", "else", "enum",
    "extern", "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod",
    "move", "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true",
    "try", "type", "unsafe", "use", "where", "while", "yield", "abstract", "become", "do", "final",
    "macro", "override", "priv", "typeof", "unsized", "virtual",
];

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// Makes the crate for plugin `id` of `kind` in `folder` (default: a new
/// folder named after the plugin).
pub fn new(
    kind: Kind,
    id: &str,
    folder: Option<&Path>,
    sdk_path: Option<&Path>,
) -> anyhow::Result<()> {
    let plugin = PluginId::parse(id).map_err(|error| {
        anyhow::anyhow!(
            "{id:?} is not a plugin id ({error}); name it with your namespace, as acme/zpl-printer"
        )
    })?;
    let id = plugin.to_string();
    let (vendor, name) = id.split_once('/').context("a plugin id is vendor/name")?;
    if KEYWORDS.contains(&name) || ["core", "std", "alloc", "test", "proc_macro"].contains(&name) {
        bail!(
            "{name:?} cannot name a Rust crate; call the plugin something else, as {vendor}/{name}-driver"
        );
    }
    let folder = folder.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if folder.exists()
        && std::fs::read_dir(&folder)
            .with_context(|| format!("cannot read {}", folder.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} already exists and is not empty; choose another folder with --dir",
            folder.display()
        );
    }
    let sdk = sdk_source(sdk_path)?;
    let patch = match &sdk {
        Some(path) => format!(
            "\n# outpost-sdk and outpost-testkit from the source tree this `outpost` was\n\
             # built from, until they come from crates.io: delete this section then.\n\
             [patch.crates-io]\n\
             outpost-sdk = {{ path = {} }}\n\
             outpost-testkit = {{ path = {} }}\n",
            toml_string(&path.display().to_string()),
            toml_string(&path.join("testkit").display().to_string())
        ),
        None => String::new(),
    };
    let fill = |text: &str| {
        text.replace("{{id}}", &id)
            .replace("{{vendor}}", vendor)
            .replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{kind}}", kind.name())
            .replace("{{example_function}}", kind.example_function())
            .replace(
                "{{description}}",
                &format!("An Outpost {} plugin", kind.name()),
            )
            .replace("{{sdk_version}}", env!("CARGO_PKG_VERSION"))
            .replace("{{toolchain}}", TOOLCHAIN)
            .replace("{{patch}}", &patch)
    };
    for (path, template) in COMMON.iter().chain(kind.files()) {
        let target = folder.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot make {}", parent.display()))?;
        }
        std::fs::write(&target, fill(template))
            .with_context(|| format!("cannot write {}", target.display()))?;
        // Source for a team's repository, not a node's secrets: readable as
        // any crate is, whatever the node's private umask made it.
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot set the mode of {}", target.display()))?;
    }
    for folder in std::iter::once(folder.clone())
        .chain(["src", "tests", "examples"].iter().map(|f| folder.join(f)))
    {
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot set the mode of {}", folder.display()))?;
    }
    println!(
        "made {}, a {} plugin crate for {id}",
        folder.display(),
        kind.name()
    );
    match &sdk {
        Some(path) => println!(
            "outpost-sdk {} comes from {} (see [patch.crates-io] in Cargo.toml)",
            env!("CARGO_PKG_VERSION"),
            path.display()
        ),
        None => println!(
            "outpost-sdk = \"={}\" is taken from crates.io; if it is not published there yet, \
             make the crate again with --sdk-path pointing at an Outpost source tree's sdk folder",
            env!("CARGO_PKG_VERSION")
        ),
    }
    println!(
        "next:\n  cd {}\n  cargo test              # native and sandbox tests\n  outpost vendor check    # what a node checks at install",
        folder.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_crates_pin_the_toolchain_the_node_is_built_with() {
        let workspace = include_str!("../../../../../rust-toolchain.toml");
        assert!(
            workspace.contains(&format!("channel = \"{TOOLCHAIN}\"")),
            "vendor::TOOLCHAIN must follow rust-toolchain.toml"
        );
    }

    #[test]
    fn every_kind_has_a_test_and_an_example_of_its_readme_function() {
        for kind in [
            Kind::PrinterDriver,
            Kind::PaymentTokenizer,
            Kind::CourierAdapter,
            Kind::Forecaster,
        ] {
            let files = kind.files();
            let example = format!("examples/{}.json", kind.example_function());
            assert!(files.iter().any(|(path, _)| *path == example), "{example}");
            for (path, text) in files {
                if path.ends_with(".json") {
                    serde_json::from_str::<serde_json::Value>(text)
                        .unwrap_or_else(|e| panic!("{kind:?} {path}: {e}"));
                }
            }
        }
    }
}
