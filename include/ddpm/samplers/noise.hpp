// ddpm/samplers/noise.hpp — where a sampler's Gaussian noise comes from.
//
// ## Named requirement: NoiseSource<T>
//
// A type `N` satisfies `ddpm::noise_source<N, T>` when, for an lvalue `n`:
//
// | expression           | requirement                                                           |
// |----------------------|-----------------------------------------------------------------------|
// | `n.fill(out, step)`  | `out`: `std::span<T>` (B·D elements, batch-first); `step`: `std::uint64_t` |
//
// Semantics: writes B·D independent standard normal draws into `out`. `step`
// is the position in the chain: 0 for the initial x_T, i + 1 for the noise z
// added by the i-th step (i counts from 0 at the first, noisiest step). A
// sampler never asks twice for the same step in one run, and does not ask for
// the steps that add no noise (the last DDPM step; every DDIM step with η = 0).
//
// A counter-based generator keys its stream on (seed, sample, step, element)
// and so is reproducible however the batch is split; it knows the per-sample
// size D from its construction and splits `out` into out.size()/D samples.
// A stream generator (std::mt19937_64 through `urbg_normal_noise`) ignores
// `step` and draws in call order, which is deterministic for a given URBG
// state. `buffer_noise` replays caller buffers (parity tests inject a peer's
// exact noise that way).
#pragma once

#include "ddpm/error.hpp"
#include "ddpm/kernels/fused.hpp"
#include "ddpm/random/counter_noise.hpp"

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <numbers>
#include <random>
#include <span>
#include <string>
#include <type_traits>

namespace ddpm {

/// Something that fills a batch with standard normal draws for chain step `step`.
template <class N, class T>
concept noise_source = std::floating_point<T> && requires(std::remove_reference_t<N>& n, std::span<T> out,
                                                          std::uint64_t step) { n.fill(out, step); };

template <class N, class T>
inline constexpr bool is_noise_source_v = noise_source<N, T>;

namespace detail {

/// 64 uniformly distributed bits from any URBG, independent of the standard
/// library (std::generate_canonical differs between libstdc++ and libc++).
/// A full 64- or 32-bit range is used directly; other ranges are reduced to
/// their largest power of two by rejection.
template <std::uniform_random_bit_generator G>
[[nodiscard]] std::uint64_t uniform_bits64(G& g) {
    using R = typename G::result_type;
    constexpr auto lo = static_cast<std::uint64_t>(G::min());
    constexpr auto hi = static_cast<std::uint64_t>(G::max());
    constexpr std::uint64_t span = hi - lo; // range − 1
    if constexpr (span == std::numeric_limits<std::uint64_t>::max()) {
        return static_cast<std::uint64_t>(static_cast<R>(g()) - static_cast<R>(lo));
    } else {
        // bits per draw: the largest k with 2^k − 1 <= span
        constexpr unsigned k = [] {
            unsigned b = 0;
            while (b < 63 && ((std::uint64_t{1} << (b + 1)) - 1) <= span) ++b;
            return b;
        }();
        static_assert(k >= 1, "ddpm::urbg_normal_noise: the generator must produce at least 1 bit per call");
        constexpr std::uint64_t mask = (std::uint64_t{1} << k) - 1;
        std::uint64_t acc = 0;
        unsigned have = 0;
        while (have < 64) {
            std::uint64_t v;
            do {
                v = static_cast<std::uint64_t>(g()) - lo;
            } while (v > mask); // rejection keeps the k bits uniform
            acc = (have == 0) ? v : ((acc << k) | v);
            have += k;
        }
        return acc;
    }
}

/// Box–Muller from two 64-bit words: u1 ∈ (0, 1] and u2 ∈ [0, 1) with 53
/// bits each; returns (r cos θ, r sin θ), r = √(−2 ln u1), θ = 2π u2.
struct normal_pair {
    double z0;
    double z1;
};
[[nodiscard]] inline normal_pair box_muller(std::uint64_t a, std::uint64_t b) noexcept {
    constexpr double scale = 1.0 / 9007199254740992.0; // 2^−53
    const double u1 = static_cast<double>((a >> 11) + 1) * scale; // (0, 1]
    const double u2 = static_cast<double>(b >> 11) * scale;       // [0, 1)
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double theta = 2.0 * std::numbers::pi * u2;
    return {r * std::cos(theta), r * std::sin(theta)};
}

} // namespace detail

/// Standard normal noise from any std::uniform_random_bit_generator, by the
/// Box–Muller transform written here (so that the stream is the same with
/// every standard library). Holds a reference to the generator; each fill()
/// draws out.size() values in order, two per pair of 64-bit words (an odd
/// last value discards its partner). Ignores `step`. Computed in double and
/// rounded to T.
template <std::uniform_random_bit_generator G>
class urbg_normal_noise {
public:
    explicit urbg_normal_noise(G& generator) noexcept : m_gen(&generator) {}

    template <std::floating_point T>
    void fill(std::span<T> out, std::uint64_t /*step*/) {
        std::size_t i = 0;
        for (; i + 1 < out.size(); i += 2) {
            const std::uint64_t a = detail::uniform_bits64(*m_gen);
            const std::uint64_t b = detail::uniform_bits64(*m_gen);
            const auto z = detail::box_muller(a, b);
            out[i] = static_cast<T>(z.z0);
            out[i + 1] = static_cast<T>(z.z1);
        }
        if (i < out.size()) {
            const std::uint64_t a = detail::uniform_bits64(*m_gen);
            const std::uint64_t b = detail::uniform_bits64(*m_gen);
            out[i] = static_cast<T>(detail::box_muller(a, b).z0);
        }
    }

    [[nodiscard]] G& generator() const noexcept { return *m_gen; }

private:
    G* m_gen;
};

/// Replays caller-supplied noise: slot `step` is the `out.size()` values at
/// offset step·out.size() of the buffer (slot 0 = x_T, slot i + 1 = the noise
/// of step i). Throws ddpm::invalid_argument when the buffer is too short.
template <std::floating_point T>
class buffer_noise {
public:
    explicit buffer_noise(std::span<const T> values) noexcept : m_values(values) {}

    void fill(std::span<T> out, std::uint64_t step) const {
        const std::uint64_t n = out.size();
        if (n != 0 && (step >= m_values.size() / n))
            detail::throw_invalid("ddpm::buffer_noise::fill", "step", step,
                                  "< " + std::to_string(n == 0 ? 0 : m_values.size() / n) +
                                      " (the buffer holds that many slots of " + std::to_string(n) + " values)");
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = m_values[static_cast<std::size_t>(step * n) + i];
    }

private:
    std::span<const T> m_values;
};

/// Counter-based noise (ddpm/random/): the value for element i of sample b
/// (of D elements) at chain step s is random::normal_at_v2(seed,
/// first_sample + b, s, i, D) in the default stream v2, or
/// random::normal_at(seed, first_sample + b, s, i) when constructed with
/// random::noise_version::v1 (the stream before v2; the same values when
/// D mod 64 is 0 or 1) — the same on one thread or many, in any batch split,
/// on the CPU or the GPU. The samplers draw it inside their fused step kernels
/// (no noise buffer), so it is also the fastest source. `step` follows the
/// noise_source convention (0 = x_T, i + 1 = the noise of step i).
///
/// fill(out, step) on its own needs the per-sample size: pass `dim` (D) at
/// construction, or leave it 0 to treat `out` as one sample. The samplers
/// call fill_rows(out, step, D) and know D themselves.
///
///     ddpm::counter_noise noise(seed, dim);                                  // stream v2
///     ddpm::counter_noise v1(seed, dim, 0, ddpm::random::noise_version::v1); // stream v1
class counter_noise {
public:
    /// A version other than v1 or v2 is reported (ddpm::invalid_argument) by
    /// fill, fill_rows and stream.
    explicit constexpr counter_noise(std::uint64_t seed, std::size_t dim = 0, std::uint32_t first_sample = 0,
                                     random::noise_version version = random::noise_version::v2) noexcept
        : m_seed(seed), m_dim(dim), m_first_sample(first_sample), m_version(version) {}

    template <std::floating_point T>
    void fill(std::span<T> out, std::uint64_t step) const {
        fill_rows(out, step, m_dim == 0 ? out.size() : m_dim);
    }

    /// out holds out.size()/dim samples of dim elements.
    template <std::floating_point T>
    void fill_rows(std::span<T> out, std::uint64_t step, std::size_t dim) const {
        if (dim == 0 || out.size() % dim != 0)
            detail::throw_invalid("ddpm::counter_noise::fill", "out.size()", out.size(),
                                  "a multiple of the sample size D = " + std::to_string(dim));
        check_step(step);
        random::detail::check_version("ddpm::counter_noise::fill", m_version);
        const auto s = static_cast<std::uint32_t>(step);
        if constexpr (std::is_same_v<T, float>) {
            if (m_version == random::noise_version::v2) {
                random::fill_normal_rows(out, dim, m_seed, m_first_sample, s, m_version);
                return;
            }
        }
        for (std::size_t b = 0; b < out.size() / dim; ++b) {
            const auto sample = static_cast<std::uint32_t>(m_first_sample + b);
            const std::span<T> row = out.subspan(b * dim, dim);
            if (m_version == random::noise_version::v1) {
                random::fill_normal(row, m_seed, sample, s);
                continue;
            }
            // double in v2: the float stream, widened (as fill_normal widens
            // v1), through a chunk on the stack (no allocation in a sampling loop).
            constexpr std::size_t chunk = 1024;
            alignas(64) float tmp[chunk];
            for (std::size_t at = 0; at < dim; at += chunk) {
                const std::size_t n = std::min(chunk, dim - at);
                random::detail::fill_rows_v2(tmp, 1, n, dim, m_seed, sample, s, at);
                std::copy(tmp, tmp + n, row.begin() + static_cast<std::ptrdiff_t>(at));
            }
        }
    }

    /// The stream of chain step `step`, for the fused kernels.
    [[nodiscard]] kernels::noise_stream stream(std::uint64_t step) const {
        check_step(step);
        random::detail::check_version("ddpm::counter_noise::stream", m_version);
        return {m_seed, static_cast<std::uint32_t>(step), m_first_sample, m_version};
    }

    [[nodiscard]] std::uint64_t seed() const noexcept { return m_seed; }
    [[nodiscard]] random::noise_version version() const noexcept { return m_version; }

private:
    static void check_step(std::uint64_t step) {
        if (step > 0xFFFFFFFFu) detail::throw_invalid("ddpm::counter_noise", "step", step, "< 2^32");
    }

    std::uint64_t m_seed;
    std::size_t m_dim;
    std::uint32_t m_first_sample;
    random::noise_version m_version;
};

/// A source that writes zeros: the mean of every step (for tests and for
/// "noise-free" DDPM rollouts).
struct zero_noise {
    template <std::floating_point T>
    void fill(std::span<T> out, std::uint64_t /*step*/) const noexcept {
        for (auto& v : out) v = T(0);
    }
};

} // namespace ddpm
