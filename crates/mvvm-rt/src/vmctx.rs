//! `#[repr(C)]` mirrors of the structures generated code reads, pinned to
//! the offsets of [`mvvm_abi::vmctx`] by the tests at the bottom.
//!
//! ```text
//!  VMContext (boxed per instance, never moves)
//!  +0  memory  ──▶ VMMemory { base, length }     owned by the store's memory
//!  +8  globals ──▶ [*mut GlobalCell]             cells owned by the store
//!  +16 tables  ──▶ [*mut VMTable]                owned by the store's tables
//!  +24 funcs   ──▶ [VMFuncRef]                   owned by the instance
//!  +32 type_ids──▶ [u32]                         canonical signature ids
//!  +40 builtins──▶ [usize; BUILTIN_COUNT]        static table
//!  +48 limits  ──▶ VMLimits                      owned by the store
//!  +56 host        *mut InstanceHost (runtime only)
//!  +64 reserved
//! ```

use mvvm_abi::vmctx::GLOBAL_CELL_SIZE;

/// The per-instance context passed to every generated function.
#[repr(C)]
#[derive(Debug)]
pub struct VMContext {
    /// Memory 0 of the instance (null when it has none).
    pub memory: *mut VMMemory,
    /// Array of global cell pointers, imported globals first.
    pub globals: *const *mut GlobalCell,
    /// Array of table pointers, imported tables first.
    pub tables: *const *mut VMTable,
    /// Array of function references, imported functions first.
    pub funcs: *const VMFuncRef,
    /// Canonical signature id per module type index.
    pub type_ids: *const u32,
    /// Builtin table in [`mvvm_abi::builtins::Builtin::ALL`] order.
    pub builtins: *const usize,
    /// Stack limit shared by everything running in one store.
    pub limits: *mut VMLimits,
    /// Runtime-private pointer to the instance's host-side data.
    pub host: *mut u8,
    /// Reserved for checkpoint state (zero).
    pub reserved: usize,
}

/// A linear memory as generated code sees it.
#[repr(C)]
#[derive(Debug)]
pub struct VMMemory {
    /// Start of the reservation; never moves.
    pub base: *mut u8,
    /// Current accessible size in bytes.
    pub length: u64,
}

/// A table as generated code sees it.
#[repr(C)]
#[derive(Debug)]
pub struct VMTable {
    /// Element array (moves when the table grows).
    pub elements: *mut u64,
    /// Number of elements.
    pub length: u64,
}

/// A callable function reference.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VMFuncRef {
    /// Entry point with the wasm calling convention.
    pub code: *const u8,
    /// Context to pass as first argument.
    pub vmctx: *mut VMContext,
    /// Canonical signature id.
    pub type_id: u32,
}

impl VMFuncRef {
    /// A reference that points nowhere (filled in later).
    pub const NULL: VMFuncRef = VMFuncRef {
        code: std::ptr::null(),
        vmctx: std::ptr::null_mut(),
        type_id: u32::MAX,
    };
}

/// Per-store execution limits.
#[repr(C)]
#[derive(Debug)]
pub struct VMLimits {
    /// Lowest stack address wasm code may use.
    pub stack_limit: usize,
    /// Non-zero when probes must call the `Probe` builtin (checkpoint
    /// wanted, or probes being counted). Set asynchronously.
    pub probe_flag: std::sync::atomic::AtomicU32,
    /// `mvvm_abi::checkpoint::{UNWIND_NONE, UNWINDING, REWINDING}`.
    pub unwind_state: u32,
    /// The frame buffer of checkpoint code (`StoreInner::frame_slots`),
    /// large enough for every frame of every instantiated module; null
    /// until a module with stable points is instantiated.
    pub frame_slots: *mut u64,
}

impl Default for VMLimits {
    fn default() -> Self {
        VMLimits {
            stack_limit: 0,
            probe_flag: std::sync::atomic::AtomicU32::new(0),
            unwind_state: 0,
            frame_slots: std::ptr::null_mut(),
        }
    }
}

/// Storage of one global: 16 bytes, 16-byte aligned (room for `v128`).
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalCell(pub [u8; GLOBAL_CELL_SIZE as usize]);

impl GlobalCell {
    /// The low 8 bytes as a little-endian `u64` (every non-v128 value).
    pub fn get_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(b)
    }

    /// Stores `v` in the low 8 bytes and clears the rest.
    pub fn set_u64(&mut self, v: u64) {
        self.0 = [0; GLOBAL_CELL_SIZE as usize];
        self.0[..8].copy_from_slice(&v.to_le_bytes());
    }

    /// The whole cell as a little-endian `u128` (a `v128` as its bytes;
    /// any other value in the low 8 bytes, the rest zero).
    pub fn get_u128(&self) -> u128 {
        u128::from_le_bytes(self.0)
    }

    /// Stores `v` little-endian in the whole cell.
    pub fn set_u128(&mut self, v: u128) {
        self.0 = v.to_le_bytes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mvvm_abi::vmctx as abi;
    use std::mem::{offset_of, size_of};

    #[test]
    fn vmcontext_layout_matches_abi() {
        assert_eq!(offset_of!(VMContext, memory), abi::VMCTX_MEMORY as usize);
        assert_eq!(offset_of!(VMContext, globals), abi::VMCTX_GLOBALS as usize);
        assert_eq!(offset_of!(VMContext, tables), abi::VMCTX_TABLES as usize);
        assert_eq!(offset_of!(VMContext, funcs), abi::VMCTX_FUNCS as usize);
        assert_eq!(
            offset_of!(VMContext, type_ids),
            abi::VMCTX_TYPE_IDS as usize
        );
        assert_eq!(
            offset_of!(VMContext, builtins),
            abi::VMCTX_BUILTINS as usize
        );
        assert_eq!(offset_of!(VMContext, limits), abi::VMCTX_LIMITS as usize);
        assert_eq!(offset_of!(VMContext, host), abi::VMCTX_HOST as usize);
        assert_eq!(
            offset_of!(VMContext, reserved),
            abi::VMCTX_RESERVED as usize
        );
        assert_eq!(size_of::<VMContext>(), abi::VMCTX_SIZE as usize);
    }

    #[test]
    fn memory_table_funcref_limits_layout_matches_abi() {
        assert_eq!(offset_of!(VMMemory, base), abi::VMMEMORY_BASE as usize);
        assert_eq!(offset_of!(VMMemory, length), abi::VMMEMORY_LENGTH as usize);
        assert_eq!(size_of::<VMMemory>(), abi::VMMEMORY_SIZE as usize);
        assert_eq!(
            offset_of!(VMTable, elements),
            abi::VMTABLE_ELEMENTS as usize
        );
        assert_eq!(offset_of!(VMTable, length), abi::VMTABLE_LENGTH as usize);
        assert_eq!(size_of::<VMTable>(), abi::VMTABLE_SIZE as usize);
        assert_eq!(offset_of!(VMFuncRef, code), abi::VMFUNCREF_CODE as usize);
        assert_eq!(offset_of!(VMFuncRef, vmctx), abi::VMFUNCREF_VMCTX as usize);
        assert_eq!(
            offset_of!(VMFuncRef, type_id),
            abi::VMFUNCREF_TYPE_ID as usize
        );
        assert_eq!(size_of::<VMFuncRef>(), abi::VMFUNCREF_SIZE as usize);
        assert_eq!(
            offset_of!(VMLimits, stack_limit),
            abi::VMLIMITS_STACK_LIMIT as usize
        );
        assert_eq!(
            offset_of!(VMLimits, probe_flag),
            abi::VMLIMITS_PROBE_FLAG as usize
        );
        assert_eq!(
            offset_of!(VMLimits, unwind_state),
            abi::VMLIMITS_UNWIND_STATE as usize
        );
        assert_eq!(
            offset_of!(VMLimits, frame_slots),
            abi::VMLIMITS_FRAME_SLOTS as usize
        );
        assert_eq!(size_of::<VMLimits>(), abi::VMLIMITS_SIZE as usize);
        assert_eq!(size_of::<GlobalCell>(), abi::GLOBAL_CELL_SIZE as usize);
        assert_eq!(std::mem::align_of::<GlobalCell>(), 16);
    }
}
