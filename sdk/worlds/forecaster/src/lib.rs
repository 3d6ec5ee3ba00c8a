//! Bindings for the `outpost:plugins/forecaster@0.2.0` world. Use them through
//! `outpost_sdk::forecaster`. The 0.1.0 world is `outpost_sdk::forecaster_0_1`.

outpost_sdk_core::world_bindings!(
    "outpost:plugins/forecaster@0.2.0",
    "export_forecaster",
    "outpost_sdk::forecaster",
    plugins0_2_0::forecasting as Forecasting
);
