//! Globals: one 16-byte cell each, owned by the store so that an exporting
//! and an importing instance share it by pointer.

use crate::vm_box::VmBox;
use crate::vmctx::GlobalCell;
use mvvm_abi::meta::GlobalType;

/// One global's storage and type.
#[derive(Debug)]
pub(crate) struct GlobalData {
    /// The cell generated code reads and writes (never moves; a
    /// [`VmBox`] because instances keep its base pointer).
    pub cell: VmBox<GlobalCell>,
    /// Its type.
    pub ty: GlobalType,
}

impl GlobalData {
    /// A global holding the raw bits `raw` (little-endian in its cell).
    pub fn new(ty: GlobalType, raw: u128) -> GlobalData {
        let mut cell = VmBox::new(GlobalCell::default());
        cell.set_u128(raw);
        GlobalData { cell, ty }
    }

    /// Pointer for the instance's globals array.
    pub fn cell_ptr(&self) -> *mut GlobalCell {
        self.cell.as_ptr()
    }
}
