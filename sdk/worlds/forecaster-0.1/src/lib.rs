//! Bindings for the `outpost:plugins/forecaster@0.1.0` world, the forecaster
//! contract before calendars and events. Use them through
//! `outpost_sdk::forecaster_0_1`; nodes keep running 0.1.0 forecasters (see
//! `docs/wit.md`), but new ones should build against 0.2.0.

outpost_sdk_core::world_bindings!(
    "outpost:plugins/forecaster@0.1.0",
    "export_forecaster_0_1",
    "outpost_sdk::forecaster_0_1",
    plugins0_1_0::forecasting as Forecasting
);
