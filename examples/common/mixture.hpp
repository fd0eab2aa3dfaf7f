// examples/common/mixture.hpp — an isotropic Gaussian mixture and its exact
// ε-predictor (docs/math.md#analytic-denoisers), shared by the demos.
//
// Data x_0 ~ Σ_k π_k N(m_k, s_k² I) in D dimensions. The forward process maps
// it to another mixture,
//
//   q(x_t) = Σ_k π_k N(√ᾱ_t m_k, v_k I),   v_k = ᾱ_t s_k² + 1 − ᾱ_t,
//
// and the ε that minimises E‖ε − ε_θ(x_t, t)‖² (the best possible network) is
// the posterior-weighted combination of the per-component predictors
//
//   ε*(x_t, t) = Σ_k r_k(x_t) √(1 − ᾱ_t) (x_t − √ᾱ_t m_k) / v_k,
//   r_k(x_t)   = π_k N(x_t; √ᾱ_t m_k, v_k I) / q(x_t)   (responsibilities).
//
// A sampler driven by ε* must reproduce the mixture up to the discretisation
// error of the chain: no training noise can hide a bug.
//
// Also here: sampling, the log-density, the most likely component of a point,
// the posterior moments of x_0 given x_t (and, from them, the best reverse
// variance: mixture_denoiser_with_variance), and the probability of a cell of
// the 256-level grid of [−1, 1]^D (the data model of the discretised
// decoder, for bits_per_dim).
#pragma once

#include "common/random.hpp"

#include <ddpm/core/types.hpp>
#include <ddpm/schedule/noise_schedule.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <limits>
#include <numbers>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace examples {

/// log(Σ exp(v_k)) without overflow; −∞ when every v_k is −∞.
inline double log_sum_exp(std::span<const double> v) {
    double mx = -std::numeric_limits<double>::infinity();
    for (const double x : v) mx = std::max(mx, x);
    if (!std::isfinite(mx)) return mx;
    double acc = 0;
    for (const double x : v) acc += std::exp(x - mx);
    return mx + std::log(acc);
}

/// Σ_k π_k N(m_k, s_k² I) in `dim` dimensions.
struct gaussian_mixture {
    std::size_t dim = 2;
    std::vector<double> weights; ///< π_k, K values summing to 1
    std::vector<double> means;   ///< K × dim, row k = m_k
    std::vector<double> stds;    ///< s_k >= 0 (0: a point mass; fine for ε* at ā < 1, not for the density at ā = 1)

    [[nodiscard]] std::size_t size() const noexcept { return weights.size(); }
    [[nodiscard]] const double* mean(std::size_t k) const noexcept { return means.data() + k * dim; }

    /// Throws std::invalid_argument unless the sizes agree, the weights are
    /// positive and sum to 1 and the stds are >= 0.
    void validate() const {
        const std::size_t K = size();
        if (K == 0 || dim == 0) throw std::invalid_argument("gaussian_mixture: no components or dim = 0");
        if (means.size() != K * dim || stds.size() != K)
            throw std::invalid_argument("gaussian_mixture: means must hold K x dim values and stds K values");
        double total = 0;
        for (std::size_t k = 0; k < K; ++k) {
            if (!(weights[k] > 0)) throw std::invalid_argument("gaussian_mixture: weights must be > 0");
            if (!(stds[k] >= 0)) throw std::invalid_argument("gaussian_mixture: stds must be >= 0");
            total += weights[k];
        }
        if (std::abs(total - 1) > 1e-9)
            throw std::invalid_argument("gaussian_mixture: weights sum to " + std::to_string(total) + ", not 1");
    }

    /// n samples, batch-first (n × dim); `labels` (if given) receives the
    /// component each sample came from.
    template <std::floating_point T>
    [[nodiscard]] std::vector<T> sample(std::size_t n, normal_rng& rng, std::vector<std::size_t>* labels = nullptr) const {
        std::vector<T> xs(n * dim);
        if (labels) labels->resize(n);
        for (std::size_t b = 0; b < n; ++b) {
            const double u = rng.uniform();
            std::size_t k = 0; // the first k with u < π_0 + … + π_k
            double acc = weights[0];
            while (k + 1 < size() && u >= acc) acc += weights[++k];
            for (std::size_t j = 0; j < dim; ++j)
                xs[b * dim + j] = static_cast<T>(mean(k)[j] + stds[k] * rng.normal());
            if (labels) (*labels)[b] = k;
        }
        return xs;
    }

    /// The mixture at one noise level ā = ᾱ_t: q_ā = Σ_k π_k N(√ā m_k, v_k I),
    /// with the per-component constants precomputed (ā = 1 is the data).
    struct level {
        double abar = 1, sqrt_abar = 1, sqrt_one_minus_abar = 0;
        std::vector<double> var;      ///< v_k = ā s_k² + 1 − ā
        std::vector<double> log_norm; ///< log π_k − (D/2) log(2π v_k)
    };

    [[nodiscard]] level at_level(double abar) const {
        level L{abar, std::sqrt(abar), std::sqrt(1.0 - abar), std::vector<double>(size()), std::vector<double>(size())};
        for (std::size_t k = 0; k < size(); ++k) {
            L.var[k] = abar * stds[k] * stds[k] + (1.0 - abar);
            L.log_norm[k] = std::log(weights[k]) - 0.5 * static_cast<double>(dim) * std::log(2 * std::numbers::pi * L.var[k]);
        }
        return L;
    }

    /// The responsibilities r_k(x) = π_k N(x; √ā m_k, v_k I) / q_ā(x) (into
    /// `r`, K values); returns log q_ā(x).
    template <class T>
    double responsibilities(const T* x, const level& L, std::span<double> r) const {
        double mx = -std::numeric_limits<double>::infinity();
        for (std::size_t k = 0; k < size(); ++k) {
            double d2 = 0;
            for (std::size_t j = 0; j < dim; ++j) {
                const double e = static_cast<double>(x[j]) - L.sqrt_abar * mean(k)[j];
                d2 += e * e;
            }
            r[k] = L.log_norm[k] - 0.5 * d2 / L.var[k];
            mx = std::max(mx, r[k]);
        }
        double z = 0;
        for (std::size_t k = 0; k < size(); ++k) z += (r[k] = std::exp(r[k] - mx));
        for (std::size_t k = 0; k < size(); ++k) r[k] /= z;
        return mx + std::log(z);
    }

    /// log p(x) of the data distribution, in nats.
    template <class T>
    [[nodiscard]] double log_density(const T* x) const {
        std::vector<double> r(size());
        return responsibilities(x, at_level(1.0), r);
    }

    /// The component with the largest responsibility for x under the data
    /// distribution (the Bayes classifier of the mixture); `data` = at_level(1).
    template <class T>
    [[nodiscard]] std::size_t most_likely_component(const T* x, const level& data, std::span<double> scratch) const {
        responsibilities(x, data, scratch);
        return static_cast<std::size_t>(
            std::max_element(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(size())) - scratch.begin());
    }

    /// ε*(x_t) at level L for one sample (`dim` values into `out`); `scratch`
    /// holds K doubles. Computed in double:
    ///   ε* = Σ_k r_k √(1 − ā) (x_t − √ā m_k) / v_k.
    template <class T>
    void exact_eps(const T* x, const level& L, T* out, std::span<double> scratch) const {
        responsibilities(x, L, scratch);
        for (std::size_t j = 0; j < dim; ++j) {
            double e = 0;
            for (std::size_t k = 0; k < size(); ++k)
                e += scratch[k] * (static_cast<double>(x[j]) - L.sqrt_abar * mean(k)[j]) / L.var[k];
            out[j] = static_cast<T>(L.sqrt_one_minus_abar * e);
        }
    }

    /// The posterior of x_0 given x_t at level L: its mean E[x_0 | x_t] and
    /// per-coordinate variance Var[x_0 | x_t] (`dim` values each; `scratch`
    /// holds K doubles). Per component, x_0 | x_t, k ~ N(m_k + √ā s_k² (x_t −
    /// √ā m_k)/v_k, s_k² (1 − ā)/v_k); the mixture weights them by r_k(x_t).
    template <class T>
    void posterior_moments(const T* x, const level& L, double* mean_out, double* var_out,
                           std::span<double> scratch) const {
        responsibilities(x, L, scratch);
        for (std::size_t j = 0; j < dim; ++j) mean_out[j] = var_out[j] = 0; // var_out holds E[x_0²] first
        for (std::size_t k = 0; k < size(); ++k) {
            const double r = scratch[k], s2 = stds[k] * stds[k];
            for (std::size_t j = 0; j < dim; ++j) {
                const double m = mean(k)[j] + L.sqrt_abar * s2 * (static_cast<double>(x[j]) - L.sqrt_abar * mean(k)[j]) / L.var[k];
                mean_out[j] += r * m;
                var_out[j] += r * (s2 * (L.sqrt_one_minus_abar * L.sqrt_one_minus_abar) / L.var[k] + m * m);
            }
        }
        for (std::size_t j = 0; j < dim; ++j) var_out[j] = std::max(0.0, var_out[j] - mean_out[j] * mean_out[j]);
    }

    // ----- the 256-level grid of the discretised decoder (bits_per_dim) -----

    /// x rounded to the nearest of the 256 levels 2k/255 − 1, k = 0..255
    /// (values outside [−1, 1] go to the end levels).
    [[nodiscard]] static double to_grid(double x) noexcept {
        const double k = std::clamp(std::round((x + 1.0) * 127.5), 0.0, 255.0);
        return k / 127.5 - 1.0;
    }

    /// log P(the grid cell of x) in nats for x on the grid: the mixture's mass
    /// on the product of the D bins [x_j − 1/255, x_j + 1/255], the end bins
    /// extended to ∓∞ — the discrete distribution of to_grid(x_0) when x_0 is
    /// drawn from the mixture, on the same bins as ddpm's decoder (Ho et al.
    /// 2020, eq. 13). Differences of Φ are taken on the side of the tail where
    /// they do not cancel.
    template <class T>
    [[nodiscard]] double log_cell_probability(const T* x, std::span<double> scratch) const {
        constexpr double half_bin = 1.0 / 255.0;
        const auto cdf = [](double z) { return 0.5 * std::erfc(-z * std::numbers::sqrt2 / 2); };
        const auto sf = [](double z) { return 0.5 * std::erfc(z * std::numbers::sqrt2 / 2); };
        for (std::size_t k = 0; k < size(); ++k) {
            double lp = std::log(weights[k]);
            for (std::size_t j = 0; j < dim; ++j) {
                const double xv = static_cast<double>(x[j]);
                const double lo = (xv - half_bin - mean(k)[j]) / stds[k];
                const double hi = (xv + half_bin - mean(k)[j]) / stds[k];
                double p;
                if (xv < -0.999) p = cdf(hi);
                else if (xv > 0.999) p = sf(lo);
                else p = lo > 0 ? sf(lo) - sf(hi) : cdf(hi) - cdf(lo);
                lp += std::log(p); // −∞ for a cell this component cannot reach
            }
            scratch[k] = lp;
        }
        return log_sum_exp(scratch.first(size()));
    }
};

/// The exact ε-predictor of `mix` under the training schedule `s` as a
/// ddpm::denoiser<mixture_denoiser<T>, T>: for every sample b it writes
/// ε*(x_t[b], ᾱ_{t[b]}) (float64 ᾱ, computed in double). Allocates nothing
/// per call.
///
/// It is a ddpm::continuous_denoiser too, for the σ-based schedulers (Euler,
/// Euler ancestral, Heun) that pass real timesteps: at a real t it uses the
/// noise level those schedulers assume there, σ(t) interpolated linearly in t
/// over the training σ_k = √((1 − ᾱ_k)/ᾱ_k) (np.interp, as their
/// set_timesteps does), and ᾱ = 1/(1 + σ(t)²). At an integer t that is ᾱ_t
/// to rounding.
template <std::floating_point T>
class mixture_denoiser {
public:
    mixture_denoiser(const gaussian_mixture& mix, const ddpm::noise_schedule& s)
        : m_mix(&mix), m_alphas_cumprod(s.f64().alphas_cumprod), m_sigmas(m_alphas_cumprod.size()),
          m_scratch(mix.size()) {
        for (std::size_t k = 0; k < m_sigmas.size(); ++k)
            m_sigmas[k] = std::sqrt((1.0 - m_alphas_cumprod[k]) / m_alphas_cumprod[k]);
    }

    void operator()(std::span<const T> x_t, std::span<const ddpm::timestep_t> t, std::span<T> out) {
        const std::size_t D = m_mix->dim;
        for (std::size_t b = 0; b < t.size(); ++b)
            m_mix->exact_eps(x_t.data() + b * D, level_at(t[b]), out.data() + b * D, std::span<double>(m_scratch));
    }

    /// The real-timestep form (see the class comment).
    void operator()(std::span<const T> x_t, std::span<const T> t, std::span<T> out) {
        const std::size_t D = m_mix->dim;
        for (std::size_t b = 0; b < t.size(); ++b)
            m_mix->exact_eps(x_t.data() + b * D, level_at_real(static_cast<double>(t[b])), out.data() + b * D,
                             std::span<double>(m_scratch));
    }

    /// ᾱ at a real timestep: 1/(1 + σ(t)²), σ interpolated linearly in t
    /// (clamped to [0, T − 1]).
    [[nodiscard]] double alpha_bar_at(double t) const noexcept {
        const double last = static_cast<double>(m_sigmas.size() - 1);
        const double tc = std::clamp(t, 0.0, last);
        const auto j = std::min(static_cast<std::size_t>(tc), m_sigmas.size() - 1);
        const double f = tc - static_cast<double>(j);
        const double sigma = f > 0 ? m_sigmas[j] + f * (m_sigmas[j + 1] - m_sigmas[j]) : m_sigmas[j];
        return 1.0 / (1.0 + sigma * sigma);
    }

private:
    /// The level of timestep t, recomputed only when t changes (a sampler
    /// calls with one t for the whole batch).
    const gaussian_mixture::level& level_at(ddpm::timestep_t t) {
        if (t != m_t) {
            m_level = m_mix->at_level(m_alphas_cumprod[static_cast<std::size_t>(t)]);
            m_t = t;
        }
        return m_level;
    }
    const gaussian_mixture::level& level_at_real(double t) {
        if (t != m_t_real) {
            m_level_real = m_mix->at_level(alpha_bar_at(t));
            m_t_real = t;
        }
        return m_level_real;
    }

    const gaussian_mixture* m_mix;
    std::vector<double> m_alphas_cumprod, m_sigmas;
    std::vector<double> m_scratch;
    ddpm::timestep_t m_t = -1;
    gaussian_mixture::level m_level;
    double m_t_real = -1;
    gaussian_mixture::level m_level_real;
};

/// The exact ε-predictor with the best reverse variance, as a network with a
/// learned variance (model_options::variance = ddpm::variance_type::learned,
/// 2·D outputs per sample: ε*, then log σ², the standard profile's
/// convention). The Gaussian p(x_{t−1} | x_t) closest to the true reverse
/// distribution q(x_{t−1} | x_t) has the posterior mean (that is ε*) and the
/// variance β̃_t + c1_t² Var[x_0 | x_t] per coordinate (c1_t the posterior
/// mean coefficient of x_0; Bao et al. 2022, "Analytic-DPM"): what a learned
/// variance (Nichol & Dhariwal 2021) tries to learn. At t = 0 (β̃ = 0, c1 = 1)
/// it is Var[x_0 | x_1], the decoder's variance.
template <std::floating_point T>
class mixture_denoiser_with_variance {
public:
    mixture_denoiser_with_variance(const gaussian_mixture& mix, const ddpm::noise_schedule& s)
        : m_mix(&mix), m_alphas_cumprod(s.f64().alphas_cumprod), m_coef1(s.f64().posterior_mean_coef1),
          m_posterior_variance(s.f64().posterior_variance), m_scratch(mix.size()), m_mean(mix.dim), m_var(mix.dim) {}

    void operator()(std::span<const T> x_t, std::span<const ddpm::timestep_t> t, std::span<T> out) {
        const std::size_t D = m_mix->dim;
        for (std::size_t b = 0; b < t.size(); ++b) {
            const auto i = static_cast<std::size_t>(t[b]);
            if (t[b] != m_t) {
                m_level = m_mix->at_level(m_alphas_cumprod[i]);
                m_t = t[b];
            }
            const double abar = m_level.abar;
            const T* x = x_t.data() + b * D;
            m_mix->posterior_moments(x, m_level, m_mean.data(), m_var.data(), std::span<double>(m_scratch));
            const double c1 = m_coef1[i], post_var = m_posterior_variance[i];
            T* o = out.data() + b * 2 * D;
            for (std::size_t j = 0; j < D; ++j) {
                o[j] = static_cast<T>((static_cast<double>(x[j]) - std::sqrt(abar) * m_mean[j]) / std::sqrt(1.0 - abar));
                o[D + j] = static_cast<T>(std::log(post_var + c1 * c1 * m_var[j] + 1e-300));
            }
        }
    }

private:
    const gaussian_mixture* m_mix;
    std::vector<double> m_alphas_cumprod, m_coef1, m_posterior_variance;
    std::vector<double> m_scratch, m_mean, m_var;
    ddpm::timestep_t m_t = -1;
    gaussian_mixture::level m_level;
};

} // namespace examples
