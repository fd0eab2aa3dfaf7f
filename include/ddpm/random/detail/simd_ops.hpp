// ddpm/random/detail/simd_ops.hpp — the few xsimd operations the random layer
// needs with *exact* semantics, plus the xsimd 8.1 / 14.x differences it meets.
//
// Why this header exists:
//   * Bit-identity with the scalar path needs a *fused* multiply-add. xsimd 8.1
//     implements xsimd::fma as `x * y + z` (two roundings, or one if the
//     compiler happens to contract it) for every arch without an explicit
//     kernel, which includes avx512f/avx512bw (fixed only in xsimd 11.0), sse2
//     and plain avx/avx2. fma_exact() below always rounds once: the hardware FMA
//     where the arch has one, otherwise std::fma per lane.
//   * xsimd::sqrt for float on ARM NEON (also reached from neon64 in 8.1) is a
//     reciprocal-estimate approximation; sqrt_exact() uses the correctly
//     rounded instruction (x86 sqrtps, AArch64 fsqrt) and std::sqrt per lane
//     elsewhere.
//   * The 32×32→64 multiply of Philox: xsimd has no "mulhi" and no widening
//     multiply. mul_lo32() is x86's pmuludq or AArch64's umull where they
//     exist and a masked 64-bit multiply elsewhere.
//   * bitwise_cast changed its template argument in xsimd 11.0 (8.1 takes the
//     batch type, 11+ the element type); bitcast() hides that.
//
// Defining DDPM_RANDOM_PORTABLE_SIMD=1 before including ddpm switches every
// function here to its portable fallback (the test suite builds one executable
// that way to prove the fallbacks produce the same bits). It must be the same
// in every translation unit of a program (these are inline functions).
#pragma once

#include "ddpm/config.hpp"

#if DDPM_HAS_XSIMD

#include <xsimd/xsimd.hpp>

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 false positive (PR 105593): the AVX-512 intrinsics' _mm512_undefined_*
// trip -W(maybe-)uninitialized once inlined at -O2/-O3. Scoped to ddpm's SIMD code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#ifndef DDPM_RANDOM_PORTABLE_SIMD
#define DDPM_RANDOM_PORTABLE_SIMD 0
#endif

namespace ddpm::random::detail {

/// Which native register family an xsimd arch uses, for the few places where
/// this header calls an intrinsic directly (ordered: the first match wins, so
/// an arch deriving from several families is taken at its widest).
enum class simd_family { other, x86_128, x86_256, x86_512, neon64 };

template <class A>
inline constexpr simd_family simd_family_of = [] {
#if DDPM_RANDOM_PORTABLE_SIMD
    return simd_family::other;
#else
#if defined(__AVX512F__)
    if (std::is_base_of_v<xsimd::avx512f, A>) return simd_family::x86_512;
#endif
#if defined(__AVX__)
    if (std::is_base_of_v<xsimd::avx, A>) return simd_family::x86_256;
#endif
#if defined(__SSE2__)
    if (std::is_base_of_v<xsimd::sse2, A>) return simd_family::x86_128;
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
    if (std::is_base_of_v<xsimd::neon64, A>) return simd_family::neon64;
#endif
    return simd_family::other;
#endif
}();

/// Reinterprets the bits of a batch as another element type of the same size.
template <class U, class T, class A>
[[nodiscard]] DDPM_FORCEINLINE xsimd::batch<U, A> bitcast(const xsimd::batch<T, A>& x) noexcept {
    static_assert(sizeof(U) * xsimd::batch<U, A>::size == sizeof(T) * xsimd::batch<T, A>::size);
#if XSIMD_VERSION_MAJOR >= 11
    return xsimd::bitwise_cast<U>(x);
#else
    return xsimd::bitwise_cast<xsimd::batch<U, A>>(x);
#endif
}

/// std::fma lane by lane (the portable fallback of fma_exact).
template <class A>
[[nodiscard]] inline xsimd::batch<float, A> fma_per_lane(const xsimd::batch<float, A>& a, const xsimd::batch<float, A>& b,
                                                         const xsimd::batch<float, A>& c) noexcept {
    constexpr std::size_t n = xsimd::batch<float, A>::size;
    alignas(64) float ta[n];
    alignas(64) float tb[n];
    alignas(64) float tc[n];
    a.store_unaligned(ta);
    b.store_unaligned(tb);
    c.store_unaligned(tc);
    for (std::size_t i = 0; i < n; ++i) ta[i] = std::fma(ta[i], tb[i], tc[i]);
    return xsimd::batch<float, A>::load_unaligned(ta);
}

/// std::sqrt lane by lane (the portable fallback of sqrt_exact).
template <class A>
[[nodiscard]] inline xsimd::batch<float, A> sqrt_per_lane(const xsimd::batch<float, A>& x) noexcept {
    constexpr std::size_t n = xsimd::batch<float, A>::size;
    alignas(64) float t[n];
    x.store_unaligned(t);
    for (std::size_t i = 0; i < n; ++i) t[i] = std::sqrt(t[i]);
    return xsimd::batch<float, A>::load_unaligned(t);
}

/// a·b + c with a single rounding, in every lane, on every arch.
template <class A>
[[nodiscard]] DDPM_FORCEINLINE xsimd::batch<float, A> fma_exact(const xsimd::batch<float, A>& a,
                                                                 const xsimd::batch<float, A>& b,
                                                                 const xsimd::batch<float, A>& c) noexcept {
    [[maybe_unused]] constexpr simd_family family = simd_family_of<A>;
#if defined(__AVX512F__)
    if constexpr (family == simd_family::x86_512) return _mm512_fmadd_ps(a, b, c);
    else
#endif
#if defined(__FMA__)
    if constexpr (family == simd_family::x86_256) return _mm256_fmadd_ps(a, b, c);
    else if constexpr (family == simd_family::x86_128) return _mm_fmadd_ps(a, b, c);
    else
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
    if constexpr (family == simd_family::neon64) return vfmaq_f32(c, a, b);
    else
#endif
        return fma_per_lane(a, b, c);
}

/// Correctly rounded square root in every lane, on every arch.
template <class A>
[[nodiscard]] DDPM_FORCEINLINE xsimd::batch<float, A> sqrt_exact(const xsimd::batch<float, A>& x) noexcept {
    [[maybe_unused]] constexpr simd_family family = simd_family_of<A>;
    // On x86 xsimd::sqrt is sqrtps / vsqrtps, an IEEE square root. (Not on
    // AArch64: xsimd 8.1 has no neon64 float kernel and falls back to the
    // 32-bit NEON estimate, hence the explicit fsqrt.)
    if constexpr (family == simd_family::x86_128 || family == simd_family::x86_256 ||
                  family == simd_family::x86_512)
        return xsimd::sqrt(x);
    else
#if defined(__aarch64__) && defined(__ARM_NEON)
    if constexpr (family == simd_family::neon64) return vsqrtq_f32(x);
    else
#endif
        return sqrt_per_lane(x);
}

/// The 64-bit product (x mod 2^32)·m in every 64-bit lane: Philox's S-box on
/// counters held one per 64-bit lane (the high half of each lane is ignored).
/// x86 has this as one instruction (pmuludq), AArch64 as narrow + umull;
/// elsewhere it is a mask and a 64-bit multiply.
template <class A>
[[nodiscard]] DDPM_FORCEINLINE xsimd::batch<std::uint64_t, A> mul_lo32(const xsimd::batch<std::uint64_t, A>& x,
                                                                       std::uint32_t m) noexcept {
    [[maybe_unused]] constexpr simd_family family = simd_family_of<A>;
#if defined(__AVX512F__)
    if constexpr (family == simd_family::x86_512) return _mm512_mul_epu32(x, _mm512_set1_epi64(m));
    else
#endif
#if defined(__AVX2__)
    if constexpr (family == simd_family::x86_256) return _mm256_mul_epu32(x, _mm256_set1_epi64x(m));
    else
#endif
#if defined(__SSE2__)
    if constexpr (family == simd_family::x86_128) return _mm_mul_epu32(x, _mm_set1_epi64x(m));
    else
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
    if constexpr (family == simd_family::neon64) return vmull_u32(vmovn_u64(x), vdup_n_u32(m));
    else
#endif
        return (x & xsimd::batch<std::uint64_t, A>(0xFFFFFFFFull)) * xsimd::batch<std::uint64_t, A>(m);
}

/// Exact conversion of a batch of int32 with |v| < 2^24 to float.
template <class A>
[[nodiscard]] DDPM_FORCEINLINE xsimd::batch<float, A> small_int_to_float(const xsimd::batch<std::int32_t, A>& v) noexcept {
    return xsimd::batch_cast<float>(v);
}

/// 0, 1, 2, ... : lane offsets for building counters.
inline constexpr std::uint32_t lane_iota[64] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
    22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
    44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};

} // namespace ddpm::random::detail

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif // DDPM_HAS_XSIMD
