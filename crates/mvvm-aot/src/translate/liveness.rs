//! Liveness of wasm locals at stable points, for checkpoint frames.
//!
//! A frame only has to hold the locals that may be read again before being
//! written. Every local a frame saves is a use at each unwind site and a
//! definition merged into each resume block, so saving a dead local costs
//! a register (or a spill) across every stable point until the next write:
//! in a loop nest, the temporaries of one inner loop would stay alive
//! through all the others. That was most of the policies' run-time cost.
//!
//! The analysis is a classic backward dataflow over the basic blocks of the
//! wasm body (`local.get` is a use, `local.set`/`local.tee` a definition),
//! decided from the wasm alone, so every compilation of a module (any opt
//! level, policy or ISA) agrees on which locals a frame holds, and a frame
//! saved by one restores into another. Dead locals are saved as zero.
//!
//! The control flow is WebAssembly 2.0's, tail calls and exception
//! handling (no branch-on-cast): `block`, `loop`, `if`/`else`, `end`,
//! `br`, `br_if`, `br_table`, `return`, `unreachable`, `return_call`,
//! `return_call_indirect`, `try_table`, legacy `try`/`catch`/`catch_all`/
//! `delegate`, `throw`, `throw_ref`, `rethrow`. A call inside a handler
//! scope ends its block with an edge to each handler that applies (a
//! `try_table` clause's label, a legacy `try`'s catch bodies), so a local
//! read only by a handler is live at the calls that may land there; a
//! throw has only those edges. A tail call ends its block like `return`; the
//! ones that are stable points (`return_call_indirect`, and `return_call`
//! of an import, which `Liveness::compute` cannot tell apart and so treats
//! alike: nothing is live after a tail call anyway) record the point
//! first, with no local live. A `memory.atomic.wait*` is a stable point
//! too (its builtin may be interrupted for a checkpoint), without edges:
//! it traps but never throws.

use super::exceptions::ExnPlan;
use crate::CompileError;
use std::collections::HashMap;
use wasmparser::{FunctionBody, Operator};

/// A set of locals.
#[derive(Clone, PartialEq, Eq)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }

    fn insert(&mut self, i: u32) {
        if let Some(w) = self.0.get_mut((i / 64) as usize) {
            *w |= 1 << (i % 64);
        }
    }

    fn remove(&mut self, i: u32) {
        if let Some(w) = self.0.get_mut((i / 64) as usize) {
            *w &= !(1 << (i % 64));
        }
    }

    fn contains(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// `self |= other`; whether anything changed.
    fn union(&mut self, other: &Bits) -> bool {
        let mut changed = false;
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            let n = *a | *b;
            changed |= n != *a;
            *a = n;
        }
        changed
    }
}

/// What an operator does to the locals, or that it is a stable point.
#[derive(Clone, Copy)]
enum Event {
    Use(u32),
    Def(u32),
    /// A `loop`, `call`, `call_indirect`, stable tail call or
    /// `memory.atomic.wait*` at this offset.
    Point(u32),
}

#[derive(Default)]
struct BasicBlock {
    /// In program order.
    events: Vec<Event>,
    succs: Vec<usize>,
}

/// An open control frame while the CFG is built.
struct Frame {
    /// Where a branch to this frame goes: the loop header for a `loop`,
    /// the continuation after `end` otherwise.
    target: usize,
    /// The continuation after `end`.
    after: usize,
    /// For an `if` without its `else` yet: the block holding the test.
    test: Option<usize>,
    /// Where an exception thrown in the frame's body may go: the labels
    /// of a `try_table`'s clauses, a legacy `try`'s catch dispatch.
    handlers: Vec<usize>,
    /// Whether `handlers` cover the code being read (not in a legacy
    /// `try`'s catch bodies).
    active: bool,
    /// Legacy `try ... delegate l`: the frame whose handlers (and those
    /// outside it) apply instead.
    delegate: Option<usize>,
    /// Legacy `try`: the block that branches to each catch body.
    dispatch: Option<usize>,
}

impl Frame {
    fn plain(target: usize, after: usize, test: Option<usize>) -> Self {
        Frame {
            target,
            after,
            test,
            handlers: Vec::new(),
            active: false,
            delegate: None,
            dispatch: None,
        }
    }
}

/// The handler blocks an exception raised now may reach, innermost first.
fn exceptional_succs(frames: &[Frame]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = frames.len();
    while i > 0 {
        i -= 1;
        let f = &frames[i];
        if !f.active {
            continue;
        }
        out.extend_from_slice(&f.handlers);
        if let Some(j) = f.delegate {
            i = j + 1;
        }
    }
    out
}

/// Which locals each stable point's frame must save.
pub(crate) struct Liveness {
    nlocals: usize,
    /// Per stable point offset (and the function entry), the live locals.
    at: HashMap<u32, Bits>,
}

impl Liveness {
    /// Analyses `body`, whose entry stable point is at `entry_offset`.
    pub(crate) fn compute(
        body: &FunctionBody<'_>,
        nlocals: usize,
        entry_offset: u32,
        plan: &ExnPlan,
    ) -> Result<Self, CompileError> {
        let mut blocks: Vec<BasicBlock> = vec![BasicBlock::default()];
        let new_block = |blocks: &mut Vec<BasicBlock>| {
            blocks.push(BasicBlock::default());
            blocks.len() - 1
        };
        // The function's own frame: a branch to it returns (no successor).
        let exit = new_block(&mut blocks);
        let mut frames = vec![Frame::plain(exit, exit, None)];
        let mut cur = 0usize;
        let mut ops = body
            .get_operators_reader()
            .map_err(|e| CompileError::invalid(&e))?;
        // The body was validated before: these only guard against a
        // validator/analysis disagreement, never against user input.
        let malformed = |offset: u64, what: &str| CompileError::Invalid {
            offset: usize::try_from(offset).unwrap_or(usize::MAX),
            message: format!("liveness analysis: {what}"),
        };
        let target_of =
            |frames: &[Frame], depth: u32, offset: u64| -> Result<usize, CompileError> {
                frames
                    .len()
                    .checked_sub(1 + depth as usize)
                    .and_then(|i| frames.get(i))
                    .map(|f| f.target)
                    .ok_or_else(|| malformed(offset, "branch depth out of range"))
            };
        while !ops.eof() {
            let (op, offset) = ops
                .read_with_offset()
                .map_err(|e| CompileError::invalid(&e))?;
            let at = u32::try_from(offset).unwrap_or(u32::MAX);
            match op {
                Operator::LocalGet { local_index } => {
                    blocks[cur].events.push(Event::Use(local_index));
                }
                Operator::LocalSet { local_index } | Operator::LocalTee { local_index } => {
                    blocks[cur].events.push(Event::Def(local_index));
                }
                // A wait can trap but not throw: no handler edges.
                Operator::MemoryAtomicWait32 { .. } | Operator::MemoryAtomicWait64 { .. } => {
                    blocks[cur].events.push(Event::Point(at));
                }
                Operator::Call { .. } | Operator::CallIndirect { .. } => {
                    blocks[cur].events.push(Event::Point(at));
                    let handlers = exceptional_succs(&frames);
                    if !handlers.is_empty() {
                        let next = new_block(&mut blocks);
                        blocks[cur].succs.extend(handlers);
                        blocks[cur].succs.push(next);
                        cur = next;
                    }
                }
                Operator::Throw { .. } | Operator::ThrowRef | Operator::Rethrow { .. } => {
                    let handlers = exceptional_succs(&frames);
                    blocks[cur].succs.extend(handlers);
                    cur = new_block(&mut blocks);
                }
                Operator::Block { .. } => {
                    let after = new_block(&mut blocks);
                    frames.push(Frame::plain(after, after, None));
                }
                Operator::TryTable { try_table } => {
                    let mut handlers = Vec::with_capacity(try_table.catches.len());
                    for c in &try_table.catches {
                        let label = match *c {
                            wasmparser::Catch::One { label, .. }
                            | wasmparser::Catch::OneRef { label, .. }
                            | wasmparser::Catch::All { label }
                            | wasmparser::Catch::AllRef { label } => label,
                        };
                        handlers.push(target_of(&frames, label, offset)?);
                    }
                    let after = new_block(&mut blocks);
                    let mut frame = Frame::plain(after, after, None);
                    frame.handlers = handlers;
                    frame.active = true;
                    frames.push(frame);
                }
                Operator::Try { .. } => {
                    let after = new_block(&mut blocks);
                    let dispatch = new_block(&mut blocks);
                    let delegate = match plan
                        .tries
                        .get(&usize::try_from(offset).unwrap_or(usize::MAX))
                        .and_then(|t| t.delegate)
                    {
                        Some(l) => Some(
                            frames
                                .len()
                                .checked_sub(1 + l as usize)
                                .ok_or_else(|| malformed(offset, "delegate out of range"))?,
                        ),
                        None => None,
                    };
                    let mut frame = Frame::plain(after, after, None);
                    frame.handlers = vec![dispatch];
                    frame.active = true;
                    frame.delegate = delegate;
                    frame.dispatch = Some(dispatch);
                    frames.push(frame);
                }
                Operator::Catch { .. } | Operator::CatchAll => {
                    let frame = frames
                        .last_mut()
                        .ok_or_else(|| malformed(offset, "catch outside try"))?;
                    frame.active = false;
                    blocks[cur].succs.push(frame.after);
                    let dispatch = frame
                        .dispatch
                        .ok_or_else(|| malformed(offset, "catch outside try"))?;
                    let body = new_block(&mut blocks);
                    blocks[dispatch].succs.push(body);
                    cur = body;
                }
                Operator::Loop { .. } => {
                    let header = new_block(&mut blocks);
                    let after = new_block(&mut blocks);
                    blocks[cur].events.push(Event::Point(at));
                    blocks[cur].succs.push(header);
                    cur = header;
                    frames.push(Frame::plain(header, after, None));
                }
                Operator::If { .. } => {
                    let then = new_block(&mut blocks);
                    let after = new_block(&mut blocks);
                    blocks[cur].succs.push(then);
                    frames.push(Frame::plain(after, after, Some(cur)));
                    cur = then;
                }
                Operator::Else => {
                    let frame = frames
                        .last_mut()
                        .ok_or_else(|| malformed(offset, "else outside if"))?;
                    let after = frame.after;
                    let test = frame.test.take();
                    blocks[cur].succs.push(after);
                    let other = new_block(&mut blocks);
                    if let Some(t) = test {
                        blocks[t].succs.push(other);
                    }
                    cur = other;
                }
                Operator::End | Operator::Delegate { .. } => {
                    let frame = frames
                        .pop()
                        .ok_or_else(|| malformed(offset, "unbalanced end"))?;
                    blocks[cur].succs.push(frame.after);
                    if let Some(t) = frame.test {
                        // `if` without `else`: the test may skip the body.
                        blocks[t].succs.push(frame.after);
                    }
                    cur = frame.after;
                }
                Operator::Br { relative_depth } => {
                    let t = target_of(&frames, relative_depth, offset)?;
                    blocks[cur].succs.push(t);
                    cur = new_block(&mut blocks);
                }
                Operator::BrIf { relative_depth } => {
                    let t = target_of(&frames, relative_depth, offset)?;
                    let next = new_block(&mut blocks);
                    blocks[cur].succs.extend([t, next]);
                    cur = next;
                }
                Operator::BrTable { targets } => {
                    let mut succs = vec![target_of(&frames, targets.default(), offset)?];
                    for depth in targets.targets() {
                        let depth = depth.map_err(|e| CompileError::invalid(&e))?;
                        succs.push(target_of(&frames, depth, offset)?);
                    }
                    blocks[cur].succs.extend(succs);
                    cur = new_block(&mut blocks);
                }
                Operator::Return | Operator::Unreachable => {
                    cur = new_block(&mut blocks);
                }
                Operator::ReturnCall { .. } | Operator::ReturnCallIndirect { .. } => {
                    blocks[cur].events.push(Event::Point(at));
                    cur = new_block(&mut blocks);
                }
                _ => {}
            }
        }

        // Per block: live-in = uses before a def, plus live-out minus defs.
        let mut gen_kill = Vec::with_capacity(blocks.len());
        for b in &blocks {
            let (mut uses, mut defs) = (Bits::new(nlocals), Bits::new(nlocals));
            for e in b.events.iter().rev() {
                match *e {
                    Event::Use(i) => {
                        uses.insert(i);
                        defs.remove(i);
                    }
                    Event::Def(i) => {
                        defs.insert(i);
                        uses.remove(i);
                    }
                    Event::Point(_) => {}
                }
            }
            gen_kill.push((uses, defs));
        }
        let mut live_in = vec![Bits::new(nlocals); blocks.len()];
        let mut changed = true;
        while changed {
            changed = false;
            // Blocks are numbered roughly in program order: going backwards
            // converges in a few sweeps (one more per loop nesting level).
            for b in (0..blocks.len()).rev() {
                let mut live = Bits::new(nlocals);
                for s in &blocks[b].succs {
                    live.union(&live_in[*s]);
                }
                let (uses, defs) = &gen_kill[b];
                for (w, (u, d)) in live.0.iter_mut().zip(uses.0.iter().zip(&defs.0)) {
                    *w = (*w & !d) | u;
                }
                if live != live_in[b] {
                    live_in[b] = live;
                    changed = true;
                }
            }
        }

        let mut at = HashMap::new();
        for b in &blocks {
            let mut live = Bits::new(nlocals);
            for s in &b.succs {
                live.union(&live_in[*s]);
            }
            for e in b.events.iter().rev() {
                match *e {
                    Event::Use(i) => live.insert(i),
                    Event::Def(i) => live.remove(i),
                    Event::Point(offset) => {
                        at.insert(offset, live.clone());
                    }
                }
            }
        }
        at.insert(entry_offset, live_in[0].clone());
        Ok(Liveness { nlocals, at })
    }

    /// Per local, whether it may be read after stable point `offset` before
    /// being written (every local for an offset that is not a stable point).
    pub(crate) fn live_at(&self, offset: u32) -> Vec<bool> {
        match self.at.get(&offset) {
            Some(bits) => (0..self.nlocals).map(|i| bits.contains(i)).collect(),
            None => vec![true; self.nlocals],
        }
    }
}
