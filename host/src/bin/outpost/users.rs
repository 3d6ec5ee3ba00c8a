//! The system's users, as `setup` and commands run with `sudo` need them:
//! who a name or a uid is, and becoming that user for good.

use anyhow::{Context, bail};
use std::path::Path;

/// A user from the system's passwd database.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// `getent DATABASE KEY`'s fields, or `None` when it knows no such entry.
fn getent(database: &str, key: &str) -> anyhow::Result<Option<Vec<String>>> {
    let output = std::process::Command::new("getent")
        .args([database, key])
        .output()
        .with_context(|| format!("cannot run `getent {database}` to look {key:?} up"))?;
    if !output.status.success() {
        return Ok(None);
    }
    let line = String::from_utf8_lossy(&output.stdout);
    Ok(Some(
        line.trim()
            .split(':')
            .map(str::to_string)
            .collect::<Vec<_>>(),
    ))
}

/// The user named `key`, or with uid `key`.
pub fn user(key: &str) -> anyhow::Result<Option<User>> {
    let Some(fields) = getent("passwd", key)? else {
        return Ok(None);
    };
    let (Some(name), Some(uid), Some(gid)) = (
        fields.first().filter(|name| !name.is_empty()),
        fields.get(2).and_then(|f| f.parse().ok()),
        fields.get(3).and_then(|f| f.parse().ok()),
    ) else {
        bail!("`getent passwd {key}` answered {fields:?}, not a passwd line");
    };
    Ok(Some(User {
        name: name.clone(),
        uid,
        gid,
    }))
}

/// The name of group `gid`.
pub fn group_name(gid: u32) -> anyhow::Result<String> {
    match getent("group", &gid.to_string())? {
        Some(fields) if fields.first().is_some_and(|name| !name.is_empty()) => {
            Ok(fields[0].clone())
        }
        _ => bail!("group {gid} has no name (`getent group {gid}` found nothing)"),
    }
}

pub fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Becomes `user` for good, with its own groups: whatever this process
/// makes from here on is that user's, as if the service had made it. (The
/// unit adds `lp` for USB printers; a node run this way has the user's
/// groups only.)
pub fn become_user(user: &User) -> anyhow::Result<()> {
    let name = std::ffi::CString::new(user.name.as_str())
        .with_context(|| format!("{:?} is not a user name", user.name))?;
    // SAFETY: plain system calls on a valid C string and integers; the
    // groups go before the gid and the gid before the uid, the only order
    // that works.
    let failed = unsafe {
        libc::initgroups(name.as_ptr(), user.gid) != 0
            || libc::setgid(user.gid) != 0
            || libc::setuid(user.uid) != 0
    };
    if failed {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot become the user {}", user.name));
    }
    Ok(())
}

/// The owner of `data_dir`, when that is not who runs this.
pub fn other_owner(data_dir: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(data_dir).ok()?.uid();
    (owner != current_uid()).then_some(owner)
}

/// Run as root on a node another user owns (`sudo outpost backup` on the
/// service's `/var/lib/outpost`), becomes that user first: a file root made
/// there would be one the service cannot read. Anyone else is left as is
/// (the system refuses what they may not do, and `main` says whose the
/// directory is).
pub fn act_as_owner(data_dir: &Path) -> anyhow::Result<()> {
    if current_uid() != 0 {
        return Ok(());
    }
    let Some(owner) = other_owner(data_dir).filter(|owner| *owner != 0) else {
        return Ok(());
    };
    let user = user(&owner.to_string())?.with_context(|| {
        format!(
            "{} belongs to uid {owner}, which has no passwd entry; run the command as the node's \
             user",
            data_dir.display()
        )
    })?;
    become_user(&user)
}
