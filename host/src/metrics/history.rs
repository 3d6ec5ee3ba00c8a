//! The last hour of the business measures, a sample a minute, for the
//! console's small charts. Samples are the counters' running totals; the
//! console charts the differences between them.

use super::Metrics;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;

/// An hour of minutes.
pub const KEPT: usize = 60;

/// The business measures' totals at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    pub at_ms: u64,
    pub labels_printed: u64,
    pub labels_failed: u64,
    pub receipts_printed: u64,
    pub receipts_failed: u64,
    pub payments_tokenized: u64,
    pub payment_failures: u64,
    pub bookings_confirmed: u64,
    pub bookings_queued: u64,
    pub bookings_failed: u64,
    pub plugin_calls: u64,
    pub plugin_call_errors: u64,
}

/// Samples, oldest first.
#[derive(Debug, Default)]
pub struct History {
    samples: Mutex<VecDeque<Totals>>,
}

impl History {
    pub(crate) fn push(&self, totals: Totals) {
        if let Ok(mut samples) = self.samples.lock() {
            if samples.len() == KEPT {
                samples.pop_front();
            }
            samples.push_back(totals);
        }
    }

    pub(crate) fn samples(&self) -> Vec<Totals> {
        self.samples
            .lock()
            .map(|samples| samples.iter().copied().collect())
            .unwrap_or_default()
    }
}

impl Metrics {
    /// The business measures' totals now.
    pub fn totals(&self) -> Totals {
        let count = |family: &prometheus_client::metrics::family::Family<_, _>, label| {
            family_value(family, label)
        };
        let (calls, errors) = self.call_totals();
        Totals {
            at_ms: crate::clock::now_millis(),
            labels_printed: count(&self.printed, &super::DocumentLabel { document: "label" }),
            labels_failed: count(
                &self.print_failed,
                &super::DocumentLabel { document: "label" },
            ),
            receipts_printed: count(
                &self.printed,
                &super::DocumentLabel {
                    document: "receipt",
                },
            ),
            receipts_failed: count(
                &self.print_failed,
                &super::DocumentLabel {
                    document: "receipt",
                },
            ),
            payments_tokenized: self.tokenized.get(),
            payment_failures: ["tokenize", "authorize_offline"]
                .into_iter()
                .map(|operation| {
                    family_value(&self.payment_failures, &super::OperationLabel { operation })
                })
                .sum(),
            bookings_confirmed: family_value(
                &self.bookings,
                &super::StateLabel { state: "confirmed" },
            ),
            bookings_queued: family_value(&self.bookings, &super::StateLabel { state: "queued" }),
            bookings_failed: ["rejected", "failed"]
                .into_iter()
                .map(|state| family_value(&self.bookings, &super::StateLabel { state }))
                .sum(),
            plugin_calls: calls,
            plugin_call_errors: errors,
        }
    }

    /// Takes this minute's sample (the console's background task calls it).
    pub fn sample(&self) {
        self.history.push(self.totals());
    }

    /// The last hour's samples, and the totals now as the last one.
    pub fn history(&self) -> Vec<Totals> {
        let mut samples = self.history.samples();
        samples.push(self.totals());
        samples
    }
}

fn family_value<L>(
    family: &prometheus_client::metrics::family::Family<
        L,
        prometheus_client::metrics::counter::Counter,
    >,
    label: &L,
) -> u64
where
    L: Clone + std::hash::Hash + Eq,
{
    family.get_or_create(label).get()
}
