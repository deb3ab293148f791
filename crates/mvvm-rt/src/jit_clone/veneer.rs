//! Veneers: the few bytes a resume clone's call jumps through when its
//! target is beyond the reach of the call's PC-relative field (a clone
//! that no arena next to its module could hold, see `crate::jit_clone`).
//!
//! A veneer is placed in the clone's own pages, right after its code, so
//! that the call reaches it; it jumps to an absolute address:
//!
//! - x86-64, 14 bytes: `jmp qword ptr [rip+0]` (`ff 25 00 00 00 00`)
//!   followed by the 8-byte target. No register is touched.
//! - aarch64, 16 bytes: `ldr x16, #8` (`58000050`), `br x16`
//!   (`d61f0200`), then the 8-byte target. x16 (IP0) is the AAPCS64
//!   intra-procedure-call scratch register that linkers' veneers use, and
//!   it is safe here: Cranelift never allocates x16 or x17 (they are its
//!   `spilltmp` and `tmp2`, used inside one instruction's sequence and
//!   never live across a call: `spilltmp_reg` in
//!   `cranelift-codegen-0.135.8/src/isa/aarch64/inst/regs.rs`, and the
//!   register environment `create_reg_env` in
//!   `cranelift-codegen-0.135.8/src/isa/aarch64/abi.rs`, whose comment
//!   "x16 and x17 are spilltmp and tmp2" leaves them out), and no calling
//!   convention it uses here passes an argument in them: `compute_arg_locs`
//!   (same file) gives integer arguments x0-x7 only
//!   (`max_per_class_reg_vals = 8`), for `tail` as for SystemV, and
//!   `preserve_all` (the probe trampoline) promises nothing about x16 to a
//!   caller that never keeps a value there. `br x16` is also the one
//!   indirect branch a `bti c` landing pad accepts, should BTI ever be
//!   enabled.
//!
//! A veneer is only correct for a call or a jump (it transfers control; it
//! cannot stand for an address computed by `lea` or `adr`):
//! [`is_call_or_jump`] checks the instruction before one is used.

use mvvm_abi::resume_code::CallField;

/// Bytes of one veneer for calls through `field`.
pub(crate) fn size(field: CallField) -> usize {
    match field {
        CallField::X86Rel32 => 14,
        CallField::Arm64Call26 => 16,
    }
}

/// Alignment of the first veneer (and of each, on aarch64: 16-byte
/// veneers keep their 8-byte literal aligned).
pub(crate) const ALIGN: usize = 16;

/// `jmp qword ptr [rip+0]`.
const X86_JMP_RIP0: [u8; 6] = [0xff, 0x25, 0, 0, 0, 0];
/// `ldr x16, #8` (load literal, 64-bit, imm19 = 2 words, Rt = 16).
const ARM64_LDR_X16_8: u32 = 0x5800_0050;
/// `br x16`.
const ARM64_BR_X16: u32 = 0xd61f_0200;

/// The veneer for `field` that jumps to `target`.
pub(crate) fn encode(field: CallField, target: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(size(field));
    match field {
        CallField::X86Rel32 => v.extend_from_slice(&X86_JMP_RIP0),
        CallField::Arm64Call26 => {
            v.extend_from_slice(&ARM64_LDR_X16_8.to_le_bytes());
            v.extend_from_slice(&ARM64_BR_X16.to_le_bytes());
        }
    }
    v.extend_from_slice(&target.to_le_bytes());
    debug_assert_eq!(v.len(), size(field));
    v
}

/// The target of the veneer for `field` at the start of `bytes`, if it is
/// one (the inverse of [`encode`]).
#[cfg(test)]
pub(crate) fn decode(field: CallField, bytes: &[u8]) -> Option<u64> {
    let v = bytes.get(..size(field))?;
    let (head, target) = v.split_at(size(field) - 8);
    let ok = match field {
        CallField::X86Rel32 => head == X86_JMP_RIP0,
        CallField::Arm64Call26 => {
            head[..4] == ARM64_LDR_X16_8.to_le_bytes() && head[4..] == ARM64_BR_X16.to_le_bytes()
        }
    };
    ok.then(|| u64::from_le_bytes(target.try_into().expect("8 bytes")))
}

/// How far past the field the CPU counts a displacement from: the end of
/// a rel32 (the next instruction), the `b`/`bl` itself on aarch64.
pub(crate) fn pc_bias(field: CallField) -> i64 {
    match field {
        CallField::X86Rel32 => 4,
        CallField::Arm64Call26 => 0,
    }
}

/// Whether the field at `offset` of `code` belongs to a call or a jump
/// that a veneer can stand in for: on x86-64 a `call rel32` (`e8`) or
/// `jmp rel32` (`e9`, a tail call) whose opcode is the byte before the
/// field; on aarch64 a `bl` or `b` (the word at the field). Never a `lea`,
/// `adr` or other use of an address.
pub(crate) fn is_call_or_jump(code: &[u8], offset: usize, field: CallField) -> bool {
    match field {
        CallField::X86Rel32 => offset
            .checked_sub(1)
            .and_then(|o| code.get(o))
            .is_some_and(|op| matches!(op, 0xe8 | 0xe9)),
        CallField::Arm64Call26 => {
            offset.is_multiple_of(4)
                && code
                    .get(offset..offset + 4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    // `b` is 0b000101, `bl` 0b100101 in the top six bits.
                    .is_some_and(|insn| insn & 0x7c00_0000 == 0x1400_0000)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_veneer_is_jmp_rip0_and_the_target() {
        let v = encode(CallField::X86Rel32, 0x1122_3344_5566_7788);
        assert_eq!(
            v,
            [
                0xff, 0x25, 0, 0, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11
            ]
        );
        assert_eq!(v.len(), size(CallField::X86Rel32));
        assert_eq!(decode(CallField::X86Rel32, &v), Some(0x1122_3344_5566_7788));
        // Not a veneer: another addressing mode, too short, the other ISA's.
        let mut w = v.clone();
        w[1] = 0x24;
        assert_eq!(decode(CallField::X86Rel32, &w), None);
        assert_eq!(decode(CallField::X86Rel32, &v[..13]), None);
        assert_eq!(decode(CallField::Arm64Call26, &v), None);
    }

    #[test]
    fn aarch64_veneer_is_ldr_x16_br_x16_and_the_target() {
        let v = encode(CallField::Arm64Call26, 0x0000_ffff_8000_1234);
        // As assembled by `aarch64-linux-gnu-as`: `ldr x16, 8` is
        // 50 00 00 58, `br x16` is 00 02 1f d6.
        assert_eq!(
            v,
            [
                0x50, 0x00, 0x00, 0x58, 0x00, 0x02, 0x1f, 0xd6, 0x34, 0x12, 0x00, 0x80, 0xff, 0xff,
                0, 0
            ]
        );
        // The fields, decoded: LDR (literal) 64-bit is opc=01 011 0 00,
        // imm19 in bits 5..24 (in words), Rt in 0..5; BR is
        // 1101011 0000 11111 000000 Rn 00000.
        let ldr = u32::from_le_bytes(v[..4].try_into().unwrap());
        assert_eq!(ldr >> 24, 0x58, "LDR (literal), 64-bit");
        assert_eq!((ldr >> 5) & 0x7_ffff, 2, "the literal 8 bytes on");
        assert_eq!(ldr & 0x1f, 16, "into x16");
        let br = u32::from_le_bytes(v[4..8].try_into().unwrap());
        assert_eq!(br & !(0x1f << 5), 0xd61f_0000, "BR");
        assert_eq!((br >> 5) & 0x1f, 16, "through x16");
        assert_eq!(
            decode(CallField::Arm64Call26, &v),
            Some(0x0000_ffff_8000_1234)
        );
        assert_eq!(decode(CallField::X86Rel32, &v), None);
        assert_eq!(size(CallField::Arm64Call26), 16);
        assert!(ALIGN.is_multiple_of(8));
    }

    #[test]
    fn only_calls_and_jumps_take_a_veneer() {
        let x = CallField::X86Rel32;
        // call rel32; jmp rel32; lea rax, [rip+rel32]; mov eax, [rip+rel32]
        let code = [
            0xe8, 0, 0, 0, 0, 0xe9, 0, 0, 0, 0, 0x48, 0x8d, 0x05, 0, 0, 0, 0, 0x8b, 0x05, 0, 0, 0,
            0,
        ];
        assert!(is_call_or_jump(&code, 1, x));
        assert!(is_call_or_jump(&code, 6, x));
        assert!(!is_call_or_jump(&code, 13, x), "lea");
        assert!(!is_call_or_jump(&code, 19, x), "mov");
        assert!(!is_call_or_jump(&code, 0, x), "no opcode before");
        let a = CallField::Arm64Call26;
        let words = [
            0x9400_0000u32, // bl
            0x1400_0000,    // b
            0x1000_0000,    // adr x0, 0
            0x9000_0000,    // adrp x0, 0
            0x5400_0000,    // b.eq 0
            0xd503_201f,    // nop
        ];
        let code: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert!(is_call_or_jump(&code, 0, a));
        assert!(is_call_or_jump(&code, 4, a));
        for off in [8, 12, 16, 20] {
            assert!(!is_call_or_jump(&code, off, a), "{off}");
        }
        assert!(!is_call_or_jump(&code, 2, a), "misaligned");
        assert!(!is_call_or_jump(&code, 24, a), "outside");
    }
}
