//! What a new version asks for beyond what the operator agreed to: new
//! grants, more quota, new keys or origins, higher limits. An update that
//! asks for nothing more proceeds by itself; one that asks for more waits
//! for `outpost update approve`, with these lines shown.

use crate::manifest::{Grants, Limits};

/// One line per thing asked beyond `approved`: the grants the operator
/// approved for the active version and the limits it runs under on this
/// node. `offered` is the new manifest with the limits it would run under.
/// `None` for `approved`: a new plugin, so everything it asks is new.
pub fn asks(approved: Option<(&Grants, &Limits)>, offered: (&Grants, &Limits)) -> Vec<String> {
    let (offered, offered_limits) = offered;
    let Some((approved, active_limits)) = approved else {
        return vec![format!("asks for: {}", offered.describe())];
    };
    let mut asks = Vec::new();
    let new = offered;
    let more =
        |what: &str, old: Option<u64>, new: Option<u64>, asks: &mut Vec<String>| match (old, new) {
            (None, Some(new)) => asks.push(format!("{what}: {new} (not granted before)")),
            (Some(old), Some(new)) if new > old => asks.push(format!("{what}: {old} -> {new}")),
            _ => {}
        };
    more(
        "kv quota bytes",
        approved.kv.map(|q| q.quota_bytes),
        new.kv.map(|q| q.quota_bytes),
        &mut asks,
    );
    more(
        "scratch quota bytes",
        approved.scratch.map(|q| q.quota_bytes),
        new.scratch.map(|q| q.quota_bytes),
        &mut asks,
    );
    if new.config && !approved.config {
        asks.push("config: reading its plugin-config values (not granted before)".into());
    }
    if new.assets && !approved.assets {
        asks.push("assets: reading its assets folder (not granted before)".into());
    }
    for key in &new.keystore {
        if !approved.keystore.contains(key) {
            asks.push(format!("keystore key {key:?} (new)"));
        }
    }
    for origin in &new.http {
        if !approved.http.contains(origin) {
            asks.push(format!("outbound HTTP to {origin} (new)"));
        }
    }
    match (&approved.outbox, &new.outbox) {
        (None, Some(outbox)) => asks.push(format!(
            "outbox to {} (not granted before)",
            outbox
                .destinations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
        (Some(old), Some(new)) => {
            for destination in &new.destinations {
                if !old.destinations.contains(destination) {
                    asks.push(format!("outbox destination {destination} (new)"));
                }
            }
            more(
                "outbox max pending",
                Some(u64::from(old.max_pending)),
                Some(u64::from(new.max_pending)),
                &mut asks,
            );
            more(
                "outbox quota bytes",
                Some(old.quota_bytes),
                Some(new.quota_bytes),
                &mut asks,
            );
        }
        _ => {}
    }
    // The limits it would run under on this node, not what the manifests
    // say: a manifest that drops `fuel` runs unmetered, one that drops
    // `memory-mib` gets the policy's default, which may be more.
    let (old, new) = (active_limits, offered_limits);
    more(
        "deadline ms",
        Some(old.deadline.as_millis() as u64),
        Some(new.deadline.as_millis() as u64),
        &mut asks,
    );
    more(
        "memory MiB",
        Some(old.memory_bytes >> 20),
        Some(new.memory_bytes >> 20),
        &mut asks,
    );
    match (old.fuel, new.fuel) {
        (Some(old), None) => asks.push(format!("fuel: {old} -> unmetered")),
        (old, new) => more("fuel", old, new, &mut asks),
    }
    more(
        "calls at once",
        Some(u64::from(old.concurrency)),
        Some(u64::from(new.concurrency)),
        &mut asks,
    );
    asks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    fn manifest(extra: &str) -> (Manifest, Limits) {
        let manifest = Manifest::parse(&format!(
            "[plugin]\nid = \"acme/p\"\nversion = \"1.1.0\"\nworld = \"outpost:plugins/printer-driver@0.1.0\"\n{extra}"
        ))
        .expect("valid manifest");
        let limits = manifest
            .limits_under(&crate::config::Policy::default())
            .expect("within policy");
        (manifest, limits)
    }

    #[test]
    fn only_what_is_more_than_agreed_is_asked() {
        let (old, old_limits) = manifest(
            "[grants]\nkv = { quota-bytes = 1000 }\nhttp = [\"https://a.example\"]\n[limits]\nmemory-mib = 8\nfuel = 1000000\n",
        );
        let approved = Some((&old.grants, &old_limits));
        let (same, same_limits) = manifest(
            "[grants]\nkv = { quota-bytes = 500 }\nhttp = [\"https://a.example\"]\n[limits]\nmemory-mib = 4\nfuel = 1000000\n",
        );
        assert!(asks(approved, (&same.grants, &same_limits)).is_empty());
        let (more, more_limits) = manifest(
            "[grants]\nkv = { quota-bytes = 2000 }\nhttp = [\"https://a.example\", \"https://b.example\"]\nkeystore = [\"card\"]\n[limits]\nmemory-mib = 16\nfuel = 1000000\n",
        );
        let asked = asks(approved, (&more.grants, &more_limits));
        assert_eq!(asked.len(), 4, "{asked:?}");
        assert!(asked.iter().any(|a| a == "kv quota bytes: 1000 -> 2000"));
        assert!(asked.iter().any(|a| a.contains("https://b.example")));
        assert!(asked.iter().any(|a| a.contains("\"card\"")));
        assert!(asked.iter().any(|a| a == "memory MiB: 8 -> 16"));
        assert_eq!(asks(None, (&same.grants, &same_limits)).len(), 1);
        // Dropping a limit asks for the policy's default, or for none.
        let (dropped, dropped_limits) =
            manifest("[grants]\nkv = { quota-bytes = 1000 }\nhttp = [\"https://a.example\"]\n");
        let asked = asks(approved, (&dropped.grants, &dropped_limits));
        assert!(
            asked.iter().any(|a| a == "fuel: 1000000 -> unmetered"),
            "{asked:?}"
        );
        assert!(
            asked.iter().any(|a| a == "memory MiB: 8 -> 32"),
            "{asked:?}"
        );
    }
}
