//! What the registry's benches share: the reference printer driver as a
//! vendor publishes it.

use outpost_registry::artifact::Parts;
use outpost_registry::vendor;
use std::path::Path;

/// The reference printer driver, `outpost/thermal-printer@0.1.0`, with its
/// assets.
pub fn thermal_printer_release() -> vendor::Release {
    let package = Path::new(outpost_plugin_artifacts::THERMAL_PRINTER.package_dir);
    let plugin_manifest = std::fs::read(package.join("plugin.toml")).expect("plugin.toml");
    let component_path = Path::new(outpost_plugin_artifacts::THERMAL_PRINTER.component);
    let component = std::fs::read(component_path).expect("component");
    let mut assets = Vec::new();
    if let Ok(entries) = std::fs::read_dir(package.join("assets")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assets.push((name, std::fs::read(entry.path()).expect("asset")));
        }
    }
    vendor::Release {
        plugin: "outpost/thermal-printer".into(),
        version: semver::Version::new(0, 1, 0),
        world: "printer-driver".into(),
        grants: "kv, config, assets".into(),
        parts: Parts {
            component_name: component_path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned(),
            component,
            plugin_manifest,
            assets,
            version: "0.1.0".into(),
        },
    }
}
