//! Rust bindings for the WIT contracts, generated once for the whole node.
//!
//! One host-only world includes every host interface and exports every plugin
//! kind's interface. Nothing instantiates that world as a whole: each loaded
//! plugin resolves only the exports its own world has (`GuestIndices::new` on
//! its `InstancePre`), which also type-checks them against these bindings.

wasmtime::component::bindgen!({
    inline: "
        package outpost:node;

        world node {
            include outpost:host/imports@0.1.0;
            import outpost:plugins/types@0.1.0;
            export outpost:plugins/lifecycle@0.1.0;
            export outpost:plugins/printer@0.1.0;
            export outpost:plugins/tokenizer@0.1.0;
            export outpost:plugins/courier@0.1.0;
            export outpost:plugins/forecasting@0.1.0;
            export outpost:plugins/forecasting@0.2.0;
        }
    ",
    path: ["../wit/host@0.1.0", "../wit/plugins@0.1.0", "../wit/plugins@0.2.0"],
    world: "outpost:node/node",
});

pub use self::outpost::host::{config, keystore, kv, log, outbox};
pub use self::outpost::plugins0_1_0::types;
pub use exports::outpost::plugins0_1_0::{courier, forecasting, lifecycle, printer, tokenizer};
/// The forecaster's interface at 0.2.0 (calendar, events, candidates and
/// warnings); everything else a 0.2.0 forecaster uses is the 0.1.0 above.
pub use exports::outpost::plugins0_2_0::forecasting as forecasting_0_2;
