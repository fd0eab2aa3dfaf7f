// tests/random/random_test_support.hpp — what the random tests share: the list
// of xsimd archs this build can instantiate, and bit-level comparisons.
#pragma once

#include <ddpm/config.hpp>

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>

#if DDPM_HAS_XSIMD
#include <xsimd/xsimd.hpp>
#endif

namespace ddpm_test {

#if DDPM_HAS_XSIMD
namespace detail {

template <class Tuple, class A, bool Add>
struct append_if;
template <class... T, class A>
struct append_if<std::tuple<T...>, A, true> {
    using type = std::tuple<T..., A>;
};
template <class... T, class A>
struct append_if<std::tuple<T...>, A, false> {
    using type = std::tuple<T...>;
};

using archs0 = std::tuple<>;
#if XSIMD_WITH_SSE2
using archs1 = typename append_if<archs0, xsimd::sse2, true>::type;
#else
using archs1 = archs0;
#endif
#if XSIMD_WITH_SSE4_2
using archs2 = typename append_if<archs1, xsimd::sse4_2, true>::type;
#else
using archs2 = archs1;
#endif
#if XSIMD_WITH_FMA3_SSE
using archs3 = typename append_if<archs2, xsimd::fma3<xsimd::sse4_2>, true>::type;
#else
using archs3 = archs2;
#endif
#if XSIMD_WITH_AVX
using archs4 = typename append_if<archs3, xsimd::avx, true>::type;
#else
using archs4 = archs3;
#endif
#if XSIMD_WITH_AVX2
using archs5 = typename append_if<archs4, xsimd::avx2, true>::type;
#else
using archs5 = archs4;
#endif
#if XSIMD_WITH_FMA3_AVX2
using archs6 = typename append_if<archs5, xsimd::fma3<xsimd::avx2>, true>::type;
#else
using archs6 = archs5;
#endif
#if XSIMD_WITH_AVX512F
using archs7 = typename append_if<archs6, xsimd::avx512f, true>::type;
#else
using archs7 = archs6;
#endif
#if XSIMD_WITH_AVX512BW
using archs8 = typename append_if<archs7, xsimd::avx512bw, true>::type;
#else
using archs8 = archs7;
#endif
#if XSIMD_WITH_NEON64
using archs9 = typename append_if<archs8, xsimd::neon64, true>::type;
#else
using archs9 = archs8;
#endif

template <class Tuple, class A>
inline constexpr bool contains_v = false;
template <class... T, class A>
inline constexpr bool contains_v<std::tuple<T...>, A> = (std::is_same_v<T, A> || ...);

} // namespace detail

/// Every xsimd arch this translation unit may name (at least default_arch).
using simd_archs = typename detail::append_if<detail::archs9, xsimd::default_arch,
                                              !detail::contains_v<detail::archs9, xsimd::default_arch>>::type;
#endif

/// Bitwise equality of two floats (so that 0.0 and -0.0 differ and NaN equals itself).
inline bool same_bits(float a, float b) { return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b); }

/// Index of the first element whose bits differ, or -1.
template <class A, class B>
long first_bit_difference(const A& a, const B& b) {
    if (a.size() != b.size()) return 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::memcmp(&a[i], &b[i], sizeof(a[i])) != 0) return static_cast<long>(i);
    return -1;
}

/// FNV-1a over the bit patterns of a float sequence: a compact golden value.
inline std::uint64_t fnv1a(std::span<const float> v) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (float x : v) {
        std::uint32_t b = std::bit_cast<std::uint32_t>(x);
        for (int k = 0; k < 4; ++k) {
            h ^= (b >> (8 * k)) & 0xFFu;
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

} // namespace ddpm_test
