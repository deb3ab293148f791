// The C++ exception runtime that `cpp_exceptions.cpp` needs to run as
// wasm32-wasi with -fwasm-exceptions, written for this test.
//
// Why it exists: Debian's wasm32 C++ libraries (libc++abi-19-dev-wasm32,
// libc++abi-22-dev-wasm32) are built without exception support: their
// libc++abi.a has cxa_noexception.cpp.o instead of cxa_exception.cpp.o and
// cxa_personality.cpp.o, and no package ships a wasm32 libunwind. So
// __cxa_allocate_exception, __cxa_throw, __cxa_begin_catch,
// __cxa_end_catch, __cxa_rethrow (libc++abi) and _Unwind_CallPersonality,
// __wasm_lpad_context (libunwind's wasm unwinder) are missing at link time.
//
// This file implements exactly those, after the Itanium C++ ABI and the
// interface clang's wasm exception lowering uses (WasmEHPrepare):
// - `throw` is a wasm `throw` of tag 0 (`__cpp_exception`) whose payload
//   is one i32: the address of the exception's header below;
// - a landing pad stores its index and its function's LSDA address into
//   `__wasm_lpad_context`, calls `_Unwind_CallPersonality(payload)` and
//   reads back `selector`: the type-table index of the catch clause that
//   matches (0: none here, the pad rethrows after its cleanups).
// The LSDA's call-site table has one (landing pad, action) pair per pad,
// numbered by pad index; actions and the type table are the usual GCC
// format. Type matching (derived-to-base, pointers, qualifiers) is the
// one of the shipped libc++abi: `__shim_type_info::can_catch`, reached
// through the type_info's vtable (private_typeinfo.cpp.o is in the
// shipped libc++abi.a).
//
// Not supported, and aborting if met: dynamic exception specifications
// (`throw(T)`, gone since C++17), foreign exceptions, std::exception_ptr
// (libc++'s is built on the missing runtime). The program uses none.
// Single-threaded, like wasm32-wasi.
#ifdef __wasm__

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <typeinfo>
#include <unistd.h>

namespace __cxxabiv1 {
// The layout of libc++abi's base class of every type_info it defines
// (private_typeinfo.h): only the virtual functions matter, the vtable
// order must be libc++abi's.
class __shim_type_info : public std::type_info {
  public:
    ~__shim_type_info() override;
    virtual void noop1() const;
    virtual void noop2() const;
    virtual bool can_catch(const __shim_type_info *thrown_type, void *&adjusted) const = 0;
};
} // namespace __cxxabiv1

namespace {

using Shim = __cxxabiv1::__shim_type_info;

// The WebAssembly C++ ABI (like ARM's) has destructors return `this`: a
// `void (*)(void *)` would be a call_indirect of the wrong type.
using Destructor = void *(*)(void *);

// Placed right before the thrown object; its address is the wasm payload.
struct alignas(16) Header {
    const std::type_info *type;
    Destructor destructor;
    // Caught exceptions form a stack (innermost handler first).
    Header *next_caught;
    // Handlers currently inside this exception's catch; negative while it
    // is being rethrown (`throw;`).
    int handlers;
    // What the personality found for __cxa_begin_catch.
    void *adjusted;
};

Header *caught_stack;

Header *header_of(void *object) { return static_cast<Header *>(object) - 1; }
void *object_of(Header *h) { return h + 1; }

[[noreturn]] void fail(const char *why) {
    write(2, why, std::strlen(why));
    write(2, "\n", 1);
    std::abort();
}

uint64_t uleb(const uint8_t *&p) {
    uint64_t v = 0;
    unsigned shift = 0;
    uint8_t b;
    do {
        b = *p++;
        v |= uint64_t(b & 0x7f) << shift;
        shift += 7;
    } while (b & 0x80);
    return v;
}

int64_t sleb(const uint8_t *&p) {
    uint64_t v = 0;
    unsigned shift = 0;
    uint8_t b;
    do {
        b = *p++;
        v |= uint64_t(b & 0x7f) << shift;
        shift += 7;
    } while (b & 0x80);
    if (shift < 64 && (b & 0x40)) v |= ~uint64_t(0) << shift;
    return int64_t(v);
}

constexpr uint8_t DW_EH_PE_omit = 0xff;

// Catch type number `index` (1-based, counted backwards from `types`).
const Shim *catch_type(const uint8_t *types, uint8_t encoding, int64_t index) {
    // Pointer-sized absolute entries: what LLVM emits for wasm32.
    if (encoding != 0x00 && encoding != 0x03 && encoding != 0x0b) fail("wasm EH runtime: unexpected type-table encoding");
    uint32_t addr;
    std::memcpy(&addr, types - index * 4, 4);
    return reinterpret_cast<const Shim *>(uintptr_t(addr));
}

} // namespace

// The tag of C++ exceptions (payload: the header's address). clang 19
// objects define it weakly themselves; from LLVM 20 on, objects only
// refer to it and the runtime (libunwind upstream) defines it.
__asm__(".globl __cpp_exception\n"
        ".tagtype __cpp_exception i32\n"
        "__cpp_exception:\n");

extern "C" {

// Written by clang's landing pads, read back after the personality ran.
struct LandingPadContext {
    uintptr_t lpad_index;
    uintptr_t lsda;
    uintptr_t selector;
};
thread_local LandingPadContext __wasm_lpad_context;

void *__cxa_allocate_exception(size_t size) noexcept {
    void *p = std::aligned_alloc(alignof(Header), (sizeof(Header) + size + 15) & ~size_t(15));
    if (!p) fail("wasm EH runtime: out of memory for an exception");
    std::memset(p, 0, sizeof(Header) + size);
    return object_of(static_cast<Header *>(p));
}

void __cxa_free_exception(void *object) noexcept { std::free(header_of(object)); }

[[noreturn]] void __cxa_throw(void *object, std::type_info *type, Destructor destructor) {
    Header *h = header_of(object);
    h->type = type;
    h->destructor = destructor;
    h->handlers = 0;
    __builtin_wasm_throw(0, h);
}

// Called with the payload in every C++ landing pad; sets the selector.
int _Unwind_CallPersonality(void *payload) {
    enum { HANDLER_FOUND = 6, CONTINUE_UNWIND = 8 };
    Header *h = static_cast<Header *>(payload);
    LandingPadContext &ctx = __wasm_lpad_context;
    ctx.selector = 0;
    const uint8_t *p = reinterpret_cast<const uint8_t *>(ctx.lsda);
    if (!p) return CONTINUE_UNWIND;
    if (*p++ != DW_EH_PE_omit) fail("wasm EH runtime: LSDA with a landing-pad base");
    uint8_t type_encoding = *p++;
    const uint8_t *types = nullptr;
    if (type_encoding != DW_EH_PE_omit) {
        uint64_t off = uleb(p);
        types = p + off;
    }
    p++; // call-site encoding: uleb128 for wasm, never anything else
    uint64_t table_len = uleb(p);
    const uint8_t *end = p + table_len;
    const uint8_t *actions = end;
    uint64_t action = 0;
    bool found = false;
    for (uintptr_t i = 0; p < end; i++) {
        uleb(p); // landing pad: unused, the pad is the caller
        uint64_t a = uleb(p);
        if (i == ctx.lpad_index) {
            action = a;
            found = true;
            break;
        }
    }
    if (!found) fail("wasm EH runtime: landing pad not in its LSDA");
    if (action == 0) return CONTINUE_UNWIND; // cleanup only
    const uint8_t *rec = actions + (action - 1);
    for (;;) {
        int64_t index = sleb(rec);
        if (index > 0) {
            const Shim *want = catch_type(types, type_encoding, index);
            void *adjusted = object_of(h);
            if (!want || want->can_catch(static_cast<const Shim *>(h->type), adjusted)) {
                h->adjusted = adjusted;
                ctx.selector = uintptr_t(index);
                return HANDLER_FOUND;
            }
        } else if (index < 0) {
            fail("wasm EH runtime: dynamic exception specifications are not supported");
        }
        const uint8_t *at = rec;
        int64_t next = sleb(at);
        if (next == 0) return CONTINUE_UNWIND;
        rec += next;
    }
}

void *__cxa_get_exception_ptr(void *payload) noexcept { return static_cast<Header *>(payload)->adjusted; }

void *__cxa_begin_catch(void *payload) noexcept {
    Header *h = static_cast<Header *>(payload);
    if (!h) return nullptr; // catch (...) of a foreign exception: none exist here
    // A rethrown exception caught again is still on the stack: its count
    // was negated by __cxa_rethrow.
    h->handlers = (h->handlers < 0 ? -h->handlers : h->handlers) + 1;
    if (h != caught_stack) {
        h->next_caught = caught_stack;
        caught_stack = h;
    }
    return h->adjusted;
}

void __cxa_end_catch() {
    Header *h = caught_stack;
    if (!h) return;
    if (h->handlers < 0) {
        // Leaving a catch by `throw;`: the exception lives on.
        if (++h->handlers == 0) caught_stack = h->next_caught;
        return;
    }
    if (--h->handlers == 0) {
        caught_stack = h->next_caught;
        if (h->destructor) h->destructor(object_of(h));
        std::free(h);
    }
}

[[noreturn]] void __cxa_rethrow() {
    Header *h = caught_stack;
    if (!h) std::terminate();
    h->handlers = -h->handlers;
    __builtin_wasm_throw(0, h);
}

} // extern "C"

#endif // __wasm__
