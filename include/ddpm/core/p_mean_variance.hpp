// ddpm/core/p_mean_variance.hpp — the reverse-step distribution
// p_θ(x_{t−1} | x_t) = N(μ_θ, σ_t²) from a network output (docs/math.md
// #parameterisations and docs/math.md#reverse-process-variance).
//
// μ_θ is always the posterior mean μ̃_t(x̂_0, x_t) of the (optionally clipped)
// x̂_0; without clipping this equals the ε-form of paper eq. 11. The variance
// rules per profile are in core/coefficients.hpp and docs/conventions.md.
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/core/clipping.hpp"
#include "ddpm/core/coefficients.hpp"
#include "ddpm/core/types.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

#include <cmath>
#include <type_traits>
#include <vector>

namespace ddpm {

/// What the network predicts and how the reverse step treats it.
struct model_options {
    prediction_type prediction = prediction_type::epsilon;
    variance_type variance = variance_type::fixed_small;
    clip_options clip = clip_options::none();
};

namespace detail {

/// Channels of the network output per element of x_t: 2 when it also predicts
/// a variance.
constexpr std::size_t output_channels(variance_type v) noexcept { return is_learned(v) ? 2 : 1; }

/// Checks a model_output of B·D (or B·2D when the variance is learned).
inline void check_model_output(std::string_view where, variance_type var, std::size_t got, batch_shape shape) {
    const std::size_t expected = output_channels(var) * shape.elements();
    if (got != expected)
        throw_invalid(where, "model_output.size()", got,
                      std::to_string(expected) + (is_learned(var)
                                                      ? " (B x 2D: a learned variance doubles the channels)"
                                                      : " (B x D)"));
}

} // namespace detail

/// Mean, variance, log-variance and x̂_0 of p_θ(x_{t−1} | x_t) for a batch.
///
/// @param model_output B·D network outputs, or B·2D for learned /
///        learned_range (per sample: the D predictions, then the D variance
///        values — channel concatenation in NCHW).
/// @param xt          B·D current samples.
/// @param timesteps   B 0-based timesteps in [0, T).
/// @param mean, variance, log_variance, pred_x0  B·D each (variance is per
///        element because a learned variance is).
/// @throws ddpm::invalid_argument on any size mismatch, a timestep outside
///         [0, T), bad clip options, or a learned-variance output with the
///         wrong channel count; nothing is written then.
template <input_buffer MO, input_buffer X, timestep_buffer Ts, output_buffer M, output_buffer V, output_buffer L,
          output_buffer P>
void p_mean_variance(const noise_schedule& s, const model_options& opt, const MO& model_output, const X& xt,
                     const Ts& timesteps, M&& mean, V&& variance, L&& log_variance, P&& pred_x0) {
    using T = detail::value_of<X>;
    static_assert(std::is_same_v<T, detail::value_of<MO>> && std::is_same_v<T, detail::value_of<M>> &&
                      std::is_same_v<T, detail::value_of<V>> && std::is_same_v<T, detail::value_of<L>> &&
                      std::is_same_v<T, detail::value_of<P>>,
                  "ddpm::p_mean_variance: every buffer must share one element type");
    constexpr std::string_view where = "ddpm::p_mean_variance";
    const auto shape = detail::shape_from(where, std::ranges::size(timesteps), "xt", as_span(xt).size());
    detail::check_model_output(where, opt.variance, as_span(model_output).size(), shape);
    detail::check_size(where, "mean", as_span(mean).size(), shape.elements());
    detail::check_size(where, "variance", as_span(variance).size(), shape.elements());
    detail::check_size(where, "log_variance", as_span(log_variance).size(), shape.elements());
    detail::check_size(where, "pred_x0", as_span(pred_x0).size(), shape.elements());
    detail::check_timesteps(where, timesteps, s.size());
    opt.clip.validate(where);

    const auto out = as_span(model_output);
    const auto x = as_span(xt);
    auto m = as_mutable_span(mean);
    auto v = as_mutable_span(variance);
    auto lv = as_mutable_span(log_variance);
    auto x0 = as_mutable_span(pred_x0);
    const std::size_t D = shape.dim;
    const std::size_t stride = detail::output_channels(opt.variance) * D;
    const bool diffusers = s.profile() == profile::diffusers;

    // x̂_0, then clipping on the whole batch (thresholding is per sample).
    std::size_t b = 0;
    for (const auto tv : timesteps) {
        const auto t = static_cast<std::int64_t>(tv);
        const auto c = reverse_step_coefficients<T>(s, t, t - 1, opt.prediction, opt.variance);
        for (std::size_t i = 0; i < D; ++i)
            x0[b * D + i] = kernels::scalar::predict_x0(c, x[b * D + i], out[b * stride + i]);
        ++b;
    }
    std::vector<T> scratch(opt.clip.kind == clip_options::mode::dynamic_threshold ? 2 * D : 0);
    apply_clipping<T>(opt.clip, x0, D, scratch);

    b = 0;
    for (const auto tv : timesteps) {
        const auto t = static_cast<std::int64_t>(tv);
        const auto c = reverse_step_coefficients<T>(s, t, t - 1, opt.prediction, opt.variance);
        for (std::size_t i = 0; i < D; ++i) {
            const std::size_t k = b * D + i;
            m[k] = kernels::scalar::posterior_mean(x0[k], x[k], c.mean_coef_x0, c.mean_coef_xt);
            switch (opt.variance) {
            case variance_type::learned: {
                const T raw = out[b * stride + D + i];
                // improved-diffusion: the output is log σ²; diffusers: it is σ².
                lv[k] = diffusers ? std::log(raw) : raw;
                v[k] = diffusers ? raw : std::exp(raw);
                break;
            }
            case variance_type::learned_range: {
                const T frac = (out[b * stride + D + i] + T(1)) / T(2);
                lv[k] = frac * c.max_log + (T(1) - frac) * c.min_log;
                v[k] = std::exp(lv[k]);
                break;
            }
            default:
                v[k] = c.variance;
                lv[k] = c.log_variance;
                break;
            }
        }
        ++b;
    }
}

} // namespace ddpm
