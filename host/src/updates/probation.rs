//! Judging a version on probation: its real calls and its health export,
//! against the version it replaced.

use crate::config::UpdateSettings;
use crate::manifest::RequestedProbation;
use crate::store::ProbationRecord;

/// What probation decides at one look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Keep watching.
    Continue,
    /// Passed: confirm it.
    Confirm,
    /// Failed: roll back, for this reason.
    RollBack(String),
}

/// The probation a new version gets: the operator's settings as the least,
/// what the manifest asks on top, `max-probation-seconds` the most.
pub fn start(
    settings: &UpdateSettings,
    asked: &RequestedProbation,
    now_ms: u64,
    baseline: (u64, u64),
) -> ProbationRecord {
    let seconds = asked
        .seconds
        .unwrap_or(0)
        .max(settings.probation_seconds)
        .min(settings.max_probation_seconds);
    let calls = asked.calls.unwrap_or(0).max(settings.probation_calls);
    let until_ms = now_ms.saturating_add(seconds.saturating_mul(1000));
    ProbationRecord {
        started_at_ms: now_ms,
        until_ms,
        longest_until_ms: now_ms.saturating_add(seconds.saturating_mul(4000)),
        min_calls: calls,
        calls: 0,
        bad: 0,
        carried_calls: 0,
        carried_bad: 0,
        baseline_calls: baseline.0,
        baseline_bad: baseline.1,
    }
}

/// Health as probation sees it: `Err` when the export failed or reported
/// `failing`, with what it said.
pub type HealthSeen = Result<(), String>;

/// Judges `probation` (whose `calls` and `bad` are up to date) at `now_ms`.
/// `last_failure` names what stopped the last bad call, for the reason.
pub fn judge(
    settings: &UpdateSettings,
    probation: &ProbationRecord,
    now_ms: u64,
    health: Option<&HealthSeen>,
    last_failure: Option<&str>,
) -> Verdict {
    if let Some(Err(why)) = health {
        return Verdict::RollBack(format!("its health check failed: {why}"));
    }
    let (calls, bad) = (probation.calls, probation.bad);
    if bad >= settings.probation_failed_calls && calls > 0 {
        let rate = bad as f64 / calls as f64;
        let baseline = if probation.baseline_calls == 0 {
            0.0
        } else {
            probation.baseline_bad as f64 / probation.baseline_calls as f64
        };
        let allowed = baseline + settings.probation_failed_percent as f64 / 100.0;
        if rate > allowed {
            let last = last_failure
                .map(|f| format!("; the last: {f}"))
                .unwrap_or_default();
            return Verdict::RollBack(format!(
                "{bad} of its {calls} calls failed ({:.0}%, against {:.0}% for the version \
                 before it){last}",
                rate * 100.0,
                baseline * 100.0
            ));
        }
    }
    if now_ms >= probation.until_ms && calls >= probation.min_calls {
        return Verdict::Confirm;
    }
    if now_ms >= probation.longest_until_ms {
        return Verdict::Confirm;
    }
    Verdict::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> UpdateSettings {
        UpdateSettings {
            probation_seconds: 10,
            probation_calls: 5,
            ..UpdateSettings::default()
        }
    }

    #[test]
    fn probation_takes_the_longer_of_policy_and_manifest_within_the_cap() {
        let asked = RequestedProbation {
            seconds: Some(1_000_000),
            calls: Some(2),
        };
        let p = start(&settings(), &asked, 0, (0, 0));
        assert_eq!(p.until_ms, 86_400_000);
        assert_eq!(p.min_calls, 5);
    }

    #[test]
    fn failures_above_the_old_rate_roll_back_and_time_with_calls_confirms() {
        let settings = settings();
        let mut p = start(&settings, &RequestedProbation::default(), 0, (100, 2));
        assert_eq!(judge(&settings, &p, 1_000, None, None), Verdict::Continue);
        p.calls = 10;
        p.bad = 2;
        assert_eq!(judge(&settings, &p, 1_000, None, None), Verdict::Continue);
        p.bad = 3;
        assert!(matches!(
            judge(&settings, &p, 1_000, None, Some("trapped")),
            Verdict::RollBack(why) if why.contains("3 of its 10") && why.contains("trapped")
        ));
        // A plugin that failed as often before is not blamed for it.
        let mut flaky = start(&settings, &RequestedProbation::default(), 0, (10, 3));
        flaky.calls = 10;
        flaky.bad = 3;
        assert_eq!(
            judge(&settings, &flaky, 1_000, None, None),
            Verdict::Continue
        );
        assert_eq!(
            judge(&settings, &flaky, 10_000, None, None),
            Verdict::Confirm
        );
        // Too few calls: confirmed on health alone at four times the time.
        let quiet = start(&settings, &RequestedProbation::default(), 0, (0, 0));
        assert_eq!(
            judge(&settings, &quiet, 10_000, None, None),
            Verdict::Continue
        );
        assert_eq!(
            judge(&settings, &quiet, 40_000, None, None),
            Verdict::Confirm
        );
        let failing: HealthSeen = Err("failing: no paper".into());
        assert!(matches!(
            judge(&settings, &quiet, 1, Some(&failing), None),
            Verdict::RollBack(why) if why.contains("no paper")
        ));
    }
}
