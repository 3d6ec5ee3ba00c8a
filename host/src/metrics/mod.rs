//! What the node counts, for `/metrics` (Prometheus text format) and the
//! telemetry it ships to the centre.
//!
//! Two kinds of figures. **Counted** ones are recorded where they happen
//! (a call returns, a label prints, a delivery is tried) into the families
//! below; they live as long as the process, as Prometheus expects of
//! counters. **Read** ones (queue depths, outbox backlog, update states,
//! disk) are the node's state and are read at scrape time ([`scrape`]),
//! so they cannot drift from what the node would show anywhere else.
//!
//! Label values are bounded: plugin ids (what is installed), causes and
//! states (fixed lists), destinations as origins (what plugins are
//! granted). Nothing from a request body, a customer or a card is ever a
//! label.

pub mod history;
pub mod scrape;

use crate::failure::{CallFailure, PluginFailure};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PluginLabel {
    pub plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginCause {
    plugin: String,
    cause: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationResult {
    destination: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DocumentLabel {
    document: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Why a call failed, as a label: a fixed list, so a plugin cannot mint
/// series by choosing its error text.
pub const CAUSES: [&str; 14] = [
    "invalid_input",
    "unavailable",
    "denied",
    "internal",
    "deadline",
    "memory",
    "fuel",
    "panic",
    "trap",
    "storage",
    "too_much_data",
    "start",
    "busy",
    "replaced",
];

/// The label for `failure`, one of [`CAUSES`].
pub fn cause(failure: &CallFailure) -> &'static str {
    match failure {
        CallFailure::Plugin(PluginFailure::InvalidInput(_)) => "invalid_input",
        CallFailure::Plugin(PluginFailure::Unavailable(_)) => "unavailable",
        CallFailure::Plugin(PluginFailure::Denied(_)) => "denied",
        CallFailure::Plugin(PluginFailure::Internal(_)) => "internal",
        CallFailure::DeadlineExceeded(_) => "deadline",
        CallFailure::MemoryLimit { .. } => "memory",
        CallFailure::FuelExhausted(_) => "fuel",
        CallFailure::Panicked(_) => "panic",
        CallFailure::Exited(_) | CallFailure::Trapped(_) => "trap",
        CallFailure::ScratchQuota { .. }
        | CallFailure::ScratchUnmeasured(_)
        | CallFailure::DiskReserve(_) => "storage",
        CallFailure::TooMuchData { .. } => "too_much_data",
        CallFailure::Start(_) => "start",
        CallFailure::Busy(_) => "busy",
        CallFailure::Replaced => "replaced",
    }
}

/// One plugin's call counters, looked up once and kept beside the loaded
/// plugin, so a call costs a few atomic adds rather than label lookups.
#[derive(Debug)]
pub struct CallMeter {
    calls: Counter,
    duration: Histogram,
    errors: [Counter; CAUSES.len()],
}

impl CallMeter {
    /// A call that ran (or was turned away), and how it ended.
    pub fn record(&self, took: Duration, failure: Option<&CallFailure>) {
        self.calls.inc();
        self.duration.observe(took.as_secs_f64());
        if let Some(failure) = failure {
            self.refused(failure);
        }
    }

    /// A call that never ran: counted as an error, not as a call's time.
    pub fn refused(&self, failure: &CallFailure) {
        let cause = cause(failure);
        if let Some(index) = CAUSES.iter().position(|c| *c == cause) {
            self.errors[index].inc();
        }
    }
}

/// Every counted figure of one node.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    calls: Family<PluginLabel, Counter>,
    call_errors: Family<PluginCause, Counter>,
    call_duration: Family<PluginLabel, Histogram, fn() -> Histogram>,
    outbox_attempts: Family<DestinationResult, Counter>,
    printed: Family<DocumentLabel, Counter>,
    print_failed: Family<DocumentLabel, Counter>,
    tokenized: Counter,
    payment_failures: Family<OperationLabel, Counter>,
    bookings: Family<StateLabel, Counter>,
    booking_confirmation: Histogram,
    centre_sync: Family<ResultLabel, Counter>,
    centre_last_sync: Gauge<f64, AtomicU64>,
    /// Courier plugins that queued bookings: a delivery of theirs is a
    /// booking confirmed.
    couriers: std::sync::RwLock<std::collections::HashSet<String>>,
    /// Every plugin's call meter, for the totals the console charts.
    meters: std::sync::Mutex<Vec<(String, Counter, [Counter; CAUSES.len()])>>,
    history: history::History,
}

fn call_duration_histogram() -> Histogram {
    // 0.5 ms to about 16 s: a tokenize to a long forecast.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("outpost");
        let calls = Family::<PluginLabel, Counter>::default();
        registry.register(
            "plugin_calls",
            "Calls to a plugin, whatever their outcome",
            calls.clone(),
        );
        let call_errors = Family::<PluginCause, Counter>::default();
        registry.register(
            "plugin_call_errors",
            "Calls that returned no value, by cause: the plugin's own error (invalid_input, \
             unavailable, denied, internal) or what the sandbox stopped it for",
            call_errors.clone(),
        );
        let call_duration =
            Family::<PluginLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                call_duration_histogram,
            );
        registry.register(
            "plugin_call_duration_seconds",
            "Time from a call's start in the sandbox to its result",
            call_duration.clone(),
        );
        let outbox_attempts = Family::<DestinationResult, Counter>::default();
        registry.register(
            "outbox_attempts",
            "Delivery attempts by destination origin and result (delivered, retry, dead)",
            outbox_attempts.clone(),
        );
        let printed = Family::<DocumentLabel, Counter>::default();
        registry.register(
            "documents_printed",
            "Labels and receipts the printer took",
            printed.clone(),
        );
        let print_failed = Family::<DocumentLabel, Counter>::default();
        registry.register(
            "documents_failed",
            "Labels and receipts that did not print (driver, printer or connection)",
            print_failed.clone(),
        );
        let tokenized = Counter::default();
        registry.register(
            "payments_tokenized",
            "Cards turned into tokens",
            tokenized.clone(),
        );
        let payment_failures = Family::<OperationLabel, Counter>::default();
        registry.register(
            "payment_failures",
            "Payment calls that failed, by operation (tokenize, authorize_offline)",
            payment_failures.clone(),
        );
        let bookings = Family::<StateLabel, Counter>::default();
        registry.register(
            "bookings",
            "Courier bookings by how they came back: confirmed, queued (the carrier was \
             unreachable; the outbox delivers it), rejected, failed (the call failed)",
            bookings.clone(),
        );
        // 0.1 s to about five days: confirmed at once, or queued offline.
        let booking_confirmation = Histogram::new(exponential_buckets(0.1, 4.0, 12));
        registry.register(
            "booking_confirmation_seconds",
            "Time from booking to the carrier's confirmation (fulfilment latency): the call \
             itself, or the outbox's wait for a queued booking",
            booking_confirmation.clone(),
        );
        let centre_sync = Family::<ResultLabel, Counter>::default();
        registry.register(
            "centre_sync",
            "Attempts to deliver the node's own messages (events, fleet reports) to the centre",
            centre_sync.clone(),
        );
        let centre_last_sync = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "centre_last_sync_timestamp_seconds",
            "When the centre last took one of the node's messages (Unix time; 0: never since \
             start)",
            centre_last_sync.clone(),
        );
        for document in ["label", "receipt"] {
            printed.get_or_create_owned(&DocumentLabel { document });
            print_failed.get_or_create_owned(&DocumentLabel { document });
        }
        for state in ["confirmed", "queued", "rejected", "failed"] {
            bookings.get_or_create_owned(&StateLabel { state });
        }
        for result in ["delivered", "failed"] {
            centre_sync.get_or_create_owned(&ResultLabel { result });
        }
        for operation in ["tokenize", "authorize_offline"] {
            payment_failures.get_or_create_owned(&OperationLabel { operation });
        }
        Metrics {
            registry,
            calls,
            call_errors,
            call_duration,
            outbox_attempts,
            printed,
            print_failed,
            tokenized,
            payment_failures,
            bookings,
            booking_confirmation,
            centre_sync,
            centre_last_sync,
            couriers: Default::default(),
            meters: Default::default(),
            history: Default::default(),
        }
    }

    /// The counters of `plugin`'s calls (every cause starts at zero, so a
    /// rate over them works from the first error).
    pub fn call_meter(&self, plugin: &str) -> CallMeter {
        let label = PluginLabel {
            plugin: plugin.to_string(),
        };
        let meter = CallMeter {
            calls: self.calls.get_or_create_owned(&label),
            duration: self.call_duration.get_or_create_owned(&label),
            errors: CAUSES.map(|cause| {
                self.call_errors.get_or_create_owned(&PluginCause {
                    plugin: plugin.to_string(),
                    cause,
                })
            }),
        };
        if let Ok(mut meters) = self.meters.lock()
            && !meters.iter().any(|(id, _, _)| id == plugin)
        {
            meters.push((
                plugin.to_string(),
                meter.calls.clone(),
                meter.errors.clone(),
            ));
        }
        meter
    }

    /// Calls and failed calls, all plugins together.
    fn call_totals(&self) -> (u64, u64) {
        let Ok(meters) = self.meters.lock() else {
            return (0, 0);
        };
        meters.iter().fold((0, 0), |(calls, errors), (_, c, e)| {
            (
                calls + c.get(),
                errors + e.iter().map(Counter::get).sum::<u64>(),
            )
        })
    }

    /// One delivery attempt to `destination` (an origin), and whether the
    /// node's own message (`centre`) reached the centre.
    pub fn outbox_attempt(&self, destination: &str, result: &'static str, centre: bool) {
        let destination = crate::origin::Origin::of_url(destination)
            .map(|origin| origin.as_str().to_string())
            .unwrap_or_else(|_| "invalid".to_string());
        self.outbox_attempts
            .get_or_create(&DestinationResult {
                destination,
                result,
            })
            .inc();
        if centre {
            let delivered = result == "delivered";
            self.centre_sync
                .get_or_create(&ResultLabel {
                    result: if delivered { "delivered" } else { "failed" },
                })
                .inc();
            if delivered {
                self.centre_last_sync
                    .set(crate::clock::now_seconds() as f64);
            }
        }
    }

    /// A label or receipt sent to a printer (`printed`), or not.
    pub fn document(&self, document: &'static str, printed: bool) {
        let family = if printed {
            &self.printed
        } else {
            &self.print_failed
        };
        family.get_or_create(&DocumentLabel { document }).inc();
    }

    /// A payment call's outcome (`operation`: tokenize, authorize_offline).
    pub fn payment(&self, operation: &'static str, succeeded: bool) {
        if !succeeded {
            self.payment_failures
                .get_or_create(&OperationLabel { operation })
                .inc();
        } else if operation == "tokenize" {
            self.tokenized.inc();
        }
    }

    /// A booking as `book` returned it (`state`), or `failed`; a confirmed
    /// one after `took`.
    pub fn booking(&self, state: &'static str, took: Duration) {
        self.bookings
            .get_or_create_owned(&StateLabel { state })
            .inc();
        if state == "confirmed" {
            self.booking_confirmation.observe(took.as_secs_f64());
        }
    }

    /// `plugin` is a courier: what the outbox delivers for it are bookings
    /// it queued.
    pub fn courier(&self, plugin: &str) {
        let known = self
            .couriers
            .read()
            .is_ok_and(|couriers| couriers.contains(plugin));
        if !known && let Ok(mut couriers) = self.couriers.write() {
            couriers.insert(plugin.to_string());
        }
    }

    /// The outbox delivered a message of `owner`'s after `waited`: for a
    /// courier, a queued booking confirmed.
    pub fn delivered_for(&self, owner: &str, waited: Duration) {
        let courier = self
            .couriers
            .read()
            .is_ok_and(|couriers| couriers.contains(owner));
        if courier {
            self.booking_confirmation.observe(waited.as_secs_f64());
        }
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_a_listed_cause() {
        let failures = [
            CallFailure::Plugin(PluginFailure::Internal("x".into())),
            CallFailure::DeadlineExceeded(Duration::from_secs(1)),
            CallFailure::MemoryLimit { limit_bytes: 1 },
            CallFailure::Trapped("x".into()),
            CallFailure::DiskReserve("x".into()),
            CallFailure::Replaced,
        ];
        for failure in failures {
            assert!(CAUSES.contains(&cause(&failure)), "{failure:?}");
        }
    }

    #[test]
    fn a_call_meter_counts_calls_errors_and_time() {
        let metrics = Metrics::new();
        let meter = metrics.call_meter("acme/printer");
        meter.record(Duration::from_millis(3), None);
        meter.record(
            Duration::from_millis(5),
            Some(&CallFailure::DeadlineExceeded(Duration::from_secs(1))),
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode_registry(&mut text, metrics.registry())
            .expect("encoded");
        assert!(
            text.contains("outpost_plugin_calls_total{plugin=\"acme/printer\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "outpost_plugin_call_errors_total{plugin=\"acme/printer\",cause=\"deadline\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("outpost_plugin_call_duration_seconds_count{plugin=\"acme/printer\"} 2"),
            "{text}"
        );
    }
}
