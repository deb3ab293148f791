//! Which calls a `.wast` file makes on which module instance.
//!
//! Every `module` (or `module instance`) directive starts a new instance;
//! `invoke` and `assert_return (invoke ...)` directives add a call to the
//! instance they name (or the last one); so do `assert_exception (invoke
//! ...)` directives, as calls the harness expects to throw. Calls that are expected to trap
//! or exhaust the stack are not made by the harness (a trap ends the whole
//! program); they are counted, because a call that changes state before
//! trapping makes the later expectations wrong without it (the test then
//! sees the failure without any checkpoint and reports it as a skip).

use super::wasm::{Arg, Call, Expect, FloatPat, Lanes};
use std::collections::HashMap;
use wast::core::{AbstractHeapType, HeapType, NanPattern, V128Pattern, WastArgCore, WastRetCore};
use wast::{WastArg, WastDirective, WastExecute, WastInvoke, WastRet};

/// One call and where it comes from.
#[derive(Debug, Clone)]
pub struct PlannedCall {
    pub call: Call,
    /// 1-based line of the directive.
    pub line: usize,
}

/// One module instance of a file and its calls.
#[derive(Debug, Default)]
pub struct PlannedInstance {
    /// The module's binary (`None`: it could not be encoded).
    pub bytes: Option<Vec<u8>>,
    /// 1-based line of the `module` directive.
    pub line: usize,
    pub calls: Vec<PlannedCall>,
    /// Calls left out, with the reason (host references...).
    pub skipped_calls: Vec<(usize, String)>,
    /// Trap and exhaustion assertions on this instance (not replayed).
    pub trapping_calls: usize,
}

/// Reads `text` (a `.wast` file) into its instances.
pub fn plan(text: &str) -> Result<Vec<PlannedInstance>, String> {
    let mut lexer = wast::lexer::Lexer::new(text);
    lexer.allow_confusing_unicode(true);
    let buf = wast::parser::ParseBuffer::new_with_lexer(lexer).map_err(|e| e.to_string())?;
    let wast = wast::parser::parse::<wast::Wast<'_>>(&buf).map_err(|e| e.to_string())?;
    let mut out: Vec<PlannedInstance> = Vec::new();
    let mut named: HashMap<String, usize> = HashMap::new();
    let mut definitions: HashMap<String, Option<Vec<u8>>> = HashMap::new();
    let mut last: Option<usize> = None;
    for d in wast.directives {
        let line = d.span().linecol_in(text).0 + 1;
        let target = |named: &HashMap<String, usize>, inv: &WastInvoke<'_>| match inv.module {
            Some(id) => named.get(id.name()).copied(),
            None => last,
        };
        match d {
            WastDirective::Module(mut wat) => {
                let name = wat.name().map(|id| id.name().to_string());
                out.push(PlannedInstance {
                    bytes: wat.encode().ok(),
                    line,
                    ..Default::default()
                });
                if let Some(n) = name {
                    named.insert(n, out.len() - 1);
                }
                last = Some(out.len() - 1);
            }
            WastDirective::ModuleDefinition(mut wat) => {
                if let Some(n) = wat.name().map(|id| id.name().to_string()) {
                    definitions.insert(n, wat.encode().ok());
                }
            }
            WastDirective::ModuleInstance {
                instance, module, ..
            } => {
                let bytes = module
                    .and_then(|m| definitions.get(m.name()).cloned())
                    .flatten();
                out.push(PlannedInstance {
                    bytes,
                    line,
                    ..Default::default()
                });
                if let Some(i) = instance {
                    named.insert(i.name().to_string(), out.len() - 1);
                }
                last = Some(out.len() - 1);
            }
            WastDirective::Invoke(inv) => {
                if let Some(t) = target(&named, &inv) {
                    add_call(&mut out[t], &inv, None, line);
                }
            }
            WastDirective::AssertReturn {
                exec: WastExecute::Invoke(inv),
                results,
                ..
            } => {
                if let Some(t) = target(&named, &inv) {
                    add_call(&mut out[t], &inv, Some(&results), line);
                }
            }
            WastDirective::AssertException {
                exec: WastExecute::Invoke(inv),
                ..
            } => {
                if let Some(t) = target(&named, &inv) {
                    add_call(&mut out[t], &inv, None, line);
                    if let Some(c) = out[t].calls.last_mut().filter(|c| c.line == line) {
                        c.call.throws = true;
                    }
                }
            }
            WastDirective::AssertTrap {
                exec: WastExecute::Invoke(inv),
                ..
            }
            | WastDirective::AssertExhaustion { call: inv, .. } => {
                if let Some(t) = target(&named, &inv) {
                    out[t].trapping_calls += 1;
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn add_call(
    inst: &mut PlannedInstance,
    inv: &WastInvoke<'_>,
    results: Option<&[WastRet<'_>]>,
    line: usize,
) {
    let args: Result<Vec<Arg>, String> = inv.args.iter().map(arg).collect();
    let expect: Result<Option<Vec<Expect>>, String> = results
        .map(|rs| rs.iter().map(expect).collect::<Result<Vec<_>, _>>())
        .transpose();
    match (args, expect) {
        (Ok(args), Ok(expect)) => inst.calls.push(PlannedCall {
            call: Call {
                func: inv.name.to_string(),
                args,
                expect,
                throws: false,
            },
            line,
        }),
        (Err(why), _) | (_, Err(why)) => inst.skipped_calls.push((line, why)),
    }
}

fn arg(a: &WastArg<'_>) -> Result<Arg, String> {
    let WastArg::Core(a) = a else {
        return Err("component argument".into());
    };
    Ok(match a {
        WastArgCore::I32(v) => Arg::I32(*v),
        WastArgCore::I64(v) => Arg::I64(*v),
        WastArgCore::F32(v) => Arg::F32(v.bits),
        WastArgCore::F64(v) => Arg::F64(v.bits),
        WastArgCore::V128(c) => Arg::V128(c.to_le_bytes()),
        WastArgCore::RefNull(HeapType::Abstract {
            ty: AbstractHeapType::Func | AbstractHeapType::NoFunc,
            ..
        }) => Arg::NullFunc,
        WastArgCore::RefNull(HeapType::Abstract {
            ty: AbstractHeapType::Extern | AbstractHeapType::NoExtern,
            ..
        }) => Arg::NullExtern,
        WastArgCore::RefNull(HeapType::Abstract {
            ty: AbstractHeapType::Exn | AbstractHeapType::NoExn,
            ..
        }) => Arg::NullExn,
        WastArgCore::RefExtern(_) => {
            return Err("a host externref argument cannot be made in wasm".into());
        }
        other => return Err(format!("unsupported argument {other:?}")),
    })
}

fn float<T: Copy, U>(p: &NanPattern<T>, bits: impl Fn(&T) -> U) -> FloatPat<U> {
    match p {
        NanPattern::CanonicalNan => FloatPat::CanonicalNan,
        NanPattern::ArithmeticNan => FloatPat::ArithmeticNan,
        NanPattern::Value(v) => FloatPat::Bits(bits(v)),
    }
}

fn expect(r: &WastRet<'_>) -> Result<Expect, String> {
    let WastRet::Core(r) = r else {
        return Err("component result".into());
    };
    core_expect(r)
}

fn core_expect(r: &WastRetCore<'_>) -> Result<Expect, String> {
    Ok(match r {
        WastRetCore::I32(v) => Expect::I32(*v),
        WastRetCore::I64(v) => Expect::I64(*v),
        WastRetCore::F32(p) => Expect::F32(float(p, |v| v.bits)),
        WastRetCore::F64(p) => Expect::F64(float(p, |v| v.bits)),
        WastRetCore::V128(p) => {
            // Each lane as the scalar its extract_lane gives (narrow
            // integer lanes unsigned).
            let (lanes, list) = match p {
                V128Pattern::I8x16(l) => (
                    Lanes::I8x16,
                    l.iter().map(|v| Expect::I32(i32::from(*v as u8))).collect(),
                ),
                V128Pattern::I16x8(l) => (
                    Lanes::I16x8,
                    l.iter()
                        .map(|v| Expect::I32(i32::from(*v as u16)))
                        .collect(),
                ),
                V128Pattern::I32x4(l) => {
                    (Lanes::I32x4, l.iter().map(|v| Expect::I32(*v)).collect())
                }
                V128Pattern::I64x2(l) => {
                    (Lanes::I64x2, l.iter().map(|v| Expect::I64(*v)).collect())
                }
                V128Pattern::F32x4(l) => (
                    Lanes::F32x4,
                    l.iter()
                        .map(|p| Expect::F32(float(p, |v| v.bits)))
                        .collect(),
                ),
                V128Pattern::F64x2(l) => (
                    Lanes::F64x2,
                    l.iter()
                        .map(|p| Expect::F64(float(p, |v| v.bits)))
                        .collect(),
                ),
            };
            Expect::V128(lanes, list)
        }
        WastRetCore::RefNull(_) => Expect::Null,
        WastRetCore::RefFunc(_) | WastRetCore::RefExtern(None) => Expect::NonNull,
        WastRetCore::RefExtern(Some(_)) => {
            return Err("a host externref result cannot be compared in wasm".into());
        }
        WastRetCore::Either(list) => {
            Expect::Either(list.iter().map(core_expect).collect::<Result<_, _>>()?)
        }
        other => return Err(format!("unsupported result {other:?}")),
    })
}
