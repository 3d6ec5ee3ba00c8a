//! The plugin worlds this node supports, and how a manifest names one.
//!
//! A world is a kind of plugin at a contract version:
//! `outpost:plugins/printer-driver@0.1.0`. A node refuses a world it does not
//! speak by name, listing the ones it does. Versions follow WIT's semver
//! rules: a plugin built against 0.1.0 runs on a node that speaks 0.1.x for
//! any later x, never on 0.2 (for 0.x versions the minor number breaks).
//!
//! A node links every version it supports side by side: a forecaster built
//! against 0.1.0 and one built against 0.2.0 run on the same node. A new
//! contract version changes only the interfaces it must; the others keep
//! their old names (the 0.2.0 forecaster exports `lifecycle@0.1.0`), so the
//! node serves both with one set of host code for everything that did not
//! change. `docs/wit.md` holds the promise made to vendors.

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

/// One world at one contract version, and the versions of the two
/// interfaces a plugin of it exports.
struct Contract {
    kind: PluginKind,
    version: (u64, u64, u64),
    lifecycle: &'static str,
    interface: &'static str,
}

impl Contract {
    const fn new(kind: PluginKind, version: (u64, u64, u64), interface: &'static str) -> Contract {
        Contract {
            kind,
            version,
            lifecycle: "0.1.0",
            interface,
        }
    }

    fn version(&self) -> semver::Version {
        let (major, minor, patch) = self.version;
        semver::Version::new(major, minor, patch)
    }
}

/// The contract versions this node links, per world, oldest first. A new
/// version is added here beside the old one, with its bindings
/// (`bindings.rs`), so both keep working.
const SUPPORTED: &[Contract] = &[
    Contract::new(PluginKind::PrinterDriver, (0, 1, 0), "0.1.0"),
    Contract::new(PluginKind::PaymentTokenizer, (0, 1, 0), "0.1.0"),
    Contract::new(PluginKind::CourierAdapter, (0, 1, 0), "0.1.0"),
    Contract::new(PluginKind::Forecaster, (0, 1, 0), "0.1.0"),
    Contract::new(PluginKind::Forecaster, (0, 2, 0), "0.2.0"),
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
        .map(|contract| format!("{}@{}", contract.kind, contract.version()))
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
        let requested = format!("{name}@{version}");
        let unsupported = || WorldError::Unsupported {
            requested: requested.clone(),
        };
        let kind = PluginKind::from_world_name(name).ok_or_else(unsupported)?;
        let world = World { kind, version };
        world.contract().ok_or_else(unsupported)?;
        Ok(world)
    }

    /// The contract version this node links for this world: same track,
    /// not older than what the plugin was built against.
    fn contract(&self) -> Option<&'static Contract> {
        SUPPORTED
            .iter()
            .filter(|contract| contract.kind == self.kind)
            .find(|contract| compatible(&self.version, &contract.version()))
    }

    /// The contract's minor track: `0.1` or `0.2`, to tell a forecaster
    /// built against 0.1.x from one built against 0.2.x.
    pub fn track(&self) -> (u64, u64) {
        if self.version.major == 0 {
            (0, self.version.minor)
        } else {
            (self.version.major, 0)
        }
    }

    /// `outpost:plugins/printer-driver@0.1.0`.
    pub fn qualified_name(&self) -> String {
        format!(
            "{PLUGIN_PACKAGE}/{}@{}",
            self.kind.world_name(),
            self.version
        )
    }

    /// The export names this node looks up, at the versions it links for
    /// this world.
    pub fn lifecycle_export(&self) -> String {
        let version = self.contract().map_or("0.1.0", |c| c.lifecycle);
        format!("{PLUGIN_PACKAGE}/lifecycle@{version}")
    }

    pub fn kind_export(&self) -> String {
        let version = self.contract().map_or("0.1.0", |c| c.interface);
        format!("{PLUGIN_PACKAGE}/{}@{version}", self.kind.interface_name())
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
        let too_new = World::resolve("forecaster@0.3.0")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            too_new.contains("forecaster@0.1.0, forecaster@0.2.0"),
            "{too_new}"
        );
    }

    #[test]
    fn both_forecaster_versions_resolve_side_by_side() {
        let old = World::resolve("outpost:plugins/forecaster@0.1.0").expect("0.1.0");
        let new = World::resolve("outpost:plugins/forecaster@0.2.0").expect("0.2.0");
        assert_eq!(old.kind_export(), "outpost:plugins/forecasting@0.1.0");
        assert_eq!(new.kind_export(), "outpost:plugins/forecasting@0.2.0");
        // What did not change keeps its name.
        assert_eq!(new.lifecycle_export(), "outpost:plugins/lifecycle@0.1.0");
        assert_eq!((old.track(), new.track()), ((0, 1), (0, 2)));
        assert!(World::resolve("printer-driver@0.2.0").is_err());
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
        assert_eq!(
            kind_of_export("outpost:plugins/forecasting@0.2.0"),
            Some((PluginKind::Forecaster, "0.2.0".to_string()))
        );
        assert_eq!(kind_of_export("outpost:plugins/lifecycle@0.1.0"), None);
        assert_eq!(kind_of_export("wasi:cli/run@0.2.0"), None);
    }
}
