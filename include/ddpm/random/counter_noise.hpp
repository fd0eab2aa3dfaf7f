// ddpm/random/counter_noise.hpp — addressable noise: the value for element i
// of sample b at step s under seed k is a pure function of (k, b, s, i).
//
// ## The mapping (fixed; changing it changes every stream, see the golden
// hashes in tests/random/)
//
//   key      = { lo32(k), hi32(k) }                      (Philox4x32 key)
//   block    = 16·⌊i / 64⌋ + (i mod 16)                  (64-bit block index)
//   word     = ⌊i / 16⌋ mod 4                            (which of its 4 words)
//   counter  = { lo32(block), hi32(block), b, s }
//   bits(k, b, s, i)    = philox4x32_10(counter, key).w[word]
//   uniform(k, b, s, i) = uniform_float(bits)            in [0, 1), 24 bits
//   normal(k, b, s, i)  = box_muller(w[0], w[1]).z0 for word 0, .z1 for word 1,
//                         box_muller(w[2], w[3]).z0 for word 2, .z1 for word 3
//
// i.e. the elements are cut into groups of 64; group g uses the 16 Philox
// blocks 16g..16g+15, and word j of block 16g + l lands on element
// 64g + 16j + l. Each word feeds exactly one element, and the 4 words of a
// block feed 4 elements 16 apart. Why this and not "block ⌊i/4⌋, word i mod 4":
// with W counters in the lanes of a SIMD register (W = 4, 8 or 16 for SSE,
// AVX2, AVX-512), output batch j is already W *contiguous* elements, so the
// SIMD path stores straight to memory with no 4×W transpose; a CUDA kernel
// with one thread per block writes 16 consecutive floats per word and warp,
// which coalesces. The layout does not depend on W: any W dividing 16 produces
// the same numbers, and so do the scalar and CUDA paths.
//
// sample and step are 32-bit (the counter has 128 bits: 64 for the block
// index, 32 each for b and s); the signatures say std::uint32_t so that the
// range is part of the contract (-Wconversion flags a narrowing call). The
// element index is 64-bit: element_offset + length must not exceed 2^64.
//
// API: per element (bits_at, uniform_at, normal_at; host and device), fills
// of a contiguous span (fill_normal / fill_uniform: SIMD when xsimd is
// available, at the arch ddpm/dispatch/isa.hpp picks at run time, else scalar; *_scalar is the
// reference; *_simd<Arch> picks an arch; the double overloads widen the float
// stream), tiles of whole rows (fill_normal_rows: B samples × D elements in
// one call, vectorised across samples when D < 64, so that short samples cost
// per element, not per 64-element group; the same stream; with
// noise_version::v2, stream v2 — the default of the kernels, samplers and
// CUDA — that packs a sample's last partial group four elements to a block,
// see noise_version), the SIMD building
// block normal_batches / uniform_batches for fused kernels, and
// counter_engine, a UniformRandomBitGenerator over one stream.
//
// The uniform and the normal of the same (k, b, s, i) come from the same
// words: draw them from different steps or seeds when both are needed and
// must be independent.
#pragma once

#include "ddpm/config.hpp"
#include "ddpm/error.hpp"
#include "ddpm/random/normal.hpp"
#include "ddpm/random/philox.hpp"

#include "ddpm/dispatch/isa.hpp"

#if DDPM_HAS_XSIMD
#include "ddpm/random/detail/simd_ops.hpp"
#include "ddpm/random/normal_simd.hpp"
#include "ddpm/random/philox_simd.hpp"

#include <xsimd/xsimd.hpp>
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace ddpm::random {

/// Philox blocks per group of elements.
inline constexpr std::uint64_t noise_group_blocks = 16;
/// Elements per group (16 blocks × 4 words).
inline constexpr std::uint64_t noise_group_elements = 64;

/// Where element i's word lives.
struct noise_location {
    std::uint64_t block; ///< 16·⌊i/64⌋ + (i mod 16)
    unsigned word;       ///< ⌊i/16⌋ mod 4
};

[[nodiscard]] DDPM_HOST_DEVICE constexpr noise_location locate_element(std::uint64_t element) noexcept {
    return {noise_group_blocks * (element / noise_group_elements) + (element % noise_group_blocks),
            static_cast<unsigned>((element / noise_group_blocks) % 4u)};
}

/// The element that word `word` of block `block` feeds (inverse of locate_element).
[[nodiscard]] DDPM_HOST_DEVICE constexpr std::uint64_t element_of(std::uint64_t block, unsigned word) noexcept {
    return noise_group_elements * (block / noise_group_blocks) + noise_group_blocks * word + (block % noise_group_blocks);
}

/// The Philox key of a seed: { lo32(seed), hi32(seed) }.
[[nodiscard]] DDPM_HOST_DEVICE constexpr philox4x32_key noise_key(std::uint64_t seed) noexcept {
    return {{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
}

/// The Philox counter of a block: { lo32(block), hi32(block), sample, step }.
[[nodiscard]] DDPM_HOST_DEVICE constexpr philox4x32_counter noise_counter(std::uint64_t block, std::uint32_t sample,
                                                                          std::uint32_t step) noexcept {
    return {{static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32), sample, step}};
}

/// The 4 words of one block.
[[nodiscard]] DDPM_HOST_DEVICE constexpr philox4x32_counter noise_block(std::uint64_t seed, std::uint32_t sample,
                                                                        std::uint32_t step, std::uint64_t block) noexcept {
    return philox4x32_10(noise_counter(block, sample, step), noise_key(seed));
}

/// The 32 random bits of element `element` of sample `sample` at step `step`.
[[nodiscard]] DDPM_HOST_DEVICE constexpr std::uint32_t bits_at(std::uint64_t seed, std::uint32_t sample,
                                                               std::uint32_t step, std::uint64_t element) noexcept {
    const noise_location at = locate_element(element);
    return noise_block(seed, sample, step, at.block).w[at.word];
}

/// A uniform float in [0, 1) for (seed, sample, step, element): uniform_float(bits_at(...)).
[[nodiscard]] DDPM_HOST_DEVICE inline float uniform_at(std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                                                       std::uint64_t element) noexcept {
    return uniform_float(bits_at(seed, sample, step, element));
}

namespace detail {

/// The normal of the word at `at`: Box–Muller of its pair (w0, w1) or
/// (w2, w3), z0 for an even word, z1 for an odd one.
[[nodiscard]] DDPM_HOST_DEVICE inline float normal_of(std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                                                      noise_location at) noexcept {
    const philox4x32_counter w = noise_block(seed, sample, step, at.block);
    const unsigned pair = at.word & 2u;
    const normal_pair z = box_muller(w.w[pair], w.w[pair + 1u]);
    return (at.word & 1u) ? z.z1 : z.z0;
}

} // namespace detail

/// A standard normal float for (seed, sample, step, element).
[[nodiscard]] DDPM_HOST_DEVICE inline float normal_at(std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                                                      std::uint64_t element) noexcept {
    return detail::normal_of(seed, sample, step, locate_element(element));
}

/// The versions of the normal stream.
///
/// v1 is the mapping at the top of this file (and that of the per-element and
/// span functions here: normal_at, fill_normal, counter_engine). v2, the
/// default of the kernels (kernels::noise_stream), the samplers
/// (ddpm::counter_noise) and CUDA, is v1 for a sample's whole 64-element groups and a
/// compact layout for its last partial group: with G = ⌊D/64⌋ whole groups in
/// a sample of D elements, element 64G + t (t < D mod 64) uses block
/// 16G + ⌊t/4⌋, word t mod 4. So in v2 a value depends on the sample size D as
/// well as on (seed, sample, step, element); samples whose D is a multiple of
/// 64 (3×32×32, 3×64×64 images), or one more, get exactly the v1 values, and a 2-D point
/// costs one Philox block and one Box–Muller pair instead of two of each.
/// Both stay batch-split invariant and bit-identical on every path.
enum class noise_version : unsigned {
    v1 = 1, ///< locate_element for every element
    v2 = 2, ///< locate_element_v2: compact last partial group
};

/// The elements of a sample of `sample_dim` elements that lie in whole 64-element groups.
[[nodiscard]] DDPM_HOST_DEVICE constexpr std::uint64_t whole_group_elements(std::uint64_t sample_dim) noexcept {
    return sample_dim - sample_dim % noise_group_elements;
}

/// Where element `element` of a sample of `sample_dim` elements lives in
/// stream v2: locate_element(element) below whole_group_elements(sample_dim),
/// else block 16G + ⌊t/4⌋, word t mod 4, for t = element − 64G, G = ⌊sample_dim/64⌋.
/// Defined for element < sample_dim.
[[nodiscard]] DDPM_HOST_DEVICE constexpr noise_location locate_element_v2(std::uint64_t element,
                                                                          std::uint64_t sample_dim) noexcept {
    const std::uint64_t whole = whole_group_elements(sample_dim);
    if (element < whole) return locate_element(element);
    const std::uint64_t t = element - whole;
    return {noise_group_blocks * (whole / noise_group_elements) + t / 4u, static_cast<unsigned>(t % 4u)};
}

/// A standard normal float for (seed, sample, step, element) in stream v2,
/// for a sample of `sample_dim` elements (element < sample_dim).
[[nodiscard]] DDPM_HOST_DEVICE inline float normal_at_v2(std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                                                         std::uint64_t element, std::uint64_t sample_dim) noexcept {
    return detail::normal_of(seed, sample, step, locate_element_v2(element, sample_dim));
}

namespace detail {

/// Runs `write(element, z0, z1, z2, z3)` for every block of the groups that
/// overlap [first, end), with the block's 4 values of the transform `tr`.
template <class Transform>
inline void for_each_block_scalar(std::span<float> out, std::uint64_t seed,
                                  std::uint32_t sample, std::uint32_t step, std::uint64_t first,
                                  Transform tr) noexcept {
    if (out.empty()) return;
    const philox4x32_key key = noise_key(seed);
    const std::uint64_t end = first + out.size();
    const std::uint64_t g_last = (end - 1) / noise_group_elements;
    for (std::uint64_t g = first / noise_group_elements;; ++g) {
        const std::uint64_t base = g * noise_group_elements;
        for (std::uint64_t l = 0; l < noise_group_blocks; ++l) {
            // Block 16g + l feeds elements base + l + 16j, j = 0..3.
            if (base + l + 3 * noise_group_blocks < first || base + l >= end) continue;
            const philox4x32_counter w = philox4x32_10(noise_counter(g * noise_group_blocks + l, sample, step), key);
            float v[4];
            tr(w, v);
            for (std::uint64_t j = 0; j < 4; ++j) {
                const std::uint64_t e = base + l + noise_group_blocks * j;
                if (e >= first && e < end) out[static_cast<std::size_t>(e - first)] = v[j];
            }
        }
        if (g == g_last) break;
    }
}

struct normal_transform {
    DDPM_HOST_DEVICE DDPM_FORCEINLINE void operator()(const philox4x32_counter& w, float* v) const noexcept {
        const normal_pair a = box_muller(w.w[0], w.w[1]);
        const normal_pair b = box_muller(w.w[2], w.w[3]);
        v[0] = a.z0;
        v[1] = a.z1;
        v[2] = b.z0;
        v[3] = b.z1;
    }
};

struct uniform_transform {
    DDPM_HOST_DEVICE DDPM_FORCEINLINE void operator()(const philox4x32_counter& w, float* v) const noexcept {
        for (int j = 0; j < 4; ++j) v[j] = uniform_float(w.w[j]);
    }
};

} // namespace detail

/// Scalar reference: out[k] = normal_at(seed, sample, step, element_offset + k).
/// Requires element_offset + out.size() ≤ 2^64.
inline void fill_normal_scalar(std::span<float> out, std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                               std::uint64_t element_offset = 0) noexcept {
    detail::for_each_block_scalar(out, seed, sample, step, element_offset, detail::normal_transform{});
}

/// Scalar reference: out[k] = uniform_at(seed, sample, step, element_offset + k).
inline void fill_uniform_scalar(std::span<float> out, std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                                std::uint64_t element_offset = 0) noexcept {
    detail::for_each_block_scalar(out, seed, sample, step, element_offset, detail::uniform_transform{});
}

namespace detail {

/// out[r·dim + k] = normal_at(seed, first_sample + r, step, first + k) for
/// r < rows, k < dim, one row at a time with the scalar algorithm (the sample
/// index wraps modulo 2^32, as the kernels' first_sample + row does).
template <class Transform = normal_transform>
inline void fill_rows_scalar(float* out, std::size_t rows, std::size_t dim, std::uint64_t seed,
                             std::uint32_t first_sample, std::uint32_t step, std::uint64_t first,
                             Transform tr = {}) noexcept {
    for (std::size_t r = 0; r < rows; ++r)
        for_each_block_scalar(std::span<float>(out + r * dim, dim), seed,
                              static_cast<std::uint32_t>(first_sample + r), step, first, tr);
}

/// Stream v2 (see noise_version), scalar: out[r·count + k] =
/// normal_at_v2(seed, first_sample + r, step, first + k, sample_dim) for
/// r < rows, k < count (first + count ≤ sample_dim). The whole-group part is
/// fill_rows_scalar's; the tail goes block by block, 4 elements per block.
inline void fill_rows_v2_scalar(float* out, std::size_t rows, std::size_t count, std::uint64_t sample_dim,
                                std::uint64_t seed, std::uint32_t first_sample, std::uint32_t step,
                                std::uint64_t first) noexcept {
    const std::uint64_t whole = whole_group_elements(sample_dim);
    const std::uint64_t end = first + count;
    const std::uint64_t split = std::clamp(whole, first, end);
    const philox4x32_key key = noise_key(seed);
    for (std::size_t r = 0; r < rows; ++r) {
        const auto sample = static_cast<std::uint32_t>(first_sample + r);
        float* const row = out + r * count;
        if (split > first)
            for_each_block_scalar(std::span<float>(row, static_cast<std::size_t>(split - first)), seed, sample, step,
                                  first, normal_transform{});
        for (std::uint64_t e = split; e < end;) {
            const noise_location at = locate_element_v2(e, sample_dim);
            float v[4];
            normal_transform{}(philox4x32_10(noise_counter(at.block, sample, step), key), v);
            for (unsigned j = at.word; j < 4 && e < end; ++j, ++e) row[e - first] = v[j];
        }
    }
}

/// The number of rows a span of `size` floats holds at `dim` per row; throws
/// ddpm::invalid_argument when it is not a whole number of rows.
inline std::size_t rows_of(std::string_view where, std::size_t size, std::size_t dim) {
    if (dim == 0) {
        if (size != 0) ddpm::detail::throw_invalid(where, "dim", dim, ">= 1 (out holds " + std::to_string(size) + " values)");
        return 0;
    }
    if (size % dim != 0)
        ddpm::detail::throw_invalid(where, "out.size()", size, "a multiple of dim (" + std::to_string(dim) + ")");
    return size / dim;
}

} // namespace detail

/// Scalar reference of fill_normal_rows: row r of `out` (dim values each)
/// gets normal_at(seed, first_sample + r, step, element_offset + k), k < dim.
/// @throws ddpm::invalid_argument when out.size() is not a multiple of dim.
inline void fill_normal_rows_scalar(std::span<float> out, std::size_t dim, std::uint64_t seed,
                                    std::uint32_t first_sample, std::uint32_t step,
                                    std::uint64_t element_offset = 0) {
    const std::size_t rows = detail::rows_of("ddpm::random::fill_normal_rows_scalar", out.size(), dim);
    detail::fill_rows_scalar(out.data(), rows, dim, seed, first_sample, step, element_offset);
}

namespace detail {

inline void check_version(std::string_view where, noise_version version) {
    if (version != noise_version::v1 && version != noise_version::v2)
        ddpm::detail::throw_invalid(where, "version", static_cast<unsigned>(version), "noise_version::v1 or ::v2");
}

} // namespace detail

/// Scalar reference of fill_normal_rows in stream `version`: each row of `out`
/// is one whole sample of dim elements, row r = sample first_sample + r
/// (v2: normal_at_v2(seed, first_sample + r, step, k, dim), k < dim).
/// @throws ddpm::invalid_argument when out.size() is not a multiple of dim or
///         version is not v1 or v2.
inline void fill_normal_rows_scalar(std::span<float> out, std::size_t dim, std::uint64_t seed,
                                    std::uint32_t first_sample, std::uint32_t step, noise_version version) {
    constexpr std::string_view where = "ddpm::random::fill_normal_rows_scalar";
    detail::check_version(where, version);
    const std::size_t rows = detail::rows_of(where, out.size(), dim);
    if (version == noise_version::v1) detail::fill_rows_scalar(out.data(), rows, dim, seed, first_sample, step, 0);
    else detail::fill_rows_v2_scalar(out.data(), rows, dim, dim, seed, first_sample, step, 0);
}

#if DDPM_HAS_XSIMD

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 false positive (PR 105593): the AVX-512 intrinsics' _mm512_undefined_*
// trip -W(maybe-)uninitialized once inlined at -O2/-O3. Scoped to ddpm's SIMD code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

/// The 4·W values of W consecutive blocks: v[j] lane l belongs to element
/// element_of(first_block + l, j). W blocks starting at a multiple of W lie in
/// one group, so v[j] covers the W contiguous elements starting at
/// element_of(first_block, j).
template <class Arch>
struct noise_batches {
    xsimd::batch<float, Arch> v[4];
};

namespace detail {

template <class Arch>
[[nodiscard]] DDPM_FORCEINLINE philox4x32_batch<Arch> noise_block_batch(const philox4x32_key& key, std::uint32_t sample,
                                                                          std::uint32_t step,
                                                                          std::uint64_t first_block) noexcept {
    using ub = xsimd::batch<std::uint32_t, Arch>;
    static_assert(ub::size <= 64, "lane_iota holds 64 lanes");
    DDPM_ASSERT(first_block % ub::size == 0, "first_block must be a multiple of the batch size");
    // first_block is a multiple of W, so lo32(first_block) + l never carries.
    const philox4x32_batch<Arch> c{{ub(static_cast<std::uint32_t>(first_block)) + ub::load_unaligned(lane_iota),
                                    ub(static_cast<std::uint32_t>(first_block >> 32)), ub(sample), ub(step)}};
    return philox4x32_10(c, key);
}

} // namespace detail

/// Standard normals of the W blocks first_block .. first_block + W − 1
/// (first_block a multiple of W, W dividing 16). Bit-identical to normal_at.
template <class Arch = xsimd::default_arch>
[[nodiscard]] DDPM_FORCEINLINE noise_batches<Arch> normal_batches(const philox4x32_key& key, std::uint32_t sample,
                                                                   std::uint32_t step, std::uint64_t first_block) noexcept {
    const philox4x32_batch<Arch> w = detail::noise_block_batch<Arch>(key, sample, step, first_block);
    const normal_pair_batch<Arch> a = box_muller(w.w[0], w.w[1]);
    const normal_pair_batch<Arch> b = box_muller(w.w[2], w.w[3]);
    return {{a.z0, a.z1, b.z0, b.z1}};
}

/// Uniform floats in [0, 1) of the W blocks first_block .. first_block + W − 1.
template <class Arch = xsimd::default_arch>
[[nodiscard]] DDPM_FORCEINLINE noise_batches<Arch> uniform_batches(const philox4x32_key& key, std::uint32_t sample,
                                                                    std::uint32_t step, std::uint64_t first_block) noexcept {
    const philox4x32_batch<Arch> w = detail::noise_block_batch<Arch>(key, sample, step, first_block);
    return {{uniform_float(w.w[0]), uniform_float(w.w[1]), uniform_float(w.w[2]), uniform_float(w.w[3])}};
}

namespace detail {

struct normal_batches_fn {
    template <class Arch>
    DDPM_FORCEINLINE noise_batches<Arch> operator()(Arch, const philox4x32_key& key, std::uint32_t sample,
                                                    std::uint32_t step, std::uint64_t first_block) const noexcept {
        return normal_batches<Arch>(key, sample, step, first_block);
    }
};

struct uniform_batches_fn {
    template <class Arch>
    DDPM_FORCEINLINE noise_batches<Arch> operator()(Arch, const philox4x32_key& key, std::uint32_t sample,
                                                    std::uint32_t step, std::uint64_t first_block) const noexcept {
        return uniform_batches<Arch>(key, sample, step, first_block);
    }
};

/// Writes the 64 values of group g to dst[0..64).
template <class Arch, class Gen>
DDPM_FORCEINLINE void group_simd(Gen gen, const philox4x32_key& key, std::uint32_t sample, std::uint32_t step,
                                 std::uint64_t g, float* dst) noexcept {
    constexpr std::size_t w = xsimd::batch<float, Arch>::size;
    for (std::size_t h = 0; h < noise_group_blocks; h += w) {
        const noise_batches<Arch> nb = gen(Arch{}, key, sample, step, g * noise_group_blocks + h);
        for (std::size_t j = 0; j < 4; ++j) nb.v[j].store_unaligned(dst + noise_group_blocks * j + h);
    }
}

template <class Arch, class Gen>
inline void fill_simd(Gen gen, std::span<float> out, std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                      std::uint64_t first) noexcept {
    if (out.empty()) return;
    const philox4x32_key key = noise_key(seed);
    const std::uint64_t end = first + out.size();
    const std::uint64_t g_last = (end - 1) / noise_group_elements;
    for (std::uint64_t g = first / noise_group_elements;; ++g) {
        const std::uint64_t base = g * noise_group_elements;
        if (base >= first && base + noise_group_elements <= end) {
            group_simd<Arch>(gen, key, sample, step, g, out.data() + (base - first));
        } else {
            // A group cut by either end of the span: compute it whole, copy the overlap.
            alignas(64) float tmp[noise_group_elements];
            group_simd<Arch>(gen, key, sample, step, g, tmp);
            const std::uint64_t lo = std::max(base, first);
            const std::uint64_t hi = std::min(base + noise_group_elements, end);
            std::copy(tmp + (lo - base), tmp + (hi - base), out.data() + (lo - first));
        }
        if (g == g_last) break;
    }
}

} // namespace detail

/// SIMD fill at an explicit xsimd arch: out[k] = normal_at(seed, sample, step,
/// element_offset + k), bit for bit, for any offset and length. Falls back to
/// the scalar reference when the batch size does not divide 16.
template <class Arch = xsimd::default_arch>
inline void fill_normal_simd(std::span<float> out, std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                             std::uint64_t element_offset = 0) noexcept {
    if constexpr (noise_group_blocks % xsimd::batch<float, Arch>::size != 0) {
        fill_normal_scalar(out, seed, sample, step, element_offset);
    } else {
        detail::fill_simd<Arch>(detail::normal_batches_fn{}, out, seed, sample, step, element_offset);
    }
}

/// SIMD fill at an explicit xsimd arch: out[k] = uniform_at(seed, sample, step, element_offset + k).
template <class Arch = xsimd::default_arch>
inline void fill_uniform_simd(std::span<float> out, std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                              std::uint64_t element_offset = 0) noexcept {
    if constexpr (noise_group_blocks % xsimd::batch<float, Arch>::size != 0) {
        fill_uniform_scalar(out, seed, sample, step, element_offset);
    } else {
        detail::fill_simd<Arch>(detail::uniform_batches_fn{}, out, seed, sample, step, element_offset);
    }
}

namespace detail {

/// Rows of fewer than this many elements are drawn across samples (see
/// fill_rows_simd); longer rows one row at a time, where a SIMD fill already
/// computes whole 64-element groups.
inline constexpr std::size_t rows_across_samples_below = noise_group_elements;

/// One Philox block that a tile of short rows uses, and the column of the row
/// that each of its 4 words' values goes to (unused: none).
struct short_block {
    static constexpr std::size_t unused = ~std::size_t(0);
    std::uint64_t block;
    std::size_t at[4];
};

/// The blocks of stream v1 that elements [first, end) use (end − first < 64:
/// at most 2 groups of 16 blocks), element e at column col0 + e − first.
/// Returns how many were written to `out` (room for 32).
inline std::size_t short_blocks_v1(std::uint64_t first, std::uint64_t end, std::size_t col0, short_block* out) noexcept {
    std::size_t count = 0;
    for (std::uint64_t g = first / noise_group_elements; g <= (end - 1) / noise_group_elements; ++g) {
        for (std::uint64_t l = 0; l < noise_group_blocks; ++l) {
            short_block nb{g * noise_group_blocks + l, {short_block::unused, short_block::unused, short_block::unused,
                                                        short_block::unused}};
            bool any = false;
            for (unsigned j = 0; j < 4; ++j) {
                const std::uint64_t e = g * noise_group_elements + l + noise_group_blocks * j; // element_of(block, j)
                if (e >= first && e < end) {
                    nb.at[j] = col0 + static_cast<std::size_t>(e - first);
                    any = true;
                }
            }
            if (any) out[count++] = nb;
        }
    }
    return count;
}

/// The blocks of stream v2's compact tail that elements [first, end) use
/// (whole ≤ first < end ≤ whole + 63, whole = whole_group_elements(D)): at
/// most 16. Element e at column col0 + e − first.
inline std::size_t short_blocks_v2_tail(std::uint64_t whole, std::uint64_t first, std::uint64_t end, std::size_t col0,
                                        short_block* out) noexcept {
    std::size_t count = 0;
    const std::uint64_t base = noise_group_blocks * (whole / noise_group_elements);
    for (std::uint64_t q = (first - whole) / 4u; q <= (end - 1 - whole) / 4u; ++q) {
        short_block nb{base + q, {short_block::unused, short_block::unused, short_block::unused, short_block::unused}};
        for (unsigned j = 0; j < 4; ++j) {
            const std::uint64_t e = whole + 4u * q + j;
            if (e >= first && e < end) nb.at[j] = col0 + static_cast<std::size_t>(e - first);
        }
        out[count++] = nb;
    }
    return count;
}

/// Copies `live` rows of a tile of `cols` columns (column c of lane l at
/// tile[c·W + l]) to row l at dst + l·stride, columns 0..cols−1. Cols is a
/// template argument for the shortest rows, so the compiler can turn the
/// transposition into shuffles and whole-register stores.
template <std::size_t W, std::size_t Cols>
DDPM_FORCEINLINE void tile_to_rows_fixed(const float* tile, float* dst, std::size_t live, std::size_t stride) noexcept {
    if (live == W && stride == Cols) {
        for (std::size_t l = 0; l < W; ++l)
            for (std::size_t c = 0; c < Cols; ++c) dst[l * Cols + c] = tile[c * W + l];
        return;
    }
    for (std::size_t l = 0; l < live; ++l)
        for (std::size_t c = 0; c < Cols; ++c) dst[l * stride + c] = tile[c * W + l];
}

template <std::size_t W>
inline void tile_to_rows(const float* tile, std::size_t cols, float* dst, std::size_t live, std::size_t stride) noexcept {
    switch (cols) {
    case 1: tile_to_rows_fixed<W, 1>(tile, dst, live, stride); return;
    case 2: tile_to_rows_fixed<W, 2>(tile, dst, live, stride); return;
    case 3: tile_to_rows_fixed<W, 3>(tile, dst, live, stride); return;
    case 4: tile_to_rows_fixed<W, 4>(tile, dst, live, stride); return;
    default:
        for (std::size_t l = 0; l < live; ++l)
            for (std::size_t c = 0; c < cols; ++c) dst[l * stride + c] = tile[c * W + l];
    }
}

/// Draws the `count` blocks of `blocks` for rows samples, vectorised *across
/// samples*: the counters of one Philox block for W consecutive samples differ
/// only in their sample word, so one batch holds that block for samples
/// r .. r + W − 1, and the Box–Muller pair (w0, w1) — or (w2, w3) — of that
/// batch gives the values of words 0 and 1 (2 and 3) of each of those samples.
/// Only the word pairs that some column uses are transformed. The blocks'
/// columns lie in [col0, col0 + cols) (cols ≤ 64); row r starts at
/// out + r·stride. The values of W rows are gathered in a tile, a column per
/// batch, and then copied to the rows. Each lane is the scalar computation of
/// the same (seed, sample, step, block), so the values are the scalar ones bit
/// for bit. A last batch of fewer than W rows computes W lanes and stores its
/// rows only.
template <class Arch>
inline void rows_across_samples(float* out, std::size_t rows, std::size_t stride, std::size_t col0, std::size_t cols,
                                const short_block* blocks, std::size_t count, const philox4x32_key& key,
                                std::uint32_t first_sample, std::uint32_t step) noexcept {
    using ub = xsimd::batch<std::uint32_t, Arch>;
    constexpr std::size_t w = ub::size;
    static_assert(w <= 64, "lane_iota holds 64 lanes");
    DDPM_ASSERT(cols <= noise_group_elements && count <= 2 * noise_group_blocks, "a short tile");
    // Tile offsets of each word's value; a word no column uses goes to the
    // spare column `cols` (written, never read: no branches in the loop).
    std::size_t at[2 * noise_group_blocks][4];
    unsigned pairs[2 * noise_group_blocks]; // bit p: pair p is used
    for (std::size_t k = 0; k < count; ++k) {
        pairs[k] = 0;
        for (unsigned j = 0; j < 4; ++j) {
            const bool used = blocks[k].at[j] != short_block::unused;
            at[k][j] = (used ? blocks[k].at[j] - col0 : cols) * w;
            if (used) pairs[k] |= 1u << (j / 2);
        }
    }
    const ub lanes = ub::load_unaligned(lane_iota);
    const ub steps(step);
    // Four batches of W rows at a time (then two, then one): their Philox
    // blocks first, then their Box–Muller transforms, so that independent
    // dependency chains (the transform is one long chain) are in flight
    // together; four measured about 10 % faster than two at D = 1..16 (AVX2).
    alignas(64) float tile[4][(noise_group_elements + 1) * w];
    const auto batches = [&](auto u_const, std::size_t r) {
        constexpr std::size_t u = decltype(u_const)::value;
        ub samples[u];
        for (std::size_t i = 0; i < u; ++i)
            samples[i] = ub(static_cast<std::uint32_t>(first_sample + r + i * w)) + lanes; // wraps like first_sample + r
        for (std::size_t k = 0; k < count; ++k) {
            const std::uint64_t block = blocks[k].block;
            philox4x32_batch<Arch> words[u];
            for (std::size_t i = 0; i < u; ++i)
                words[i] = philox4x32_10(philox4x32_batch<Arch>{{ub(static_cast<std::uint32_t>(block)),
                                                                 ub(static_cast<std::uint32_t>(block >> 32)),
                                                                 samples[i], steps}},
                                         key);
            for (unsigned p = 0; p < 2; ++p) {
                if (!(pairs[k] & (1u << p))) continue;
                for (std::size_t i = 0; i < u; ++i) {
                    const normal_pair_batch<Arch> z = box_muller(words[i].w[2 * p], words[i].w[2 * p + 1]);
                    z.z0.store_aligned(tile[i] + at[k][2 * p]);
                    z.z1.store_aligned(tile[i] + at[k][2 * p + 1]);
                }
            }
        }
        for (std::size_t i = 0; i < u; ++i)
            tile_to_rows<w>(tile[i], cols, out + (r + i * w) * stride + col0, std::min(w, rows - r - i * w), stride);
    };
    std::size_t r = 0;
    for (; r + 3 * w < rows; r += 4 * w) batches(std::integral_constant<std::size_t, 4>{}, r);
    for (; r + w < rows; r += 2 * w) batches(std::integral_constant<std::size_t, 2>{}, r);
    if (r < rows) batches(std::integral_constant<std::size_t, 1>{}, r);
}

/// The rows × dim tile of fill_normal_rows (stream v1) at an explicit arch.
///
/// Short rows (dim < 64) are vectorised across samples (rows_across_samples):
/// only the blocks and word pairs that the elements [first, first + dim) use
/// are computed, per element about one Philox block and one Box–Muller lane,
/// whatever dim is, instead of a whole 64-element group per sample.
template <class Arch>
inline void fill_rows_simd(float* out, std::size_t rows, std::size_t dim, std::uint64_t seed,
                           std::uint32_t first_sample, std::uint32_t step, std::uint64_t first) noexcept {
    if (rows == 0 || dim == 0) return;
    if (dim >= rows_across_samples_below) {
        for (std::size_t r = 0; r < rows; ++r)
            fill_normal_simd<Arch>(std::span<float>(out + r * dim, dim), seed,
                                   static_cast<std::uint32_t>(first_sample + r), step, first);
        return;
    }
    short_block blocks[2 * noise_group_blocks];
    const std::size_t count = short_blocks_v1(first, first + dim, 0, blocks);
    rows_across_samples<Arch>(out, rows, dim, 0, dim, blocks, count, noise_key(seed), first_sample, step);
}

/// Stream v2 at an explicit arch: out[r·count + k] = normal_at_v2(seed,
/// first_sample + r, step, first + k, sample_dim), r < rows, k < count
/// (first + count ≤ sample_dim). The part in whole groups is stream v1
/// (fill_normal_simd row by row, or across samples when it is short); the
/// sample's compact tail is drawn across samples, so a 2-D point costs one
/// Philox lane and one Box–Muller lane.
template <class Arch>
inline void fill_rows_v2_simd(float* out, std::size_t rows, std::size_t count, std::uint64_t sample_dim,
                              std::uint64_t seed, std::uint32_t first_sample, std::uint32_t step,
                              std::uint64_t first) noexcept {
    if (rows == 0 || count == 0) return;
    const std::uint64_t whole = whole_group_elements(sample_dim);
    const std::uint64_t end = first + count;
    const std::uint64_t split = std::clamp(whole, first, end);
    const philox4x32_key key = noise_key(seed);
    short_block blocks[2 * noise_group_blocks];
    if (split > first) {
        const auto head = static_cast<std::size_t>(split - first);
        if (head >= rows_across_samples_below) {
            for (std::size_t r = 0; r < rows; ++r)
                fill_normal_simd<Arch>(std::span<float>(out + r * count, head), seed,
                                       static_cast<std::uint32_t>(first_sample + r), step, first);
        } else {
            const std::size_t n = short_blocks_v1(first, split, 0, blocks);
            rows_across_samples<Arch>(out, rows, count, 0, head, blocks, n, key, first_sample, step);
        }
    }
    if (end > split) {
        const auto col0 = static_cast<std::size_t>(split - first);
        const std::size_t n = short_blocks_v2_tail(whole, split, end, col0, blocks);
        rows_across_samples<Arch>(out, rows, count, col0, static_cast<std::size_t>(end - split), blocks, n, key,
                                  first_sample, step);
    }
}

} // namespace detail

/// fill_normal_rows at an explicit xsimd arch (bit-identical to the scalar
/// reference on every arch).
/// @throws ddpm::invalid_argument when out.size() is not a multiple of dim.
template <class Arch = xsimd::default_arch>
inline void fill_normal_rows_simd(std::span<float> out, std::size_t dim, std::uint64_t seed,
                                  std::uint32_t first_sample, std::uint32_t step, std::uint64_t element_offset = 0) {
    const std::size_t rows = detail::rows_of("ddpm::random::fill_normal_rows_simd", out.size(), dim);
    detail::fill_rows_simd<Arch>(out.data(), rows, dim, seed, first_sample, step, element_offset);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace detail {

/// The SIMD fills of one xsimd arch, as registered for run-time dispatch
/// (ddpm/dispatch/isa.hpp).
struct fill_table {
    using fill_fn = void (*)(std::span<float>, std::uint64_t, std::uint32_t, std::uint32_t, std::uint64_t) noexcept;
    fill_fn normal = nullptr;
    fill_fn uniform = nullptr;
    /// The scalar reference's algorithm (fill_normal_scalar), compiled for the
    /// arch: below one 64-element group it is faster than a SIMD fill, and its
    /// std::fma is one instruction instead of a libm call.
    fill_fn normal_small = nullptr;
    using rows_fn = void (*)(float*, std::size_t, std::size_t, std::uint64_t, std::uint32_t, std::uint32_t,
                             std::uint64_t) noexcept;
    /// fill_rows_simd: a rows × dim tile (fill_normal_rows).
    rows_fn normal_rows = nullptr;
    using rows_v2_fn = void (*)(float*, std::size_t, std::size_t, std::uint64_t, std::uint64_t, std::uint32_t,
                                std::uint32_t, std::uint64_t) noexcept;
    /// fill_rows_v2_simd: a tile of stream v2 (fill_normal_rows with noise_version::v2).
    rows_v2_fn normal_rows_v2 = nullptr;
};

/// The fill_table of `Arch` (instantiated by the arch files only), with
/// `small` as normal_small.
template <class Arch>
constexpr fill_table make_fill_table(fill_table::fill_fn small) noexcept {
    return {&fill_normal_simd<Arch>, &fill_uniform_simd<Arch>, small, &fill_rows_simd<Arch>, &fill_rows_v2_simd<Arch>};
}

} // namespace detail

#endif // DDPM_HAS_XSIMD

/// out[k] = normal_at(seed, sample, step, element_offset + k): the SIMD path
/// when xsimd is available (at the best instruction set linked for run-time
/// dispatch that the CPU has, else at xsimd::default_arch), else the scalar
/// one (the same bits on every path).
inline void fill_normal(std::span<float> out, std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                        std::uint64_t element_offset = 0) noexcept {
#if DDPM_HAS_XSIMD
    if (const auto* t = dispatch::table_nothrow<detail::fill_table>()) t->normal(out, seed, sample, step, element_offset);
    else fill_normal_simd<xsimd::default_arch>(out, seed, sample, step, element_offset);
#else
    fill_normal_scalar(out, seed, sample, step, element_offset);
#endif
}

/// out[k] = uniform_at(seed, sample, step, element_offset + k).
inline void fill_uniform(std::span<float> out, std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                         std::uint64_t element_offset = 0) noexcept {
#if DDPM_HAS_XSIMD
    if (const auto* t = dispatch::table_nothrow<detail::fill_table>()) t->uniform(out, seed, sample, step, element_offset);
    else fill_uniform_simd<xsimd::default_arch>(out, seed, sample, step, element_offset);
#else
    fill_uniform_scalar(out, seed, sample, step, element_offset);
#endif
}

namespace detail {

/// fill_normal_rows without the size check: the dispatched SIMD tile when
/// xsimd is available, else the scalar one (kernels call this per tile).
inline void fill_rows(float* out, std::size_t rows, std::size_t dim, std::uint64_t seed, std::uint32_t first_sample,
                      std::uint32_t step, std::uint64_t first) noexcept {
#if DDPM_HAS_XSIMD
    if (const auto* t = dispatch::table_nothrow<fill_table>(); t != nullptr && t->normal_rows != nullptr)
        t->normal_rows(out, rows, dim, seed, first_sample, step, first);
    else
        fill_rows_simd<xsimd::default_arch>(out, rows, dim, seed, first_sample, step, first);
#else
    fill_rows_scalar(out, rows, dim, seed, first_sample, step, first);
#endif
}

/// Stream v2's tile without checks (see fill_rows_v2_scalar): the dispatched
/// SIMD tile when xsimd is available, else the scalar one.
inline void fill_rows_v2(float* out, std::size_t rows, std::size_t count, std::uint64_t sample_dim, std::uint64_t seed,
                         std::uint32_t first_sample, std::uint32_t step, std::uint64_t first) noexcept {
#if DDPM_HAS_XSIMD
    if (const auto* t = dispatch::table_nothrow<fill_table>(); t != nullptr && t->normal_rows_v2 != nullptr)
        t->normal_rows_v2(out, rows, count, sample_dim, seed, first_sample, step, first);
    else
        fill_rows_v2_simd<xsimd::default_arch>(out, rows, count, sample_dim, seed, first_sample, step, first);
#else
    fill_rows_v2_scalar(out, rows, count, sample_dim, seed, first_sample, step, first);
#endif
}

} // namespace detail

/// A tile of rows: row r of `out` (dim values each, row-major) gets
/// out[r·dim + k] = normal_at(seed, first_sample + r, step, element_offset + k),
/// bit for bit the per-row fill_normal of each row. For short rows (dim < 64)
/// it vectorises across samples (see detail::fill_rows_simd), so B samples of
/// D elements cost about B·D Philox lanes instead of B whole 64-element groups.
/// @throws ddpm::invalid_argument when out.size() is not a multiple of dim
///         (nothing is written).
inline void fill_normal_rows(std::span<float> out, std::size_t dim, std::uint64_t seed, std::uint32_t first_sample,
                             std::uint32_t step, std::uint64_t element_offset = 0) {
    const std::size_t rows = detail::rows_of("ddpm::random::fill_normal_rows", out.size(), dim);
    detail::fill_rows(out.data(), rows, dim, seed, first_sample, step, element_offset);
}

/// fill_normal_rows in stream `version` (see noise_version): each row of `out`
/// is one whole sample of dim elements, row r = sample first_sample + r. v1
/// gives fill_normal_rows(out, dim, seed, first_sample, step); v2 gives
/// out[r·dim + k] = normal_at_v2(seed, first_sample + r, step, k, dim), the
/// same values as v1 where dim is a multiple of 64, and for short samples
/// about half the Philox work per element (one block per 4 elements).
/// @throws ddpm::invalid_argument when out.size() is not a multiple of dim or
///         version is not v1 or v2 (nothing is written).
inline void fill_normal_rows(std::span<float> out, std::size_t dim, std::uint64_t seed, std::uint32_t first_sample,
                             std::uint32_t step, noise_version version) {
    constexpr std::string_view where = "ddpm::random::fill_normal_rows";
    detail::check_version(where, version);
    const std::size_t rows = detail::rows_of(where, out.size(), dim);
    if (version == noise_version::v1) detail::fill_rows(out.data(), rows, dim, seed, first_sample, step, 0);
    else detail::fill_rows_v2(out.data(), rows, dim, dim, seed, first_sample, step, 0);
}

namespace detail {

template <class FillFloat>
inline void fill_widened(std::span<double> out, std::uint64_t first, FillFloat fill) noexcept {
    constexpr std::size_t chunk = 1024;
    alignas(64) float tmp[chunk];
    std::size_t done = 0;
    while (done < out.size()) {
        // The first chunk ends on a group boundary so that later ones start on one.
        const std::uint64_t at = first + done;
        const std::size_t room = chunk - static_cast<std::size_t>(at % noise_group_elements);
        const std::size_t m = std::min(room, out.size() - done);
        fill(std::span<float>(tmp, m), at);
        std::copy(tmp, tmp + m, out.begin() + static_cast<std::ptrdiff_t>(done));
        done += m;
    }
}

} // namespace detail

/// The float normals of fill_normal, widened to double: out[k] =
/// double(normal_at(...)). The stream is defined in float (so that the CPU,
/// SIMD and CUDA paths agree bit for bit); a double buffer gets the same
/// values, exactly representable, not a separate double-precision stream.
inline void fill_normal(std::span<double> out, std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                        std::uint64_t element_offset = 0) noexcept {
    detail::fill_widened(out, element_offset, [&](std::span<float> chunk, std::uint64_t at) noexcept {
        fill_normal(chunk, seed, sample, step, at);
    });
}

/// The float uniforms of fill_uniform, widened to double.
inline void fill_uniform(std::span<double> out, std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                         std::uint64_t element_offset = 0) noexcept {
    detail::fill_widened(out, element_offset, [&](std::span<float> chunk, std::uint64_t at) noexcept {
        fill_uniform(chunk, seed, sample, step, at);
    });
}

/// A UniformRandomBitGenerator over one (seed, sample, step) stream: the n-th
/// call returns bits_at(seed, sample, step, n) (from the element set by seek).
/// uniform() and normal() consume one element each and return uniform_at /
/// normal_at of it. Caches the 64 words of the current group, so walking the
/// elements in order costs one Philox block per 4 elements.
class counter_engine {
public:
    using result_type = std::uint32_t;

    DDPM_HOST_DEVICE constexpr counter_engine(std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                                              std::uint64_t element = 0) noexcept
        : m_key(noise_key(seed)), m_seed(seed), m_sample(sample), m_step(step), m_position(element) {}

    [[nodiscard]] static constexpr result_type min() noexcept { return 0u; }
    [[nodiscard]] static constexpr result_type max() noexcept { return 0xFFFFFFFFu; }

    /// bits_at(seed, sample, step, position()), then advances by one element.
    DDPM_HOST_DEVICE constexpr result_type operator()() noexcept {
        const result_type v = word(m_position);
        ++m_position;
        return v;
    }

    /// uniform_at(seed, sample, step, position()), then advances.
    DDPM_HOST_DEVICE float uniform() noexcept { return uniform_float((*this)()); }

    /// normal_at(seed, sample, step, position()), then advances.
    DDPM_HOST_DEVICE float normal() noexcept {
        const std::uint64_t e = m_position++;
        const unsigned word_index = locate_element(e).word;
        // The pair partner is 16 elements away, in the same group.
        const std::uint64_t first = e - noise_group_blocks * (word_index & 1u);
        const normal_pair z = box_muller(word(first), word(first + noise_group_blocks));
        return (word_index & 1u) ? z.z1 : z.z0;
    }

    DDPM_HOST_DEVICE constexpr void seek(std::uint64_t element) noexcept { m_position = element; }
    DDPM_HOST_DEVICE constexpr void discard(std::uint64_t n) noexcept { m_position += n; }
    [[nodiscard]] DDPM_HOST_DEVICE constexpr std::uint64_t position() const noexcept { return m_position; }
    [[nodiscard]] DDPM_HOST_DEVICE constexpr std::uint64_t seed() const noexcept { return m_seed; }
    [[nodiscard]] DDPM_HOST_DEVICE constexpr std::uint32_t sample() const noexcept { return m_sample; }
    [[nodiscard]] DDPM_HOST_DEVICE constexpr std::uint32_t step() const noexcept { return m_step; }

private:
    DDPM_HOST_DEVICE constexpr std::uint32_t word(std::uint64_t element) noexcept {
        const std::uint64_t g = element / noise_group_elements;
        if (!m_cached || g != m_group) {
            for (std::uint64_t l = 0; l < noise_group_blocks; ++l) {
                const philox4x32_counter w =
                    philox4x32_10(noise_counter(g * noise_group_blocks + l, m_sample, m_step), m_key);
                for (std::uint64_t j = 0; j < 4; ++j) m_words[noise_group_blocks * j + l] = w.w[j];
            }
            m_group = g;
            m_cached = true;
        }
        return m_words[element % noise_group_elements];
    }

    philox4x32_key m_key;
    std::uint64_t m_seed;
    std::uint32_t m_sample;
    std::uint32_t m_step;
    std::uint64_t m_position;
    std::uint64_t m_group = 0;
    bool m_cached = false;
    std::uint32_t m_words[noise_group_elements] = {};
};

} // namespace ddpm::random
