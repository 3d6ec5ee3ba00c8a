//! Bindings for the `outpost:plugins/printer-driver@0.1.0` world. Use them through
//! `outpost_sdk::printer_driver`.

outpost_sdk_core::world_bindings!(
    "outpost:plugins/printer-driver@0.1.0",
    "export_printer_driver",
    "outpost_sdk::printer_driver",
    plugins0_1_0::printer as Printer
);

/// The label records live in `outpost:plugins/types`, shared by the worlds
/// that make labels and the ones that print them.
pub use outpost_sdk_core::types::{Barcode, LabelMedia, ShippingLabel, Symbology};
