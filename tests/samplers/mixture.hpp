// tests/samplers/mixture.hpp — the exact ε-predictor of an isotropic Gaussian
// mixture (docs/math.md#analytic-denoisers), a denoiser the samplers can run.
//
// Data x_0 ~ Σ_k π_k N(m_k, s_k² I) in D dimensions. Under the forward process
// q(x_t) = Σ_k π_k N(√ᾱ_t m_k, v_k I) with v_k = ᾱ_t s_k² + 1 − ᾱ_t, and
//   ε*(x_t, t) = Σ_k r_k(x_t) √(1 − ᾱ_t) (x_t − √ᾱ_t m_k) / v_k,
// r_k the responsibilities under q(x_t). A sampler driven by ε* reproduces
// the mixture up to discretisation error.
//
// The call allocates nothing (fixed-size arrays), so it can run inside the
// zero-allocation check.
#pragma once

#include <ddpm/buffer.hpp>
#include <ddpm/schedule/noise_schedule.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <numbers>
#include <span>
#include <stdexcept>
#include <vector>

namespace ddpm_test {

template <std::size_t D, std::size_t K>
struct gaussian_mixture {
    std::array<double, K> weights;
    std::array<std::array<double, D>, K> means;
    std::array<double, K> stds;

    /// Index of the component whose mean is nearest to x (for well-separated
    /// components, the component x came from).
    template <class T>
    [[nodiscard]] std::size_t nearest(const T* x) const {
        std::size_t best = 0;
        double best_d = 1e300;
        for (std::size_t k = 0; k < K; ++k) {
            double d = 0;
            for (std::size_t j = 0; j < D; ++j) d += (x[j] - means[k][j]) * (x[j] - means[k][j]);
            if (d < best_d) {
                best_d = d;
                best = k;
            }
        }
        return best;
    }
};

/// ddpm::denoiser<mixture_denoiser, T>: the exact ε-prediction of `mix` under
/// the training schedule `s` (float64 ᾱ), computed in double.
template <class T, std::size_t D, std::size_t K>
class mixture_denoiser {
public:
    mixture_denoiser(const gaussian_mixture<D, K>& mix, const ddpm::noise_schedule& s)
        : m_mix(mix), m_acp(s.f64().alphas_cumprod) {}

    void operator()(std::span<const T> x, std::span<const ddpm::timestep_t> t, std::span<T> out) {
        const std::size_t batch = t.size();
        for (std::size_t b = 0; b < batch; ++b) {
            const double a = m_acp[static_cast<std::size_t>(t[b])];
            const double sa = std::sqrt(a);
            const double s1 = std::sqrt(1.0 - a);
            std::array<double, K> logp{};
            std::array<double, K> var{};
            double mx = -1e300;
            for (std::size_t k = 0; k < K; ++k) {
                var[k] = a * m_mix.stds[k] * m_mix.stds[k] + 1.0 - a;
                double d2 = 0;
                for (std::size_t j = 0; j < D; ++j) {
                    const double r = static_cast<double>(x[b * D + j]) - sa * m_mix.means[k][j];
                    d2 += r * r;
                }
                logp[k] = std::log(m_mix.weights[k]) - 0.5 * static_cast<double>(D) * std::log(var[k]) - 0.5 * d2 / var[k];
                mx = std::max(mx, logp[k]);
            }
            double z = 0;
            for (std::size_t k = 0; k < K; ++k) {
                logp[k] = std::exp(logp[k] - mx);
                z += logp[k];
            }
            for (std::size_t j = 0; j < D; ++j) {
                double e = 0;
                for (std::size_t k = 0; k < K; ++k)
                    e += (logp[k] / z) * s1 * (static_cast<double>(x[b * D + j]) - sa * m_mix.means[k][j]) / var[k];
                out[b * D + j] = static_cast<T>(e);
            }
            ++m_calls;
        }
    }

    [[nodiscard]] std::size_t calls() const noexcept { return m_calls; }

private:
    gaussian_mixture<D, K> m_mix;
    std::vector<double> m_acp;
    std::size_t m_calls = 0;
};

/// Per-component statistics of B samples of dimension D.
template <std::size_t D, std::size_t K>
struct component_stats {
    std::array<std::size_t, K> count{};
    std::array<std::array<double, D>, K> mean{};
    std::array<std::array<double, D>, K> var{}; ///< unbiased sample variance per coordinate
};

template <std::size_t D, std::size_t K, class T>
component_stats<D, K> classify(const gaussian_mixture<D, K>& mix, std::span<const T> xs) {
    component_stats<D, K> st;
    const std::size_t n = xs.size() / D;
    std::vector<std::size_t> label(n);
    for (std::size_t b = 0; b < n; ++b) {
        label[b] = mix.nearest(xs.data() + b * D);
        ++st.count[label[b]];
        for (std::size_t j = 0; j < D; ++j) st.mean[label[b]][j] += static_cast<double>(xs[b * D + j]);
    }
    for (std::size_t k = 0; k < K; ++k)
        for (std::size_t j = 0; j < D; ++j) st.mean[k][j] /= static_cast<double>(std::max<std::size_t>(st.count[k], 1));
    for (std::size_t b = 0; b < n; ++b)
        for (std::size_t j = 0; j < D; ++j) {
            const double r = static_cast<double>(xs[b * D + j]) - st.mean[label[b]][j];
            st.var[label[b]][j] += r * r;
        }
    for (std::size_t k = 0; k < K; ++k)
        for (std::size_t j = 0; j < D; ++j) st.var[k][j] /= static_cast<double>(std::max<std::size_t>(st.count[k], 2) - 1);
    return st;
}

} // namespace ddpm_test
