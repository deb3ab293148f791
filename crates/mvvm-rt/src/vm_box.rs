//! [`VmBox`]: the owner of every allocation that generated code and
//! builtins reach through raw pointers.
//!
//! # Why not `Box`
//!
//! A `Box<T>` asserts unique ownership of its contents: moving it, or
//! reborrowing `&mut *b`, retags the allocation as exclusively the `Box`'s,
//! which invalidates every raw pointer derived from it earlier (Stacked
//! Borrows; the optimiser is allowed to assume the same). The runtime hands
//! such pointers to generated code (`VMContext`, `VMLimits`, `VMMemory`,
//! `VMTable`, global cells, the `VMFuncRef` array) and to builtins (the
//! store itself, through `InstanceHost::store`), then keeps mutating the
//! same objects from Rust and moving their owners around (a `Vec` of
//! instances grows, a `Store` is returned by value). With `Box` that is
//! undefined behaviour even when no byte is ever read at the wrong time.
//!
//! A `VmBox<T>` is a heap allocation made by `Box` and immediately turned
//! into a raw pointer, the *base pointer*. The `VmBox` never holds a
//! reference, so moving it retags nothing; every access goes through the
//! base pointer, including the short-lived references [`Deref`] and
//! [`DerefMut`] create.
//!
//! # The invariant
//!
//! 1. Generated code and builtins only ever use the base pointer
//!    ([`VmBox::as_ptr`]) or pointers derived from it while no Rust
//!    reference into the allocation is in use.
//! 2. Rust code takes references into a `VmBox` (through `Deref` /
//!    `DerefMut`, or by dereferencing the base pointer in a builtin) only
//!    for a bounded stretch of code that does not enter wasm: every
//!    reference is dead before `call::call_raw` runs generated code, and is
//!    re-derived from the base pointer afterwards.
//! 3. Entering wasm is `unsafe` (`call::call_raw`), and its contract is 2.
//!    Everything else here is safe: a `&mut VmBox<T>` proves that no other
//!    Rust reference exists, and by 2 generated code is not running
//!    concurrently with it (wasm runs on the calling thread, and a `VmBox`
//!    is neither `Send` nor `Sync`).
//!
//! Values generated code writes *asynchronously* (from another thread or a
//! signal handler: `VMLimits::probe_flag`) are atomics, so the references
//! of 2. may coexist with those writes.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// An owned heap allocation reachable from generated code through its base
/// pointer; see the module documentation for the invariant.
pub(crate) struct VmBox<T: ?Sized> {
    /// The base pointer, from `Box::into_raw`; freed in `Drop`.
    ptr: NonNull<T>,
    /// Drop check: a `VmBox<T>` owns a `T`.
    _owns: PhantomData<T>,
}

impl<T> VmBox<T> {
    /// Moves `value` to the heap.
    pub(crate) fn new(value: T) -> VmBox<T> {
        VmBox::from_box(Box::new(value))
    }
}

impl<T: ?Sized> VmBox<T> {
    /// Takes over the allocation of `b`.
    pub(crate) fn from_box(b: Box<T>) -> VmBox<T> {
        VmBox {
            // `Box::into_raw` never returns null; `NonNull::from` on the
            // leaked reference would derive a reference-tagged pointer, so
            // convert the raw pointer instead.
            ptr: NonNull::new(Box::into_raw(b)).unwrap_or_else(|| unreachable!()),
            _owns: PhantomData,
        }
    }

    /// The base pointer: the one to hand to generated code and builtins.
    /// The same value on every call, valid until the `VmBox` is dropped.
    #[inline]
    pub(crate) fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }
}

impl<T: ?Sized> Deref for VmBox<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: validity and alignment: `ptr` comes from `Box::into_raw`
        // and is freed only in `drop`, so it points to a live, initialised
        // `T` for the lifetime of `&self`. Aliasing: by the module
        // invariant, generated code does not run while this shared
        // reference is in use, and every other Rust access goes through
        // `&self`/`&mut self`, which the borrow checker orders with it.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ?Sized> DerefMut for VmBox<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: validity and alignment as in `deref`. Aliasing: `&mut
        // self` excludes every other Rust reference derived from this
        // `VmBox`, and by the module invariant generated code does not use
        // the base pointer while the returned reference is in use (it is
        // derived from the base pointer, so later uses of that pointer
        // simply end it).
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: ?Sized> Drop for VmBox<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `Box::into_raw` and is freed only here,
        // once; `&mut self` in `drop` means nothing else (no instance, no
        // generated code: they are owned by the same store, which is being
        // dropped) uses it any more.
        drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for VmBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pattern the runtime relies on: a pointer handed out first stays
    /// usable across moves of the owner and Rust-side borrows in between
    /// (Miri checks this under Stacked Borrows).
    #[test]
    fn base_pointer_survives_moves_and_borrows() {
        let b = VmBox::new(1u64);
        let p = b.as_ptr();
        let mut v = vec![b];
        // Moves of the owner (the vector reallocates).
        for i in 0..16 {
            v.push(VmBox::new(i));
        }
        // SAFETY: `p` is the base pointer of a live `VmBox`; no reference
        // into it is in use.
        unsafe { *p += 1 };
        *v[0] += 1;
        // SAFETY: as above; the `&mut` of the line before is dead.
        assert_eq!(unsafe { *p }, 3);
        assert_eq!(*v[0], 3);
        let slice = VmBox::from_box(vec![1u32, 2, 3].into_boxed_slice());
        let q = slice.as_ptr().cast::<u32>();
        // SAFETY: in bounds of the three-element slice, no reference alive.
        unsafe { *q.add(2) = 9 };
        assert_eq!(&*slice, &[1, 2, 9]);
    }
}
