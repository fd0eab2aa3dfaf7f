// ddpm/random/normal.hpp — from random 32-bit words to uniform and standard
// normal floats, scalar (host and device).
//
// Standard normals come from the Box–Muller transform (Box & Muller, "A note on
// the generation of random normal deviates", Ann. Math. Statist. 29, 1958):
// two words (w0, w1) give
//
//     u1 = ((w0 >> 8) + 1) · 2^-24          in [2^-24, 1]   (never 0)
//     θ  = the angle cos_sin_from_bits(w1) selects from bits 31, 30 and 0–22
//          of w1: the midpoint of one of 2^25 equal arcs of the circle,
//          each arc for exactly one value of those 25 bits
//     r  = sqrt(−2 ln u1)
//     z0 = r cos θ,   z1 = r sin θ
//
// in float, with our own ln, sin and cos. So |z| ≤ sqrt(48 ln 2) ≈ 5.77; the
// truncated tail has probability ≈ 8e-9, far below what a test of 10^8 draws
// could see.
//
// ## Bit-identity (scalar = every SIMD width = CUDA)
//
// The same operations run in the same order on every path (normal_simd.hpp
// mirrors this file line by line), and each one is exactly specified by
// IEEE 754 binary32 arithmetic:
//   * integer/bit operations, and int32 → float conversions of values below
//     2^24 (exact);
//   * multiplications by powers of two, and subtractions that Sterbenz's
//     lemma makes exact;
//   * correctly rounded ×, sqrt (sqrtss/sqrtps; on CUDA __fsqrt_rn);
//   * every multiply-add written as an explicit fused multiply-add (std::fma
//     here, detail::fma_exact for batches — never xsimd::fma, which xsimd 8.1
//     leaves unfused on several archs; on CUDA __fmaf_rn).
// No product is ever added to anything outside an explicit fma, so there is
// nothing for the compiler to contract: -ffp-contract=off, =on and =fast give
// the same bits (the tests build both extremes and check them against the
// same golden hashes). No intermediate is subnormal, so flush-to-zero modes
// do not matter either; under nvcc the device path is fma.rn.f32 and
// sqrt.rn.f32 even with --use_fast_math (checked in the PTX). What does break
// bit-identity on the host: -ffast-math (reassociation, approximate square
// roots) and x87 arithmetic (FLT_EVAL_METHOD != 0).
//
// ## Accuracy
//
// ln: u = 2^e (1 + x) with 1 + x in [√½, √2), and −2 ln u = −2e ln 2 +
// x·Q(x) with Q a degree-8 minimax polynomial (−2 folded into the
// coefficients, which is exact). sin/cos: the angle is reduced exactly, on
// the integer bits, to φ in (−π/4, π/4) plus a swap and a sign; sin φ =
// f·S(f²) and cos φ = 1 + f²·C(f²), φ = fπ/2, with S, C of degree 3 (minimax,
// relative error 3e-9 and 6e-11). The coefficients were fitted with a Remez
// exchange for this header and rounded to float. Measured against libm in
// double, over every input the transform can see: −2 ln u1 within 2.3 ulp,
// cos θ and sin θ within 1.7 ulp (tests/random/test_normal.cpp checks < 3 and
// < 2.5).
#pragma once

#include "ddpm/config.hpp"

#include <bit>
#include <cmath>
#include <cstdint>

namespace ddpm::random {

namespace detail {

// ---------------------------------------------------------------------------
// The few primitives whose exactness the transform relies on.

DDPM_HOST_DEVICE DDPM_FORCEINLINE float fma_f(float a, float b, float c) noexcept {
#if defined(__CUDA_ARCH__)
    return __fmaf_rn(a, b, c);
#else
    return std::fma(a, b, c);
#endif
}

DDPM_HOST_DEVICE DDPM_FORCEINLINE float sqrt_f(float x) noexcept {
#if defined(__CUDA_ARCH__)
    return __fsqrt_rn(x); // correctly rounded even under --use_fast_math
#else
    return std::sqrt(x);
#endif
}

DDPM_HOST_DEVICE DDPM_FORCEINLINE std::uint32_t float_bits(float x) noexcept {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(x);
#else
    return std::bit_cast<std::uint32_t>(x);
#endif
}

DDPM_HOST_DEVICE DDPM_FORCEINLINE float bits_float(std::uint32_t b) noexcept {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(b);
#else
    return std::bit_cast<float>(b);
#endif
}

// ---------------------------------------------------------------------------
// Constants (shared with normal_simd.hpp).

inline constexpr float two_m24 = 0x1p-24f; // 2^-24

// −2 ln 2 = neg2_ln2_hi + neg2_ln2_lo to about 48 bits.
inline constexpr float neg2_ln2_hi = -0x1.62e430p+0f;
inline constexpr float neg2_ln2_lo = 0x1.05c610p-28f;
// Bits of √½: mantissas are reduced to [√½, √2) around it.
inline constexpr std::uint32_t sqrt_half_bits = 0x3F3504F3u;

// −2 ln(1 + x) = x (log_q0 + log_q1 x + … + log_q8 x^8) for x in [√½ − 1, √2 − 1]:
// −2 × a degree-8 minimax fit of ln(1 + x)/x (relative error 2.6e-8 before
// rounding the coefficients; the factor −2 is exact).
inline constexpr float log_q0 = -0x1.000000p+1f;
inline constexpr float log_q1 = 0x1.fffff8p-1f;
inline constexpr float log_q2 = -0x1.555792p-1f;
inline constexpr float log_q3 = 0x1.000570p-1f;
inline constexpr float log_q4 = -0x1.98b748p-2f;
inline constexpr float log_q5 = 0x1.5332a4p-2f;
inline constexpr float log_q6 = -0x1.3238f0p-2f;
inline constexpr float log_q7 = 0x1.263ba6p-2f;
inline constexpr float log_q8 = -0x1.654492p-3f;

// sin(fπ/2) = f (sin_s0 + sin_s1 t + sin_s2 t² + sin_s3 t³), t = f², |f| ≤ ½.
inline constexpr float sin_s0 = 0x1.921fb6p+0f;
inline constexpr float sin_s1 = -0x1.4abbbap-1f;
inline constexpr float sin_s2 = 0x1.465e92p-4f;
inline constexpr float sin_s3 = -0x1.2d9302p-8f;

// cos(fπ/2) = 1 + t (cos_c0 + cos_c1 t + cos_c2 t² + cos_c3 t³), t = f², |f| ≤ ½.
inline constexpr float cos_c0 = -0x1.3bd3ccp+0f;
inline constexpr float cos_c1 = 0x1.03c1dep-2f;
inline constexpr float cos_c2 = -0x1.55c5e0p-6f;
inline constexpr float cos_c3 = 0x1.d9d57ep-11f;

inline constexpr std::uint32_t sign_bit = 0x80000000u;

// ---------------------------------------------------------------------------

/// −2 ln u for a positive normal float u (no zero, infinity, NaN or subnormal).
DDPM_HOST_DEVICE DDPM_FORCEINLINE float minus_two_log(float u) noexcept {
    // u = 2^e · m with m in [√½, √2): subtracting the bits of √½ makes the
    // exponent field of the difference e (arithmetic shift), and adding them
    // back to the mantissa field gives m.
    const std::uint32_t ix = float_bits(u) - sqrt_half_bits;
    const std::int32_t e = static_cast<std::int32_t>(ix) >> 23;
    const float m = bits_float((ix & 0x007FFFFFu) + sqrt_half_bits);
    const float x = m - 1.0f; // exact (Sterbenz)
    float p = log_q8;
    p = fma_f(p, x, log_q7);
    p = fma_f(p, x, log_q6);
    p = fma_f(p, x, log_q5);
    p = fma_f(p, x, log_q4);
    p = fma_f(p, x, log_q3);
    p = fma_f(p, x, log_q2);
    p = fma_f(p, x, log_q1);
    p = fma_f(p, x, log_q0);
    const float log_m = x * p; // −2 ln m
    const float fe = static_cast<float>(e);
    return fma_f(fe, neg2_ln2_hi, fma_f(fe, neg2_ln2_lo, log_m));
}

struct cos_sin {
    float c;
    float s;
};

/// cos θ and sin θ for the angle that the word `bits` selects:
///
///     f = v·2^-24, v = 2·(bits 0..22 as a signed 23-bit integer) + 1   (odd, so f in (−½, ½))
///     φ = f·π/2                                                        in (−π/4, π/4)
///     θ = (bit 31)·π + (bit 30 ? π/2 − φ : φ)
///
/// θ runs over the midpoints 2π (J + ½)/2^25 of 2^25 equal arcs, each J once.
/// The reduction is exact integer work, so only the polynomials round.
DDPM_HOST_DEVICE DDPM_FORCEINLINE cos_sin cos_sin_from_bits(std::uint32_t bits) noexcept {
    const std::int32_t v = (static_cast<std::int32_t>(bits << 9) >> 8) | 1; // arithmetic shift
    const float f = static_cast<float>(v) * two_m24;                       // exact
    const float t2 = f * f;
    float ps = sin_s3;
    ps = fma_f(ps, t2, sin_s2);
    ps = fma_f(ps, t2, sin_s1);
    ps = fma_f(ps, t2, sin_s0);
    const float sin_f = f * ps;
    float pc = cos_c3;
    pc = fma_f(pc, t2, cos_c2);
    pc = fma_f(pc, t2, cos_c1);
    pc = fma_f(pc, t2, cos_c0);
    const float cos_f = fma_f(pc, t2, 1.0f);
    // Bit 30 swaps sin and cos (θ → π/2 − θ), bit 31 negates both (θ → θ + π).
    // Done on the bits, as in SIMD.
    const std::uint32_t cb = float_bits(cos_f);
    const std::uint32_t sb = float_bits(sin_f);
    const std::uint32_t swap_mask = static_cast<std::uint32_t>(static_cast<std::int32_t>(bits << 1) >> 31);
    const std::uint32_t swap = (cb ^ sb) & swap_mask;
    const std::uint32_t sign = bits & sign_bit;
    return {bits_float(cb ^ swap ^ sign), bits_float(sb ^ swap ^ sign)};
}

} // namespace detail

/// A uniform float in [0, 1) from the top 24 bits of a word: (bits >> 8)·2^-24.
/// Exact (every value is a multiple of 2^-24), so the same on every path.
[[nodiscard]] DDPM_HOST_DEVICE DDPM_FORCEINLINE float uniform_float(std::uint32_t bits) noexcept {
    return static_cast<float>(static_cast<std::int32_t>(bits >> 8)) * detail::two_m24;
}

/// Two independent standard normals.
struct normal_pair {
    float z0; ///< r cos θ
    float z1; ///< r sin θ
};

/// Box–Muller on two random words: w0 sets the radius, w1 the angle (see the
/// top of this file). Bit-identical to box_muller over xsimd batches and to
/// the CUDA path.
[[nodiscard]] DDPM_HOST_DEVICE DDPM_FORCEINLINE normal_pair box_muller(std::uint32_t w0, std::uint32_t w1) noexcept {
    const float u1 = static_cast<float>(static_cast<std::int32_t>((w0 >> 8) + 1u)) * detail::two_m24; // [2^-24, 1]
    const float r = detail::sqrt_f(detail::minus_two_log(u1));
    const detail::cos_sin cs = detail::cos_sin_from_bits(w1);
    return {r * cs.c, r * cs.s};
}

} // namespace ddpm::random
