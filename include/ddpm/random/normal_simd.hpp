// ddpm/random/normal_simd.hpp — the uniform and Box–Muller transforms of
// ddpm/random/normal.hpp over xsimd batches.
//
// Every function here mirrors its scalar namesake operation for operation
// (same constants, same fma order, same bit tricks), so each lane equals the
// scalar result bit for bit; normal.hpp explains why that holds. Multiply-adds
// go through detail::fma_exact and square roots through detail::sqrt_exact,
// never xsimd::fma / xsimd::sqrt (see detail/simd_ops.hpp).
//
// Only compiled when xsimd is available (DDPM_HAS_XSIMD).
#pragma once

#include "ddpm/config.hpp"
#include "ddpm/random/normal.hpp"

#if DDPM_HAS_XSIMD

#include "ddpm/random/detail/simd_ops.hpp"

#include <xsimd/xsimd.hpp>

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 false positive (PR 105593): the AVX-512 intrinsics' _mm512_undefined_*
// trip -W(maybe-)uninitialized once inlined at -O2/-O3. Scoped to ddpm's SIMD code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cstdint>

namespace ddpm::random {

namespace detail {

/// Batch version of minus_two_log (positive normal floats).
template <class A>
[[nodiscard]] DDPM_FORCEINLINE xsimd::batch<float, A> minus_two_log(const xsimd::batch<float, A>& u) noexcept {
    using fb = xsimd::batch<float, A>;
    using ub = xsimd::batch<std::uint32_t, A>;
    using ib = xsimd::batch<std::int32_t, A>;
    const ub ix = bitcast<std::uint32_t>(u) - ub(sqrt_half_bits);
    const ib e = bitcast<std::int32_t>(ix) >> 23; // arithmetic shift
    const fb m = bitcast<float>((ix & ub(0x007FFFFFu)) + ub(sqrt_half_bits));
    const fb x = m - fb(1.0f);
    fb p(log_q8);
    p = fma_exact(p, x, fb(log_q7));
    p = fma_exact(p, x, fb(log_q6));
    p = fma_exact(p, x, fb(log_q5));
    p = fma_exact(p, x, fb(log_q4));
    p = fma_exact(p, x, fb(log_q3));
    p = fma_exact(p, x, fb(log_q2));
    p = fma_exact(p, x, fb(log_q1));
    p = fma_exact(p, x, fb(log_q0));
    const fb log_m = x * p;
    const fb fe = small_int_to_float(e);
    return fma_exact(fe, fb(neg2_ln2_hi), fma_exact(fe, fb(neg2_ln2_lo), log_m));
}

template <class A>
struct cos_sin_batch {
    xsimd::batch<float, A> c;
    xsimd::batch<float, A> s;
};

/// Batch version of cos_sin_from_bits.
template <class A>
[[nodiscard]] DDPM_FORCEINLINE cos_sin_batch<A> cos_sin_from_bits(const xsimd::batch<std::uint32_t, A>& bits) noexcept {
    using fb = xsimd::batch<float, A>;
    using ub = xsimd::batch<std::uint32_t, A>;
    using ib = xsimd::batch<std::int32_t, A>;
    const ib v = (bitcast<std::int32_t>(bits << 9) >> 8) | ib(1);
    const fb f = small_int_to_float(v) * fb(two_m24);
    const fb t2 = f * f;
    fb ps(sin_s3);
    ps = fma_exact(ps, t2, fb(sin_s2));
    ps = fma_exact(ps, t2, fb(sin_s1));
    ps = fma_exact(ps, t2, fb(sin_s0));
    const fb sin_f = f * ps;
    fb pc(cos_c3);
    pc = fma_exact(pc, t2, fb(cos_c2));
    pc = fma_exact(pc, t2, fb(cos_c1));
    pc = fma_exact(pc, t2, fb(cos_c0));
    const fb cos_f = fma_exact(pc, t2, fb(1.0f));
    const ub cb = bitcast<std::uint32_t>(cos_f);
    const ub sb = bitcast<std::uint32_t>(sin_f);
    const ub swap_mask = bitcast<std::uint32_t>(bitcast<std::int32_t>(bits << 1) >> 31);
    const ub swap = (cb ^ sb) & swap_mask;
    const ub sign = bits & ub(sign_bit);
    return {bitcast<float>(cb ^ swap ^ sign), bitcast<float>(sb ^ swap ^ sign)};
}

} // namespace detail

/// Batch version of uniform_float: (bits >> 8)·2^-24 in every lane.
template <class A>
[[nodiscard]] DDPM_FORCEINLINE xsimd::batch<float, A> uniform_float(const xsimd::batch<std::uint32_t, A>& bits) noexcept {
    return detail::small_int_to_float(detail::bitcast<std::int32_t>(bits >> 8)) * xsimd::batch<float, A>(detail::two_m24);
}

template <class A>
struct normal_pair_batch {
    xsimd::batch<float, A> z0; ///< r cos θ
    xsimd::batch<float, A> z1; ///< r sin θ
};

/// Batch version of box_muller: lane l equals box_muller(w0[l], w1[l]).
template <class A>
[[nodiscard]] DDPM_FORCEINLINE normal_pair_batch<A> box_muller(const xsimd::batch<std::uint32_t, A>& w0,
                                                               const xsimd::batch<std::uint32_t, A>& w1) noexcept {
    using fb = xsimd::batch<float, A>;
    using ub = xsimd::batch<std::uint32_t, A>;
    const fb u1 = detail::small_int_to_float(detail::bitcast<std::int32_t>((w0 >> 8) + ub(1u))) * fb(detail::two_m24);
    const fb r = detail::sqrt_exact(detail::minus_two_log(u1));
    const detail::cos_sin_batch<A> cs = detail::cos_sin_from_bits(w1);
    return {r * cs.c, r * cs.s};
}

} // namespace ddpm::random

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif // DDPM_HAS_XSIMD
