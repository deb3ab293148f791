//! Canonical signature ids, process wide, so that `call_indirect` compares
//! signatures of functions from different modules and instances by one
//! integer compare.

use mvvm_abi::meta::FuncType;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

static REGISTRY: LazyLock<Mutex<HashMap<FuncType, u32>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The canonical id of `ty` (equal types get equal ids, forever).
pub fn canonical_type_id(ty: &FuncType) -> u32 {
    let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(id) = reg.get(ty) {
        return *id;
    }
    let id = reg.len() as u32;
    reg.insert(ty.clone(), id);
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use mvvm_abi::meta::ValType;

    #[test]
    fn equal_types_equal_ids() {
        let a = FuncType {
            params: vec![ValType::I32],
            results: vec![],
        };
        let b = FuncType {
            params: vec![ValType::I64],
            results: vec![],
        };
        assert_eq!(canonical_type_id(&a), canonical_type_id(&a.clone()));
        assert_ne!(canonical_type_id(&a), canonical_type_id(&b));
    }
}
