// ddpm/core/coefficients.hpp — the per-sample coefficients of a reverse step.
//
// One function decides, per profile, how x̂_0, the posterior mean and the
// variance of p(x_prev | x_t) are formed for the step t → prev. Everything
// element-wise (core/p_mean_variance.hpp, the fused kernels, CUDA) consumes
// the resulting kernels::scalar::reverse_coefficients.
//
//  * default, ho2020, improved_diffusion: improved-diffusion's float64 tables
//    (sqrt_recip_alphas_cumprod, posterior_mean_coef1/2, …), rounded to T.
//  * diffusers: DDPMScheduler.step's arithmetic, in precision T, from ᾱ:
//    β_t is recomputed as 1 − ᾱ_t/ᾱ_prev, x̂_0 = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t, and
//    the variance is clamped at 1e-20.
#pragma once

#include "ddpm/core/types.hpp"
#include "ddpm/kernels/scalar.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

namespace ddpm {

using kernels::scalar::reverse_coefficients;

namespace detail {

/// Zero terminal SNR (ᾱ_T = 0: rescale_betas_zero_snr, or a last β of 1)
/// leaves x̂_0 = (x_T − √(1 − ᾱ_T) ε̂)/√ᾱ_T undefined for an ε-predicting
/// network: every sample would come out NaN. Lin et al. 2023 (§3.2) pair zero
/// terminal SNR with v-prediction; the schedulers refuse ε-prediction there
/// rather than patch the number (diffusers' Euler scheduler sets ᾱ_T = 2⁻²⁴,
/// which turns the NaN into a first step of extreme amplification).
inline void check_terminal_snr(std::string_view where, const noise_schedule& s, prediction_type prediction) {
    if (prediction != prediction_type::epsilon || s.size() < 1) return;
    const auto last = static_cast<std::size_t>(s.size() - 1);
    if (s.f64().alphas_cumprod[last] == 0.0 || s.f32().alphas_cumprod[last] == 0.0f)
        throw_invalid(where, "prediction_type", "epsilon",
                      "v_prediction or sample with a zero-terminal-SNR schedule (alphas_cumprod[" +
                          std::to_string(last) +
                          "] = 0, e.g. rescale_betas_zero_snr): x0 = (x_T - sqrt(1 - alphas_cumprod) eps) / "
                          "sqrt(alphas_cumprod) divides by zero at the first step");
}

} // namespace detail

/// The coefficients of the reverse step t → prev_t for one sample.
///
/// @param t       0-based timestep the network was called with, in [0, T).
/// @param prev_t  the step the result lands on: t − 1 for the full chain, any
///                earlier index for a strided (diffusers-style) chain, −1 for
///                the final step (ᾱ_prev = 1).
/// Preconditions (checked by the batch functions): 0 <= t < T, −1 <= prev_t < t.
template <class T>
[[nodiscard]] reverse_coefficients<T> reverse_step_coefficients(const noise_schedule& s, std::int64_t t,
                                                                std::int64_t prev_t, prediction_type pred,
                                                                variance_type var) noexcept {
    using kernels::scalar::x0_form;
    reverse_coefficients<T> c{};
    const auto i = static_cast<std::size_t>(t);
    const ddpm::conventions conv = s.conventions();

    if (s.profile() == profile::diffusers) {
        // DDPMScheduler.step, operation for operation, in T.
        const auto& tab = s.tables<T>();
        const T a = tab.alphas_cumprod[i];
        const T a_prev = prev_t >= 0 ? tab.alphas_cumprod[static_cast<std::size_t>(prev_t)] : T(1);
        const T beta_prod = T(1) - a;
        const T beta_prod_prev = T(1) - a_prev;
        const T cur_alpha = a / a_prev;
        const T cur_beta = T(1) - cur_alpha;
        switch (pred) {
        case prediction_type::epsilon:
            c.form = x0_form::divide;
            c.x0_a = std::sqrt(a);
            c.x0_b = std::sqrt(beta_prod);
            break;
        case prediction_type::v_prediction:
            c.form = x0_form::multiply;
            c.x0_a = std::sqrt(a);
            c.x0_b = std::sqrt(beta_prod);
            break;
        case prediction_type::sample: c.form = x0_form::identity; break;
        }
        c.eps_a = T(1) / std::sqrt(beta_prod);
        c.eps_b = std::sqrt(a) / std::sqrt(beta_prod);
        c.mean_coef_x0 = (std::sqrt(a_prev) * cur_beta) / beta_prod;
        c.mean_coef_xt = std::sqrt(cur_alpha) * beta_prod_prev / beta_prod;
        const T small = std::max((T(1) - a_prev) / (T(1) - a) * cur_beta, T(1e-20));
        switch (var) {
        case variance_type::fixed_small:
        case variance_type::fixed_small_log:
            c.variance = small;
            c.log_variance = std::log(small);
            c.noise_scale = var == variance_type::fixed_small ? std::sqrt(small) : std::exp(T(0.5) * c.log_variance);
            break;
        case variance_type::fixed_large:
        case variance_type::fixed_large_log:
            c.variance = cur_beta;
            c.log_variance = std::log(cur_beta);
            c.noise_scale = var == variance_type::fixed_large ? std::sqrt(cur_beta) : std::exp(T(0.5) * c.log_variance);
            break;
        case variance_type::learned_range:
            c.min_log = std::log(small);
            c.max_log = std::log(cur_beta);
            break;
        case variance_type::learned: break;
        }
        if (t <= 0) { // diffusers adds noise only while t > 0
            c.noise_scale = T(0);
            c.final_step = true;
        }
        return c;
    }

    // improved-diffusion's tables, float64, rounded once to T.
    const auto& d = s.f64();
    switch (pred) {
    case prediction_type::epsilon:
        c.form = x0_form::multiply;
        c.x0_a = static_cast<T>(d.sqrt_recip_alphas_cumprod[i]);
        c.x0_b = static_cast<T>(d.sqrt_recipm1_alphas_cumprod[i]);
        break;
    case prediction_type::v_prediction:
        c.form = x0_form::multiply;
        c.x0_a = static_cast<T>(d.sqrt_alphas_cumprod[i]);
        c.x0_b = static_cast<T>(d.sqrt_one_minus_alphas_cumprod[i]);
        break;
    case prediction_type::sample: c.form = x0_form::identity; break;
    }
    // ε̂ = (x_t/√ᾱ − x̂_0) / √(1/ᾱ − 1)  (improved-diffusion's _predict_eps_from_xstart)
    c.eps_a = static_cast<T>(d.sqrt_recip_alphas_cumprod[i] / d.sqrt_recipm1_alphas_cumprod[i]);
    c.eps_b = static_cast<T>(1.0 / d.sqrt_recipm1_alphas_cumprod[i]);

    double beta = d.betas[i];
    double post_var = d.posterior_variance[i];
    double post_log = d.posterior_log_variance_clipped[i];
    if (prev_t == t - 1) {
        c.mean_coef_x0 = static_cast<T>(d.posterior_mean_coef1[i]);
        c.mean_coef_xt = static_cast<T>(d.posterior_mean_coef2[i]);
    } else {
        // A strided step: the posterior of the chain respaced onto {prev_t, t}.
        const double a = d.alphas_cumprod[i];
        const double a_prev = prev_t >= 0 ? d.alphas_cumprod[static_cast<std::size_t>(prev_t)] : 1.0;
        beta = 1.0 - a / a_prev;
        c.mean_coef_x0 = static_cast<T>(beta * std::sqrt(a_prev) / (1.0 - a));
        c.mean_coef_xt = static_cast<T>((1.0 - a_prev) * std::sqrt(a / a_prev) / (1.0 - a));
        post_var = beta * (1.0 - a_prev) / (1.0 - a);
        post_log = prev_t >= 0 ? std::log(post_var) : d.posterior_log_variance_clipped[0];
    }
    const bool first = (prev_t < 0);
    const double beta_1_tilde = s.size() > 1 ? d.posterior_variance[1] : d.betas[0];
    switch (var) {
    case variance_type::fixed_small:
    case variance_type::fixed_small_log:
        c.variance = static_cast<T>(post_var);
        c.log_variance = static_cast<T>(post_log);
        c.noise_scale = static_cast<T>(var == variance_type::fixed_small ? std::sqrt(post_var)
                                                                         : std::exp(0.5 * post_log));
        break;
    case variance_type::fixed_large:
    case variance_type::fixed_large_log: {
        const double v = (first && conv.large_variance_first == fixed_large_first::posterior_variance_1)
                             ? beta_1_tilde : beta;
        const double lv = (first && conv.large_log_variance_first == fixed_large_first::posterior_variance_1)
                              ? std::log(beta_1_tilde) : std::log(beta);
        c.variance = static_cast<T>(v);
        c.log_variance = static_cast<T>(lv);
        c.noise_scale = static_cast<T>(var == variance_type::fixed_large ? std::sqrt(v) : std::exp(0.5 * lv));
        break;
    }
    case variance_type::learned_range:
        c.min_log = static_cast<T>(post_log);
        c.max_log = static_cast<T>(std::log(beta));
        break;
    case variance_type::learned: break;
    }
    if (first) { // no noise on the final step (Algorithm 2: z = 0 at t = 1)
        c.noise_scale = T(0);
        c.final_step = true;
    }
    return c;
}

} // namespace ddpm
