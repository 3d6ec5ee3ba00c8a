//! Bindings for the `outpost:plugins/courier-adapter@0.1.0` world. Use them through
//! `outpost_sdk::courier_adapter`.

outpost_sdk_core::world_bindings!(
    "outpost:plugins/courier-adapter@0.1.0",
    "export_courier_adapter",
    "outpost_sdk::courier_adapter",
    plugins0_1_0::courier as Courier
);

/// The label records live in `outpost:plugins/types`, shared by the worlds
/// that make labels and the ones that print them.
pub use outpost_sdk_core::types::{Barcode, LabelMedia, ShippingLabel, Symbology};
