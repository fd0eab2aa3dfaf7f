// ddpm/samplers/likelihood.hpp — the full variational bound of a batch in
// bits per dimension, with the user's network (improved-diffusion's
// `GaussianDiffusion.calc_bpd_loop`; docs/math.md
// #likelihood-and-bits-per-dimension; Ho et al. 2020 eq. 5, Nichol & Dhariwal 2021 eqs. 4–7).
//
//   L = L_T + Σ_{t=2}^{T} L_{t−1} + L_0                (paper indexing)
//
// For every 0-based timestep t = T − 1, …, 0 (that order, as calc_bpd_loop):
//   x_t   = q_sample(x_0, t, z_t), z_t ~ N(0, I) from the noise (step index t)
//   out   = network(x_t, t)                          (B·D, or B·2D for a learned variance)
//   vb    = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)) for t > 0, the
//           discretised decoder NLL −log p_θ(x_0 | x_t) for t = 0 — in bits/dim,
//           exactly what ddpm::vb_terms_bpd computes (core/likelihood.hpp)
//   xstart_mse = mean over D of (x̂_0 − x_0)²         (x̂_0 clipped per options.model.clip)
//   mse        = mean over D of (ε̂ − z_t)², ε̂ re-derived from that x̂_0
// then prior_bpd = KL(q(x_T | x_0) ‖ N(0, I)) in bits/dim and, per sample,
// total_bpd = Σ_t vb + prior_bpd.
//
// Each term is one Monte-Carlo draw (one z_t per (sample, t)), so total_bpd
// is an unbiased estimate of the bound for each sample, not the bound itself;
// average over data (or repeat with other noise) for the expectation.
//
// The per-term maths is ddpm::vb_terms_bpd's, operation for operation (the
// same p_mean_variance coefficients, clipping, KL and decoder kernels, sums in
// double); it is re-run here on scratch sized once, because vb_terms_bpd and
// p_mean_variance allocate their temporaries on every call. Nothing allocates
// inside the loop over t.
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/core/clipping.hpp"
#include "ddpm/core/coefficients.hpp"
#include "ddpm/core/forward.hpp"
#include "ddpm/core/likelihood.hpp"
#include "ddpm/core/p_mean_variance.hpp"
#include "ddpm/core/parameterization.hpp"
#include "ddpm/core/posterior.hpp"
#include "ddpm/core/types.hpp"
#include "ddpm/denoiser.hpp"
#include "ddpm/error.hpp"
#include "ddpm/kernels/fused.hpp"
#include "ddpm/kernels/scalar.hpp"
#include "ddpm/samplers/chain.hpp"
#include "ddpm/samplers/noise.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace ddpm {

/// Options of ddpm::bits_per_dim.
struct bpd_options {
    /// What the network predicts, its variance type and the clipping of x̂_0.
    /// The default clips x̂_0 to [−1, 1]: improved-diffusion's
    /// calc_bpd_loop(clip_denoised=True), the setting of its image_nll.py.
    /// (Assigning `ddpm::denoiser_options<Net>()` resets the clip to none.)
    model_options model{prediction_type::epsilon, variance_type::fixed_small, clip_options::clip(1.0)};
    /// Number of samples B; x0 holds B·D values (D >= 1).
    std::size_t batch = 1;
    /// Scan every network output for NaN/±Inf and throw ddpm::numerical_error
    /// naming the timestep (one pass over the output per network call).
    bool check_finite = false;
};

/// What ddpm::bits_per_dim computes, in bits per dimension (per-sample means
/// over the D elements, / ln 2). Values are those of the buffers' precision T
/// (float or double) widened to double; the sums (total_bpd) are taken in double.
///
/// Layout of the B × T matrices vb, xstart_mse and mse: row-major, row b is
/// sample b, and **column j holds timestep t = T − 1 − j** (improved-diffusion's
/// calc_bpd_loop stacks the terms in the order it visits them, t = T − 1 first).
/// index(b, t) gives the flat position: `r.vb[r.index(b, t)]`.
struct bpd_result {
    std::size_t batch = 0;         ///< B
    std::size_t num_timesteps = 0; ///< T, the number of columns
    /// Timesteps evaluated: T, or fewer when the observer stopped the run
    /// (then columns j >= evaluated, i.e. t < T − evaluated, are NaN, and so is total_bpd).
    std::size_t evaluated = 0;
    std::vector<double> total_bpd;  ///< B: Σ_t vb + prior_bpd (NaN unless complete())
    std::vector<double> prior_bpd;  ///< B: L_T = KL(q(x_T | x_0) ‖ N(0, I)), always computed
    std::vector<double> vb;         ///< B × T: L_{t} (KL, t > 0) and the decoder NLL L_0 (t = 0)
    std::vector<double> xstart_mse; ///< B × T: mean (x̂_0 − x_0)², x̂_0 after clipping
    std::vector<double> mse;        ///< B × T: mean (ε̂ − z_t)², ε̂ derived from the clipped x̂_0

    /// Every timestep was evaluated (the observer did not stop the run).
    [[nodiscard]] bool complete() const noexcept { return num_timesteps != 0 && evaluated == num_timesteps; }
    /// Flat position of (sample b, 0-based timestep t) in vb / xstart_mse / mse:
    /// b·T + (T − 1 − t). Preconditions: b < batch, 0 <= t < T.
    [[nodiscard]] std::size_t index(std::size_t b, timestep_t t) const noexcept {
        return b * num_timesteps + (num_timesteps - 1 - static_cast<std::size_t>(t));
    }
};

/// A progress observer of bits_per_dim: called after every timestep as
/// `f(timestep_t t, std::span<const double> vb_at_t)` with the B terms of t
/// (bits/dim); returns bool (false stops the run) or void.
template <class F>
concept bpd_observer = std::invocable<std::remove_reference_t<F>&, timestep_t, std::span<const double>>;

namespace detail {

/// The model type declares its variance type as a *static* constant
/// (denoiser_traits reads it). detail::declares_variance alone also accepts a
/// non-static data member named `variance`, which denoiser_traits cannot read.
template <class D>
concept declares_static_variance =
    declares_variance<D> && !std::is_member_pointer_v<decltype(&std::remove_cvref_t<D>::variance)>;

/// Scratch of one bits_per_dim run, sized once before the loop.
template <class T>
struct bpd_workspace {
    std::vector<T> xt, z, model_out, px0, mean, log_variance, post_mean, post_variance, post_log_variance, eps,
        scratch, prior, sqrt_ab, sqrt_one_minus_ab;
    std::vector<timestep_t> timesteps;
    std::vector<double> column; // the B terms of the current t, for the observer

    void resize(batch_shape shape, std::size_t out_channels, bool dynamic_threshold) {
        const std::size_t n = shape.elements();
        xt.resize(n);
        z.resize(n);
        model_out.resize(n * out_channels);
        px0.resize(n);
        mean.resize(n);
        log_variance.resize(n);
        post_mean.resize(n);
        post_variance.resize(shape.batch);
        post_log_variance.resize(shape.batch);
        eps.resize(n);
        scratch.resize(dynamic_threshold ? 2 * shape.dim : 0);
        prior.resize(shape.batch);
        // forward_coefficients clears and refills these: the capacity keeps it allocation-free
        sqrt_ab.reserve(shape.batch);
        sqrt_one_minus_ab.reserve(shape.batch);
        timesteps.resize(shape.batch);
        column.resize(shape.batch);
    }
};

/// x̂_0 (clipped), the mean and the log-variance of p_θ(x_{t−1} | x_t) for a
/// batch sharing one timestep t: ddpm::p_mean_variance's element maths with
/// caller scratch (no allocation, no validation).
template <class T>
void bpd_p_mean_log_variance(const noise_schedule& s, const model_options& opt, timestep_t t,
                             std::span<const T> out, std::span<const T> xt, std::span<T> mean,
                             std::span<T> log_variance, std::span<T> px0, std::size_t dim,
                             std::span<T> scratch) noexcept {
    const auto c = reverse_step_coefficients<T>(s, t, t - 1, opt.prediction, opt.variance);
    const bool diffusers = s.profile() == profile::diffusers;
    const std::size_t batch = xt.size() / dim;
    const std::size_t stride = output_channels(opt.variance) * dim;
    for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t i = 0; i < dim; ++i)
            px0[b * dim + i] = kernels::scalar::predict_x0(c, xt[b * dim + i], out[b * stride + i]);
    apply_clipping<T>(opt.clip, px0, dim, scratch);
    for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t i = 0; i < dim; ++i) {
            const std::size_t k = b * dim + i;
            mean[k] = kernels::scalar::posterior_mean(px0[k], xt[k], c.mean_coef_x0, c.mean_coef_xt);
            switch (opt.variance) {
            case variance_type::learned: {
                const T raw = out[b * stride + dim + i];
                // improved-diffusion: the output is log σ²; diffusers: it is σ².
                log_variance[k] = diffusers ? std::log(raw) : raw;
                break;
            }
            case variance_type::learned_range: {
                const T frac = (out[b * stride + dim + i] + T(1)) / T(2);
                log_variance[k] = frac * c.max_log + (T(1) - frac) * c.min_log;
                break;
            }
            default: log_variance[k] = c.log_variance; break;
            }
        }
}

/// Per-sample mean over D of f(k), summed in double and rounded to T (as
/// vb_terms_bpd rounds its result to the buffers' precision).
template <class T, class F>
void bpd_mean_flat(std::size_t batch, std::size_t dim, std::span<double> out, F f) noexcept {
    for (std::size_t b = 0; b < batch; ++b) {
        double acc = 0.0;
        for (std::size_t k = b * dim; k < (b + 1) * dim; ++k) acc += static_cast<double>(f(k));
        out[b] = static_cast<double>(static_cast<T>(acc / static_cast<double>(dim)));
    }
}

template <class Obs>
DDPM_FORCEINLINE bool notify_bpd(Obs& obs, timestep_t t, std::span<const double> column) {
    if constexpr (std::is_same_v<std::remove_cvref_t<Obs>, no_observer>) {
        return true;
    } else if constexpr (std::is_void_v<std::invoke_result_t<Obs&, timestep_t, std::span<const double>>>) {
        obs(t, column);
        return true;
    } else {
        return static_cast<bool>(obs(t, column));
    }
}

/// The loop of bits_per_dim, once the types are known to fit.
template <class T, class Model, class Noise, class Obs>
std::size_t bits_per_dim_impl(const noise_schedule& s, Model& model, std::span<const T> x0, Noise& noise,
                              bpd_result& result, const bpd_options& options, Obs& observe) {
    constexpr std::string_view where = "ddpm::bits_per_dim";
    const model_options& mo = options.model;

    // ----- validation: everything before anything is written.
    if (options.batch == 0) throw_invalid(where, "options.batch", 0, ">= 1");
    if (x0.empty() || x0.size() % options.batch != 0)
        throw_invalid(where, "x0.size()", x0.size(),
                      "a positive multiple of options.batch = " + std::to_string(options.batch) +
                          " (B samples x D elements, batch-first)");
    const batch_shape shape{options.batch, x0.size() / options.batch};
    mo.clip.validate(where);
    if constexpr (declares_static_variance<Model>) {
        constexpr variance_type declared = denoiser_traits<std::remove_cvref_t<Model>>::variance;
        if (output_channels(declared) != output_channels(mo.variance))
            throw_invalid(where, "options.model.variance", to_string(mo.variance),
                          std::string("a variance type with ") + (is_learned(declared) ? "2" : "1") +
                              " output channel(s), as the model declares (denoiser_traits::variance = " +
                              std::string(to_string(declared)) + ")");
    }
    const std::int64_t num_t = s.size();

    // ----- scratch and the staged result (moved into `result` at the end,
    // so a throw from the network, the noise or the finite check leaves it untouched).
    const auto T_cols = static_cast<std::size_t>(num_t);
    const std::size_t B = shape.batch, D = shape.dim;
    bpd_workspace<T> ws;
    ws.resize(shape, output_channels(mo.variance), mo.clip.kind == clip_options::mode::dynamic_threshold);
    constexpr double nan = std::numeric_limits<double>::quiet_NaN();
    bpd_result r;
    r.batch = B;
    r.num_timesteps = T_cols;
    r.total_bpd.assign(B, nan);
    r.prior_bpd.assign(B, nan);
    r.vb.assign(B * T_cols, nan);
    r.xstart_mse.assign(B * T_cols, nan);
    r.mse.assign(B * T_cols, nan);

    const normal_cdf cdf = s.conventions().cdf;
    const std::span<const timestep_t> ts(ws.timesteps);
    const std::span<const T> xt(ws.xt);
    const std::span<const T> px0(ws.px0);
    std::span<double> column(ws.column);

    std::size_t done = 0;
    for (std::int64_t t = num_t - 1; t >= 0; --t) {
        const std::size_t j = static_cast<std::size_t>(num_t - 1 - t);
        std::fill(ws.timesteps.begin(), ws.timesteps.end(), t);

        // z_t and x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) z_t (q_sample's coefficients and kernel;
        // a counter_noise is drawn inside the kernel, in the same pass).
        forward_coefficients<T>(s, ts, ws.sqrt_ab, ws.sqrt_one_minus_ab);
        const std::span<const T> ca(ws.sqrt_ab), cb(ws.sqrt_one_minus_ab);
        if constexpr (stream_noise_source<Noise>) {
            kernels::forward_noise<T>(x0, ca, cb, noise.stream(static_cast<std::uint64_t>(t)), std::span<T>(ws.xt),
                                      std::span<T>(ws.z));
        } else {
            fill_noise<T>(noise, std::span<T>(ws.z), static_cast<std::uint64_t>(t), D);
            kernels::forward_noise<T>(x0, ca, cb, std::span<const T>(ws.z), std::span<T>(ws.xt));
        }

        // The network, then p_θ(x_{t−1} | x_t) and q(x_{t−1} | x_t, x_0).
        call_denoiser<T>(model, xt, ts, std::span<T>(ws.model_out));
        if (options.check_finite) check_finite_output<T>(where, std::span<const T>(ws.model_out), j, t);
        bpd_p_mean_log_variance<T>(s, mo, t, std::span<const T>(ws.model_out), xt, std::span<T>(ws.mean),
                                   std::span<T>(ws.log_variance), std::span<T>(ws.px0), D, std::span<T>(ws.scratch));
        q_posterior_mean_variance(s, x0, ws.xt, ts, ws.post_mean, ws.post_variance, ws.post_log_variance);

        // vb term in bits (vb_terms_bpd's loop).
        for (std::size_t b = 0; b < B; ++b) {
            double acc = 0.0;
            if (t == 0) {
                for (std::size_t k = b * D; k < (b + 1) * D; ++k)
                    acc += -static_cast<double>(kernels::scalar::discretized_gaussian_log_likelihood(
                        x0[k], ws.mean[k], T(0.5) * ws.log_variance[k], cdf));
            } else {
                for (std::size_t k = b * D; k < (b + 1) * D; ++k)
                    acc += static_cast<double>(kernels::scalar::normal_kl(ws.post_mean[k], ws.post_log_variance[b],
                                                                          ws.mean[k], ws.log_variance[k]));
            }
            column[b] = static_cast<double>(
                static_cast<T>(acc / static_cast<double>(D) / kernels::scalar::ln2));
        }
        // x̂_0 and ε̂ errors (calc_bpd_loop's xstart_mse and mse).
        predict_eps_from_x0(s, ws.xt, ws.px0, ts, ws.eps);
        for (std::size_t b = 0; b < B; ++b) r.vb[b * T_cols + j] = column[b];
        bpd_mean_flat<T>(B, D, column, [&](std::size_t k) {
            const T d = px0[k] - x0[k];
            return d * d;
        });
        for (std::size_t b = 0; b < B; ++b) r.xstart_mse[b * T_cols + j] = column[b];
        bpd_mean_flat<T>(B, D, column, [&](std::size_t k) {
            const T d = ws.eps[k] - ws.z[k];
            return d * d;
        });
        for (std::size_t b = 0; b < B; ++b) {
            r.mse[b * T_cols + j] = column[b];
            column[b] = r.vb[b * T_cols + j];
        }
        ++done;
        if (!notify_bpd(observe, static_cast<timestep_t>(t), std::span<const double>(column))) break;
    }

    // L_T, and the total when every term is known.
    prior_bpd(s, x0, ws.prior);
    for (std::size_t b = 0; b < B; ++b) {
        r.prior_bpd[b] = static_cast<double>(ws.prior[b]);
        if (done == T_cols) {
            double acc = 0.0;
            for (std::size_t j = 0; j < T_cols; ++j) acc += r.vb[b * T_cols + j];
            r.total_bpd[b] = acc + r.prior_bpd[b];
        }
    }
    r.evaluated = done;
    result = std::move(r);
    return done;
}

} // namespace detail

/// The variational bound of a batch in bits/dim, term by term, with the
/// caller's network (improved-diffusion's calc_bpd_loop; see the top of this
/// file for the maths and bpd_result for the layout of what it returns).
///
/// @param s        the training schedule (T = s.size() terms). Its profile
///                 decides the conventions, as in vb_terms_bpd: the decoder's
///                 normal CDF (improved_diffusion and ho2020: the tanh
///                 approximation; default and diffusers: exact) and the
///                 variances at t = 0.
/// @param model    a ddpm::denoiser<D, T>: called once per timestep with the
///                 whole batch (x_t, B copies of t, out); out holds B·D values,
///                 or B·2D when options.model.variance is learned / learned_range
///                 (per sample: the D predictions, then the D variance values).
/// @param x0       B·D data on the 256-level grid 2k/255 − 1 of [−1, 1]
///                 (float or double; T is its element type).
/// @param noise    a ddpm::noise_source<N, T>: z_t (B·D values) is
///                 `noise.fill(z, t)` with the **0-based timestep t as the step
///                 index**, asked once per t in the order T − 1, …, 0:
///                 * ddpm::counter_noise(seed[, 0, first_sample]): z_t[b, i] =
///                   random::normal_at_v2(seed, first_sample + b, step = t,
///                   element = i, D) (stream v2, the default; normal_at in
///                   v1; the float stream, widened for double), a
///                   pure function of (seed, sample, t, i): reproducible in any
///                   batch split; drawn inside the forward kernel;
///                 * buffer_noise: T slots of B·D values, slot t replayed at
///                   timestep t;
///                 * a stream source that ignores the step (urbg_normal_noise)
///                   draws in the order of the loop.
/// @param result   receives the terms (see bpd_result). Written once, at the
///                 end: untouched when anything throws.
/// @param options  model options (prediction, variance, clip; default clip to
///                 [−1, 1]), batch B and the finite check.
/// @param observe  optional `f(timestep_t t, std::span<const double> vb_at_t)`,
///                 run after each timestep with the B vb terms of t; return
///                 false to stop. After a stop, result.evaluated = the number
///                 of timesteps done (T − 1 down to the stopping t), their
///                 columns hold the terms, the other columns and total_bpd are
///                 NaN, and prior_bpd is computed.
/// @return the number of timesteps evaluated (T unless the observer stopped).
/// @throws ddpm::invalid_argument, before anything is written, when
///         options.batch is 0, x0.size() is not a positive multiple of it, the
///         clip options are invalid, or the model declares a variance
///         (denoiser_traits) whose channel count differs from
///         options.model.variance's;
///         ddpm::numerical_error when options.check_finite and the network
///         writes NaN/±Inf (the message names the step and t); whatever the
///         network or the noise source throws.
/// Allocates its scratch and the result before the loop; nothing inside it.
template <input_buffer X0, class Model, class Noise, class Observer = no_observer>
std::size_t bits_per_dim(const noise_schedule& s, Model&& model, const X0& x0, Noise&& noise, bpd_result& result,
                         const bpd_options& options = {}, Observer&& observe = Observer{}) {
    using T = detail::value_of<X0>;
    static_assert(denoiser<Model, T>,
                  "ddpm::bits_per_dim: the model does not satisfy ddpm::denoiser<D, T>: it must be callable as "
                  "d(std::span<const T> x_t, std::span<const ddpm::timestep_t> t, std::span<T> out)");
    static_assert(noise_source<Noise, T>,
                  "ddpm::bits_per_dim: the noise does not satisfy ddpm::noise_source<N, T>: it needs "
                  "n.fill(std::span<T> out, std::uint64_t step) (ddpm::counter_noise(seed) for the counter-based "
                  "generator)");
    static_assert(std::is_same_v<std::remove_cvref_t<Observer>, no_observer> || bpd_observer<Observer>,
                  "ddpm::bits_per_dim: the observer must be callable as f(ddpm::timestep_t t, "
                  "std::span<const double> vb_at_t)");
    if constexpr (denoiser<Model, T> && noise_source<Noise, T>) {
        return detail::bits_per_dim_impl<T>(s, model, as_span(x0), noise, result, options, observe);
    } else {
        return 0;
    }
}

} // namespace ddpm
