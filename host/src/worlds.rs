//! The plugin worlds this node supports, and how a manifest names one.
//!
//! A world is a kind of plugin at a contract version:
//! `outpost:plugins/printer-driver@0.1.0`. A node refuses a world it does not
//! speak by name, listing the ones it does. Versions follow WIT's semver
//! rules: a plugin built against 0.1.0 runs on a node that speaks 0.1.x for
//! any later x, never on 0.2 (for 0.x versions the minor number breaks).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The WIT package that defines the plugin worlds.
pub const PLUGIN_PACKAGE: &str = "outpost:plugins";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    PrinterDriver,
    PaymentTokenizer,
    CourierAdapter,
    Forecaster,
}

impl PluginKind {
    pub const ALL: [PluginKind; 4] = [
        PluginKind::PrinterDriver,
        PluginKind::PaymentTokenizer,
        PluginKind::CourierAdapter,
        PluginKind::Forecaster,
    ];

    /// The world's name: `printer-driver`.
    pub fn world_name(self) -> &'static str {
        match self {
            PluginKind::PrinterDriver => "printer-driver",
            PluginKind::PaymentTokenizer => "payment-tokenizer",
            PluginKind::CourierAdapter => "courier-adapter",
            PluginKind::Forecaster => "forecaster",
        }
    }

    /// The interface the world exports besides `lifecycle`: `printer`.
    pub fn interface_name(self) -> &'static str {
        match self {
            PluginKind::PrinterDriver => "printer",
            PluginKind::PaymentTokenizer => "tokenizer",
            PluginKind::CourierAdapter => "courier",
            PluginKind::Forecaster => "forecasting",
        }
    }

    fn from_world_name(name: &str) -> Option<PluginKind> {
        PluginKind::ALL.into_iter().find(|k| k.world_name() == name)
    }

    fn from_interface_name(name: &str) -> Option<PluginKind> {
        PluginKind::ALL
            .into_iter()
            .find(|k| k.interface_name() == name)
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world_name())
    }
}

/// The contract versions this node links, per world. A future version is
/// added here beside the old one, with its bindings, so both keep working.
const SUPPORTED: &[(PluginKind, u64, u64, u64)] = &[
    (PluginKind::PrinterDriver, 0, 1, 0),
    (PluginKind::PaymentTokenizer, 0, 1, 0),
    (PluginKind::CourierAdapter, 0, 1, 0),
    (PluginKind::Forecaster, 0, 1, 0),
];

/// A world this node supports, at the version a plugin was built against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct World {
    pub kind: PluginKind,
    pub version: semver::Version,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    #[error("{0:?} names no version; write it as \"outpost:plugins/printer-driver@0.1.0\"")]
    NoVersion(String),
    #[error("{text:?} has a version that is not semver: {reason}")]
    BadVersion { text: String, reason: String },
    #[error(
        "{0:?} is not an Outpost plugin world; worlds live in the {PLUGIN_PACKAGE} package, as in \"outpost:plugins/printer-driver@0.1.0\""
    )]
    ForeignPackage(String),
    #[error(
        "{requested} is not supported by this node; it supports {}",
        supported_list()
    )]
    Unsupported { requested: String },
}

/// "printer-driver@0.1.0, payment-tokenizer@0.1.0, ...".
pub fn supported_list() -> String {
    SUPPORTED
        .iter()
        .map(|(kind, major, minor, patch)| format!("{kind}@{major}.{minor}.{patch}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when something built against `built` runs on a node speaking
/// `provided`: same semver track, and not newer than the node.
pub fn compatible(built: &semver::Version, provided: &semver::Version) -> bool {
    let same_track = if built.major == 0 {
        provided.major == 0 && built.minor == provided.minor
    } else {
        built.major == provided.major
    };
    same_track && built <= provided
}

impl World {
    /// Parses `outpost:plugins/printer-driver@0.1.0` or `printer-driver@0.1.0`.
    pub fn resolve(text: &str) -> Result<World, WorldError> {
        let (path, version) = text
            .rsplit_once('@')
            .ok_or_else(|| WorldError::NoVersion(text.to_string()))?;
        let version = semver::Version::parse(version).map_err(|e| WorldError::BadVersion {
            text: text.to_string(),
            reason: e.to_string(),
        })?;
        let name = match path.split_once('/') {
            Some((package, name)) if package == PLUGIN_PACKAGE => name,
            Some(_) => return Err(WorldError::ForeignPackage(text.to_string())),
            None if path.contains(':') => return Err(WorldError::ForeignPackage(text.to_string())),
            None => path,
        };
        let unsupported = || WorldError::Unsupported {
            requested: format!("{name}@{version}"),
        };
        let kind = PluginKind::from_world_name(name).ok_or_else(unsupported)?;
        let provided = World::provided(kind);
        if !compatible(&version, &provided) {
            return Err(unsupported());
        }
        Ok(World { kind, version })
    }

    /// The version of `kind` this node links.
    pub fn provided(kind: PluginKind) -> semver::Version {
        SUPPORTED
            .iter()
            .find(|(k, ..)| *k == kind)
            .map(|&(_, major, minor, patch)| semver::Version::new(major, minor, patch))
            .unwrap_or_else(|| semver::Version::new(0, 0, 0))
    }

    /// `outpost:plugins/printer-driver@0.1.0`.
    pub fn qualified_name(&self) -> String {
        format!(
            "{PLUGIN_PACKAGE}/{}@{}",
            self.kind.world_name(),
            self.version
        )
    }

    /// The export names this node looks up, at the version it links.
    pub fn lifecycle_export(&self) -> String {
        let provided = World::provided(self.kind);
        format!("{PLUGIN_PACKAGE}/lifecycle@{provided}")
    }

    pub fn kind_export(&self) -> String {
        let provided = World::provided(self.kind);
        format!("{PLUGIN_PACKAGE}/{}@{provided}", self.kind.interface_name())
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.kind.world_name(), self.version)
    }
}

/// Which world a set of component exports looks like, for error messages:
/// a component that exports `outpost:plugins/forecasting@0.1.0` is a
/// forecaster whatever its manifest says.
pub fn kind_of_export(export: &str) -> Option<(PluginKind, String)> {
    let rest = export.strip_prefix(PLUGIN_PACKAGE)?.strip_prefix('/')?;
    let (interface, version) = rest.split_once('@')?;
    Some((
        PluginKind::from_interface_name(interface)?,
        version.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worlds_parse_short_and_qualified() {
        let short = World::resolve("printer-driver@0.1.0").expect("supported");
        let long = World::resolve("outpost:plugins/printer-driver@0.1.0").expect("supported");
        assert_eq!(short, long);
        assert_eq!(short.kind_export(), "outpost:plugins/printer@0.1.0");
        assert_eq!(short.lifecycle_export(), "outpost:plugins/lifecycle@0.1.0");
    }

    #[test]
    fn unsupported_worlds_list_what_is() {
        let future = World::resolve("printer-driver@0.2.0")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            future.contains("printer-driver@0.2.0 is not supported"),
            "{future}"
        );
        assert!(future.contains("forecaster@0.1.0"), "{future}");
        assert!(World::resolve("printer-driver").is_err());
        assert!(World::resolve("acme:things/printer-driver@0.1.0").is_err());
        assert!(World::resolve("scale@0.1.0").is_err());
    }

    #[test]
    fn semver_compatibility_follows_wit() {
        let v = |text: &str| semver::Version::parse(text).expect("valid");
        assert!(compatible(&v("0.1.0"), &v("0.1.0")));
        assert!(compatible(&v("0.1.0"), &v("0.1.4")));
        assert!(!compatible(&v("0.1.5"), &v("0.1.4")));
        assert!(!compatible(&v("0.2.0"), &v("0.1.0")));
        assert!(compatible(&v("1.0.0"), &v("1.3.0")));
        assert!(!compatible(&v("2.0.0"), &v("1.3.0")));
    }

    #[test]
    fn exports_reveal_their_kind() {
        assert_eq!(
            kind_of_export("outpost:plugins/forecasting@0.1.0"),
            Some((PluginKind::Forecaster, "0.1.0".to_string()))
        );
        assert_eq!(kind_of_export("outpost:plugins/lifecycle@0.1.0"), None);
        assert_eq!(kind_of_export("wasi:cli/run@0.2.0"), None);
    }
}
