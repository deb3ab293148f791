//! Emission of the `.aot` ELF object with cranelift-object.
//!
//! Compiled code arrives as bytes plus relocations (functions are compiled
//! in parallel, each in its own Cranelift context) and is defined here in a
//! fixed order, so the same input always gives the same bytes. The metadata
//! is a read-only data object `mvvm_meta` alone in the section
//! [`META_SECTION`].

use crate::CompileError;
use cranelift_codegen::ir;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_module::{DataDescription, FuncId, Linkage, Module, ModuleReloc, ModuleRelocTarget};
use cranelift_object::{ObjectBuilder, ObjectModule};
use mvvm_abi::object::META_SECTION;
use mvvm_abi::version::{AOT_FORMAT_VERSION, META_MAGIC};
use mvvm_abi::{FuncInfo, ModuleMeta};

/// The name of the metadata data symbol.
pub const META_SYMBOL: &str = "mvvm_meta";

/// A compiled function, ready to be placed in the object.
pub(crate) struct CompiledFunc {
    /// Machine code (including its constant pool).
    pub bytes: Vec<u8>,
    /// Required alignment of the code.
    pub alignment: u64,
    /// Relocations, converted to object-module targets.
    pub relocs: Vec<ModuleReloc>,
    /// Size and trap sites, for the metadata.
    pub info: FuncInfo,
}

/// Builds the object.
pub(crate) struct Emitter {
    module: ObjectModule,
}

/// A [`CompileError::Object`]: `step` (what the emitter was doing) failed.
fn object_err<E>(step: impl Into<String>) -> impl FnOnce(E) -> CompileError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let step = step.into();
    move |e| CompileError::Object {
        step,
        source: Box::new(e),
    }
}

impl Emitter {
    /// A new, empty object for `isa`.
    pub fn new(isa: OwnedTargetIsa) -> Result<Self, CompileError> {
        let builder = ObjectBuilder::new(isa, "mvvm", cranelift_module::default_libcall_names())
            .map_err(object_err("start the object"))?;
        Ok(Emitter {
            module: ObjectModule::new(builder),
        })
    }

    /// Declares an exported function symbol.
    pub fn declare_function(
        &mut self,
        name: &str,
        sig: &ir::Signature,
    ) -> Result<FuncId, CompileError> {
        self.module
            .declare_function(name, Linkage::Export, sig)
            .map_err(object_err(format!("declare `{name}`")))
    }

    /// Defines a declared function's code.
    ///
    /// Refuses relocations against anything but our own functions: the
    /// runtime resolves symbols only inside the object, so a libcall (which
    /// Cranelift emits only for operations the target lacks) must not slip
    /// through.
    pub fn define_function(
        &mut self,
        id: FuncId,
        func_index: u32,
        code: &CompiledFunc,
    ) -> Result<(), CompileError> {
        for r in &code.relocs {
            if !matches!(
                r.name,
                ModuleRelocTarget::User { namespace: 0, .. }
                    | ModuleRelocTarget::FunctionOffset(..)
            ) {
                return Err(CompileError::Codegen {
                    func: func_index,
                    message: format!(
                        "relocation against an external symbol ({}); the target CPU lacks a feature the code needs",
                        r.name
                    ),
                });
            }
        }
        self.module
            .define_function_bytes(id, code.alignment, &code.bytes, &code.relocs)
            .map_err(object_err(format!("define function {func_index}")))
    }

    /// Writes the metadata section and returns the object's bytes.
    pub fn finish(mut self, meta: &ModuleMeta) -> Result<Vec<u8>, CompileError> {
        let encoded = mvvm_abi::codec::encode(meta).map_err(object_err("encode the metadata"))?;
        let mut bytes = Vec::with_capacity(META_MAGIC.len() + 4 + encoded.len());
        bytes.extend_from_slice(&META_MAGIC);
        bytes.extend_from_slice(&AOT_FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&encoded);
        let id = self
            .module
            .declare_data(META_SYMBOL, Linkage::Export, false, false)
            .map_err(object_err("declare the metadata"))?;
        let mut desc = DataDescription::new();
        desc.define(bytes.into_boxed_slice());
        desc.set_custom_section(META_SECTION);
        desc.set_align(8);
        self.module
            .define_data(id, &desc)
            .map_err(object_err("define the metadata"))?;
        self.module
            .finish()
            .emit()
            .map_err(object_err("write the ELF object"))
    }
}
