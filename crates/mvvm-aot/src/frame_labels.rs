//! Developer-only measurement for a frame-walk unwinder (issues 12, 15
//! and 16; "Reading frames where they are" in CHECKPOINT.md).
//!
//! Today every call stable point has a cold block that stores each live
//! local and operand-stack value into the frame buffer when the callee
//! unwinds. The redesign measured here would instead read those values
//! where the native frames already hold them, from Cranelift's value-label
//! ranges. [`compile_with`] answers, per module, whether that is possible:
//! it attaches one value label per local index and per operand-stack depth
//! at every call stable point and probe, tags the call instruction with a
//! debug tag (so its return address is known exactly), and after Cranelift
//! has compiled each body reports which locations cover the call.
//!
//! Nothing here changes what [`crate::compile`] emits: the options are off
//! there, and `tests/frame_labels.rs` checks the bytes are the same.

use cranelift_codegen::ir::{self, DebugTag};
use cranelift_codegen::{CompiledCode, LabelValueLoc, RegClass};
use mvvm_abi::TargetArch;
use std::collections::HashMap;

/// What [`compile_with`] changes in the compilation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevOptions {
    /// Attach value labels and debug tags at every call stable point and
    /// probe and report their locations ([`FrameReport::sites`]).
    pub frame_labels: bool,
    /// Keep the per-site unwind blocks that store the frame (today's
    /// code). `false` replaces each by a jump to one shared block per
    /// function that returns zeros: the shape the redesign would give the
    /// hot code, for measuring what the stores cost in compile time and
    /// which values stay located without them.
    pub unwind_stores: bool,
    /// With `frame_labels`: one label per site and value instead of one
    /// per local index and stack depth, so that no other definition
    /// shadows it (see [`ValueReport::shadowed`]).
    pub per_site_labels: bool,
    /// Keep the unwind stores (call sites and probes) only in hot bodies:
    /// whole bodies and resume clones return through the shared block.
    /// What dropping the stores where the labels locate (nearly) every
    /// value at `-O3` would save.
    pub stores_in_hot_only: bool,
    /// Write the frame maps ([`mvvm_abi::frame_map`]) into the object, in
    /// [`FRAMES_SECTION`](mvvm_abi::object::FRAMES_SECTION), and make the
    /// probe trampoline call `ProbeWalk`, so that the runtime reads each
    /// frame where it is and checks it against the record its unwind
    /// block writes (plan step 7). Implies labels, per-site labels and
    /// the unwind stores everywhere (the other options are overridden):
    /// such an object checkpoints like today's.
    pub frame_map: bool,
    /// With `frame_map` (which it implies): whole bodies and resume
    /// clones write no record at their probes and at their direct calls
    /// of defined functions where the map locates every value but the
    /// call's arguments; such a site jumps to one shared block per
    /// function that tells the runtime (`UnwindWalked`) and returns, and
    /// the runtime makes the record from its walk. A body compiled so is
    /// checked, and recompiled with today's store block at the sites the
    /// map then misses (plan step 3's fallback; after two rounds, with
    /// every store). Hot bodies, calls of imports, `call_indirect` and
    /// waits keep today's code.
    pub walk_frames: bool,
    /// Compile the resume clones (`false`: leave them out). Measures the
    /// upper bound of compiling clones at run time, on demand, instead of
    /// ahead of time (issues 12 and 16, "Resume clones compiled on demand"
    /// in CHECKPOINT.md): the hot bodies stay as they are, except that
    /// their rewind block, which calls the clone, traps (`Unreachable`)
    /// instead. **Such an object cannot rewind**: a restore, or a periodic
    /// checkpoint that continues, traps in the first function with a loop
    /// on the stack. No clone symbol, entry, trap site or call site is
    /// written.
    pub resume_clones: bool,
    /// Record the time per body role, the translation's share of it
    /// ([`RoleTimes::translate_ns`]) and Cranelift's time per pass
    /// ([`FrameReport::pass_times`]), without changing the code.
    pub timings: bool,
    /// Test `unwind_state` after each call (and wait) stable point whose
    /// callee may unwind (today's code). `false` leaves out the test and
    /// the site's unwind block: the call returns straight into the code
    /// after it. Measures the upper bound of unwinding through exception
    /// tables instead (issue 15, "Upper bounds of the per-call tests" in
    /// CHECKPOINT.md). **Such an object cannot checkpoint**: an unwind
    /// started below a call runs on in the caller as if the call had
    /// returned normally. For measuring only.
    #[doc(hidden)]
    pub after_call_tests: bool,
    /// Test `unwind_state == REWINDING` at every function entry (today's
    /// code). `false` enters the body directly and replaces the rewind
    /// path (the `RewindFrame` dispatch and its landings, or a hot body's
    /// tail call of its clone) by a trap nothing reaches, so no resume
    /// block has a second predecessor. Measures the upper bound of having
    /// rewinding callers call the clones directly (issue 15). **Such an
    /// object cannot restore**, nor continue after a checkpoint. For
    /// measuring only.
    #[doc(hidden)]
    pub entry_rewind_tests: bool,
}

impl DevOptions {
    /// The options that make records from the walk where the maps allow
    /// (see [`DevOptions::walk_frames`]).
    pub fn walk_frames() -> Self {
        DevOptions {
            frame_map: true,
            walk_frames: true,
            ..DevOptions::default()
        }
        .normalised()
    }

    /// The options that write frame maps for the runtime's check.
    pub fn frame_map() -> Self {
        DevOptions {
            frame_map: true,
            ..DevOptions::default()
        }
        .normalised()
    }

    /// What the compilation really does: `frame_map` forces labels (one
    /// per site and value, so no other definition shadows one) and every
    /// unwind store.
    pub(crate) fn normalised(self) -> Self {
        if !self.frame_map && !self.walk_frames {
            return self;
        }
        DevOptions {
            frame_labels: true,
            unwind_stores: true,
            per_site_labels: true,
            stores_in_hot_only: false,
            frame_map: true,
            walk_frames: self.walk_frames,
            resume_clones: self.resume_clones,
            timings: self.timings,
            after_call_tests: self.after_call_tests,
            entry_rewind_tests: self.entry_rewind_tests,
        }
    }
}

impl Default for DevOptions {
    /// Today's code, no labels.
    fn default() -> Self {
        DevOptions {
            frame_labels: false,
            unwind_stores: true,
            per_site_labels: false,
            stores_in_hot_only: false,
            frame_map: false,
            walk_frames: false,
            resume_clones: true,
            timings: false,
            after_call_tests: true,
            entry_rewind_tests: true,
        }
    }
}

/// Which stable point a site is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteKind {
    /// A call (or wait) stable point whose callee may unwind.
    Call,
    /// A probe (loop headers, entries), measured where the hot path tests
    /// its flag; its cold block calls the `preserve_all` probe trampoline,
    /// so every register survives that call.
    Probe,
}

/// Which of a function's bodies a site is in (see `BodyRole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// The only body of a loop-free function.
    Whole,
    /// The body normal calls run, of a function with a resume clone.
    Hot,
    /// The resume clone.
    Resume,
}

/// What a labelled value is in the wasm frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A live local, by index.
    Local(u32),
    /// An operand-stack value that stays on the stack across the call, by
    /// depth from the bottom.
    Stack(u32),
    /// An argument of the call (also in today's frame record, since the
    /// rewind re-issues the call), by depth from the bottom of the stack.
    Arg(u32),
}

/// A value the frame record needs at a site, as the translator saw it.
#[derive(Debug, Clone)]
pub(crate) struct Expected {
    pub role: Role,
    pub label: u32,
    /// The SSA value the frame needs.
    pub value: ir::Value,
    /// Defined by a constant instruction (Cranelift may rematerialise it
    /// instead of keeping it anywhere).
    pub constant: bool,
}

/// A site as the translator recorded it, before compilation.
#[derive(Debug, Clone)]
pub(crate) struct PendingSite {
    /// The debug tag on the call instruction.
    pub tag: u32,
    pub offset: u32,
    pub kind: SiteKind,
    pub expected: Vec<Expected>,
    /// A probe's call of the probe trampoline, tagged too: its return
    /// address is the innermost frame's when an unwind starts there.
    pub call_tag: Option<u32>,
    /// Number of locals (the position of stack depth 0 in `frame`).
    pub nlocals: usize,
    /// Every value of the frame record, locals then the stack: first
    /// `u64` slot and width in bytes.
    pub frame: Vec<(u32, u8)>,
    /// Slots of the frame record.
    pub slots: u32,
    /// Index in `frame` of the call's first argument.
    pub args_from: u32,
    /// Whether the site's unwind path writes no record (developer option
    /// `walk_frames`).
    pub walked: bool,
}

/// Where a value is while the call is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Location {
    /// A register (`class` 'i' integer, 'f' float, 'v' vector), and
    /// whether the target's calling convention preserves it across calls.
    Reg {
        class: char,
        hw: u8,
        callee_saved: bool,
    },
    /// A stack slot, at this offset from the canonical frame address.
    Stack { cfa_offset: i64 },
}

/// One value of a site.
#[derive(Debug, Clone)]
pub struct ValueReport {
    pub role: Role,
    pub constant: bool,
    /// Whether Cranelift reported any range at all for the label in this
    /// body (false: the label was lost, e.g. by the egraph pass).
    pub label_seen: bool,
    /// Whether, in the compiled function's block layout, another value
    /// with the same label is defined between this value's definition and
    /// the call: Cranelift then reports the label for that value there
    /// (ranges run in layout order), so this one cannot be found by its
    /// label even if it is kept somewhere. Also true when the value itself
    /// no longer exists after the optimiser.
    pub shadowed: bool,
    /// The distinct locations whose range covers the call instruction and
    /// continues after it.
    pub locations: Vec<Location>,
}

/// One site after compilation.
#[derive(Debug, Clone)]
pub struct SiteReport {
    pub func: u32,
    pub body: Body,
    pub offset: u32,
    pub kind: SiteKind,
    /// The call's return address in the body (a probe: the offset of its
    /// flag test), if the debug tag survived.
    pub ret_addr: Option<u32>,
    pub values: Vec<ValueReport>,
    /// With [`DevOptions::frame_map`]: the site as the object's frame map
    /// holds it (`None` when its return address is unknown).
    pub map: Option<mvvm_abi::frame_map::FrameSite>,
    /// With [`DevOptions::walk_frames`]: the site's unwind path writes no
    /// record.
    pub walked: bool,
}

/// Time spent per body role, translation and Cranelift together, summed
/// over the worker threads (wall time of each body on its worker).
#[derive(Debug, Clone, Copy, Default)]
pub struct RoleTimes {
    pub whole_ns: u64,
    pub hot_ns: u64,
    pub resume_ns: u64,
    /// Bodies compiled per role: whole, hot, resume.
    pub bodies: [u64; 3],
    /// Of the above, the time spent translating wasm into Cranelift IR
    /// (`translate_function`, all roles; the rest is Cranelift).
    pub translate_ns: u64,
}

/// What [`compile_with`] measured.
#[derive(Debug, Clone, Default)]
pub struct FrameReport {
    pub sites: Vec<SiteReport>,
    /// With [`DevOptions::frame_map`]: per body (function, role), where
    /// its prologue saves the registers it clobbers.
    pub saves: Vec<(u32, Body, Vec<mvvm_abi::frame_map::RegSave>)>,
    pub times: RoleTimes,
    /// With [`DevOptions::walk_frames`]: whole bodies and clones by the
    /// compilation they were kept from: the first (every walkable site
    /// without stores), the second or third (stores put back where the
    /// map missed), or the fourth (every store).
    pub walk_rounds: [u64; 4],
    /// With [`DevOptions::timings`]: Cranelift's time per pass
    /// (`cranelift_codegen::timing`), summed over the worker threads, as
    /// Cranelift prints it (function bodies only, not the glue).
    pub pass_times: String,
}

/// Compiles like [`crate::compile`], with the developer options `dev`,
/// and reports the sites and the time per body role.
pub fn compile_with(
    input: &[u8],
    opts: &crate::CompileOptions,
    dev: &DevOptions,
) -> Result<(Vec<u8>, FrameReport), crate::CompileError> {
    let wasm = wat::parse_bytes(input)?;
    crate::driver::compile_wasm_dev(&wasm, opts, Default::default(), dev)
}

/// Moves the labels set on values that the SSA builder later turned into
/// aliases (a block parameter found redundant when its block was sealed)
/// onto the values they resolve to: Cranelift resolves aliases before it
/// compiles, and a label on an alias would be lost with it. The sites'
/// values are resolved the same way.
pub(crate) fn move_labels_off_aliases(func: &mut ir::Function, sites: &mut [PendingSite]) {
    for e in sites.iter_mut().flat_map(|s| s.expected.iter_mut()) {
        e.value = func.dfg.resolve_aliases(e.value);
    }
    let Some(labels) = func.dfg.values_labels.take() else {
        return;
    };
    let mut moved: std::collections::BTreeMap<ir::Value, ir::ValueLabelAssignments> =
        std::collections::BTreeMap::new();
    for (v, assignment) in labels {
        let target = func.dfg.resolve_aliases(v);
        let ir::ValueLabelAssignments::Starts(starts) = assignment else {
            moved.insert(v, assignment);
            continue;
        };
        match moved
            .entry(target)
            .or_insert_with(|| ir::ValueLabelAssignments::Starts(Vec::new()))
        {
            ir::ValueLabelAssignments::Starts(list) => list.extend(starts),
            ir::ValueLabelAssignments::Alias { .. } => {}
        }
    }
    func.dfg.values_labels = Some(moved);
}

/// Positions of definitions in the compiled function's layout order
/// (block parameters, then instruction results, block after block), for
/// the `shadowed` diagnosis.
struct LayoutDefs {
    /// Position of each defined value.
    def_at: HashMap<ir::Value, usize>,
    /// Per label, the positions of the definitions of values carrying it.
    label_defs: HashMap<u32, Vec<usize>>,
    /// Position of each tagged instruction, by tag.
    tagged: HashMap<u32, usize>,
}

impl LayoutDefs {
    fn new(func: &ir::Function) -> Self {
        let mut def_at = HashMap::new();
        let mut tagged = HashMap::new();
        let mut pos = 0usize;
        for block in func.layout.blocks() {
            for v in func.dfg.block_params(block) {
                def_at.insert(*v, pos);
                pos += 1;
            }
            for inst in func.layout.block_insts(block) {
                for t in func.debug_tags.get(inst) {
                    if let DebugTag::User(t) = t {
                        tagged.insert(*t, pos);
                    }
                }
                for v in func.dfg.inst_results(inst) {
                    def_at.insert(*v, pos);
                }
                pos += 1;
            }
        }
        let mut label_defs: HashMap<u32, Vec<usize>> = HashMap::new();
        if let Some(labels) = &func.dfg.values_labels {
            for (v, a) in labels {
                if let (ir::ValueLabelAssignments::Starts(starts), Some(p)) = (a, def_at.get(v)) {
                    for s in starts {
                        label_defs.entry(s.label.as_u32()).or_default().push(*p);
                    }
                }
            }
        }
        LayoutDefs {
            def_at,
            label_defs,
            tagged,
        }
    }

    fn shadowed(&self, v: ir::Value, label: u32, at: Option<usize>) -> bool {
        let (Some(def), Some(at)) = (self.def_at.get(&v), at) else {
            return true;
        };
        self.label_defs
            .get(&label)
            .is_some_and(|defs| defs.iter().any(|p| p > def && *p < at))
    }
}

/// Whether the calling conventions of `arch` (Cranelift's `tail`, which
/// keeps the platform's callee-saved set) preserve this register.
fn callee_saved(arch: TargetArch, class: RegClass, hw: u8) -> bool {
    match (arch, class) {
        // rbx, rbp, r12-r15.
        (TargetArch::X86_64, RegClass::Int) => matches!(hw, 3 | 5 | 12..=15),
        (TargetArch::X86_64, _) => false,
        // x19-x28 and the frame pointer.
        (TargetArch::Aarch64, RegClass::Int) => matches!(hw, 19..=29),
        // v8-v15, low 64 bits only: a 128-bit value there does not survive.
        (TargetArch::Aarch64, RegClass::Float) => matches!(hw, 8..=15),
        (TargetArch::Aarch64, _) => false,
    }
}

fn location(arch: TargetArch, loc: &LabelValueLoc) -> Option<Location> {
    match loc {
        LabelValueLoc::CFAOffset(o) => Some(Location::Stack { cfa_offset: *o }),
        LabelValueLoc::Reg(r) => {
            let real = r.to_real_reg()?;
            let class = real.class();
            Some(Location::Reg {
                class: match class {
                    RegClass::Int => 'i',
                    RegClass::Float => 'f',
                    RegClass::Vector => 'v',
                },
                hw: real.hw_enc(),
                callee_saved: callee_saved(arch, class, real.hw_enc()),
            })
        }
    }
}

/// Matches the pending sites of one body with what Cranelift reported.
pub(crate) fn resolve(
    code: &CompiledCode,
    func_ir: &ir::Function,
    arch: TargetArch,
    func: u32,
    body: Body,
    pending: Vec<PendingSite>,
) -> Vec<SiteReport> {
    let mut ret_addrs: HashMap<u32, u32> = HashMap::new();
    for list in code.buffer.debug_tags() {
        for tag in list.tags {
            if let DebugTag::User(t) = tag {
                ret_addrs.entry(*t).or_insert(list.offset);
            }
        }
    }
    // A `try_call` keeps no debug tag (Cranelift drops the tag placed
    // after its trailing jump when the jump is elided): its return
    // address is the call site with handlers whose call instruction has
    // the site's wasm offset as source location, if only one has.
    let srclocs = code.buffer.get_srclocs_sorted();
    let srcloc_at = |at: u32| {
        let pos = srclocs.partition_point(|s| s.start <= at);
        srclocs[..pos]
            .iter()
            .rev()
            .find(|s| at < s.end && !s.loc.is_default())
            .map(|s| s.loc.bits())
    };
    let mut try_rets: HashMap<u32, Vec<u32>> = HashMap::new();
    for c in code.buffer.call_sites() {
        if !c.exception_handlers.is_empty()
            && let Some(at) = c.ret_addr.checked_sub(1)
            && let Some(loc) = srcloc_at(at)
        {
            try_rets.entry(loc).or_default().push(c.ret_addr);
        }
    }
    let ranges = &code.value_labels_ranges;
    let layout = LayoutDefs::new(func_ir);
    pending
        .into_iter()
        .map(|site| {
            let ret_addr = ret_addrs.get(&site.tag).copied().or_else(|| {
                match (site.kind, try_rets.get(&site.offset).map(Vec::as_slice)) {
                    (SiteKind::Call, Some([ret])) => Some(*ret),
                    _ => None,
                }
            });
            let at = layout.tagged.get(&site.tag).copied();
            let values: Vec<ValueReport> = site
                .expected
                .iter()
                .map(|e| {
                    let label = ir::ValueLabel::from_u32(e.label);
                    let list = ranges.get(&label);
                    let mut locations = Vec::new();
                    if let (Some(list), Some(ret)) = (list, ret_addr) {
                        // Live across the call: the range starts before the
                        // return address (so it covers the call
                        // instruction) and goes on after it. A probe's
                        // offset is its marker's, before the flag test.
                        let first = match site.kind {
                            SiteKind::Call => ret.saturating_sub(1),
                            SiteKind::Probe => ret,
                        };
                        for r in list {
                            if r.start <= first
                                && r.end > ret
                                && let Some(l) = location(arch, &r.loc)
                                && !locations.contains(&l)
                            {
                                locations.push(l);
                            }
                        }
                    }
                    ValueReport {
                        role: e.role,
                        constant: e.constant,
                        label_seen: list.is_some_and(|l| !l.is_empty()),
                        shadowed: layout.shadowed(e.value, e.label, at),
                        locations,
                    }
                })
                .collect();
            let map_ret = match site.kind {
                SiteKind::Call => ret_addr,
                SiteKind::Probe => site.call_tag.and_then(|t| ret_addrs.get(&t).copied()),
            };
            let map = map_ret.map(|ret_offset| frame_site(&site, ret_offset, &values));
            let walked = site.walked;
            SiteReport {
                walked,
                func,
                body,
                offset: site.offset,
                kind: site.kind,
                ret_addr,
                values,
                map,
            }
        })
        .collect()
}

/// The frame-map entry of `site` (see [`mvvm_abi::frame_map`]): every
/// value of its record, with the location the labels found (a stack slot
/// first, if a value has several), dead locals as such.
fn frame_site(
    site: &PendingSite,
    ret_offset: u32,
    values: &[ValueReport],
) -> mvvm_abi::frame_map::FrameSite {
    use mvvm_abi::frame_map::{FrameSite, FrameValue, ValueLocation};
    let mut locs = vec![None; site.frame.len()];
    for v in values {
        let pos = match v.role {
            Role::Local(i) => i as usize,
            Role::Stack(d) | Role::Arg(d) => site.nlocals + d as usize,
        };
        let stack = v.locations.iter().find_map(|l| match l {
            Location::Stack { cfa_offset } => i32::try_from(*cfa_offset)
                .ok()
                .map(|cfa_offset| ValueLocation::Stack { cfa_offset }),
            Location::Reg { .. } => None,
        });
        // At a call, only a register the callee preserves can hold a
        // value: a range in any other (an argument register, reported
        // past the call because the cold unwind block still reads the
        // value) is not where the value is while the callee runs. The
        // runtime check found such a map (bc, `rcx` and `r8`).
        let reg = v.locations.iter().find_map(|l| match l {
            Location::Reg {
                callee_saved: false,
                ..
            } if site.kind == SiteKind::Call => None,
            Location::Reg { class, hw, .. } => Some(ValueLocation::Reg {
                class: match class {
                    'i' => 0,
                    'f' => 1,
                    _ => 2,
                },
                hw: *hw,
            }),
            Location::Stack { .. } => None,
        });
        if let Some(l) = locs.get_mut(pos) {
            *l = Some(stack.or(reg).unwrap_or(ValueLocation::Unknown));
        }
    }
    FrameSite {
        ret_offset,
        offset: site.offset,
        probe: site.kind == SiteKind::Probe,
        slots: site.slots,
        args_from: site.args_from,
        walked: site.walked,
        values: site
            .frame
            .iter()
            .zip(locs)
            .enumerate()
            .map(|(pos, (&(slot, width), loc))| FrameValue {
                slot,
                width,
                // A local the translator did not label is dead there.
                loc: loc.unwrap_or(if pos < site.nlocals {
                    ValueLocation::Dead
                } else {
                    ValueLocation::Unknown
                }),
            })
            .collect(),
    }
}

/// Where the prologue of the compiled body `code` saves the registers it
/// clobbers, from Cranelift's unwind information (the ISA must have been
/// built with `unwind_info`): a register saved at `clobber_offset` of a
/// clobber area that starts `offset_downward_to_clobbers` below the frame
/// pointer.
pub(crate) fn prologue_saves(code: &CompiledCode) -> Vec<mvvm_abi::frame_map::RegSave> {
    use cranelift_codegen::isa::unwind::UnwindInst;
    let mut down: Option<i64> = None;
    let mut saves = Vec::new();
    for (_, inst) in &code.buffer.unwind_info {
        match inst {
            UnwindInst::DefineNewFrame {
                offset_downward_to_clobbers,
                ..
            } => down = Some(i64::from(*offset_downward_to_clobbers)),
            UnwindInst::SaveReg {
                clobber_offset,
                reg,
            } => {
                let Some(down) = down else { continue };
                let Ok(fp_offset) = i32::try_from(i64::from(*clobber_offset) - down) else {
                    continue;
                };
                saves.push(mvvm_abi::frame_map::RegSave {
                    class: match reg.class() {
                        RegClass::Int => 0,
                        RegClass::Float => 1,
                        RegClass::Vector => 2,
                    },
                    hw: reg.hw_enc(),
                    fp_offset,
                });
            }
            _ => {}
        }
    }
    saves
}

/// Whether the runtime's walk reads every value of `site` that a record
/// made from it needs (all but the call's arguments, which it writes as
/// zeros): its return address is known, and no such value is unlocated
/// or (at a call) a `v128` in a float register, whose callee saves only
/// its low half (aarch64). What [`DevOptions::walk_frames`] requires of
/// a site before it drops its stores.
pub(crate) fn walk_reads(site: &SiteReport) -> bool {
    use mvvm_abi::frame_map::ValueLocation;
    let Some(map) = &site.map else {
        return false;
    };
    map.values
        .iter()
        .take(map.args_from as usize)
        .all(|v| match v.loc {
            ValueLocation::Dead | ValueLocation::Stack { .. } => true,
            ValueLocation::Reg { class: 0, .. } => true,
            ValueLocation::Reg { .. } => map.probe || v.width != 16,
            ValueLocation::Unknown => false,
        })
}
