//! Bindings for the `outpost:plugins/forecaster@0.1.0` world. Use them through
//! `outpost_sdk::forecaster`.

outpost_sdk_core::world_bindings!(
    "outpost:plugins/forecaster@0.1.0",
    "export_forecaster",
    "outpost_sdk::forecaster",
    forecasting as Forecasting
);
