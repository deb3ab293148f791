//! Name-based linking: a map from `(module, name)` to an [`Extern`].

use crate::instance::{Instance, InstantiationError};
use crate::module::Module;
use crate::store::{AsStore, Extern, Store};
use std::collections::HashMap;

/// Resolves a module's imports by name.
#[derive(Debug, Default, Clone)]
pub struct Linker {
    map: HashMap<(String, String), Extern>,
}

impl Linker {
    /// An empty linker.
    pub fn new() -> Linker {
        Linker::default()
    }

    /// Defines `module.name` (replacing any previous definition).
    pub fn define(&mut self, module: &str, name: &str, item: Extern) -> &mut Self {
        self.map
            .insert((module.to_string(), name.to_string()), item);
        self
    }

    /// Defines every export of `instance` under the module name `module`.
    pub fn define_instance(
        &mut self,
        store: &impl AsStore,
        module: &str,
        instance: Instance,
    ) -> &mut Self {
        for (name, ext) in instance.exports(store) {
            self.define(module, &name, ext);
        }
        self
    }

    /// Looks up `module.name`.
    pub fn get(&self, module: &str, name: &str) -> Option<Extern> {
        self.map
            .get(&(module.to_string(), name.to_string()))
            .copied()
    }

    /// The imports of `module`, in order; "unknown import" if one is missing.
    pub fn resolve(&self, module: &Module) -> Result<Vec<Extern>, InstantiationError> {
        module
            .meta()
            .imports
            .iter()
            .map(|imp| {
                self.get(&imp.module, &imp.name).ok_or_else(|| {
                    InstantiationError::Unlinkable(format!(
                        "unknown import: `{}.{}`",
                        imp.module, imp.name
                    ))
                })
            })
            .collect()
    }

    /// Resolves and instantiates `module` in `store`.
    pub fn instantiate(
        &self,
        store: &mut Store,
        module: &Module,
    ) -> Result<Instance, InstantiationError> {
        let imports = self.resolve(module)?;
        Instance::new(store, module, &imports)
    }
}
