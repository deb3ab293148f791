//! Turns a spec module plus the invocations the `.wast` file makes on it
//! into one WASI command that a checkpoint run can start from `_start`.
//!
//! The checkpoint API runs a program from `_start` (or the start function)
//! and restores frames whose outermost one is there: it cannot call an
//! export with arguments and hand back its results. So the module is
//! rewritten, at the binary level, into
//!
//! ```text
//! imports from "spectest"  ──▶ defined stand-ins at the same indices
//!                               (empty print functions, globals = 666,
//!                                a funcref table 10..20, a memory 1..2)
//! original functions        ──▶ untouched bytes
//! + $inv_i () -> ()            one per invocation: push the arguments,
//!                               call the export, compare every result
//!                               with the expectation (NaN patterns too),
//!                               `unreachable` on a mismatch
//! + _start () -> ()            calls $inv_0 .. $inv_{n-1} in order
//! ```
//!
//! Replacing imports by definitions in import order keeps every function,
//! table, memory and global index, so no instruction of the original code
//! needs rewriting: sections are split, counts adjusted, entries prepended
//! or appended. Custom sections (names) are dropped.
//!
//! A mismatch traps in `$inv_i`, so the trap's function index says which
//! invocation failed. `v128` arguments are `v128.const`s and `v128` results
//! are compared lane by lane (`extract_lane`, NaN patterns per lane), so
//! the harness itself needs the compiler's SIMD operators. Only
//! WebAssembly 2.0 encodings (plus the extended-const operators in
//! constant expressions) are understood; any other form is an
//! [`Unsupported`] error, which the test reports as a skip with its
//! reason.

use std::fmt;

/// Why a module cannot be turned into a harness (reported as a skip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn unsupported<T>(why: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(why.into()))
}

/// A value type, by its binary encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValTy {
    I32,
    I64,
    F32,
    F64,
    V128,
    FuncRef,
    ExternRef,
    /// `exnref` (exception handling): only null arguments, and null /
    /// non-null expectations.
    ExnRef,
}

impl ValTy {
    fn from_byte(b: u8) -> Result<ValTy, Unsupported> {
        Ok(match b {
            0x7f => ValTy::I32,
            0x7e => ValTy::I64,
            0x7d => ValTy::F32,
            0x7c => ValTy::F64,
            0x7b => ValTy::V128,
            0x70 => ValTy::FuncRef,
            0x6f => ValTy::ExternRef,
            0x69 => ValTy::ExnRef,
            other => return unsupported(format!("value type byte {other:#x}")),
        })
    }

    fn byte(self) -> u8 {
        match self {
            ValTy::I32 => 0x7f,
            ValTy::I64 => 0x7e,
            ValTy::F32 => 0x7d,
            ValTy::F64 => 0x7c,
            ValTy::V128 => 0x7b,
            ValTy::FuncRef => 0x70,
            ValTy::ExternRef => 0x6f,
            ValTy::ExnRef => 0x69,
        }
    }
}

/// An argument of an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
    /// A `v128`, its bytes in memory order.
    V128([u8; 16]),
    NullFunc,
    NullExtern,
    NullExn,
}

impl Arg {
    fn ty(self) -> ValTy {
        match self {
            Arg::I32(_) => ValTy::I32,
            Arg::I64(_) => ValTy::I64,
            Arg::F32(_) => ValTy::F32,
            Arg::F64(_) => ValTy::F64,
            Arg::V128(_) => ValTy::V128,
            Arg::NullFunc => ValTy::FuncRef,
            Arg::NullExtern => ValTy::ExternRef,
            Arg::NullExn => ValTy::ExnRef,
        }
    }
}

/// A float expectation: exact bits or a NaN class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatPat<T> {
    Bits(T),
    CanonicalNan,
    ArithmeticNan,
}

/// How a `v128` expectation splits into lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lanes {
    I8x16,
    I16x8,
    I32x4,
    I64x2,
    F32x4,
    F64x2,
}

impl Lanes {
    /// The `extract_lane` opcode (after the 0xfd prefix) giving a lane as
    /// the scalar its expectation is (narrow integer lanes unsigned).
    fn extract_op(self) -> u32 {
        match self {
            Lanes::I8x16 => 22,
            Lanes::I16x8 => 25,
            Lanes::I32x4 => 27,
            Lanes::I64x2 => 29,
            Lanes::F32x4 => 31,
            Lanes::F64x2 => 33,
        }
    }
}

/// What one result must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    I32(i32),
    I64(i64),
    F32(FloatPat<u32>),
    F64(FloatPat<u64>),
    /// A `v128`, lane by lane: each lane's expectation is an `I32` (8-,
    /// 16- and 32-bit integer lanes, zero-extended), `I64`, `F32` or `F64`.
    V128(Lanes, Vec<Expect>),
    /// A null reference (of the result's type).
    Null,
    /// Any non-null reference.
    NonNull,
    /// One of these.
    Either(Vec<Expect>),
}

/// One call the harness makes.
#[derive(Debug, Clone)]
pub struct Call {
    /// Export name of the function.
    pub func: String,
    pub args: Vec<Arg>,
    /// `None`: `invoke` (results dropped); `Some`: `assert_return`.
    pub expect: Option<Vec<Expect>>,
    /// `assert_exception`: the call must end with an exception (`expect`
    /// is then `None`). The harness catches it with a `catch_all` around
    /// the call, as the uncaught exception would have ended the call.
    pub throws: bool,
}

/// A spec module's binary, split into sections, with what the harness
/// needs to know about it.
pub struct Parsed {
    /// Non-custom sections by id, in file order.
    sections: Vec<(u8, Vec<u8>)>,
    types: Vec<(Vec<ValTy>, Vec<ValTy>)>,
    /// Type index of every function, imports first.
    func_types: Vec<u32>,
    imports: Vec<Import>,
    /// Types of the imported globals, in index order.
    imported_globals: Vec<ValTy>,
    exports: Vec<(String, u8, u32)>,
}

/// An import and the stand-in that replaces it.
struct Import {
    kind: ImportKind,
}

enum ImportKind {
    Func(u32),
    Table,
    Memory,
    Global(ValTy),
    /// A tag: never from `spectest`, so always refused.
    Tag,
}

/// The harness built for a module.
pub struct Harness {
    /// The rewritten module.
    pub bytes: Vec<u8>,
    /// Function index of `$inv_0` (the others follow).
    pub first_call_func: u32,
}

/// Names of what the `spectest` host module provides.
const SPECTEST_FUNCS: [&str; 7] = [
    "print",
    "print_i32",
    "print_i64",
    "print_f32",
    "print_f64",
    "print_i32_f32",
    "print_f64_f64",
];

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn byte(&mut self) -> Result<u8, Unsupported> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| Unsupported("truncated module".into()))?;
        self.pos += 1;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, Unsupported> {
        let mut v: u64 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return u32::try_from(v).or_else(|_| unsupported("LEB128 too large"));
            }
        }
        unsupported("LEB128 too long")
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Unsupported> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or_else(|| Unsupported("truncated module".into()))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn name(&mut self) -> Result<String, Unsupported> {
        let n = self.u32()? as usize;
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec()).or_else(|_| unsupported("name is not UTF-8"))
    }

    fn limits(&mut self) -> Result<(), Unsupported> {
        match self.byte()? {
            0 => {
                self.u32()?;
            }
            1 => {
                self.u32()?;
                self.u32()?;
            }
            f => return unsupported(format!("limits flags {f:#x} (not WebAssembly 2.0)")),
        }
        Ok(())
    }

    /// Copies one LEB128 number (signed or not) to `out`.
    fn copy_leb(&mut self, out: &mut Vec<u8>) -> Result<(), Unsupported> {
        for _ in 0..10 {
            let b = self.byte()?;
            out.push(b);
            if b & 0x80 == 0 {
                return Ok(());
            }
        }
        unsupported("LEB128 too long")
    }

    /// Copies `n` raw bytes to `out`.
    fn copy(&mut self, n: usize, out: &mut Vec<u8>) -> Result<(), Unsupported> {
        out.extend_from_slice(self.bytes(n)?);
        Ok(())
    }

    /// Copies a vector of u32 LEBs.
    fn copy_u32s(&mut self, out: &mut Vec<u8>) -> Result<(), Unsupported> {
        let n = self.u32()?;
        put_u32(out, n);
        for _ in 0..n {
            self.copy_leb(out)?;
        }
        Ok(())
    }

    /// Copies a constant expression, replacing `global.get` of an
    /// imported global (now a definition: WebAssembly 2.0 constant
    /// expressions may only read imports) by the value it has.
    fn copy_const_expr(
        &mut self,
        out: &mut Vec<u8>,
        imported: &[ValTy],
    ) -> Result<(), Unsupported> {
        loop {
            let op = self.byte()?;
            match op {
                0x0b => {
                    out.push(op);
                    return Ok(());
                }
                0x41 | 0x42 | 0xd2 => {
                    out.push(op);
                    self.copy_leb(out)?;
                }
                0x43 => {
                    out.push(op);
                    self.copy(4, out)?;
                }
                0x44 => {
                    out.push(op);
                    self.copy(8, out)?;
                }
                // extended-const: i32/i64 add, sub, mul
                0x6a..=0x6c | 0x7c..=0x7e => out.push(op),
                0xfd => match self.u32()? {
                    12 => {
                        // v128.const
                        out.push(op);
                        put_u32(out, 12);
                        self.copy(16, out)?;
                    }
                    sub => {
                        return unsupported(format!("constant expression opcode 0xfd {sub}"));
                    }
                },
                0xd0 => {
                    out.push(op);
                    self.copy(1, out)?;
                }
                0x23 => {
                    let g = self.u32()?;
                    match imported.get(g as usize) {
                        Some(ty) => spectest_global_value(*ty, out)?,
                        None => {
                            out.push(op);
                            put_u32(out, g);
                        }
                    }
                }
                other => {
                    return unsupported(format!("constant expression opcode {other:#x}"));
                }
            }
        }
    }

    fn valtypes(&mut self) -> Result<Vec<ValTy>, Unsupported> {
        let n = self.u32()?;
        (0..n).map(|_| ValTy::from_byte(self.byte()?)).collect()
    }
}

fn put_u32(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_i64(out: &mut Vec<u8>, mut v: i64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        let sign = b & 0x40 != 0;
        if (v == 0 && !sign) || (v == -1 && sign) {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Count and raw entries of a vector section.
fn split_vec(payload: &[u8]) -> Result<(u32, &[u8]), Unsupported> {
    let mut r = Reader::new(payload);
    let n = r.u32()?;
    Ok((n, &payload[r.pos..]))
}

/// A vector section: `before` entries, the old ones, then `after`.
fn join_vec(before: (u32, &[u8]), old: (u32, &[u8]), after: (u32, &[u8])) -> Vec<u8> {
    let mut out = Vec::new();
    put_u32(&mut out, before.0 + old.0 + after.0);
    out.extend_from_slice(before.1);
    out.extend_from_slice(old.1);
    out.extend_from_slice(after.1);
    out
}

impl Parsed {
    /// Splits `bytes` and reads its types, imports, functions and exports.
    pub fn new(bytes: &[u8]) -> Result<Parsed, Unsupported> {
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" || bytes[4..8] != [1, 0, 0, 0] {
            return unsupported("not a core WebAssembly module");
        }
        let mut r = Reader::new(&bytes[8..]);
        let mut p = Parsed {
            sections: Vec::new(),
            types: Vec::new(),
            func_types: Vec::new(),
            imports: Vec::new(),
            imported_globals: Vec::new(),
            exports: Vec::new(),
        };
        while !r.done() {
            let id = r.byte()?;
            let len = r.u32()? as usize;
            let payload = r.bytes(len)?;
            if id != 0 {
                p.sections.push((id, payload.to_vec()));
            }
        }
        for (id, payload) in &p.sections {
            let mut r = Reader::new(payload);
            match id {
                1 => {
                    for _ in 0..r.u32()? {
                        if r.byte()? != 0x60 {
                            return unsupported("a type that is not a function type");
                        }
                        let params = r.valtypes()?;
                        let results = r.valtypes()?;
                        p.types.push((params, results));
                    }
                }
                2 => {
                    for _ in 0..r.u32()? {
                        let module = r.name()?;
                        let field = r.name()?;
                        let kind = match r.byte()? {
                            0 => {
                                let t = r.u32()?;
                                p.func_types.push(t);
                                ImportKind::Func(t)
                            }
                            1 => {
                                r.byte()?;
                                r.limits()?;
                                ImportKind::Table
                            }
                            2 => {
                                r.limits()?;
                                ImportKind::Memory
                            }
                            3 => {
                                let ty = ValTy::from_byte(r.byte()?)?;
                                if r.byte()? != 0 {
                                    return unsupported(format!(
                                        "imports mutable global `{module}.{field}`"
                                    ));
                                }
                                ImportKind::Global(ty)
                            }
                            4 => {
                                r.byte()?; // attribute: exception
                                r.u32()?;
                                ImportKind::Tag
                            }
                            k => return unsupported(format!("import kind {k:#x}")),
                        };
                        if module != "spectest" {
                            return unsupported(format!(
                                "imports `{module}.{field}` from another spec module \
                                 (its state lives in that module's instance)"
                            ));
                        }
                        let known = match kind {
                            ImportKind::Func(_) => SPECTEST_FUNCS.contains(&field.as_str()),
                            ImportKind::Table => field == "table",
                            ImportKind::Memory => field == "memory",
                            ImportKind::Global(_) => field.starts_with("global_"),
                            ImportKind::Tag => false,
                        };
                        if !known {
                            return unsupported(format!("unknown import `spectest.{field}`"));
                        }
                        if let ImportKind::Global(ty) = kind {
                            p.imported_globals.push(ty);
                        }
                        p.imports.push(Import { kind });
                    }
                }
                3 => {
                    for _ in 0..r.u32()? {
                        p.func_types.push(r.u32()?);
                    }
                }
                7 => {
                    for _ in 0..r.u32()? {
                        let name = r.name()?;
                        let kind = r.byte()?;
                        let index = r.u32()?;
                        p.exports.push((name, kind, index));
                    }
                }
                _ => {}
            }
        }
        Ok(p)
    }

    /// The parameter and result types of exported function `name`, and
    /// its index.
    pub fn export_func(&self, name: &str) -> Option<(u32, &[ValTy], &[ValTy])> {
        let (_, _, index) = self
            .exports
            .iter()
            .find(|(n, kind, _)| n == name && *kind == 0)?;
        let ty = *self.func_types.get(*index as usize)?;
        let (params, results) = self.types.get(ty as usize)?;
        Some((*index, params, results))
    }

    /// Checks that `call` can be made in wasm (types agree, no host
    /// references); the error says why not.
    pub fn check_call(&self, call: &Call) -> Result<(), Unsupported> {
        let Some((_, params, results)) = self.export_func(&call.func) else {
            return unsupported(format!("no exported function `{}`", call.func));
        };
        if params.len() != call.args.len()
            || params.iter().zip(&call.args).any(|(p, a)| *p != a.ty())
        {
            return unsupported("arguments do not match the parameters");
        }
        if let Some(expect) = &call.expect {
            if expect.len() != results.len() {
                return unsupported("result count differs from the function's");
            }
            for (e, ty) in expect.iter().zip(results) {
                check_expect(e, *ty)?;
            }
        }
        Ok(())
    }

    /// Builds the harness calling `calls` in order (each checked with
    /// [`Parsed::check_call`] first).
    pub fn harness(&self, calls: &[Call]) -> Result<Harness, Unsupported> {
        if self.exports.iter().any(|(n, _, _)| n == "_start") {
            return unsupported("the module already exports `_start`");
        }
        let void_ty = self.types.len() as u32;
        let num_funcs = self.func_types.len() as u32;
        let first_call_func = num_funcs;
        let start_func = num_funcs + calls.len() as u32;

        // New entries per section: (count, bytes) before and after the old.
        let mut type_after = Vec::new();
        type_after.extend_from_slice(&[0x60, 0, 0]);
        let mut func_before = Vec::new();
        let mut code_before = Vec::new();
        let (mut nf_before, mut nt_before, mut nm_before, mut ng_before) = (0, 0, 0, 0);
        let (mut table_before, mut mem_before, mut global_before) =
            (Vec::new(), Vec::new(), Vec::new());
        for imp in &self.imports {
            match imp.kind {
                ImportKind::Func(t) => {
                    let results = self.types.get(t as usize).map(|(_, r)| r.len());
                    if results != Some(0) {
                        return unsupported("a spectest function import with results");
                    }
                    put_u32(&mut func_before, t);
                    code_before.extend_from_slice(&[2, 0, 0x0b]);
                    nf_before += 1;
                }
                ImportKind::Table => {
                    table_before.extend_from_slice(&[0x70, 1, 10, 20]);
                    nt_before += 1;
                }
                ImportKind::Memory => {
                    mem_before.extend_from_slice(&[1, 1, 2]);
                    nm_before += 1;
                }
                ImportKind::Global(ty) => {
                    global_before.extend_from_slice(&[ty.byte(), 0]);
                    spectest_global_value(ty, &mut global_before)?;
                    global_before.push(0x0b);
                    ng_before += 1;
                }
                ImportKind::Tag => return unsupported("a tag import"),
            }
        }
        let mut func_after = Vec::new();
        let mut code_after = Vec::new();
        for call in calls {
            self.check_call(call)?;
            put_u32(&mut func_after, void_ty);
            let body = self.call_body(call)?;
            put_u32(&mut code_after, body.len() as u32);
            code_after.extend_from_slice(&body);
        }
        put_u32(&mut func_after, void_ty);
        let mut start_body = vec![0];
        for i in 0..calls.len() as u32 {
            start_body.push(0x10);
            put_u32(&mut start_body, first_call_func + i);
        }
        start_body.push(0x0b);
        put_u32(&mut code_after, start_body.len() as u32);
        code_after.extend_from_slice(&start_body);
        let mut export_after = Vec::new();
        put_u32(&mut export_after, 6);
        export_after.extend_from_slice(b"_start");
        export_after.push(0);
        put_u32(&mut export_after, start_func);

        let n_new = calls.len() as u32 + 1;
        let old = |id: u8| -> Result<(u32, Vec<u8>), Unsupported> {
            match self.sections.iter().find(|(i, _)| *i == id) {
                Some((_, p)) => split_vec(p).map(|(n, b)| (n, b.to_vec())),
                None => Ok((0, Vec::new())),
            }
        };
        let mut replaced: Vec<(u8, Vec<u8>)> = Vec::new();
        let (n, b) = old(1)?;
        replaced.push((1, join_vec((0, &[]), (n, &b), (1, &type_after))));
        let (n, b) = old(3)?;
        replaced.push((
            3,
            join_vec((nf_before, &func_before), (n, &b), (n_new, &func_after)),
        ));
        let (n, b) = old(4)?;
        replaced.push((4, join_vec((nt_before, &table_before), (n, &b), (0, &[]))));
        let (n, b) = old(5)?;
        replaced.push((5, join_vec((nm_before, &mem_before), (n, &b), (0, &[]))));
        let (n, b) = match self.sections.iter().find(|(i, _)| *i == 6) {
            Some((_, p)) => rewrite_globals(p, &self.imported_globals)?,
            None => (0, Vec::new()),
        };
        replaced.push((6, join_vec((ng_before, &global_before), (n, &b), (0, &[]))));
        if !self.imported_globals.is_empty() {
            for (id, p) in &self.sections {
                match id {
                    9 => replaced.push((9, rewrite_elems(p, &self.imported_globals)?)),
                    11 => replaced.push((11, rewrite_data(p, &self.imported_globals)?)),
                    _ => {}
                }
            }
        }
        let (n, b) = old(7)?;
        replaced.push((7, join_vec((0, &[]), (n, &b), (1, &export_after))));
        let (n, b) = old(10)?;
        replaced.push((
            10,
            join_vec((nf_before, &code_before), (n, &b), (n_new, &code_after)),
        ));

        // Canonical order; 13 (tags) sits between 5 and 6, 12 (data
        // count) between 9 and 10.
        const ORDER: [u8; 13] = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];
        let mut bytes = b"\0asm\x01\0\0\0".to_vec();
        for id in ORDER {
            let payload = match replaced.iter().find(|(i, _)| *i == id) {
                Some((_, p)) => p.as_slice(),
                None if id == 2 => continue, // imports are all replaced
                None => match self.sections.iter().find(|(i, _)| *i == id) {
                    Some((_, p)) => p.as_slice(),
                    None => continue,
                },
            };
            bytes.push(id);
            put_u32(&mut bytes, payload.len() as u32);
            bytes.extend_from_slice(payload);
        }
        Ok(Harness {
            bytes,
            first_call_func,
        })
    }

    /// The body of `$inv_i` for `call`.
    fn call_body(&self, call: &Call) -> Result<Vec<u8>, Unsupported> {
        let Some((index, _, results)) = self.export_func(&call.func) else {
            return unsupported(format!("no exported function `{}`", call.func));
        };
        let mut b = Vec::new();
        if call.throws && call.expect.is_some() {
            return unsupported("a call expected to both return and throw");
        }
        let keep = call.expect.is_some();
        if keep {
            put_u32(&mut b, results.len() as u32);
            for ty in results {
                b.push(1);
                b.push(ty.byte());
            }
        } else {
            b.push(0);
        }
        if call.throws {
            // block; try_table (catch_all 0) ... end; unreachable; end:
            // the exception leaves through the block, a return reaches
            // the `unreachable`.
            b.extend_from_slice(&[0x02, 0x40, 0x1f, 0x40, 0x01, 0x02, 0x00]);
        }
        for a in &call.args {
            match *a {
                Arg::I32(v) => {
                    b.push(0x41);
                    put_i64(&mut b, i64::from(v));
                }
                Arg::I64(v) => {
                    b.push(0x42);
                    put_i64(&mut b, v);
                }
                Arg::F32(bits) => {
                    b.push(0x43);
                    b.extend_from_slice(&bits.to_le_bytes());
                }
                Arg::F64(bits) => {
                    b.push(0x44);
                    b.extend_from_slice(&bits.to_le_bytes());
                }
                Arg::V128(bytes) => {
                    b.extend_from_slice(&[0xfd, 0x0c]); // v128.const
                    b.extend_from_slice(&bytes);
                }
                Arg::NullFunc => b.extend_from_slice(&[0xd0, 0x70]),
                Arg::NullExtern => b.extend_from_slice(&[0xd0, 0x6f]),
                Arg::NullExn => b.extend_from_slice(&[0xd0, 0x69]),
            }
        }
        b.push(0x10);
        put_u32(&mut b, index);
        match &call.expect {
            None => {
                b.extend(std::iter::repeat_n(0x1a, results.len()));
                if call.throws {
                    b.extend_from_slice(&[0x0b, 0x00, 0x0b]);
                }
            }
            Some(expect) => {
                for i in (0..results.len() as u32).rev() {
                    b.push(0x21);
                    put_u32(&mut b, i);
                }
                for (i, e) in expect.iter().enumerate() {
                    let l = i as u32;
                    emit_check(
                        &mut b,
                        &|b: &mut Vec<u8>| {
                            b.push(0x20);
                            put_u32(b, l);
                        },
                        e,
                    );
                    // if (!ok) unreachable
                    b.extend_from_slice(&[0x45, 0x04, 0x40, 0x00, 0x0b]);
                }
            }
        }
        b.push(0x0b);
        Ok(b)
    }
}

/// The constant instruction giving a `spectest` global's value (666 or
/// 666.6).
fn spectest_global_value(ty: ValTy, out: &mut Vec<u8>) -> Result<(), Unsupported> {
    match ty {
        ValTy::I32 => out.extend_from_slice(&[0x41, 0x9a, 0x05]),
        ValTy::I64 => out.extend_from_slice(&[0x42, 0x9a, 0x05]),
        ValTy::F32 => {
            out.push(0x43);
            out.extend_from_slice(&666.6f32.to_bits().to_le_bytes());
        }
        ValTy::F64 => {
            out.push(0x44);
            out.extend_from_slice(&666.6f64.to_bits().to_le_bytes());
        }
        _ => return unsupported("a spectest global of a reference type"),
    }
    Ok(())
}

/// The global section's entries with imported globals read in their
/// initialisers replaced by their values.
fn rewrite_globals(payload: &[u8], imported: &[ValTy]) -> Result<(u32, Vec<u8>), Unsupported> {
    let mut r = Reader::new(payload);
    let n = r.u32()?;
    let mut out = Vec::new();
    for _ in 0..n {
        r.copy(2, &mut out)?; // type, mutability
        r.copy_const_expr(&mut out, imported)?;
    }
    Ok((n, out))
}

/// The data section with its offsets rewritten like [`rewrite_globals`].
fn rewrite_data(payload: &[u8], imported: &[ValTy]) -> Result<Vec<u8>, Unsupported> {
    let mut r = Reader::new(payload);
    let n = r.u32()?;
    let mut out = Vec::new();
    put_u32(&mut out, n);
    for _ in 0..n {
        let flag = r.u32()?;
        put_u32(&mut out, flag);
        match flag {
            0 => r.copy_const_expr(&mut out, imported)?,
            1 => {}
            2 => {
                r.copy_leb(&mut out)?;
                r.copy_const_expr(&mut out, imported)?;
            }
            f => return unsupported(format!("data segment flags {f}")),
        }
        let len = r.u32()?;
        put_u32(&mut out, len);
        r.copy(len as usize, &mut out)?;
    }
    Ok(out)
}

/// The element section with its offsets and items rewritten like
/// [`rewrite_globals`].
fn rewrite_elems(payload: &[u8], imported: &[ValTy]) -> Result<Vec<u8>, Unsupported> {
    let mut r = Reader::new(payload);
    let n = r.u32()?;
    let mut out = Vec::new();
    put_u32(&mut out, n);
    for _ in 0..n {
        let flag = r.u32()?;
        put_u32(&mut out, flag);
        if flag > 7 {
            return unsupported(format!("element segment flags {flag}"));
        }
        // Bit 0: passive or declared (else active); bit 1: explicit table
        // (active) or declared (else passive); bit 2: expressions.
        let active = flag & 1 == 0;
        if active && flag & 2 != 0 {
            r.copy_leb(&mut out)?;
        }
        if active {
            r.copy_const_expr(&mut out, imported)?;
        }
        if flag & 3 != 0 {
            r.copy(1, &mut out)?; // elemkind or reftype
        }
        if flag & 4 == 0 {
            r.copy_u32s(&mut out)?;
        } else {
            let items = r.u32()?;
            put_u32(&mut out, items);
            for _ in 0..items {
                r.copy_const_expr(&mut out, imported)?;
            }
        }
    }
    Ok(out)
}

fn check_expect(e: &Expect, ty: ValTy) -> Result<(), Unsupported> {
    let ok = match e {
        Expect::I32(_) => ty == ValTy::I32,
        Expect::I64(_) => ty == ValTy::I64,
        Expect::F32(_) => ty == ValTy::F32,
        Expect::F64(_) => ty == ValTy::F64,
        Expect::V128(lanes, list) => {
            let (n, lane_ty) = match lanes {
                Lanes::I8x16 => (16, ValTy::I32),
                Lanes::I16x8 => (8, ValTy::I32),
                Lanes::I32x4 => (4, ValTy::I32),
                Lanes::I64x2 => (2, ValTy::I64),
                Lanes::F32x4 => (4, ValTy::F32),
                Lanes::F64x2 => (2, ValTy::F64),
            };
            if list.len() != n {
                return unsupported(format!("{} lanes expected for {lanes:?}", list.len()));
            }
            for e in list {
                check_expect(e, lane_ty)?;
            }
            ty == ValTy::V128
        }
        Expect::Null | Expect::NonNull => {
            matches!(ty, ValTy::FuncRef | ValTy::ExternRef | ValTy::ExnRef)
        }
        Expect::Either(list) => {
            for e in list {
                check_expect(e, ty)?;
            }
            true
        }
    };
    if ok {
        Ok(())
    } else {
        unsupported(format!("expected {e:?} for a {ty:?} result"))
    }
}

/// Pushes an i32 that is 1 when the value `get` pushes matches `e`.
fn emit_check(b: &mut Vec<u8>, get: &dyn Fn(&mut Vec<u8>), e: &Expect) {
    let i32c = |b: &mut Vec<u8>, v: u32| {
        b.push(0x41);
        put_i64(b, i64::from(v as i32));
    };
    let i64c = |b: &mut Vec<u8>, v: u64| {
        b.push(0x42);
        put_i64(b, v as i64);
    };
    match e {
        Expect::I32(v) => {
            get(b);
            i32c(b, *v as u32);
            b.push(0x46); // i32.eq
        }
        Expect::I64(v) => {
            get(b);
            i64c(b, *v as u64);
            b.push(0x51); // i64.eq
        }
        Expect::F32(p) => {
            get(b);
            b.push(0xbc); // i32.reinterpret_f32
            match p {
                FloatPat::Bits(v) => i32c(b, *v),
                FloatPat::CanonicalNan => {
                    i32c(b, 0x7fff_ffff);
                    b.push(0x71); // i32.and
                    i32c(b, 0x7fc0_0000);
                }
                FloatPat::ArithmeticNan => {
                    i32c(b, 0x7fc0_0000);
                    b.push(0x71);
                    i32c(b, 0x7fc0_0000);
                }
            }
            b.push(0x46);
        }
        Expect::F64(p) => {
            get(b);
            b.push(0xbd); // i64.reinterpret_f64
            match p {
                FloatPat::Bits(v) => i64c(b, *v),
                FloatPat::CanonicalNan => {
                    i64c(b, 0x7fff_ffff_ffff_ffff);
                    b.push(0x83); // i64.and
                    i64c(b, 0x7ff8_0000_0000_0000);
                }
                FloatPat::ArithmeticNan => {
                    i64c(b, 0x7ff8_0000_0000_0000);
                    b.push(0x83);
                    i64c(b, 0x7ff8_0000_0000_0000);
                }
            }
            b.push(0x51);
        }
        Expect::Null => {
            get(b);
            b.push(0xd1); // ref.is_null
        }
        Expect::NonNull => {
            get(b);
            b.extend_from_slice(&[0xd1, 0x45]); // ref.is_null, i32.eqz
        }
        Expect::V128(lanes, list) => {
            i32c(b, 1);
            for (j, e) in list.iter().enumerate() {
                let lane = |b: &mut Vec<u8>| {
                    get(b);
                    b.push(0xfd);
                    put_u32(b, lanes.extract_op());
                    b.push(j as u8);
                };
                emit_check(b, &lane, e);
                b.push(0x71); // i32.and
            }
        }
        Expect::Either(list) => {
            i32c(b, 0);
            for e in list {
                emit_check(b, get, e);
                b.push(0x72); // i32.or
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb_signed() {
        let mut v = Vec::new();
        put_i64(&mut v, -1);
        assert_eq!(v, [0x7f]);
        v.clear();
        put_i64(&mut v, 64);
        assert_eq!(v, [0xc0, 0x00]);
        v.clear();
        put_i64(&mut v, 666);
        assert_eq!(v, [0x9a, 0x05]);
    }
}
