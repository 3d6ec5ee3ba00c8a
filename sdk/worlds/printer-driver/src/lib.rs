//! Bindings for the `outpost:plugins/printer-driver@0.1.0` world. Use them through
//! `outpost_sdk::printer_driver`.

outpost_sdk_core::world_bindings!(
    "outpost:plugins/printer-driver@0.1.0",
    "export_printer_driver",
    "outpost_sdk::printer_driver",
    printer as Printer
);
