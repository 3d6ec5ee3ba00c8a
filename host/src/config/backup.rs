//! `[backup]`: the rolling local snapshots (see `backup::local`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackupSettings {
    /// A snapshot every so often; 0 takes none.
    pub every_minutes: u64,
    /// Snapshots older than this are dropped (the newest is always kept).
    pub keep_hours: u64,
    /// The most the snapshots take together; past it the oldest go first.
    pub max_local_mib: u64,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            every_minutes: 60,
            keep_hours: 72,
            max_local_mib: 1024,
        }
    }
}

impl BackupSettings {
    pub(super) fn validate(&self) -> Result<(), String> {
        for (key, value, most) in [
            ("backup.every-minutes", self.every_minutes, 7 * 24 * 60),
            ("backup.keep-hours", self.keep_hours, 24 * 366),
            ("backup.max-local-mib", self.max_local_mib, 1 << 20),
        ] {
            if value > most {
                return Err(format!("{key} = {value} is over its most, {most}"));
            }
        }
        if self.every_minutes > 0 && self.max_local_mib == 0 {
            return Err(
                "backup.max-local-mib = 0 leaves no room for snapshots; set backup.every-minutes \
                 = 0 to take none"
                    .into(),
            );
        }
        Ok(())
    }
}
