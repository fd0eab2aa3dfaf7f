// ddpm/samplers/sigmas.hpp — the σ vocabulary shared by every σ-based
// scheduler (Euler, Euler ancestral, Heun, DPM-Solver, UniPC; docs/solvers.md).
//
// A variance-preserving chain x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε is, divided by
// √ᾱ_t, the variance-exploding chain x_t/√ᾱ_t = x_0 + σ_t ε with
//
//   σ_t = √((1 − ᾱ_t)/ᾱ_t),   α_t = 1/√(σ_t² + 1),   σ_t^VP = σ_t α_t,
//   λ_t = log α_t − log σ_t^VP = −log σ_t   (DPM-Solver's half log-SNR).
//
// Everything here reproduces diffusers' numpy/torch arithmetic operation for
// operation, in the precision it uses:
//   * training_sigmas<T>: σ_t for t = 0 … T−1 in T from the schedule's T tables
//     (diffusers profile: float32 torch arithmetic on the float32 ᾱ; other
//     profiles: float64, rounded once);
//   * log_sigmas<T>: the log-σ table `_sigma_to_t` interpolates, in T (float32
//     in diffusers as shipped: log evaluated in double and rounded, i.e. a
//     correctly rounded logf);
//   * interp: np.interp(t, arange(T), σ) in double;
//   * karras_sigmas (ρ = 7) and exponential_sigmas, in double as numpy does;
//   * sigma_to_t<T>: `_sigma_to_t`, with numpy 1.x's value-based casting (the
//     distances and the weight in T, the final blend in double);
//   * to_alpha_sigma<T> / lambda_of<T>: `_sigma_to_alpha_sigma_t` and λ in T;
//   * log_of / exp_of / expm1_of: float32 log, exp, expm1 correctly rounded
//     (evaluated in double and rounded, as glibc's logf/expf and torch's
//     scalar float32 ops give on the solvers' values).
#pragma once

#include "ddpm/error.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

namespace ddpm {

/// Which σ values a σ-based scheduler steps through (diffusers'
/// use_karras_sigmas / use_exponential_sigmas).
enum class sigma_schedule {
    discrete,    ///< σ interpolated at the spaced timesteps (diffusers' default)
    karras,      ///< Karras et al. 2022, eq. 5, ρ = 7, between the spaced chain's σ_max and σ_min
    exponential, ///< log-uniform between the same σ_max and σ_min
};

[[nodiscard]] constexpr std::string_view to_string(sigma_schedule s) noexcept {
    switch (s) {
    case sigma_schedule::discrete: return "discrete";
    case sigma_schedule::karras: return "karras";
    case sigma_schedule::exponential: return "exponential";
    }
    return "?";
}

/// Parses "discrete", "karras", "exponential".
[[nodiscard]] inline sigma_schedule sigma_schedule_from_string(std::string_view s) {
    if (s == "discrete") return sigma_schedule::discrete;
    if (s == "karras") return sigma_schedule::karras;
    if (s == "exponential") return sigma_schedule::exponential;
    detail::throw_invalid("ddpm::sigma_schedule_from_string", "sigma_schedule", s,
                          "one of \"discrete\", \"karras\", \"exponential\"");
}

/// What ends a σ chain (diffusers' final_sigmas_type).
enum class final_sigmas_type {
    zero,      ///< σ = 0: the last step lands on the x̂_0 prediction
    sigma_min, ///< σ = σ_0 of the training schedule
};

[[nodiscard]] constexpr std::string_view to_string(final_sigmas_type s) noexcept {
    return s == final_sigmas_type::zero ? "zero" : "sigma_min";
}

/// Parses "zero", "sigma_min".
[[nodiscard]] inline final_sigmas_type final_sigmas_type_from_string(std::string_view s) {
    if (s == "zero") return final_sigmas_type::zero;
    if (s == "sigma_min") return final_sigmas_type::sigma_min;
    detail::throw_invalid("ddpm::final_sigmas_type_from_string", "final_sigmas_type", s,
                          "one of \"zero\", \"sigma_min\"");
}

namespace sigmas {

/// log in T, correctly rounded for float (evaluated in double and rounded, as
/// glibc's logf is; numpy's and torch's float32 log on scalars agree with it
/// on the values the schedulers use).
template <class T>
[[nodiscard]] inline T log_of(T v) noexcept {
    if constexpr (std::is_same_v<T, float>) return static_cast<float>(std::log(static_cast<double>(v)));
    else return std::log(v);
}

/// exp in T, correctly rounded for float (as log_of).
template <class T>
[[nodiscard]] inline T exp_of(T v) noexcept {
    if constexpr (std::is_same_v<T, float>) return static_cast<float>(std::exp(static_cast<double>(v)));
    else return std::exp(v);
}

/// expm1 in T, correctly rounded for float (as log_of).
template <class T>
[[nodiscard]] inline T expm1_of(T v) noexcept {
    if constexpr (std::is_same_v<T, float>) return static_cast<float>(std::expm1(static_cast<double>(v)));
    else return std::expm1(v);
}

/// σ_t = √((1 − ᾱ_t)/ᾱ_t) for t = 0 … T−1, in T. The diffusers profile
/// evaluates it in T from the T tables (torch: (1 − ᾱ)/ᾱ then ** 0.5 = sqrt);
/// the other profiles in double from the float64 ᾱ, rounded once.
template <class T>
[[nodiscard]] std::vector<T> training_sigmas(const noise_schedule& s) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "ddpm::sigmas: T must be float or double");
    std::vector<T> out(static_cast<std::size_t>(s.size()));
    if (s.profile() == profile::diffusers) {
        const auto& a = s.tables<T>().alphas_cumprod;
        for (std::size_t t = 0; t < out.size(); ++t) out[t] = std::sqrt((T(1) - a[t]) / a[t]);
    } else {
        const auto& a = s.f64().alphas_cumprod;
        for (std::size_t t = 0; t < out.size(); ++t) out[t] = static_cast<T>(std::sqrt((1.0 - a[t]) / a[t]));
    }
    return out;
}

/// log σ_t element-wise in T (diffusers' `log_sigmas = np.log(sigmas)`).
template <class T>
[[nodiscard]] std::vector<T> log_sigmas(std::span<const T> sigmas) {
    std::vector<T> out(sigmas.size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = log_of(sigmas[i]);
    return out;
}

/// numpy's linspace(start, stop, num) in double: y_i = i·step + start with
/// step = (stop − start)/(num − 1), the last element set to stop; one element
/// is [start].
[[nodiscard]] inline std::vector<double> linspace(double start, double stop, std::size_t num) {
    std::vector<double> y(num);
    if (num == 0) return y;
    if (num == 1) {
        y[0] = 0.0 * (stop - start) + start;
        return y;
    }
    const double delta = stop - start;
    const double div = static_cast<double>(num - 1);
    const double step = delta / div;
    for (std::size_t i = 0; i < num; ++i) {
        // numpy divides first when the step underflows to 0
        y[i] = (step == 0.0 ? (static_cast<double>(i) / div) * delta : static_cast<double>(i) * step) + start;
    }
    y[num - 1] = stop;
    return y;
}

/// np.interp(x, arange(n), fp) in double (fp widened exactly): fp[j] at
/// integer x, slope·(x − j) + fp[j] between, clamped to the ends.
template <class T>
[[nodiscard]] double interp(double x, std::span<const T> fp) noexcept {
    const std::size_t n = fp.size();
    if (n == 0 || std::isnan(x)) return x;
    if (x <= 0.0) return static_cast<double>(fp[0]);
    if (x >= static_cast<double>(n - 1)) return static_cast<double>(fp[n - 1]);
    const auto j = static_cast<std::size_t>(std::floor(x));
    const double xj = static_cast<double>(j);
    if (xj == x) return static_cast<double>(fp[j]);
    const double slope = (static_cast<double>(fp[j + 1]) - static_cast<double>(fp[j])) / 1.0;
    return slope * (x - xj) + static_cast<double>(fp[j]);
}

/// Karras et al. 2022 eq. 5 as diffusers' _convert_to_karras evaluates it:
/// ramp = linspace(0, 1, n); (σ_max^(1/ρ) + ramp·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ.
[[nodiscard]] inline std::vector<double> karras_sigmas(double sigma_min, double sigma_max, std::size_t n,
                                                       double rho = 7.0) {
    const std::vector<double> ramp = linspace(0.0, 1.0, n);
    const double min_inv_rho = std::pow(sigma_min, 1.0 / rho);
    const double max_inv_rho = std::pow(sigma_max, 1.0 / rho);
    std::vector<double> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = std::pow(max_inv_rho + ramp[i] * (min_inv_rho - max_inv_rho), rho);
    return out;
}

/// diffusers' _convert_to_exponential: exp(linspace(log σ_max, log σ_min, n)).
[[nodiscard]] inline std::vector<double> exponential_sigmas(double sigma_min, double sigma_max, std::size_t n) {
    std::vector<double> out = linspace(std::log(sigma_max), std::log(sigma_min), n);
    for (double& v : out) v = std::exp(v);
    return out;
}

/// diffusers' _sigma_to_t(σ, log_sigmas): the fractional training timestep
/// whose interpolated log σ equals log σ. Under numpy 1.x's value-based
/// casting the scalar log σ meets the T table in T, so the bracketing and the
/// weight w are computed in T; t = (1 − w)·lo + w·hi in double.
template <class T>
[[nodiscard]] double sigma_to_t(double sigma, std::span<const T> log_sigmas) noexcept {
    const std::size_t n = log_sigmas.size();
    if (n < 2) return 0.0;
    const T log_sigma = static_cast<T>(std::log(std::max(sigma, 1e-10)));
    // low = last j with log_sigma − log_sigmas[j] >= 0 (argmax of the cumsum),
    // 0 when there is none, at most n − 2.
    std::size_t low = 0;
    for (std::size_t j = 0; j < n; ++j)
        if (log_sigma - log_sigmas[j] >= T(0)) low = j;
    low = std::min(low, n - 2);
    const std::size_t high = low + 1;
    const T lo = log_sigmas[low], hi = log_sigmas[high];
    T w = (lo - log_sigma) / (lo - hi);
    w = std::clamp(w, T(0), T(1));
    return static_cast<double>(T(1) - w) * static_cast<double>(low) + static_cast<double>(w) * static_cast<double>(high);
}

/// The VP pair of a VE σ (diffusers' _sigma_to_alpha_sigma_t), in T.
template <class T>
struct alpha_sigma {
    T alpha; ///< α_t = 1/√(σ² + 1)
    T sigma; ///< σ_t^VP = σ·α_t
};

template <class T>
[[nodiscard]] inline alpha_sigma<T> to_alpha_sigma(T sigma) noexcept {
    const T alpha = T(1) / std::sqrt(sigma * sigma + T(1));
    return {alpha, sigma * alpha};
}

/// λ = log α_t − log σ_t^VP of a VE σ, in T (DPM-Solver's λ).
template <class T>
[[nodiscard]] inline T lambda_of(T sigma) noexcept {
    const alpha_sigma<T> p = to_alpha_sigma(sigma);
    return log_of(p.alpha) - log_of(p.sigma);
}

} // namespace sigmas
} // namespace ddpm
