/* SIMD written by hand with <wasm_simd128.h>: every lane shape's
 * arithmetic, shuffles and swizzles, saturating, narrowing and widening
 * operators, extended multiplies, the dot product, bitmasks,
 * any_true/all_true, lane loads and stores, float rounding and
 * conversions. The v128 values are passed to and returned from non-inlined
 * functions, kept in locals across calls (a recursion holds some in every
 * frame) and left on the operand stack across calls
 * (`op(expr, call())`), so a checkpoint sees v128 values in locals and on
 * the operand stack of several frames.
 *
 * No operator here makes a NaN (their bit patterns are the one thing wasm
 * leaves to the machine), so the output is the same everywhere. Lanes print
 * in hex. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <wasm_simd128.h>

#define NOINLINE __attribute__((noinline))

static uint8_t buf[1024];
static uint64_t digest = 0xcbf29ce484222325ull;

NOINLINE static void absorb(v128_t v) {
    uint8_t b[16];
    wasm_v128_store(b, v);
    for (int i = 0; i < 16; i++) digest = (digest ^ b[i]) * 0x100000001b3ull;
}

NOINLINE static void show(const char *what, v128_t v) {
    printf("%-12s %08x %08x %08x %08x\n", what, (uint32_t)wasm_i32x4_extract_lane(v, 0),
           (uint32_t)wasm_i32x4_extract_lane(v, 1), (uint32_t)wasm_i32x4_extract_lane(v, 2),
           (uint32_t)wasm_i32x4_extract_lane(v, 3));
    absorb(v);
}

/* ---- integer lanes --------------------------------------------------- */

NOINLINE static v128_t i8_ops(v128_t a, v128_t b) {
    v128_t s = wasm_i8x16_add_sat(a, b);
    v128_t u = wasm_u8x16_sub_sat(a, b);
    v128_t m = wasm_i8x16_min(s, wasm_i8x16_neg(u));
    v128_t x = wasm_u8x16_max(wasm_u8x16_avgr(a, b), wasm_i8x16_abs(m));
    v128_t p = wasm_i8x16_popcnt(x);
    v128_t sh = wasm_i8x16_shl(wasm_i8x16_sub(x, p), 3);
    v128_t sr = wasm_u8x16_shr(sh, 1);
    v128_t ss = wasm_i8x16_shr(a, 2);
    return wasm_v128_xor(wasm_i8x16_add(sr, ss), wasm_u8x16_add_sat(p, b));
}

NOINLINE static v128_t i16_ops(v128_t a, v128_t b) {
    v128_t m = wasm_i16x8_mul(a, b);
    v128_t q = wasm_i16x8_q15mulr_sat(a, b);
    v128_t s = wasm_i16x8_sub_sat(m, q);
    v128_t t = wasm_u16x8_add_sat(s, wasm_u16x8_avgr(a, b));
    v128_t lo = wasm_i16x8_extmul_low_i8x16(a, b);
    v128_t hi = wasm_u16x8_extmul_high_u8x16(a, b);
    v128_t pw = wasm_i16x8_extadd_pairwise_i8x16(t);
    v128_t mx = wasm_u16x8_max(wasm_i16x8_max(lo, hi), wasm_u16x8_min(pw, m));
    return wasm_i16x8_add(wasm_i16x8_shr(mx, 1), wasm_u16x8_shr(wasm_i16x8_shl(t, 5), 2));
}

NOINLINE static v128_t i32_ops(v128_t a, v128_t b) {
    v128_t d = wasm_i32x4_dot_i16x8(a, b);
    v128_t m = wasm_i32x4_mul(a, wasm_i32x4_add(b, wasm_i32x4_splat((int32_t)0x9e3779b9)));
    v128_t e = wasm_u32x4_extmul_low_u16x8(a, b);
    v128_t f = wasm_i32x4_extmul_high_i16x8(a, b);
    v128_t p = wasm_u32x4_extadd_pairwise_u16x8(m);
    v128_t mn = wasm_u32x4_min(wasm_i32x4_max(d, e), wasm_i32x4_abs(f));
    v128_t r = wasm_i32x4_sub(wasm_i32x4_shl(mn, 7), wasm_u32x4_shr(p, 3));
    return wasm_v128_xor(r, wasm_i32x4_shr(m, 11));
}

NOINLINE static v128_t i64_ops(v128_t a, v128_t b) {
    v128_t m = wasm_i64x2_mul(a, wasm_i64x2_const((int64_t)0x9e3779b97f4a7c15ull, 0x2545f4914f6cdd1dll));
    v128_t x = wasm_i64x2_extmul_low_i32x4(a, b);
    v128_t y = wasm_u64x2_extmul_high_u32x4(a, b);
    v128_t s = wasm_i64x2_add(wasm_i64x2_sub(m, x), wasm_u64x2_shr(y, 13));
    v128_t lt = wasm_i64x2_lt(s, x);
    v128_t ab = wasm_i64x2_abs(wasm_i64x2_neg(s));
    return wasm_v128_bitselect(ab, wasm_i64x2_shl(s, 9), lt);
}

/* ---- shuffles, narrowing, widening ----------------------------------- */

NOINLINE static v128_t shuffle_ops(v128_t a, v128_t b) {
    v128_t s = wasm_i8x16_shuffle(a, b, 0, 17, 2, 19, 4, 21, 6, 23, 31, 14, 29, 12, 27, 10, 25, 8);
    v128_t t = wasm_i16x8_shuffle(s, a, 7, 6, 9, 8, 3, 2, 13, 12);
    v128_t u = wasm_i32x4_shuffle(t, b, 1, 4, 3, 6);
    v128_t v = wasm_i64x2_shuffle(u, s, 3, 0);
    /* swizzle with indices 0..31: those of 16 and up select 0 */
    v128_t idx = wasm_v128_and(b, wasm_i8x16_splat(0x1f));
    v128_t w = wasm_i8x16_swizzle(v, idx);
    return wasm_i8x16_add(w, u);
}

NOINLINE static v128_t narrow_widen(v128_t a, v128_t b) {
    v128_t n8s = wasm_i8x16_narrow_i16x8(a, b);
    v128_t n8u = wasm_u8x16_narrow_i16x8(b, a);
    v128_t n16s = wasm_i16x8_narrow_i32x4(a, b);
    v128_t n16u = wasm_u16x8_narrow_i32x4(b, a);
    v128_t w1 = wasm_i16x8_extend_low_i8x16(n8s);
    v128_t w2 = wasm_u16x8_extend_high_u8x16(n8u);
    v128_t w3 = wasm_i32x4_extend_high_i16x8(n16s);
    v128_t w4 = wasm_u32x4_extend_low_u16x8(n16u);
    v128_t w5 = wasm_i64x2_extend_low_i32x4(w3);
    v128_t w6 = wasm_u64x2_extend_high_u32x4(w4);
    v128_t r = wasm_i16x8_add(w1, w2);
    r = wasm_i32x4_add(r, wasm_i32x4_sub(w3, w4));
    return wasm_i64x2_add(r, wasm_v128_xor(w5, w6));
}

/* ---- floats ----------------------------------------------------------- */

NOINLINE static v128_t f32_ops(v128_t a, v128_t b) {
    /* a, b: finite floats; no operation below makes a NaN */
    v128_t s = wasm_f32x4_add(a, b);
    v128_t p = wasm_f32x4_mul(wasm_f32x4_sub(a, b), wasm_f32x4_splat(0.375f));
    v128_t q = wasm_f32x4_div(p, wasm_f32x4_add(wasm_f32x4_abs(b), wasm_f32x4_splat(1.0f)));
    v128_t r = wasm_f32x4_sqrt(wasm_f32x4_abs(s));
    v128_t mn = wasm_f32x4_min(q, r);
    v128_t mx = wasm_f32x4_pmax(wasm_f32x4_neg(q), r);
    v128_t c = wasm_f32x4_add(wasm_f32x4_ceil(mn), wasm_f32x4_floor(mx));
    v128_t t = wasm_f32x4_add(wasm_f32x4_trunc(p), wasm_f32x4_nearest(q));
    v128_t sel = wasm_f32x4_lt(c, t);
    return wasm_v128_bitselect(wasm_f32x4_pmin(c, t), wasm_f32x4_sub(c, t), sel);
}

NOINLINE static v128_t f64_ops(v128_t a, v128_t b) {
    v128_t s = wasm_f64x2_add(a, b);
    v128_t m = wasm_f64x2_mul(s, wasm_f64x2_splat(1.0 / 3.0));
    v128_t d = wasm_f64x2_div(m, wasm_f64x2_add(wasm_f64x2_abs(a), wasm_f64x2_splat(2.0)));
    v128_t r = wasm_f64x2_sqrt(wasm_f64x2_add(wasm_f64x2_abs(d), wasm_f64x2_splat(0.5)));
    v128_t x = wasm_f64x2_max(wasm_f64x2_nearest(d), wasm_f64x2_trunc(r));
    v128_t y = wasm_f64x2_pmin(wasm_f64x2_ceil(m), wasm_f64x2_floor(s));
    v128_t ge = wasm_f64x2_ge(x, y);
    return wasm_v128_bitselect(wasm_f64x2_sub(x, y), wasm_f64x2_add(r, y), ge);
}

NOINLINE static v128_t conversions(v128_t i, v128_t f, v128_t d) {
    v128_t a = wasm_f32x4_convert_i32x4(i);
    v128_t b = wasm_f32x4_convert_u32x4(i);
    v128_t c = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_mul(f, wasm_f32x4_splat(1e9f)));
    v128_t e = wasm_u32x4_trunc_sat_f32x4(wasm_f32x4_mul(f, wasm_f32x4_splat(3e9f)));
    v128_t g = wasm_f64x2_convert_low_i32x4(i);
    v128_t h = wasm_f64x2_convert_low_u32x4(e);
    v128_t k = wasm_i32x4_trunc_sat_f64x2_zero(wasm_f64x2_mul(d, wasm_f64x2_splat(1e12)));
    v128_t l = wasm_u32x4_trunc_sat_f64x2_zero(wasm_f64x2_add(g, h));
    v128_t p = wasm_f64x2_promote_low_f32x4(wasm_f32x4_sub(a, b));
    v128_t q = wasm_f32x4_demote_f64x2_zero(wasm_f64x2_add(p, d));
    v128_t r = wasm_i32x4_add(wasm_i32x4_add(c, e), wasm_i32x4_add(k, l));
    return wasm_v128_xor(r, wasm_v128_or(q, wasm_v128_andnot(p, a)));
}

/* ---- masks, lane loads and stores ------------------------------------ */

NOINLINE static uint32_t masks(v128_t a, v128_t b) {
    uint32_t m = wasm_i8x16_bitmask(wasm_i8x16_gt(a, b));
    m = m * 3 + wasm_i16x8_bitmask(wasm_u16x8_le(a, b));
    m = m * 5 + wasm_i32x4_bitmask(wasm_i32x4_ne(a, b));
    m = m * 7 + wasm_i64x2_bitmask(wasm_i64x2_ge(a, b));
    m = m * 11 + wasm_v128_any_true(wasm_v128_and(a, b));
    m = m * 13 + wasm_i8x16_all_true(a);
    m = m * 17 + wasm_i16x8_all_true(wasm_v128_or(a, b));
    m = m * 19 + wasm_i32x4_all_true(wasm_i32x4_eq(a, a));
    m = m * 23 + wasm_i64x2_all_true(wasm_v128_not(wasm_v128_xor(a, b)));
    m = m * 29 + wasm_i8x16_bitmask(wasm_u8x16_ge(a, wasm_u8x16_splat(0x80)));
    return m;
}

NOINLINE static v128_t lane_ops(v128_t v, int k) {
    uint8_t *p = buf + (k * 7) % 960;
    v = wasm_v128_load8_lane(p, v, 3);
    v = wasm_v128_load16_lane(p + 5, v, 6);
    v = wasm_v128_load32_lane(p + 11, v, 1);
    v = wasm_v128_load64_lane(p + 17, v, 1);
    wasm_v128_store8_lane(p + 40, v, 9);
    wasm_v128_store16_lane(p + 43, v, 2);
    wasm_v128_store32_lane(p + 47, v, 3);
    wasm_v128_store64_lane(p + 53, v, 0);
    v128_t s = wasm_v128_load8_splat(p + 1);
    v128_t t = wasm_v128_load16_splat(p + 3);
    v128_t u = wasm_v128_load32_zero(p + 21);
    v128_t w = wasm_v128_load64_zero(p + 29);
    v128_t e = wasm_i16x8_load8x8(p + 33);
    v128_t f = wasm_u32x4_load16x4(p + 2);
    v128_t g = wasm_i64x2_load32x2(p + 9);
    v128_t r = wasm_i8x16_add(wasm_i16x8_add(s, e), wasm_i32x4_add(t, f));
    r = wasm_v128_xor(r, wasm_i64x2_add(wasm_v128_or(u, w), g));
    r = wasm_i8x16_replace_lane(r, 5, (int8_t)wasm_u16x8_extract_lane(v, 7));
    r = wasm_i16x8_replace_lane(r, 3, wasm_i16x8_extract_lane(v, 1));
    r = wasm_i64x2_replace_lane(r, 1, wasm_i64x2_extract_lane(r, 1) ^ wasm_i64x2_extract_lane(v, 0));
    r = wasm_f32x4_replace_lane(r, 0, (float)(wasm_u8x16_extract_lane(v, 15) & 0x7f));
    wasm_v128_store(p + 64, r);
    return r;
}

/* Has a loop (a stable point of the loop policies) and is called with a
 * v128 on the caller's operand stack. */
NOINLINE static v128_t lanes(v128_t v, int k) {
    v128_t r = v;
    for (int j = 0; j <= (k & 3); j++) {
        r = wasm_i8x16_add(r, lane_ops(wasm_v128_xor(v, r), k + j * 5));
    }
    return r;
}

/* ---- v128 across calls ---------------------------------------------- */

/* One mixing step through several non-inlined calls: the partial results
 * stay live in this frame (locals, and on the operand stack where the
 * expression is `op(value, call(...))`) while the callees run. */
NOINLINE static v128_t mix(v128_t a, v128_t b, int k) {
    v128_t x = i8_ops(a, b);
    v128_t y = wasm_i32x4_add(x, i16_ops(b, x));
    v128_t z = wasm_v128_xor(wasm_i64x2_add(y, i32_ops(x, y)), i64_ops(y, a));
    v128_t w = wasm_i8x16_sub(shuffle_ops(z, x), narrow_widen(y, z));
    return wasm_i32x4_add(wasm_v128_xor(w, a), lanes(w, k));
}

/* A recursion that keeps v128 values in every frame: x across both calls,
 * l across the second. */
NOINLINE static v128_t tree(v128_t x, int depth) {
    if (depth == 0) {
        /* a loop at the leaves, under every frame of the recursion */
        v128_t r = x;
        int n = 1 + (wasm_u32x4_extract_lane(x, 0) & 3);
        for (int i = 0; i < n; i++) r = i32_ops(r, wasm_i32x4_splat(i + 0x01000193));
        return r;
    }
    v128_t l = tree(i8_ops(x, wasm_i8x16_splat((int8_t)depth)), depth - 1);
    v128_t r = tree(wasm_i64x2_shuffle(x, l, 1, 2), depth - 1);
    return wasm_i32x4_add(wasm_v128_xor(x, l), wasm_i16x8_sub(r, i16_ops(l, r)));
}

/* Finite floats from bits: the exponent is clamped (magnitudes 2^-7 to 2,
 * and 2^-3 to 2) so that no lane is zero, subnormal, infinite or NaN. */
NOINLINE static v128_t finite_f32(v128_t bits) {
    v128_t m = wasm_v128_and(bits, wasm_i32x4_splat((int32_t)0x83ffffff));
    return wasm_v128_or(m, wasm_i32x4_splat(0x3c000000));
}

NOINLINE static v128_t finite_f64(v128_t bits) {
    v128_t m = wasm_v128_and(bits, wasm_i64x2_splat((int64_t)0x807fffffffffffffull));
    return wasm_v128_or(m, wasm_i64x2_splat(0x3fc0000000000000ll));
}

int main(void) {
    for (int i = 0; i < (int)sizeof buf; i++) buf[i] = (uint8_t)(i * 167 + (i >> 3) * 29 + 11);

    v128_t a = wasm_i32x4_make(0x01234567, (int32_t)0x89abcdef, (int32_t)0xfedcba98, 0x76543210);
    v128_t b = wasm_i8x16_make(1, -2, 3, -4, 5, -6, 7, -8, 127, -128, 64, -64, 32, -32, 16, -16);
    show("i8", i8_ops(a, b));
    show("i16", i16_ops(a, b));
    show("i32", i32_ops(a, b));
    show("i64", i64_ops(a, b));
    show("shuffle", shuffle_ops(a, b));
    show("narrow", narrow_widen(a, b));
    show("f32", f32_ops(finite_f32(a), finite_f32(b)));
    show("f64", f64_ops(finite_f64(a), finite_f64(b)));
    show("convert", conversions(a, finite_f32(b), finite_f64(a)));
    printf("masks        %u %u\n", masks(a, b), masks(b, a));
    show("lanes", lanes(a, 3));
    show("tree", tree(a, 4));

    /* The long part: accumulators live across every call of the loop. */
    v128_t acc = a, acc2 = b;
    v128_t fa = wasm_f32x4_make(1.5f, -2.25f, 3.125f, -0.5f);
    v128_t da = wasm_f64x2_make(0.1, -7.75);
    uint32_t msum = 0;
    for (int round = 1; round <= 3000; round++) {
        v128_t m = mix(acc, acc2, round);
        acc2 = wasm_i32x4_add(wasm_i32x4_mul(acc2, wasm_i32x4_splat(0x01000193)), m);
        acc = wasm_v128_xor(wasm_i8x16_shuffle(acc, acc, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                               13, 14, 15, 0),
                            conversions(m, finite_f32(acc2), finite_f64(m)));
        fa = wasm_f32x4_add(wasm_f32x4_mul(fa, wasm_f32x4_splat(0.5f)),
                            f32_ops(finite_f32(acc), fa));
        da = wasm_f64x2_add(wasm_f64x2_mul(da, wasm_f64x2_splat(0.25)),
                            f64_ops(finite_f64(acc2), da));
        msum = msum * 31 + masks(acc, acc2);
        if (round % 100 == 0) {
            v128_t t = tree(wasm_v128_xor(acc, acc2), 3 + round % 3);
            acc = wasm_i64x2_add(acc, t);
        }
        if (round % 500 == 0) {
            printf("round %4d   masks %08x\n", round, msum);
            show("acc", acc);
            show("acc2", acc2);
            show("fa", fa);
            show("da", da);
        }
    }
    printf("digest %016llx\n", (unsigned long long)digest);
    return 0;
}
