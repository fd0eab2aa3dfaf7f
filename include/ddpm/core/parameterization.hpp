// ddpm/core/parameterization.hpp — converting between what a network predicts
// (ε, x_0, v) and what a step needs (docs/math.md#parameterisations):
//
//   prediction | x̂_0                         | ε̂
//   epsilon    | (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t     | ε̂
//   sample     | x̂_0                         | (x_t − √ᾱ_t x̂_0)/√(1−ᾱ_t)
//   v          | √ᾱ_t x_t − √(1−ᾱ_t) v̂       | √(1−ᾱ_t) x_t + √ᾱ_t v̂
//
// and v̂ = √ᾱ_t ε̂ − √(1−ᾱ_t) x̂_0. Written with improved-diffusion's tables
// (x̂_0 = √(1/ᾱ) x_t − √(1/ᾱ − 1) ε̂). Batch-first, one 0-based t per sample.
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/core/types.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

#include <type_traits>

namespace ddpm {

namespace detail {

template <class T, class Ts, class F>
void convert(std::string_view where, const noise_schedule& s, std::span<const T> model_output, std::span<const T> xt,
             const Ts& timesteps, std::span<T> out, F f) {
    const auto shape = shape_from(where, std::ranges::size(timesteps), "model_output", model_output.size());
    check_size(where, "xt", xt.size(), shape.elements());
    check_size(where, "out", out.size(), shape.elements());
    check_timesteps(where, timesteps, s.size());
    const auto& d = s.f64();
    std::size_t b = 0;
    for (const auto tv : timesteps) {
        const auto t = static_cast<std::size_t>(tv);
        const auto [cx, cm] = f(d, t); // out = cx·x_t + cm·model_output
        const T a = static_cast<T>(cx);
        const T c = static_cast<T>(cm);
        for (std::size_t i = b * shape.dim; i < (b + 1) * shape.dim; ++i) out[i] = a * xt[i] + c * model_output[i];
        ++b;
    }
}

struct pair_coef {
    double x;
    double m;
};

/// The linear map (x_t, model_output) → target for one timestep.
inline pair_coef conversion(const schedule_tables<double>& d, std::size_t t, prediction_type from,
                            prediction_type to) {
    const double sa = d.sqrt_alphas_cumprod[t];
    const double s1 = d.sqrt_one_minus_alphas_cumprod[t];
    const double ra = d.sqrt_recip_alphas_cumprod[t];
    const double rm1 = d.sqrt_recipm1_alphas_cumprod[t];
    if (from == to) return {0.0, 1.0};
    switch (from) {
    case prediction_type::epsilon:
        if (to == prediction_type::sample) return {ra, -rm1};
        // v = √ᾱ ε − √(1−ᾱ) x̂_0 = √ᾱ ε − √(1−ᾱ)(x/√ᾱ − √(1/ᾱ−1) ε) = −√(1/ᾱ−1)·x + (1/√ᾱ)·ε
        return {-rm1, ra};
    case prediction_type::sample:
        if (to == prediction_type::epsilon) return {ra / rm1, -1.0 / rm1};
        // v = √ᾱ ε̂ − √(1−ᾱ) x̂_0 with ε̂ = (x − √ᾱ x̂_0)/√(1−ᾱ)
        return {sa / s1, -(sa * sa / s1 + s1)};
    case prediction_type::v_prediction:
        if (to == prediction_type::sample) return {sa, -s1};
        return {s1, sa};
    }
    return {0.0, 1.0};
}

} // namespace detail

/// Converts a batch of network outputs from one parameterisation to another:
/// out = the `to` quantity implied by (x_t, model_output as `from`).
/// `out` may alias `model_output` or `xt`.
template <input_buffer M, input_buffer X, timestep_buffer Ts, output_buffer O>
void convert_prediction(const noise_schedule& s, prediction_type from, prediction_type to, const M& model_output,
                        const X& xt, const Ts& timesteps, O&& out) {
    using T = detail::value_of<M>;
    static_assert(std::is_same_v<T, detail::value_of<X>> && std::is_same_v<T, detail::value_of<O>>,
                  "ddpm::convert_prediction: buffers must share one element type");
    detail::convert<T>("ddpm::convert_prediction", s, as_span(model_output), as_span(xt), timesteps,
                       as_mutable_span(out),
                       [&](const schedule_tables<double>& d, std::size_t t) { return detail::conversion(d, t, from, to); });
}

/// x̂_0 from ε̂ (improved-diffusion's _predict_xstart_from_eps).
template <input_buffer X, input_buffer E, timestep_buffer Ts, output_buffer O>
void predict_x0_from_eps(const noise_schedule& s, const X& xt, const E& eps, const Ts& timesteps, O&& out) {
    convert_prediction(s, prediction_type::epsilon, prediction_type::sample, eps, xt, timesteps, out);
}

/// ε̂ from x̂_0 (improved-diffusion's _predict_eps_from_xstart).
template <input_buffer X, input_buffer X0, timestep_buffer Ts, output_buffer O>
void predict_eps_from_x0(const noise_schedule& s, const X& xt, const X0& x0, const Ts& timesteps, O&& out) {
    convert_prediction(s, prediction_type::sample, prediction_type::epsilon, x0, xt, timesteps, out);
}

/// x̂_0 from v̂.
template <input_buffer X, input_buffer V, timestep_buffer Ts, output_buffer O>
void predict_x0_from_v(const noise_schedule& s, const X& xt, const V& v, const Ts& timesteps, O&& out) {
    convert_prediction(s, prediction_type::v_prediction, prediction_type::sample, v, xt, timesteps, out);
}

/// ε̂ from v̂.
template <input_buffer X, input_buffer V, timestep_buffer Ts, output_buffer O>
void predict_eps_from_v(const noise_schedule& s, const X& xt, const V& v, const Ts& timesteps, O&& out) {
    convert_prediction(s, prediction_type::v_prediction, prediction_type::epsilon, v, xt, timesteps, out);
}

/// x̂_0 from a predicted posterior mean x_{t−1} (improved-diffusion's
/// _predict_xstart_from_xprev): x̂_0 = (x_prev − c2 x_t) / c1.
template <input_buffer X, input_buffer P, timestep_buffer Ts, output_buffer O>
void predict_x0_from_xprev(const noise_schedule& s, const X& xt, const P& xprev, const Ts& timesteps, O&& out) {
    using T = detail::value_of<X>;
    detail::convert<T>("ddpm::predict_x0_from_xprev", s, as_span(xprev), as_span(xt), timesteps, as_mutable_span(out),
                       [](const schedule_tables<double>& d, std::size_t t) {
                           const double c1 = d.posterior_mean_coef1[t];
                           return detail::pair_coef{-d.posterior_mean_coef2[t] / c1, 1.0 / c1};
                       });
}

} // namespace ddpm
