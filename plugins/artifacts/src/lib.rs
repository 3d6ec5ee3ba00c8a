//! The plugins under `plugins/`, compiled for `wasm32-wasip2` by this crate's
//! build script and assembled into installable package folders.
//!
//! Tests and benches install them from [`Artifact::package_dir`]; the `outpost`
//! binary embeds the reference ones (`*_FILES`) so `outpost demo` works from
//! anywhere.

/// One built plugin package.
#[derive(Debug, Clone, Copy)]
pub struct Artifact {
    /// The folder name under `plugins/`.
    pub name: &'static str,
    /// A folder holding `plugin.toml`, the component and any `assets/`.
    pub package_dir: &'static str,
    /// The component file inside `package_dir`.
    pub component: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
