// ddpm/random/philox_simd.hpp — Philox4x32 over xsimd batches: W independent
// counters, one per lane, under one key.
//
// The same rounds as ddpm/random/philox.hpp (Salmon et al. 2011, section 3.3),
// lane-parallel: batch j holds word j of W counters ("structure of arrays"), so
// a round is two lane-wise mulhilo, two xors and a permutation of the four
// batches, with no shuffles (detail:: below explains the mulhilo). The key is
// the same in every lane; its schedule is computed in scalar and broadcast.
// Produces exactly the words of the scalar philox4x32_r in every lane (tested
// on every arch the test build can name, and with the portable fallbacks).
//
// Only compiled when xsimd is available (DDPM_HAS_XSIMD).
#pragma once

#include "ddpm/config.hpp"
#include "ddpm/random/philox.hpp"

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

#include <cstddef>
#include <cstdint>
#include <utility>

namespace ddpm::random {

/// W Philox4x32 counters (or outputs), word-major: w[j] lane l is word j of
/// counter l.
template <class Arch = xsimd::default_arch>
struct philox4x32_batch {
    using batch_type = xsimd::batch<std::uint32_t, Arch>;
    static constexpr std::size_t size = batch_type::size;
    batch_type w[4];
};

namespace detail {

// Inside the rounds, the W counters are split into two halves of W/2, each
// held one counter per 64-bit lane with its words in the low 32 bits ("wide"
// form): the counters of the even lanes, and those of the odd lanes shifted
// down. Then mulhilo is one widening multiply (pmuludq on x86): lo is the low
// half of the product in place, hi is one 64-bit shift away, and the high
// halves of the lanes can hold anything, because the multiply ignores them and
// xor never mixes halves. Compared with a mulhi on 32-bit lanes this saves the
// blends that put hi and lo back in place every round; the halves are
// re-interleaved once at the end.

template <class A>
using wide_batch = xsimd::batch<std::uint64_t, A>;

template <class A>
struct philox4x32_wide {
    wide_batch<A> w[4];
};

template <class A>
[[nodiscard]] DDPM_FORCEINLINE philox4x32_wide<A> philox4x32_round(const philox4x32_wide<A>& c,
                                                                   const philox4x32_key& k) noexcept {
    const wide_batch<A> p0 = mul_lo32(c.w[0], philox_m0); // {hi0, lo0}
    const wide_batch<A> p1 = mul_lo32(c.w[2], philox_m1); // {hi1, lo1}
    return {{(p1 >> 32) ^ c.w[1] ^ wide_batch<A>(k.w[0]), p1, (p0 >> 32) ^ c.w[3] ^ wide_batch<A>(k.w[1]), p0}};
}

template <int Rounds, class A, std::size_t... R>
[[nodiscard]] DDPM_FORCEINLINE philox4x32_batch<A> philox4x32_unrolled(const philox4x32_batch<A>& counter,
                                                                       philox4x32_key key,
                                                                       std::index_sequence<R...>) noexcept {
    using u64 = wide_batch<A>;
    philox4x32_wide<A> even;
    philox4x32_wide<A> odd;
    for (int j = 0; j < 4; ++j) {
        even.w[j] = bitcast<std::uint64_t>(counter.w[j]);
        odd.w[j] = even.w[j] >> 32;
    }
    // Round r uses the key bumped r times; the fold unrolls all rounds, the two
    // halves interleaved for instruction-level parallelism.
    (((void)R, even = philox4x32_round(even, key), odd = philox4x32_round(odd, key),
      key = philox4x32_bump_key(key)),
     ...);
    philox4x32_batch<A> out;
    const u64 low_mask(0x00000000FFFFFFFFull);
    for (int j = 0; j < 4; ++j) out.w[j] = bitcast<std::uint32_t>((even.w[j] & low_mask) | (odd.w[j] << 32));
    return out;
}

} // namespace detail

/// Philox4x32-R on every lane: lane l of the result is
/// philox4x32_r<Rounds>(counter of lane l, key).
template <int Rounds = 10, class Arch>
[[nodiscard]] DDPM_FORCEINLINE philox4x32_batch<Arch> philox4x32_r(const philox4x32_batch<Arch>& counter,
                                                                   const philox4x32_key& key) noexcept {
    static_assert(Rounds >= 1 && Rounds <= 16, "Philox4x32 is defined for 1..16 rounds");
    return detail::philox4x32_unrolled<Rounds>(counter, key, std::make_index_sequence<Rounds>{});
}

/// Philox4x32-10 on every lane.
template <class Arch>
[[nodiscard]] DDPM_FORCEINLINE philox4x32_batch<Arch> philox4x32_10(const philox4x32_batch<Arch>& counter,
                                                                    const philox4x32_key& key) noexcept {
    return philox4x32_r<10>(counter, key);
}

} // namespace ddpm::random

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif // DDPM_HAS_XSIMD
