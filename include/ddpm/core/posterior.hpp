// ddpm/core/posterior.hpp — the posterior q(x_{t−1} | x_t, x_0) on a batch
// (docs/math.md#posterior):
//   μ̃_t = c1_t x_0 + c2_t x_t,   β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t).
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/kernels/scalar.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

#include <type_traits>

namespace ddpm {

/// μ̃_t (B·D), β̃_t and the clipped log β̃_t (one per sample, B each) for each
/// sample b at its timestep t_b ∈ [0, T). The clipped log replaces log β̃ at
/// t = 0 (which is log 0) by log β̃ at t = 1, as improved-diffusion does.
///
/// `mean` may alias `x0` or `xt`. Throws ddpm::invalid_argument on a size
/// mismatch or a timestep outside [0, T), before writing anything.
template <input_buffer X0, input_buffer Xt, timestep_buffer Ts, output_buffer M, output_buffer V, output_buffer L>
void q_posterior_mean_variance(const noise_schedule& s, const X0& x0, const Xt& xt, const Ts& timesteps, M&& mean,
                               V&& variance, L&& log_variance_clipped) {
    using T = detail::value_of<X0>;
    static_assert(std::is_same_v<T, detail::value_of<Xt>> && std::is_same_v<T, detail::value_of<M>>,
                  "ddpm::q_posterior_mean_variance: x0, xt and mean must share one element type");
    constexpr std::string_view where = "ddpm::q_posterior_mean_variance";
    const auto shape = detail::shape_from(where, std::ranges::size(timesteps), "x0", as_span(x0).size());
    detail::check_size(where, "xt", as_span(xt).size(), shape.elements());
    detail::check_size(where, "mean", as_span(mean).size(), shape.elements());
    detail::check_size(where, "variance", as_span(variance).size(), shape.batch, "(one per sample)");
    detail::check_size(where, "log_variance_clipped", as_span(log_variance_clipped).size(), shape.batch,
                       "(one per sample)");
    detail::check_timesteps(where, timesteps, s.size());
    const auto a = as_span(x0);
    const auto x = as_span(xt);
    auto m = as_mutable_span(mean);
    auto v = as_mutable_span(variance);
    auto lv = as_mutable_span(log_variance_clipped);
    const auto& tab = s.tables<T>();
    std::size_t b = 0;
    for (const auto tv : timesteps) {
        const auto t = static_cast<std::size_t>(tv);
        const T c1 = tab.posterior_mean_coef1[t];
        const T c2 = tab.posterior_mean_coef2[t];
        for (std::size_t i = b * shape.dim; i < (b + 1) * shape.dim; ++i)
            m[i] = kernels::scalar::posterior_mean(a[i], x[i], c1, c2);
        v[b] = static_cast<detail::value_of<V>>(tab.posterior_variance[t]);
        lv[b] = static_cast<detail::value_of<L>>(tab.posterior_log_variance_clipped[t]);
        ++b;
    }
}

} // namespace ddpm
