//! Tables: a growable array of `u64` elements (`*const VMFuncRef` for
//! `funcref`, an opaque host value for `externref`; 0 is null) mirrored in
//! a `VMTable` that generated code reads. The element pointer moves when
//! the table grows; the `VMTable` itself never moves.

use crate::vm_box::VmBox;
use crate::vmctx::VMTable;
use mvvm_abi::meta::TableType;

/// Tables may not grow beyond this many elements, whatever their maximum
/// (keeps a runaway `table.grow` from exhausting host memory).
pub const MAX_TABLE_ELEMENTS: u64 = 10_000_000;

/// One table (owned by a store; instances refer to it by pointer).
#[derive(Debug)]
pub(crate) struct Table {
    /// What generated code reads (its base pointer is in every
    /// importing instance's table array).
    vm: VmBox<VMTable>,
    elems: Vec<u64>,
    ty: TableType,
}

impl Table {
    /// A table of type `ty` filled with `init`; `None` if too large.
    pub fn new(ty: TableType, init: u64) -> Option<Table> {
        if ty.limits.min > MAX_TABLE_ELEMENTS {
            return None;
        }
        let mut t = Table {
            vm: VmBox::new(VMTable {
                elements: std::ptr::null_mut(),
                length: 0,
            }),
            elems: vec![init; ty.limits.min as usize],
            ty,
        };
        t.sync();
        Some(t)
    }

    fn sync(&mut self) {
        self.vm.elements = self.elems.as_mut_ptr();
        self.vm.length = self.elems.len() as u64;
    }

    /// The type it was created with.
    pub fn ty(&self) -> TableType {
        self.ty
    }

    /// The structure generated code reads.
    pub fn vm_ptr(&self) -> *mut VMTable {
        self.vm.as_ptr()
    }

    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.elems.len() as u64
    }

    /// The elements.
    pub fn elems(&self) -> &[u64] {
        &self.elems
    }

    /// The elements, writable (the length cannot change through this).
    pub fn elems_mut(&mut self) -> &mut [u64] {
        &mut self.elems
    }

    /// Grows by `delta` elements set to `init`; the old length, or `None`.
    pub fn grow(&mut self, delta: u64, init: u64) -> Option<u64> {
        let old = self.len();
        let new = old.checked_add(delta)?;
        let max = self.ty.limits.max.unwrap_or(u32::MAX as u64);
        if new > max || new > MAX_TABLE_ELEMENTS {
            return None;
        }
        self.elems.try_reserve_exact(delta as usize).ok()?;
        self.elems.resize(new as usize, init);
        self.sync();
        Some(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mvvm_abi::meta::{Limits, ValType};

    #[test]
    fn grow_updates_vmtable() {
        let ty = TableType {
            elem: ValType::FuncRef,
            limits: Limits {
                min: 2,
                max: Some(4),
            },
        };
        let mut t = Table::new(ty, 0).unwrap();
        assert_eq!(t.grow(2, 9), Some(2));
        assert_eq!(t.grow(1, 9), None);
        let vm = t.vm_ptr();
        // SAFETY: `vm` is the base pointer of the table's live `VMTable`,
        // whose `elements` has `length` (4) initialised slots; no reference
        // into either is in use.
        let (len, first) = unsafe { ((*vm).length, *(*vm).elements.add(3)) };
        assert_eq!((len, first), (4, 9));
    }
}
