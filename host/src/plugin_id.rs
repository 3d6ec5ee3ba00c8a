//! A plugin's name, `vendor/name`: the key of everything the node keeps
//! about it. Below everything else, so the configuration, the store and the
//! manifest can all name plugins.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A plugin's identity: `vendor/name`, lowercase letters, digits and dashes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PluginId(String);

impl PluginId {
    pub fn parse(text: &str) -> Result<PluginId, String> {
        let (vendor, name) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a plugin id of the form vendor/name"))?;
        for (part, what) in [(vendor, "vendor"), (name, "name")] {
            let valid = !part.is_empty()
                && part.len() <= 64
                && part.starts_with(|c: char| c.is_ascii_lowercase())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                return Err(format!(
                    "{text:?}: the {what} must be 1 to 64 lowercase letters, digits or '-', \
                     starting with a letter"
                ));
            }
        }
        Ok(PluginId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PluginId {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        PluginId::parse(&text)
    }
}

impl From<PluginId> for String {
    fn from(id: PluginId) -> String {
        id.0
    }
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
