//! How the command-line tools (`outpost`, `outpost-registry`) show an error
//! to a person.

/// The error and its causes, each said once. Many errors keep their cause in
/// their own message, so the API (which shows one message) shows it whole,
/// and also return it as their source; anyhow's `{:#}` would then print that
/// cause a second time.
pub fn error_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if part.is_empty() || text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct ReadFailed {
        path: &'static str,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_said_again() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = anyhow::Error::new(ReadFailed {
            path: "root.json",
            source: io,
        })
        .context("trust init failed");
        assert_eq!(
            error_chain(&error),
            "trust init failed: cannot read root.json: no such file"
        );
    }
}
