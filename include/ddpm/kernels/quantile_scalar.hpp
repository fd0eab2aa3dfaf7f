// ddpm/kernels/quantile_scalar.hpp — the pieces of dynamic thresholding's
// per-sample quantile (Saharia et al. 2022; docs/math.md#clipping-and-dynamic-thresholding) that a
// parallel selection needs, written once for the host and the device.
//
// The reference is detail::quantile_linear (core/clipping.hpp), which follows
// torch.quantile(…, interpolation="linear") computed in T:
//
//   rank   = q·(n − 1)                 (in T)
//   below  = ⌊rank⌋, above = ⌈rank⌉, w = rank − below
//   lo     = sorted[below], hi = sorted[below + 1] if above ≠ below else lo
//   value  = w < ½ ? lo + w·(hi − lo) : hi − (hi − lo)·(1 − w)   (torch.lerp)
//
// A GPU block cannot sort a long sample cheaply, so it finds `lo` by radix
// selection on the bits of |x| (non-negative IEEE floats order like their bit
// patterns), 8 bits per pass from the most significant digit, and `hi` from
// what the last pass counted: if more elements share lo's key than rank
// `below` needs, hi = lo, otherwise hi is the smallest key above lo (one more
// pass). The functions here are that selection's arithmetic; the CUDA kernel
// (ddpm/cuda/reverse.cuh) adds only the block-wide histogram and scan, and
// radix_select_reference runs the same steps sequentially so that the host
// tests exercise them.
//
// Every function is noexcept and checks nothing.
#pragma once

#include "ddpm/config.hpp"

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace ddpm::kernels::scalar {

// ---------------------------------------------------------------------------
// IEEE arithmetic that the compiler may not contract into a fused multiply-add,
// so that the device's lerp rounds exactly as the host's (nvcc contracts
// a + b·c by default; g++ does not without FMA instructions).

DDPM_HOST_DEVICE DDPM_FORCEINLINE float mul_rn(float a, float b) noexcept {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
DDPM_HOST_DEVICE DDPM_FORCEINLINE double mul_rn(double a, double b) noexcept {
#if defined(__CUDA_ARCH__)
    return __dmul_rn(a, b);
#else
    return a * b;
#endif
}
DDPM_HOST_DEVICE DDPM_FORCEINLINE float add_rn(float a, float b) noexcept {
#if defined(__CUDA_ARCH__)
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
DDPM_HOST_DEVICE DDPM_FORCEINLINE double add_rn(double a, double b) noexcept {
#if defined(__CUDA_ARCH__)
    return __dadd_rn(a, b);
#else
    return a + b;
#endif
}
DDPM_HOST_DEVICE DDPM_FORCEINLINE float sub_rn(float a, float b) noexcept {
#if defined(__CUDA_ARCH__)
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}
DDPM_HOST_DEVICE DDPM_FORCEINLINE double sub_rn(double a, double b) noexcept {
#if defined(__CUDA_ARCH__)
    return __dsub_rn(a, b);
#else
    return a - b;
#endif
}

// ---------------------------------------------------------------------------
// Position and interpolation.

/// Where quantile q of n sorted values lies: lerp(sorted[below], sorted[above], weight).
template <class T>
struct quantile_position {
    std::uint64_t below = 0;
    std::uint64_t above = 0;
    T weight = 0;
};

/// rank = q·(n − 1) in T, exactly as detail::quantile_linear computes it.
/// Host only (std::ceil); a kernel receives the result as an argument.
/// Precondition: n >= 1, q in [0, 1].
template <class T>
[[nodiscard]] inline quantile_position<T> quantile_rank(T q, std::uint64_t n) noexcept {
    static_assert(std::is_floating_point_v<T>, "ddpm::kernels::scalar::quantile_rank: T must be floating point");
    const T rank = q * static_cast<T>(n - 1);
    const auto below = static_cast<std::uint64_t>(rank);
    const auto above = static_cast<std::uint64_t>(std::ceil(rank));
    return {below, above, rank - static_cast<T>(below)};
}

/// torch.lerp(lo, hi, w) in its two-sided form (the one quantile_linear uses).
template <class T>
[[nodiscard]] DDPM_HOST_DEVICE DDPM_FORCEINLINE T quantile_lerp(T lo, T hi, T w) noexcept {
    const T d = sub_rn(hi, lo);
    return w < T(0.5) ? add_rn(lo, mul_rn(w, d)) : sub_rn(hi, mul_rn(d, sub_rn(T(1), w)));
}

/// Dynamic thresholding's scale: s = clamp(quantile, 1, max_value) — torch.clamp(s, min=1, max=…).
template <class T>
[[nodiscard]] DDPM_HOST_DEVICE constexpr T threshold_scale(T quantile, T max_value) noexcept {
    T s = quantile < T(1) ? T(1) : quantile; // std::max(q, 1)
    s = max_value < s ? max_value : s;       // std::min(s, max)
    return s;
}

/// One thresholded element: clamp(x, −s, s) / s.
template <class T>
[[nodiscard]] DDPM_HOST_DEVICE constexpr T apply_threshold(T x, T s) noexcept {
    return (x < -s ? -s : (x > s ? s : x)) / s;
}

// ---------------------------------------------------------------------------
// Radix selection on |x|.

/// The unsigned key type whose order matches |x| for T (float → 32 bits, double → 64).
template <class T>
struct radix_key;
template <>
struct radix_key<float> {
    using type = std::uint32_t;
};
template <>
struct radix_key<double> {
    using type = std::uint64_t;
};
template <class T>
using radix_key_t = typename radix_key<T>::type;

inline constexpr unsigned radix_digit_bits = 8;
inline constexpr unsigned radix_bins = 1u << radix_digit_bits;

/// Passes of 8 bits that cover a key of T.
template <class T>
inline constexpr unsigned radix_passes = static_cast<unsigned>(sizeof(radix_key_t<T>) * 8 / radix_digit_bits);

/// The key of |x|: the bits of x with the sign cleared. Keys order like |x|
/// (+0 = −0 first, +inf after every finite value, NaN last).
[[nodiscard]] DDPM_HOST_DEVICE DDPM_FORCEINLINE std::uint32_t abs_key(float x) noexcept {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(x) & 0x7FFFFFFFu;
#else
    return std::bit_cast<std::uint32_t>(x) & 0x7FFFFFFFu;
#endif
}
[[nodiscard]] DDPM_HOST_DEVICE DDPM_FORCEINLINE std::uint64_t abs_key(double x) noexcept {
#if defined(__CUDA_ARCH__)
    return static_cast<std::uint64_t>(__double_as_longlong(x)) & 0x7FFFFFFFFFFFFFFFull;
#else
    return std::bit_cast<std::uint64_t>(x) & 0x7FFFFFFFFFFFFFFFull;
#endif
}

/// The value |x| whose key is k.
template <class T>
[[nodiscard]] DDPM_HOST_DEVICE DDPM_FORCEINLINE T key_value(radix_key_t<T> k) noexcept {
#if defined(__CUDA_ARCH__)
    if constexpr (std::is_same_v<T, float>) return __uint_as_float(k);
    else return __longlong_as_double(static_cast<long long>(k));
#else
    return std::bit_cast<T>(k);
#endif
}

/// The digit of key k in pass p (p = radix_passes − 1 is the most significant).
template <class K>
[[nodiscard]] DDPM_HOST_DEVICE constexpr unsigned radix_digit(K k, unsigned pass) noexcept {
    return static_cast<unsigned>((k >> (pass * radix_digit_bits)) & K(radix_bins - 1));
}

/// The mask of the digits fixed after pass p (that digit and the ones above it).
template <class K>
[[nodiscard]] DDPM_HOST_DEVICE constexpr K radix_prefix_mask(unsigned pass) noexcept {
    return static_cast<K>(~K(0) << (pass * radix_digit_bits));
}

/// What one pass decides: the digit of the element of rank `rank` among the
/// candidates, its rank among the candidates with that digit, and how many
/// candidates have that digit.
struct radix_choice {
    unsigned digit = 0;
    std::uint32_t rank = 0;
    std::uint32_t count = 0;
};

/// The sequential form of a pass's decision: walk the histogram of the
/// candidates' digits until the cumulative count passes `rank`. (The CUDA
/// kernel computes the same with a block-wide prefix sum.)
[[nodiscard]] DDPM_HOST_DEVICE constexpr radix_choice radix_choose(const std::uint32_t* hist,
                                                                    std::uint32_t rank) noexcept {
    std::uint32_t before = 0;
    for (unsigned d = 0; d < radix_bins; ++d) {
        if (rank < before + hist[d]) return {d, rank - before, hist[d]};
        before += hist[d];
    }
    return {radix_bins - 1, 0, 0}; // unreachable when rank < the number of candidates
}

/// The quantile of |values| by radix selection, run sequentially: the same
/// decisions (radix_choose per pass, then "hi = lo, or the next larger key")
/// the CUDA kernel makes in parallel. Equal to detail::quantile_linear of the
/// |values| for every input without NaN. Host only: the reference for tests.
template <class T, class Get>
[[nodiscard]] T radix_quantile_reference(std::uint64_t n, Get&& get, const quantile_position<T>& pos) noexcept {
    using K = radix_key_t<T>;
    K prefix = 0;
    K mask = 0;
    std::uint32_t rank = static_cast<std::uint32_t>(pos.below);
    std::uint32_t count = 0;
    for (unsigned p = radix_passes<T>; p-- > 0;) {
        std::uint32_t hist[radix_bins] = {};
        for (std::uint64_t i = 0; i < n; ++i) {
            const K k = abs_key(static_cast<T>(get(i)));
            if ((k & mask) == prefix) ++hist[radix_digit(k, p)];
        }
        const radix_choice c = radix_choose(hist, rank);
        prefix |= static_cast<K>(K(c.digit) << (p * radix_digit_bits));
        mask = radix_prefix_mask<K>(p);
        rank = c.rank;
        count = c.count;
    }
    const T lo = key_value<T>(prefix);
    T hi = lo;
    if (pos.above != pos.below && rank + 1 >= count) {
        K next = ~K(0);
        for (std::uint64_t i = 0; i < n; ++i) {
            const K k = abs_key(static_cast<T>(get(i)));
            if (k > prefix && k < next) next = k;
        }
        hi = key_value<T>(next);
    }
    return quantile_lerp(lo, hi, pos.weight);
}

} // namespace ddpm::kernels::scalar
