// ddpm/kernels/scalar.hpp — the element-wise maths, one sample's coefficients
// at a time. These functions are the single source of truth for every path:
// the batch functions in core/, the SIMD kernels (as their tails and
// references) and the CUDA kernels (compiled by nvcc as host/device code).
//
// Every function is noexcept and validates nothing: callers check once per call.
#pragma once

#include "ddpm/config.hpp"

namespace ddpm::kernels::scalar {

/// Forward process, q(x_t | x_0) sampled: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε.
template <class T>
DDPM_HOST_DEVICE constexpr T q_sample(T x0, T eps, T sqrt_alpha_bar, T sqrt_one_minus_alpha_bar) noexcept {
    return sqrt_alpha_bar * x0 + sqrt_one_minus_alpha_bar * eps;
}

/// v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 (Salimans & Ho 2022, diffusers' get_velocity).
template <class T>
DDPM_HOST_DEVICE constexpr T velocity(T x0, T eps, T sqrt_alpha_bar, T sqrt_one_minus_alpha_bar) noexcept {
    return sqrt_alpha_bar * eps - sqrt_one_minus_alpha_bar * x0;
}

/// Posterior mean μ̃_t = c1 x_0 + c2 x_t (docs/math.md#posterior).
template <class T>
DDPM_HOST_DEVICE constexpr T posterior_mean(T x0, T xt, T coef1, T coef2) noexcept {
    return coef1 * x0 + coef2 * xt;
}

/// Clamp to [lo, hi]; NaN passes through (as torch.clamp).
template <class T>
DDPM_HOST_DEVICE constexpr T clamp(T v, T lo, T hi) noexcept {
    return v < lo ? lo : (v > hi ? hi : v);
}

/// How x̂_0 is formed from the network output and x_t:
///   multiply: x̂_0 = a·x_t − b·out        (improved-diffusion's tables)
///   divide:   x̂_0 = (x_t − b·out) / a    (diffusers' epsilon form)
///   identity: x̂_0 = out                  (sample prediction)
enum class x0_form { multiply, divide, identity };

/// The per-sample coefficients of one reverse step t → prev.
template <class T>
struct reverse_coefficients {
    x0_form form = x0_form::multiply;
    T x0_a = 0;          ///< see x0_form
    T x0_b = 0;          ///< see x0_form
    T mean_coef_x0 = 0;  ///< μ = mean_coef_x0 · x̂_0 + mean_coef_xt · x_t
    T mean_coef_xt = 0;
    T variance = 0;      ///< σ² (fixed variance types)
    T log_variance = 0;  ///< log σ² (fixed variance types)
    T min_log = 0;       ///< learned_range: log σ² at v = 0
    T max_log = 0;       ///< learned_range: log σ² at v = 1
    T noise_scale = 0;   ///< σ that multiplies z (fixed variance types); 0 at the final step
    bool final_step = false; ///< no noise is added at this step (t = 0 of the chain)
    T eps_a = 0;         ///< ε̂ from x̂_0 (when the model predicts x̂_0 or v): ε̂ = eps_a·x_t − eps_b·x̂_0
    T eps_b = 0;
};

/// x̂_0 from one element of the network output.
template <class T>
DDPM_HOST_DEVICE constexpr T predict_x0(const reverse_coefficients<T>& c, T xt, T out) noexcept {
    switch (c.form) {
    case x0_form::multiply: return c.x0_a * xt - c.x0_b * out;
    case x0_form::divide: return (xt - c.x0_b * out) / c.x0_a;
    case x0_form::identity: return out;
    }
    return out;
}

/// How ε̂ is formed in a DDIM step (Song et al. 2021, eq. 12):
///   model_output: ε̂ = out                               (ε-prediction)
///   from_v:       ε̂ = eps_a·out + eps_b·x_t             (v: √ᾱ v̂ + √(1−ᾱ) x_t)
///   from_out:     ε̂ = (eps_a·x_t − eps_c·out) / eps_b   (x̂_0-prediction, unclipped)
///   from_x0:      ε̂ = (eps_a·x_t − eps_c·x̂_0) / eps_b   (from the clipped x̂_0:
///                 use_clipped_model_output, or improved-diffusion's DDIM)
/// With eps_a = 1 (diffusers) or eps_c = 1 (improved-diffusion's
/// √(1/ᾱ) x_t − x̂_0 over √(1/ᾱ − 1)) both peers' formulas are reproduced exactly.
enum class eps_form { model_output, from_v, from_out, from_x0 };

/// The per-sample coefficients of one DDIM step t → prev:
/// x_prev = coef_x0·x̂_0 + coef_eps·ε̂ + sigma·z, with coef_x0 = √ᾱ_prev,
/// coef_eps = √(1 − ᾱ_prev − σ²) and σ = η √((1 − ᾱ_prev)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev).
template <class T>
struct ddim_coefficients {
    x0_form form = x0_form::multiply; ///< x̂_0 as in the DDPM step (x0_a, x0_b)
    T x0_a = 0;
    T x0_b = 0;
    kernels::scalar::eps_form eps = eps_form::model_output;
    T eps_a = 0;
    T eps_b = 1;
    T eps_c = 0;
    T coef_x0 = 0;
    T coef_eps = 0;
    T sigma = 0;
};

/// ε̂ of a DDIM step from the network output, x_t and the (clipped) x̂_0.
template <class T>
DDPM_HOST_DEVICE constexpr T ddim_eps(const ddim_coefficients<T>& c, T xt, T out, T x0) noexcept {
    switch (c.eps) {
    case eps_form::model_output: return out;
    case eps_form::from_v: return c.eps_a * out + c.eps_b * xt;
    case eps_form::from_out: return (c.eps_a * xt - c.eps_c * out) / c.eps_b;
    case eps_form::from_x0: return (c.eps_a * xt - c.eps_c * x0) / c.eps_b;
    }
    return out;
}

/// x̂_0 of a DDIM step (same forms as the DDPM step).
template <class T>
DDPM_HOST_DEVICE constexpr T ddim_x0(const ddim_coefficients<T>& c, T xt, T out) noexcept {
    switch (c.form) {
    case x0_form::multiply: return c.x0_a * xt - c.x0_b * out;
    case x0_form::divide: return (xt - c.x0_b * out) / c.x0_a;
    case x0_form::identity: return out;
    }
    return out;
}

/// x_prev of a DDIM step without noise, given x̂_0 (already clipped if
/// clipping is on) and ε̂: √ᾱ_prev x̂_0 + "the direction pointing to x_t".
template <class T>
DDPM_HOST_DEVICE constexpr T ddim_mean(const ddim_coefficients<T>& c, T x0, T eps) noexcept {
    return c.coef_x0 * x0 + c.coef_eps * eps;
}

/// x_prev of a DDIM step: ddim_mean + σ z.
template <class T>
DDPM_HOST_DEVICE constexpr T ddim_prev(const ddim_coefficients<T>& c, T x0, T eps, T z) noexcept {
    return ddim_mean(c, x0, eps) + c.sigma * z;
}

} // namespace ddpm::kernels::scalar
