//! The part of [`outpost-sdk`](https://docs.rs/outpost-sdk) every plugin world
//! shares: the host interfaces (`log`, `kv`, `config`, `keystore`, `outbox`),
//! a small client for outbound HTTP, and the shared records
//! (`money`, `address`, ...), generated once so that each is one Rust type
//! whichever world uses it. Vendors depend on `outpost-sdk`, which re-exports
//! all of this.

/// Generated bindings; the world crates point their `with` mappings here.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        inline: "
            package outpost:sdk;
            world base {
                include outpost:host/imports@0.1.0;
                import outpost:plugins/types@0.1.0;
            }
        ",
        path: ["wit/host@0.1.0", "wit/plugins@0.1.0"],
        world: "outpost:sdk/base",
        additional_derives: [PartialEq],
        generate_all,
    });
}

pub mod config;
pub mod http;
pub mod keystore;
pub mod kv;
pub mod log;
pub mod outbox;
pub mod types;

/// The in-memory host behind native `cargo test`s; public with the `testing`
/// feature.
#[cfg(all(not(target_family = "wasm"), feature = "testing"))]
pub mod testing;
#[cfg(all(not(target_family = "wasm"), not(feature = "testing")))]
#[allow(dead_code)]
mod testing;

/// Generates one plugin world's bindings in the calling crate (which must
/// depend on `outpost-sdk-core` and `wit-bindgen` by those names), reusing this
/// crate's host interfaces and shared records. Each world crate calls it
/// once: wit-bindgen exports each interface's glue macro at the crate root,
/// so two worlds that both export `lifecycle` cannot share a crate.
#[doc(hidden)]
#[macro_export]
macro_rules! world_bindings {
    ($world:literal, $export_macro:literal, $bindings_module:literal, $package:ident::$interface:ident as $Trait:ident) => {
        // Every contract version is on the path, so wit-bindgen names each
        // package module with its version: `plugins0_1_0`, `plugins0_2_0`.
        wit_bindgen::generate!({
            path: ["wit/host@0.1.0", "wit/plugins@0.1.0", "wit/plugins@0.2.0"],
            world: $world,
            with: {
                "outpost:host/log@0.1.0": outpost_sdk_core::bindings::outpost::host::log,
                "outpost:host/kv@0.1.0": outpost_sdk_core::bindings::outpost::host::kv,
                "outpost:host/config@0.1.0": outpost_sdk_core::bindings::outpost::host::config,
                "outpost:host/keystore@0.1.0": outpost_sdk_core::bindings::outpost::host::keystore,
                "outpost:host/outbox@0.1.0": outpost_sdk_core::bindings::outpost::host::outbox,
                "outpost:plugins/types@0.1.0": outpost_sdk_core::bindings::outpost::plugins::types,
            },
            additional_derives: [PartialEq],
            pub_export_macro: true,
            export_macro_name: $export_macro,
            default_bindings_module: $bindings_module,
            generate_all,
        });

        pub use self::exports::outpost::$package::$interface::{Guest as $Trait, *};
        // `lifecycle` did not change in 0.2.0: every world exports 0.1.0's.
        pub use self::exports::outpost::plugins0_1_0::lifecycle::{
            Guest as Lifecycle, HealthReport, HealthStatus, PluginInfo,
        };
    };
}
