//! `outpost:host/config`: the operator's values for this plugin.
//!
//! Granted by `config = true` in the manifest. Values come from the node's
//! `outpost.toml`, `[plugin-config."vendor/name"]`, read when the plugin is
//! loaded. A plugin sees only its own table.

use crate::bindings::config::Host;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

#[derive(Debug, Default)]
pub struct ConfigState {
    /// `None` when the plugin has no `config` grant: it then reads nothing.
    values: Option<Arc<BTreeMap<String, String>>>,
}

impl ConfigState {
    pub fn new(values: Option<Arc<BTreeMap<String, String>>>) -> Self {
        ConfigState { values }
    }
}

impl Host for ConfigState {
    fn get(&mut self, key: String) -> Option<String> {
        self.values.as_ref()?.get(&key).cloned()
    }

    fn get_all(&mut self) -> Vec<(String, String)> {
        self.values
            .as_ref()
            .map(|values| values.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
}

struct ConfigCapability;

impl HasData for ConfigCapability {
    type Data<'a> = &'a mut ConfigState;
}

pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    state: fn(&mut T) -> &mut ConfigState,
) -> wasmtime::Result<()> {
    crate::bindings::config::add_to_linker::<T, ConfigCapability>(linker, state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_grant_nothing_is_readable() {
        let mut state = ConfigState::new(None);
        assert_eq!(state.get("darkness".into()), None);
        assert!(state.get_all().is_empty());

        let values = BTreeMap::from([("darkness".to_string(), "18".to_string())]);
        let mut granted = ConfigState::new(Some(Arc::new(values)));
        assert_eq!(granted.get("darkness".into()).as_deref(), Some("18"));
        assert_eq!(granted.get_all().len(), 1);
    }
}
