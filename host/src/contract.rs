//! Does a component keep the promises its manifest makes?
//!
//! At install the node reads the component's real imports and exports and
//! holds them against the manifest: every capability it imports must be
//! granted, nothing it imports may be outside what a node offers, and it must
//! export the world the manifest names, at a version this node speaks. Each
//! refusal names the import or export and says what to change.

use crate::config::GrantKind;
use crate::manifest::Grants;
use crate::worlds::{self, PLUGIN_PACKAGE, World};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The version of the `outpost:host` interfaces this node links.
pub const HOST_INTERFACES_VERSION: semver::Version = semver::Version::new(0, 1, 0);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error(
        "the component imports `{import}`, which needs the `{}` grant; add it under [grants] in plugin.toml",
        .grant.name()
    )]
    UngrantedImport { import: String, grant: GrantKind },
    #[error("the component imports `{import}`: {why}")]
    ForbiddenImport { import: String, why: &'static str },
    #[error(
        "the component imports `{import}`, a version this node does not provide; it provides {provided}"
    )]
    ImportVersion { import: String, provided: String },
    #[error(
        "the component imports `{import}`, which this node does not provide; plugins may import {}",
        provided_summary()
    )]
    UnknownImport { import: String },
    #[error(
        "plugin.toml says world {world}, but the component does not export `{missing}`; {found}"
    )]
    MissingExport {
        world: String,
        missing: String,
        found: String,
    },
}

/// What a node offers every plugin, without a grant. The WASI parts are
/// sandboxed: no environment, closed stdin, captured stdout and stderr, coarse
/// clocks, and no directories unless `assets` or `scratch` is granted.
const BASELINE_WASI: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
];

fn provided_summary() -> String {
    "outpost:host/log, kv, config, keystore and outbox (@0.1.x), outpost:plugins/types \
     (@0.1.x), the WASI 0.2 interfaces io, cli, clocks, random and filesystem, and \
     wasi:http/outgoing-handler with the `http` grant"
        .to_string()
}

enum ImportClass {
    Always,
    Granted(GrantKind),
    Forbidden(&'static str),
    Unknown,
}

fn classify(path: &str) -> ImportClass {
    match path {
        "outpost:host/log" | "outpost:plugins/types" => ImportClass::Always,
        "outpost:host/kv" => ImportClass::Granted(GrantKind::Kv),
        "outpost:host/config" => ImportClass::Granted(GrantKind::Config),
        "outpost:host/keystore" => ImportClass::Granted(GrantKind::Keystore),
        "outpost:host/outbox" => ImportClass::Granted(GrantKind::Outbox),
        "wasi:http/outgoing-handler" | "wasi:http/types" => ImportClass::Granted(GrantKind::Http),
        p if BASELINE_WASI.contains(&p) => ImportClass::Always,
        p if p.starts_with("wasi:sockets/") => ImportClass::Forbidden(
            "plugins get no sockets; a printer driver returns bytes and the node sends them, \
             and other plugins reach services through wasi:http/outgoing-handler with the \
             `http` grant",
        ),
        p if p.starts_with("wasi:http/") => ImportClass::Forbidden(
            "plugins may only make outbound requests (wasi:http/outgoing-handler), not serve them",
        ),
        _ => ImportClass::Unknown,
    }
}

/// Checks the import versions: `outpost:*` against what this node links,
/// `wasi:*` against the WASI 0.2 line.
fn check_version(import: &str, path: &str, version: Option<&str>) -> Result<(), ContractError> {
    let Some(version) = version else {
        return Ok(());
    };
    let parsed = semver::Version::parse(version).ok();
    let (provided, ok) = if path.starts_with("wasi:") {
        let ok = parsed
            .as_ref()
            .is_some_and(|v| v.major == 0 && v.minor == 2);
        ("WASI 0.2.x".to_string(), ok)
    } else {
        let ok = parsed
            .as_ref()
            .is_some_and(|v| worlds::compatible(v, &HOST_INTERFACES_VERSION));
        (format!("{path}@{HOST_INTERFACES_VERSION}"), ok)
    };
    if ok {
        Ok(())
    } else {
        Err(ContractError::ImportVersion {
            import: import.to_string(),
            provided,
        })
    }
}

/// Checks every import of `component` against `grants`.
pub fn check_imports(
    engine: &Engine,
    component: &Component,
    grants: &Grants,
) -> Result<(), ContractError> {
    for (import, _) in component.component_type().imports(engine) {
        let (path, version) = match import.split_once('@') {
            Some((path, version)) => (path, Some(version)),
            None => (import, None),
        };
        match classify(path) {
            ImportClass::Always => {}
            ImportClass::Granted(grant) => {
                if !grants.has(grant) {
                    return Err(ContractError::UngrantedImport {
                        import: import.to_string(),
                        grant,
                    });
                }
            }
            ImportClass::Forbidden(why) => {
                return Err(ContractError::ForbiddenImport {
                    import: import.to_string(),
                    why,
                });
            }
            ImportClass::Unknown => {
                return Err(ContractError::UnknownImport {
                    import: import.to_string(),
                });
            }
        }
        check_version(import, path, version)?;
    }
    Ok(())
}

/// Checks that `component` exports `world`'s interfaces. The names are checked
/// here; the function signatures are checked when the node first binds them.
pub fn check_exports(
    engine: &Engine,
    component: &Component,
    world: &World,
) -> Result<(), ContractError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    for wanted in [world.lifecycle_export(), world.kind_export()] {
        let present = exports.iter().any(|export| export_matches(export, &wanted));
        if !present {
            return Err(ContractError::MissingExport {
                world: world.qualified_name(),
                missing: wanted,
                found: describe_exports(&exports),
            });
        }
    }
    Ok(())
}

/// An export satisfies a wanted name when the interface is the same and its
/// version is one this node's bindings can call.
fn export_matches(export: &str, wanted: &str) -> bool {
    let (Some((export_path, export_version)), Some((wanted_path, wanted_version))) =
        (export.split_once('@'), wanted.split_once('@'))
    else {
        return export == wanted;
    };
    let (Ok(export_version), Ok(wanted_version)) = (
        semver::Version::parse(export_version),
        semver::Version::parse(wanted_version),
    ) else {
        return false;
    };
    export_path == wanted_path && worlds::compatible(&export_version, &wanted_version)
}

fn describe_exports(exports: &[String]) -> String {
    let ours: Vec<&String> = exports
        .iter()
        .filter(|e| e.starts_with(PLUGIN_PACKAGE))
        .collect();
    if ours.is_empty() {
        return format!(
            "it exports no Outpost plugin interface at all (exports: {}); was it built with outpost-sdk?",
            if exports.is_empty() {
                "none".to_string()
            } else {
                exports.join(", ")
            }
        );
    }
    let kinds: Vec<String> = ours
        .iter()
        .filter_map(|e| worlds::kind_of_export(e))
        .map(|(kind, version)| format!("the {kind} world at {version}"))
        .collect();
    let list = ours
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if kinds.is_empty() {
        format!("it exports {list}")
    } else {
        format!(
            "it exports {list}, which is {}; fix `world` in plugin.toml or rebuild the component \
             (this node supports {})",
            kinds.join(" and "),
            worlds::supported_list()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_classified() {
        assert!(matches!(classify("outpost:host/log"), ImportClass::Always));
        assert!(matches!(
            classify("outpost:host/kv"),
            ImportClass::Granted(GrantKind::Kv)
        ));
        assert!(matches!(classify("wasi:cli/stdout"), ImportClass::Always));
        assert!(matches!(
            classify("wasi:sockets/tcp"),
            ImportClass::Forbidden(_)
        ));
        assert!(matches!(classify("acme:evil/raw"), ImportClass::Unknown));
    }

    #[test]
    fn versions_are_checked_per_family() {
        assert!(check_version("wasi:cli/stdout@0.2.6", "wasi:cli/stdout", Some("0.2.6")).is_ok());
        assert!(check_version("wasi:cli/stdout@0.3.0", "wasi:cli/stdout", Some("0.3.0")).is_err());
        assert!(check_version("outpost:host/kv@0.1.0", "outpost:host/kv", Some("0.1.0")).is_ok());
        let newer = check_version("outpost:host/kv@0.2.0", "outpost:host/kv", Some("0.2.0"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(newer.contains("provides outpost:host/kv@0.1.0"), "{newer}");
    }

    #[test]
    fn exports_match_within_a_semver_track() {
        let wanted = "outpost:plugins/printer@0.1.0";
        assert!(export_matches("outpost:plugins/printer@0.1.0", wanted));
        assert!(!export_matches("outpost:plugins/printer@0.2.0", wanted));
        assert!(!export_matches("outpost:plugins/forecasting@0.1.0", wanted));
    }
}
