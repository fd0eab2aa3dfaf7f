// ddpm/core/forward.hpp — the forward process q(x_t | x_0) on a batch
// (docs/math.md#forward-process).
//
// All functions take B samples × D elements, batch-first, and one 0-based
// timestep per sample (t ∈ [0, T)). Noise is supplied by the caller. Sizes and
// timesteps are checked once per call; on error nothing is written.
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/kernels/fused.hpp"
#include "ddpm/kernels/scalar.hpp"
#include "ddpm/samplers/noise.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace ddpm {

namespace detail {

/// Checks x0 / noise / out against the timesteps; returns B × D.
template <class X, class N, class O, class Ts>
batch_shape check_forward(std::string_view where, const noise_schedule& s, const X& x0, const N& noise,
                          const O& out, const Ts& timesteps) {
    static_assert(std::is_same_v<value_of<X>, value_of<N>> && std::is_same_v<value_of<X>, value_of<O>>,
                  "ddpm: x0, noise and out must have the same element type (float or double)");
    const auto shape = shape_from(where, std::ranges::size(timesteps), "x0", as_span(x0).size());
    check_size(where, "noise", as_span(noise).size(), shape.elements());
    check_size(where, "out", as_span(out).size(), shape.elements());
    check_timesteps(where, timesteps, s.size());
    return shape;
}

/// √ᾱ_t and √(1 − ᾱ_t) of every sample, in T. diffusers computes them as
/// ᾱ_t ** 0.5 and (1 − ᾱ_t) ** 0.5 in the tensor's precision; the others
/// round the float64 tables.
template <class T, class Ts>
void forward_coefficients(const noise_schedule& s, const Ts& timesteps, std::vector<T>& a, std::vector<T>& b) {
    const auto& tab = s.tables<T>();
    a.clear();
    b.clear();
    for (const auto tv : timesteps) {
        const auto t = static_cast<std::size_t>(tv);
        if (s.profile() == profile::diffusers) {
            const T ab = tab.alphas_cumprod[t];
            a.push_back(std::sqrt(ab));
            b.push_back(std::sqrt(T(1) - ab));
        } else {
            a.push_back(tab.sqrt_alphas_cumprod[t]);
            b.push_back(tab.sqrt_one_minus_alphas_cumprod[t]);
        }
    }
}

} // namespace detail

/// x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε for every sample (q_sample, paper eq. 4).
///
/// @param x0        B·D clean samples.
/// @param noise     B·D draws of ε ~ N(0, I), supplied by the caller.
/// @param timesteps B 0-based timesteps in [0, T).
/// @param out       B·D, receives x_t. May alias x0 or noise.
/// @throws ddpm::invalid_argument on size mismatch or a timestep outside [0, T).
template <input_buffer X, input_buffer N, timestep_buffer Ts, output_buffer O>
void q_sample(const noise_schedule& s, const X& x0, const N& noise, const Ts& timesteps, O&& out) {
    using T = detail::value_of<X>;
    (void)detail::check_forward("ddpm::q_sample", s, x0, noise, out, timesteps);
    std::vector<T> a, b;
    detail::forward_coefficients<T>(s, timesteps, a, b);
    kernels::forward_noise<T>(as_span(x0), a, b, as_span(noise), as_mutable_span(out));
}

/// Fused forward noising for training (Algorithm 1): draws ε from the
/// counter-based stream — element i of sample b (D elements) gets
/// random::normal_at_v2(noise.seed, noise.first_sample + b, noise.step, i, D)
/// (random::normal_at(…, i) when noise.version is v1) — and
/// writes x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε and ε (the ε-prediction target) in one
/// pass over memory. Use a different `step` (or seed) per training iteration.
/// @throws ddpm::invalid_argument on size mismatch or a timestep outside [0, T).
template <input_buffer X, timestep_buffer Ts, output_buffer O, output_buffer E>
void q_sample(const noise_schedule& s, const X& x0, const Ts& timesteps, const kernels::noise_stream& noise, O&& xt,
              E&& eps, const execution& exec = {}) {
    using T = detail::value_of<X>;
    (void)detail::check_forward("ddpm::q_sample", s, x0, eps, xt, timesteps);
    std::vector<T> a, b;
    detail::forward_coefficients<T>(s, timesteps, a, b);
    kernels::forward_noise<T>(as_span(x0), a, b, noise, as_mutable_span(xt), as_mutable_span(eps), exec);
}

/// Fused forward noising with the samplers' noise source: the same as the
/// overload above with `noise.stream(step)`, so element i of sample b gets
/// random::normal_at_v2(noise.seed(), first_sample + b, step, i, D) (first_sample
/// and the stream version as given to counter_noise). `step` plays the role a chain step plays in a
/// sampler: use a different one (or another seed) per training iteration, and
/// keep the seeds of training and sampling apart if both run in one program.
///
///     ddpm::q_sample(schedule, x0, t, ddpm::counter_noise(seed), iteration, xt, eps);
///
/// @throws ddpm::invalid_argument on size mismatch, a timestep outside
///         [0, T), or step ≥ 2^32.
template <input_buffer X, timestep_buffer Ts, output_buffer O, output_buffer E>
void q_sample(const noise_schedule& s, const X& x0, const Ts& timesteps, const counter_noise& noise, std::uint64_t step,
              O&& xt, E&& eps, const execution& exec = {}) {
    q_sample(s, x0, timesteps, noise.stream(step), xt, eps, exec);
}

/// diffusers' name for q_sample: add_noise(original_samples, noise, timesteps).
template <input_buffer X, input_buffer N, timestep_buffer Ts, output_buffer O>
void add_noise(const noise_schedule& s, const X& x0, const N& noise, const Ts& timesteps, O&& out) {
    using T = detail::value_of<X>;
    (void)detail::check_forward("ddpm::add_noise", s, x0, noise, out, timesteps);
    std::vector<T> a, b;
    detail::forward_coefficients<T>(s, timesteps, a, b);
    kernels::forward_noise<T>(as_span(x0), a, b, as_span(noise), as_mutable_span(out));
}

/// v = √ᾱ_t ε − √(1 − ᾱ_t) x_0, the v-prediction target (diffusers' get_velocity).
template <input_buffer X, input_buffer N, timestep_buffer Ts, output_buffer O>
void get_velocity(const noise_schedule& s, const X& x0, const N& noise, const Ts& timesteps, O&& out) {
    using T = detail::value_of<X>;
    (void)detail::check_forward("ddpm::get_velocity", s, x0, noise, out, timesteps);
    std::vector<T> a, b;
    detail::forward_coefficients<T>(s, timesteps, a, b);
    // v = √ᾱ ε − √(1 − ᾱ) x_0: the forward kernel with the roles of x_0 and ε swapped.
    for (auto& v : b) v = -v;
    kernels::forward_noise<T>(as_span(noise), a, b, as_span(x0), as_mutable_span(out));
}

/// Mean and variance of q(x_t | x_0): mean = √ᾱ_t x_0 (B·D), variance = 1 − ᾱ_t
/// and log_variance = log(1 − ᾱ_t) (one per sample, B each).
template <input_buffer X, timestep_buffer Ts, output_buffer M, output_buffer V, output_buffer L>
void q_mean_variance(const noise_schedule& s, const X& x0, const Ts& timesteps, M&& mean, V&& variance,
                     L&& log_variance) {
    using T = detail::value_of<X>;
    constexpr std::string_view where = "ddpm::q_mean_variance";
    const auto shape = detail::shape_from(where, std::ranges::size(timesteps), "x0", as_span(x0).size());
    detail::check_size(where, "mean", as_span(mean).size(), shape.elements());
    detail::check_size(where, "variance", as_span(variance).size(), shape.batch, "(one per sample)");
    detail::check_size(where, "log_variance", as_span(log_variance).size(), shape.batch, "(one per sample)");
    detail::check_timesteps(where, timesteps, s.size());
    const auto x = as_span(x0);
    auto m = as_mutable_span(mean);
    auto v = as_mutable_span(variance);
    auto lv = as_mutable_span(log_variance);
    const auto& tab = s.tables<T>();
    std::size_t b = 0;
    for (const auto tv : timesteps) {
        const auto t = static_cast<std::size_t>(tv);
        const T a = tab.sqrt_alphas_cumprod[t];
        for (std::size_t i = b * shape.dim; i < (b + 1) * shape.dim; ++i) m[i] = a * x[i];
        v[b] = T(1) - tab.alphas_cumprod[t];
        lv[b] = tab.log_one_minus_alphas_cumprod[t];
        ++b;
    }
}

} // namespace ddpm
