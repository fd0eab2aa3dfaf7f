// ddpm/core/training.hpp — what a training step needs besides the network
// (docs/math.md#training and docs/math.md#parameterisations):
//
//   training_target   the regression target for ε / x_0 / v prediction
//   loss_weighting    per-sample loss weights: none (L_simple), the true ELBO
//   loss_weights      weight (vlb) and min-SNR-γ (Hang et al. 2023)
//   weighted_mse      mean over D of the squared error, times the weight
//   uniform_timestep_sampler      t ~ Uniform{0..T−1} (Algorithm 1)
//   loss_second_moment_sampler    importance sampling on √E[L_t²]
//                                 (Nichol & Dhariwal 2021, improved-diffusion)
//   detail::splitmix64            a small seeded 64-bit generator
//
// Batch-first B × D buffers and one 0-based timestep t ∈ [0, T) per sample,
// as everywhere in ddpm (t = 0 is the paper's t = 1). Every function checks its
// arguments once per call and throws ddpm::invalid_argument before writing
// anything (and, for the samplers, before drawing anything from the
// generator).
//
// Reproducibility: the samplers never use <random> distributions (libstdc++,
// libc++ and MSVC implement std::uniform_int_distribution differently). They
// turn 64-bit words into bounded integers by rejection (detail::uniform_below)
// and into doubles in [0, 1) from the top 53 bits (detail::uniform01), so a
// seed gives the same timesteps on every platform. The importance sampler's
// probabilities are floating-point sums; they are computed in one fixed order,
// so they are identical wherever the compiler does not contract a·b + c into
// an FMA (a contraction could move a cumulative probability by one ulp, which
// changes a draw only if it falls within that ulp of a bin edge).
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/core/forward.hpp"
#include "ddpm/core/types.hpp"
#include "ddpm/error.hpp"
#include "ddpm/schedule/noise_schedule.hpp"
#include "ddpm/schedule/profile.hpp"

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace ddpm {

// ---------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------

/// The regression target of a training step for each sample b at its timestep
/// t_b (docs/math.md#parameterisations):
///
///   prediction_type::epsilon       out = ε                               (L_simple, paper eq. 14)
///   prediction_type::sample        out = x_0
///   prediction_type::v_prediction  out = v = √ᾱ_t ε − √(1 − ᾱ_t) x_0    (Salimans & Ho 2022; get_velocity)
///
/// The network input is x_t = q_sample(x0, noise, timesteps); the loss is
/// weighted_mse(network(x_t, t), out, loss_weights(...)).
///
/// @param s          the noise schedule.
/// @param prediction what the network predicts.
/// @param x0         B·D clean samples.
/// @param noise      B·D draws of ε ~ N(0, I) (the same ones given to q_sample).
/// @param timesteps  B 0-based timesteps in [0, T).
/// @param[out] out   B·D, receives the target. May alias x0 or noise.
/// @throws ddpm::invalid_argument on a size mismatch or a timestep outside
///         [0, T); nothing is written then.
template <input_buffer X, input_buffer N, timestep_buffer Ts, output_buffer O>
void training_target(const noise_schedule& s, prediction_type prediction, const X& x0, const N& noise,
                     const Ts& timesteps, O&& out) {
    using T = detail::value_of<X>;
    constexpr std::string_view where = "ddpm::training_target";
    detail::check_forward(where, s, x0, noise, out, timesteps);
    switch (prediction) {
    case prediction_type::epsilon:
    case prediction_type::sample: {
        const std::span<const T> src =
            prediction == prediction_type::epsilon ? std::span<const T>(as_span(noise)) : as_span(x0);
        auto dst = as_mutable_span(out);
        if (static_cast<const T*>(dst.data()) != src.data()) std::copy(src.begin(), src.end(), dst.begin());
        return;
    }
    case prediction_type::v_prediction:
        // The arguments are valid (checked above), so get_velocity cannot throw.
        get_velocity(s, x0, noise, timesteps, out);
        return;
    }
    detail::throw_invalid(where, "prediction", static_cast<int>(prediction),
                          "epsilon, sample or v_prediction");
}

// ---------------------------------------------------------------------------
// Loss weights
// ---------------------------------------------------------------------------

/// How each sample's squared error is weighted (docs/math.md#training).
enum class loss_weighting {
    none,    ///< 1 for every t: L_simple (Ho et al. 2020, eq. 14).
    vlb,     ///< the true ELBO weight of the KL term L_{t−1} (paper eq. 12), see loss_weights.
    min_snr, ///< min-SNR-γ (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy").
};

[[nodiscard]] constexpr std::string_view to_string(loss_weighting w) noexcept {
    switch (w) {
    case loss_weighting::none: return "none";
    case loss_weighting::vlb: return "vlb";
    case loss_weighting::min_snr: return "min_snr";
    }
    return "?";
}

/// Parses "none", "vlb" or "min_snr".
[[nodiscard]] inline loss_weighting loss_weighting_from_string(std::string_view s) {
    if (s == "none") return loss_weighting::none;
    if (s == "vlb") return loss_weighting::vlb;
    if (s == "min_snr") return loss_weighting::min_snr;
    detail::throw_invalid("ddpm::loss_weighting_from_string", "loss_weighting", s,
                          "one of \"none\", \"vlb\", \"min_snr\"");
}

namespace detail {

[[nodiscard]] constexpr bool is_fixed_small(variance_type v) noexcept {
    return v == variance_type::fixed_small || v == variance_type::fixed_small_log;
}
[[nodiscard]] constexpr bool is_fixed_large(variance_type v) noexcept {
    return v == variance_type::fixed_large || v == variance_type::fixed_large_log;
}

/// σ_t² of p_θ(x_{t−1} | x_t) used by the vlb weight (0-based t).
///
/// fixed_small: β̃_t for t ≥ 1. At t = 0, β̃ = 0 (the paper's L_0 is a decoder
/// term, not a KL), and the clipped value is used: β̃ at index 1 (the paper's
/// β̃_2), i.e. exp(posterior_log_variance_clipped[0]), as improved-diffusion's
/// fixed_small log-variance does; with T = 1, β_0.
/// fixed_large: β_t; at t = 0 the profile decides (conventions().
/// large_log_variance_first: β_0, or β̃ at index 1 for ho2020 and
/// improved_diffusion, whose KL is computed from that log-variance).
[[nodiscard]] inline double vlb_variance_at(const noise_schedule& s, std::size_t t, variance_type v) noexcept {
    const auto& d = s.f64();
    const bool has_next = d.betas.size() > 1;
    if (is_fixed_small(v)) {
        if (t > 0) return d.posterior_variance[t];
        return has_next ? d.posterior_variance[1] : d.betas[0];
    }
    if (t == 0 && has_next && s.conventions().large_log_variance_first == fixed_large_first::posterior_variance_1)
        return d.posterior_variance[1];
    return d.betas[t];
}

/// One weight, arguments already validated (see ddpm::loss_weights).
[[nodiscard]] inline double loss_weight_at(const noise_schedule& s, std::size_t t, loss_weighting weighting,
                                           prediction_type prediction, double gamma, variance_type vlb_variance) noexcept {
    const auto& d = s.f64();
    switch (weighting) {
    case loss_weighting::none: return 1.0;
    case loss_weighting::vlb: {
        const double sigma2 = vlb_variance_at(s, t, vlb_variance);
        const double ab = d.alphas_cumprod[t];
        if (prediction == prediction_type::epsilon) {
            const double beta = d.betas[t];
            // Paper eq. 12: β_t² / (2 σ_t² α_t (1 − ᾱ_t)).
            return beta * beta / (2.0 * sigma2 * d.alphas[t] * (1.0 - ab));
        }
        // μ̃ − μ_θ = c1_t (x_0 − x̂_0), so the x_0 weight is c1² / (2σ²); the v
        // error is (x_0 − x̂_0) / √(1 − ᾱ_t), so the v weight is c1² (1 − ᾱ_t) / (2σ²).
        const double c1 = d.posterior_mean_coef1[t];
        const double w_x0 = c1 * c1 / (2.0 * sigma2);
        return prediction == prediction_type::sample ? w_x0 : w_x0 * (1.0 - ab);
    }
    case loss_weighting::min_snr: {
        const double snr = d.snr[t];
        const double m = std::min(snr, gamma);
        switch (prediction) {
        case prediction_type::epsilon: return snr <= gamma ? 1.0 : gamma / snr; // min(SNR, γ)/SNR, 1 at SNR = 0
        case prediction_type::sample: return m;                                 // min(SNR, γ)
        case prediction_type::v_prediction: return m / (snr + 1.0);             // min(SNR, γ)/(SNR + 1)
        }
        return 1.0;
    }
    }
    return 1.0;
}

} // namespace detail

/// One loss weight per sample, so that weight_b · mean_d (target − prediction)²
/// is the loss of sample b (docs/math.md#training). Weights are computed in double
/// from the float64 tables and rounded to the element type of `out_weights`.
///
///   none     1.
///   vlb      the coefficient of the squared error in the ELBO term
///            L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)), per element, in
///            nats (paper eq. 12; divide by ln 2 for bits):
///              epsilon       β_t² / (2 σ_t² α_t (1 − ᾱ_t))
///              sample        c1_t² / (2 σ_t²) = (the epsilon weight) · SNR_t,  c1_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t)
///              v_prediction  c1_t² (1 − ᾱ_t) / (2 σ_t²) = (the epsilon weight) · ᾱ_t
///            σ_t² is β̃_t (vlb_variance = fixed_small[_log]) or β_t (fixed_large[_log]).
///            With σ² = β̃ the KL is exactly weight · (error)²; with σ² = β it is that
///            plus a term that does not depend on the network.
///            t = 0 (the paper's t = 1): the paper's L_0 is a decoder term and
///            β̃_0 = 0, so fixed_small uses the clipped variance β̃ at index 1
///            (the paper's β̃_2; improved-diffusion's posterior_log_variance_clipped[0]).
///            The weight is then the coefficient of a Gaussian decoder
///            −log N(x_0; μ_θ(x_1, 1), σ²), which has the same formula. fixed_large
///            at t = 0 uses β_0, or β̃ at index 1 where the profile says so
///            (ho2020, improved_diffusion).
///   min_snr  Hang et al. 2023, with SNR_t = ᾱ_t / (1 − ᾱ_t):
///              epsilon       min(SNR, γ) / SNR   (→ 1 as SNR → 0, → γ/SNR as SNR → ∞)
///              sample        min(SNR, γ)
///              v_prediction  min(SNR, γ) / (SNR + 1)
///
/// Each row is one weighting written for the three targets. At a fixed x_t an
/// x_0 error δ is an ε error √SNR_t · δ and a v error δ / √(1 − ᾱ_t), so the
/// same loss has weight w_x0 on x_0, w_x0 / SNR_t on ε and w_x0 (1 − ᾱ_t) on v.
///
/// @param s            the noise schedule.
/// @param weighting    none, vlb or min_snr.
/// @param prediction   what the network predicts (the target's type).
/// @param timesteps    B 0-based timesteps in [0, T).
/// @param[out] out_weights B weights.
/// @param gamma        γ of min-SNR (default 5, the paper's choice); a finite number > 0.
/// @param vlb_variance σ² of the vlb weight: fixed_small (default), fixed_small_log,
///                     fixed_large or fixed_large_log.
/// @throws ddpm::invalid_argument when out_weights.size() != B, B = 0, a
///         timestep is outside [0, T), γ is not finite and > 0, vlb_variance is
///         a learned type, or the weight is infinite (vlb with epsilon
///         prediction at a timestep with ᾱ_t = 0: a zero-terminal-SNR
///         schedule's last step, where ε does not determine x_0; use sample or
///         v_prediction there). Nothing is written then.
template <timestep_buffer Ts, output_buffer W>
void loss_weights(const noise_schedule& s, loss_weighting weighting, prediction_type prediction, const Ts& timesteps,
                  W&& out_weights, double gamma = 5.0, variance_type vlb_variance = variance_type::fixed_small) {
    using V = detail::value_of<W>;
    constexpr std::string_view where = "ddpm::loss_weights";
    const std::size_t B = std::ranges::size(timesteps);
    if (B == 0) detail::throw_invalid(where, "timesteps.size()", 0, ">= 1 (one timestep per sample)");
    detail::check_size(where, "out_weights", as_span(out_weights).size(), B, "(one weight per sample)");
    detail::check_timesteps(where, timesteps, s.size());
    if (!(std::isfinite(gamma) && gamma > 0.0)) detail::throw_invalid(where, "gamma", gamma, "a finite number > 0");
    if (!detail::is_fixed_small(vlb_variance) && !detail::is_fixed_large(vlb_variance))
        detail::throw_invalid(where, "vlb_variance", to_string(vlb_variance),
                              "fixed_small, fixed_small_log, fixed_large or fixed_large_log");
    if (weighting != loss_weighting::none && weighting != loss_weighting::vlb && weighting != loss_weighting::min_snr)
        detail::throw_invalid(where, "weighting", static_cast<int>(weighting), "none, vlb or min_snr");
    if (prediction != prediction_type::epsilon && prediction != prediction_type::sample &&
        prediction != prediction_type::v_prediction)
        detail::throw_invalid(where, "prediction", static_cast<int>(prediction), "epsilon, sample or v_prediction");
    if (weighting == loss_weighting::vlb && prediction == prediction_type::epsilon) {
        std::size_t i = 0;
        for (const auto tv : timesteps) {
            if (!(s.f64().alphas_cumprod[static_cast<std::size_t>(tv)] > 0.0))
                detail::throw_invalid(where, "timesteps[" + std::to_string(i) + "]", static_cast<std::int64_t>(tv),
                                      "a timestep with alphas_cumprod > 0: the vlb weight of epsilon prediction is "
                                      "infinite where alphas_cumprod = 0 (zero terminal SNR); use sample or "
                                      "v_prediction");
            ++i;
        }
    }
    auto w = as_mutable_span(out_weights);
    std::size_t b = 0;
    for (const auto tv : timesteps) {
        w[b] = static_cast<V>(
            detail::loss_weight_at(s, static_cast<std::size_t>(tv), weighting, prediction, gamma, vlb_variance));
        ++b;
    }
}

// ---------------------------------------------------------------------------
// Weighted MSE
// ---------------------------------------------------------------------------

namespace detail {

template <class P, class Tg, class W, class O>
double weighted_mse_impl(std::string_view where, std::span<const P> pred, std::span<const Tg> target,
                         std::span<const W> weights, std::size_t batch, O* out) {
    if (batch == 0) throw_invalid(where, "batch", 0, ">= 1");
    if (pred.size() % batch != 0 || pred.empty())
        throw_invalid(where, "prediction.size()", pred.size(),
                      "a non-zero multiple of batch = " + std::to_string(batch) + " (B samples x D elements)");
    check_size(where, "target", target.size(), pred.size());
    check_size(where, "weights", weights.size(), batch, "(one weight per sample)");
    for (std::size_t b = 0; b < batch; ++b) {
        const double w = static_cast<double>(weights[b]);
        if (!(std::isfinite(w) && w >= 0.0))
            throw_invalid(where, "weights[" + std::to_string(b) + "]", w, "a finite number >= 0");
    }
    const std::size_t D = pred.size() / batch;
    double total = 0.0;
    for (std::size_t b = 0; b < batch; ++b) {
        // Read the weight before writing out[b]: out may alias weights.
        const double w = static_cast<double>(weights[b]);
        double acc = 0.0;
        for (std::size_t i = b * D; i < (b + 1) * D; ++i) {
            const double e = static_cast<double>(pred[i]) - static_cast<double>(target[i]);
            acc += e * e;
        }
        const double loss = w * (acc / static_cast<double>(D));
        if (out != nullptr) (*out)[b] = static_cast<typename O::element_type>(loss);
        total += loss;
    }
    return total / static_cast<double>(batch);
}

} // namespace detail

/// Per-sample weighted mean squared error and its batch mean:
///
///   out_per_sample[b] = weights[b] · (1/D) Σ_d (prediction[b, d] − target[b, d])²
///   return            = (1/B) Σ_b out_per_sample[b]
///
/// as improved-diffusion's `mean_flat((target − model_output)²)` times the
/// sampler's weights, then `.mean()`. Accumulates in double for float and
/// double inputs (a plain scalar loop; SIMD kernels may replace it).
///
/// @param prediction B·D network outputs.
/// @param target     B·D targets (training_target).
/// @param weights    B per-sample weights (loss_weights, and/or a sampler's
///                   importance weights multiplied in), each finite and >= 0.
/// @param batch      B >= 1; prediction.size() must be a non-zero multiple of it.
/// @param[out] out_per_sample B losses; may alias weights.
/// @return the batch mean, in double.
/// @throws ddpm::invalid_argument on a size mismatch, B = 0, D = 0 or a
///         negative or non-finite weight; nothing is written then.
template <input_buffer P, input_buffer Tg, input_buffer W, output_buffer O>
double weighted_mse(const P& prediction, const Tg& target, const W& weights, std::size_t batch, O&& out_per_sample) {
    constexpr std::string_view where = "ddpm::weighted_mse";
    auto out = as_mutable_span(out_per_sample);
    detail::check_size(where, "out_per_sample", out.size(), batch, "(one loss per sample)");
    return detail::weighted_mse_impl(where, as_span(prediction), as_span(target), as_span(weights), batch, &out);
}

/// The batch mean of weighted_mse without the per-sample losses.
template <input_buffer P, input_buffer Tg, input_buffer W>
double weighted_mse(const P& prediction, const Tg& target, const W& weights, std::size_t batch) {
    return detail::weighted_mse_impl<detail::value_of<P>, detail::value_of<Tg>, detail::value_of<W>,
                                     std::span<double>>("ddpm::weighted_mse", as_span(prediction), as_span(target),
                                                        as_span(weights), batch, nullptr);
}

// ---------------------------------------------------------------------------
// Random words
// ---------------------------------------------------------------------------

namespace detail {

/// SplitMix64 (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number
/// generators"; the reference code is Vigna's splitmix64.c): a 64-bit state
/// advanced by the golden-ratio Weyl increment and passed through a mixing
/// function. Satisfies std::uniform_random_bit_generator with full 64-bit
/// words; identical output on every platform. Seed 0 gives
/// 0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F, …
class splitmix64 {
public:
    using result_type = std::uint64_t;

    constexpr explicit splitmix64(std::uint64_t seed = 0) noexcept : m_state(seed) {}

    [[nodiscard]] static constexpr result_type min() noexcept { return 0; }
    [[nodiscard]] static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }

    constexpr result_type operator()() noexcept {
        std::uint64_t z = (m_state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }

    /// The current state (the seed after n draws is seed + n · 0x9E3779B97F4A7C15).
    [[nodiscard]] constexpr std::uint64_t state() const noexcept { return m_state; }

private:
    std::uint64_t m_state;
};

/// A uniform random bit generator whose words cover exactly 2^64 or 2^32
/// values (splitmix64, std::mt19937_64, std::mt19937, ddpm::random's 32-bit
/// counter_engine, …). 32-bit generators are called twice per 64-bit word.
template <class G>
concept word_generator =
    std::uniform_random_bit_generator<std::remove_cvref_t<G>> &&
    (static_cast<std::uint64_t>(std::remove_cvref_t<G>::max() - std::remove_cvref_t<G>::min()) ==
         std::numeric_limits<std::uint64_t>::max() ||
     static_cast<std::uint64_t>(std::remove_cvref_t<G>::max() - std::remove_cvref_t<G>::min()) == 0xFFFFFFFFull);

/// One 64-bit word: a 64-bit generator's next output minus min(), or two
/// 32-bit outputs, the first as the high half.
template <word_generator G>
[[nodiscard]] std::uint64_t next_word(G& g) {
    using R = std::remove_cvref_t<G>;
    if constexpr (static_cast<std::uint64_t>(R::max() - R::min()) == std::numeric_limits<std::uint64_t>::max()) {
        return static_cast<std::uint64_t>(g() - R::min());
    } else {
        const auto hi = static_cast<std::uint64_t>(g() - R::min());
        const auto lo = static_cast<std::uint64_t>(g() - R::min());
        return (hi << 32) | lo;
    }
}

/// An unbiased integer in [0, n), n >= 1: words below 2^64 mod n are rejected
/// and the rest reduced mod n (the count of accepted words is a multiple of n).
/// Expected draws < 2; exactly one when n is a power of two.
template <word_generator G>
[[nodiscard]] std::uint64_t uniform_below(G& g, std::uint64_t n) {
    DDPM_ASSERT(n >= 1, "uniform_below: n must be >= 1");
    const std::uint64_t threshold = (std::uint64_t{0} - n) % n; // 2^64 mod n
    for (;;) {
        const std::uint64_t x = next_word(g);
        if (x >= threshold) return x % n;
    }
}

/// A double in [0, 1) with 53 random bits: (word >> 11) · 2^−53.
template <word_generator G>
[[nodiscard]] double uniform01(G& g) {
    return static_cast<double>(next_word(g) >> 11) * 0x1.0p-53;
}

inline void check_sample_outputs(std::string_view where, std::span<timestep_t> t_out,
                                 std::span<double> weights_out) {
    check_size(where, "weights_out", weights_out.size(), t_out.size(), "(= t_out.size(), one weight per draw)");
}

} // namespace detail

// ---------------------------------------------------------------------------
// Timestep samplers
// ---------------------------------------------------------------------------

/// t ~ Uniform{0, …, T−1} (Algorithm 1; improved-diffusion's UniformSampler),
/// with importance weight 1.
class uniform_timestep_sampler {
public:
    /// @throws ddpm::invalid_argument unless num_timesteps >= 1.
    explicit uniform_timestep_sampler(std::int64_t num_timesteps) : m_num_timesteps(num_timesteps) {
        if (num_timesteps < 1)
            detail::throw_invalid("ddpm::uniform_timestep_sampler", "num_timesteps", num_timesteps, ">= 1");
    }

    /// T, from a schedule.
    explicit uniform_timestep_sampler(const noise_schedule& s) : uniform_timestep_sampler(s.size()) {}

    [[nodiscard]] std::int64_t num_timesteps() const noexcept { return m_num_timesteps; }

    /// Fills t_out with independent uniform timesteps and weights_out with 1.
    /// Each draw consumes one 64-bit word, or more on a (rare) rejection.
    /// @param rng any generator with full 64- or 32-bit words (detail::word_generator).
    /// @throws ddpm::invalid_argument unless weights_out.size() == t_out.size();
    ///         nothing is drawn or written then.
    template <detail::word_generator G>
    void sample(G& rng, std::span<timestep_t> t_out, std::span<double> weights_out) const {
        detail::check_sample_outputs("ddpm::uniform_timestep_sampler::sample", t_out, weights_out);
        const auto n = static_cast<std::uint64_t>(m_num_timesteps);
        for (std::size_t i = 0; i < t_out.size(); ++i) {
            t_out[i] = static_cast<timestep_t>(detail::uniform_below(rng, n));
            weights_out[i] = 1.0;
        }
    }

private:
    std::int64_t m_num_timesteps;
};

/// Importance sampling of timesteps on the second moment of their losses
/// (Nichol & Dhariwal 2021, §3.3; improved-diffusion's LossSecondMomentResampler).
///
/// update() records each t's last `history_per_term` losses. Until every t
/// has that many, sample() draws uniformly (exactly as uniform_timestep_sampler
/// with the same generator) with weight 1. After that,
///
///   p_t ∝ √(mean of the recorded L_t²),  p = p · (1 − uniform_prob) + uniform_prob / T,
///
/// t is drawn by inverse CDF from one uniform double, and its importance
/// weight is 1 / (T · p_t), so that E[w · L_t] under p equals the uniform
/// mean of L_t. If every recorded loss is 0, p is uniform (improved-diffusion
/// would divide by zero).
class loss_second_moment_sampler {
public:
    /// @param num_timesteps    T >= 1.
    /// @param history_per_term losses kept per timestep, >= 1 (default 10).
    /// @param uniform_prob     mass mixed in uniformly, in [0, 1] (default 0.001).
    /// @throws ddpm::invalid_argument on any argument outside those ranges.
    explicit loss_second_moment_sampler(std::int64_t num_timesteps, std::size_t history_per_term = 10,
                                        double uniform_prob = 0.001)
        : m_num_timesteps(num_timesteps), m_history_per_term(history_per_term), m_uniform_prob(uniform_prob) {
        constexpr std::string_view where = "ddpm::loss_second_moment_sampler";
        if (num_timesteps < 1) detail::throw_invalid(where, "num_timesteps", num_timesteps, ">= 1");
        if (history_per_term < 1) detail::throw_invalid(where, "history_per_term", history_per_term, ">= 1");
        if (!(uniform_prob >= 0.0 && uniform_prob <= 1.0))
            detail::throw_invalid(where, "uniform_prob", uniform_prob, "in [0, 1]");
        const auto T = static_cast<std::size_t>(num_timesteps);
        m_history.assign(T * history_per_term, 0.0);
        m_counts.assign(T, 0);
        m_rms.assign(T, 0.0);
        m_probabilities.assign(T, 1.0 / static_cast<double>(T));
        m_cdf.assign(T, 0.0);
        m_weights.assign(T, 1.0);
    }

    /// T, from a schedule.
    explicit loss_second_moment_sampler(const noise_schedule& s, std::size_t history_per_term = 10,
                                        double uniform_prob = 0.001)
        : loss_second_moment_sampler(s.size(), history_per_term, uniform_prob) {}

    [[nodiscard]] std::int64_t num_timesteps() const noexcept { return m_num_timesteps; }
    [[nodiscard]] std::size_t history_per_term() const noexcept { return m_history_per_term; }
    [[nodiscard]] double uniform_prob() const noexcept { return m_uniform_prob; }

    /// True once every timestep has history_per_term recorded losses.
    [[nodiscard]] bool warmed_up() const noexcept { return m_num_full == m_counts.size(); }

    /// The recorded losses of timestep t, oldest first (up to history_per_term).
    /// @throws ddpm::invalid_argument unless t ∈ [0, T).
    [[nodiscard]] std::span<const double> history(std::int64_t t) const {
        if (t < 0 || t >= m_num_timesteps)
            detail::throw_invalid("ddpm::loss_second_moment_sampler::history", "t", t,
                                  "in [0, " + std::to_string(m_num_timesteps) + ")");
        const auto i = static_cast<std::size_t>(t);
        return {m_history.data() + i * m_history_per_term, m_counts[i]};
    }

    /// The sampling distribution p (uniform before warm-up); sums to 1.
    [[nodiscard]] std::span<const double> probabilities() const noexcept { return m_probabilities; }

    /// Records one loss per timestep (improved-diffusion's update_with_all_losses):
    /// a full history drops its oldest loss. Duplicated timesteps are recorded
    /// in order.
    /// @param timesteps 0-based timesteps in [0, T).
    /// @param losses    one finite loss per timestep (float or double).
    /// @throws ddpm::invalid_argument on a size mismatch, a timestep outside
    ///         [0, T) or a non-finite loss; nothing is recorded then.
    template <timestep_buffer Ts, input_buffer L>
    void update(const Ts& timesteps, const L& losses) {
        constexpr std::string_view where = "ddpm::loss_second_moment_sampler::update";
        const auto l = as_span(losses);
        detail::check_size(where, "losses", l.size(), std::ranges::size(timesteps), "(one loss per timestep)");
        detail::check_timesteps(where, timesteps, m_num_timesteps);
        for (std::size_t i = 0; i < l.size(); ++i)
            if (!std::isfinite(static_cast<double>(l[i])))
                detail::throw_invalid(where, "losses[" + std::to_string(i) + "]", static_cast<double>(l[i]),
                                      "a finite number");
        const std::size_t H = m_history_per_term;
        std::size_t i = 0;
        for (const auto tv : timesteps) {
            const auto t = static_cast<std::size_t>(tv);
            double* h = m_history.data() + t * H;
            const double loss = static_cast<double>(l[i++]);
            if (m_counts[t] == H) {
                std::copy(h + 1, h + H, h); // shift out the oldest loss
                h[H - 1] = loss;
            } else {
                h[m_counts[t]++] = loss;
                if (m_counts[t] == H) ++m_num_full;
            }
        }
        for (const auto tv : timesteps) {
            const auto t = static_cast<std::size_t>(tv);
            if (m_counts[t] == H) m_rms[t] = rms(m_history.data() + t * H, H);
        }
        if (warmed_up()) rebuild();
    }

    /// Draws t_out.size() timesteps and their importance weights 1/(T · p_t)
    /// (1 before warm-up). Before warm-up each draw is uniform_below(T), as in
    /// uniform_timestep_sampler; after it, each draw consumes one 64-bit word.
    /// @throws ddpm::invalid_argument unless weights_out.size() == t_out.size();
    ///         nothing is drawn or written then.
    template <detail::word_generator G>
    void sample(G& rng, std::span<timestep_t> t_out, std::span<double> weights_out) const {
        detail::check_sample_outputs("ddpm::loss_second_moment_sampler::sample", t_out, weights_out);
        if (!warmed_up()) {
            const auto n = static_cast<std::uint64_t>(m_num_timesteps);
            for (std::size_t i = 0; i < t_out.size(); ++i) {
                t_out[i] = static_cast<timestep_t>(detail::uniform_below(rng, n));
                weights_out[i] = 1.0;
            }
            return;
        }
        const double total = m_cdf.back();
        for (std::size_t i = 0; i < t_out.size(); ++i) {
            const double u = detail::uniform01(rng) * total;
            // First bin whose cumulative probability exceeds u: never a bin with p = 0.
            auto k = static_cast<std::size_t>(std::upper_bound(m_cdf.begin(), m_cdf.end(), u) - m_cdf.begin());
            if (k >= m_cdf.size()) k = m_last_positive; // u rounded up to the total
            t_out[i] = static_cast<timestep_t>(k);
            weights_out[i] = m_weights[k];
        }
    }

private:
    /// √(mean of x²), scaled by max |x| so that squares cannot overflow.
    [[nodiscard]] static double rms(const double* x, std::size_t n) noexcept {
        double m = 0.0;
        for (std::size_t i = 0; i < n; ++i) m = std::max(m, std::abs(x[i]));
        if (m == 0.0) return 0.0;
        double acc = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
            const double r = x[i] / m;
            acc += r * r;
        }
        return m * std::sqrt(acc / static_cast<double>(n));
    }

    /// p, its cumulative sums and the importance weights, from m_rms.
    void rebuild() {
        const std::size_t T = m_rms.size();
        const double Td = static_cast<double>(T);
        const double peak = *std::max_element(m_rms.begin(), m_rms.end());
        if (peak == 0.0) {
            std::fill(m_probabilities.begin(), m_probabilities.end(), 1.0 / Td);
        } else {
            double sum = 0.0; // of rms / peak: in [1, T], no overflow
            for (const double r : m_rms) sum += r / peak;
            for (std::size_t t = 0; t < T; ++t)
                m_probabilities[t] = (m_rms[t] / peak / sum) * (1.0 - m_uniform_prob) + m_uniform_prob / Td;
        }
        double acc = 0.0;
        for (std::size_t t = 0; t < T; ++t) {
            acc += m_probabilities[t];
            m_cdf[t] = acc;
            m_weights[t] = 1.0 / (Td * m_probabilities[t]); // +inf where p = 0: never drawn
            if (m_probabilities[t] > 0.0) m_last_positive = t;
        }
    }

    std::int64_t m_num_timesteps;
    std::size_t m_history_per_term;
    double m_uniform_prob;
    std::vector<double> m_history;       ///< T × history_per_term, oldest first
    std::vector<std::size_t> m_counts;   ///< losses recorded per t (<= history_per_term)
    std::size_t m_num_full = 0;          ///< timesteps with a full history
    std::vector<double> m_rms;           ///< √(mean L²) per t (valid once full)
    std::vector<double> m_probabilities; ///< p_t
    std::vector<double> m_cdf;           ///< Σ_{s<=t} p_s
    std::vector<double> m_weights;       ///< 1 / (T p_t)
    std::size_t m_last_positive = 0;     ///< the last t with p_t > 0
};

} // namespace ddpm
