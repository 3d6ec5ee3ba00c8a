//! Whether the node's wall clock can be believed.
//!
//! A Pi-class box has no battery-backed clock: after a power cut it can wake
//! in 1970 until NTP answers, and an operator can set it a year out by hand.
//! A wrong clock makes expiry checks refuse good cards, makes signed metadata
//! look expired (or not yet valid), and schedules retries for the wrong day.
//! The node cannot know the right time offline, but it knows two times the
//! clock cannot be earlier than: when this build was made, and when it last
//! accepted the registry's signed metadata (tough records its own clock
//! then). Reading earlier than either is reported in `/v1/health`.

/// When this build was made, in seconds since the Unix epoch (see build.rs).
pub fn built_at_secs() -> u64 {
    env!("OUTPOST_BUILT_AT").parse().unwrap_or(0)
}

/// `2026-12-03 07:16 UTC`, for messages.
pub fn date(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|secs| jiff::Timestamp::from_second(secs).ok())
        .map_or_else(
            || format!("{secs} s after 1970"),
            |at| at.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        )
}

/// What is wrong with a clock reading `now_secs`, if it is implausible.
pub fn check(now_secs: u64, built_at: u64, last_refresh: Option<u64>) -> Option<String> {
    // Builds and refreshes are stamped in seconds; a minute of slack keeps a
    // clock that NTP nudged back a little from being called wrong.
    const SLACK_SECS: u64 = 60;
    if now_secs + SLACK_SECS < built_at {
        return Some(format!(
            "the clock reads {}, before this build of outpost was made ({}): it probably lost \
             its time in a power cut. Set it (`date -s`, or let NTP reach a time server); until \
             then card expiry and signed metadata are judged against the wrong date",
            date(now_secs),
            date(built_at)
        ));
    }
    if let Some(refreshed) = last_refresh
        && now_secs + SLACK_SECS < refreshed
    {
        return Some(format!(
            "the clock reads {}, before the node last checked the registry ({}): it was ahead \
             then, or is behind now. If it is right now, run `outpost trust update \
             --clock-was-wrong` to forget the time recorded then; otherwise set the clock",
            date(now_secs),
            date(refreshed)
        ));
    }
    None
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_seconds() -> u64 {
    now_millis() / 1000
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_2026: u64 = 1_767_225_600;

    #[test]
    fn a_clock_before_the_build_or_the_last_refresh_is_reported() {
        assert_eq!(check(JAN_2026 + 10, JAN_2026, None), None);
        let woke_in_1970 = check(3_600, JAN_2026, None).expect("implausible");
        assert!(woke_in_1970.contains("1970-01-01"), "{woke_in_1970}");
        assert!(woke_in_1970.contains("power cut"), "{woke_in_1970}");
        let year = 365 * 86_400;
        let set_back = check(JAN_2026 + 100, JAN_2026, Some(JAN_2026 + year)).expect("behind");
        assert!(set_back.contains("--clock-was-wrong"), "{set_back}");
        assert_eq!(
            check(JAN_2026 + year, JAN_2026, Some(JAN_2026 + year + 30)),
            None
        );
    }

    #[test]
    fn this_build_knows_when_it_was_made() {
        assert!(built_at_secs() > JAN_2026, "{}", built_at_secs());
    }
}
