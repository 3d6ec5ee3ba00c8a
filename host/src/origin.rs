//! An origin a plugin may reach (`scheme://host:port`), as grants,
//! configuration and the HTTP capability compare them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a request may go: scheme, host and port, nothing else. Written
/// `https://api.example.com` (port implied) or `http://127.0.0.1:8080`;
/// kept with the port explicit and the host lowercased, so comparing two
/// is comparing strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Origin(String);

impl Origin {
    /// Parses an origin as a manifest writes it: no path, query or user.
    pub fn parse(text: &str) -> Result<Origin, String> {
        let origin = Origin::of_url(text)?;
        let rest = text.split_once("://").map_or("", |(_, rest)| rest);
        if rest.trim_end_matches('/').contains(['/', '?', '#']) {
            return Err(format!(
                "{text:?} is an origin, scheme://host:port, so it takes no path; write {origin}"
            ));
        }
        Ok(origin)
    }

    /// The origin of an absolute http(s) URL.
    pub fn of_url(url: &str) -> Result<Origin, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} is not an absolute http:// or https:// URL"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(format!("{url:?}: only http and https are supported")),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(format!("{url:?}: credentials in URLs are not allowed"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("{url:?}: {port:?} is not a port number"))?;
                (host, port)
            }
            _ => (authority, default_port),
        };
        let host = host.to_ascii_lowercase();
        let valid_host = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
        if !valid_host {
            return Err(format!("{url:?}: {host:?} is not a host name or address"));
        }
        Ok(Origin(format!("{scheme}://{host}:{port}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Origin {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Origin::parse(&text)
    }
}

impl From<Origin> for String {
    fn from(origin: Origin) -> String {
        origin.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
