// ddpm/samplers/chain.hpp — what every sampler shares: the options of a
// sampling run, the observer hook, the scratch workspace and the loop itself
// (call the network, check it, draw noise, step, report). The DDPM and DDIM
// schedulers plug their step into detail::run_chain.
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/core/overlap.hpp"
#include "ddpm/core/p_mean_variance.hpp"
#include "ddpm/denoiser.hpp"
#include "ddpm/error.hpp"
#include "ddpm/kernels/fused.hpp"
#include "ddpm/parallel.hpp"
#include "ddpm/samplers/noise.hpp"
#include "ddpm/samplers/timesteps.hpp"

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace ddpm {

/// Options of a one-call sampling run.
struct sampler_options {
    /// Number of samples B; the output holds B·D values.
    std::size_t batch = 1;
    /// Check every network output for NaN/±Inf and throw ddpm::numerical_error
    /// naming the step and timestep (costs one pass over the output per step).
    /// Off (the default), and in the schedulers' step(), which never checks,
    /// a NaN from the network passes through to the samples (clipping does
    /// not hide it; docs/errors.md).
    bool check_finite = false;
    /// The output buffer already holds x_T (or, for ddim_invert, x_0); when
    /// false the start is drawn from the noise source (step index 0).
    bool start_from_input = false;
    /// Threads for the fused step kernels (the network call is the user's).
    /// Results do not depend on it.
    execution exec{};
};

/// The default observer: does nothing and costs nothing.
struct no_observer {
    template <class... Args>
    constexpr bool operator()(Args&&...) const noexcept {
        return true;
    }
};

/// An observer is called after every step as
/// `f(std::size_t step_index, timestep_t t, std::span<const T> x, std::span<const T> x0_hat)`
/// with the chain state after the step and the x̂_0 predicted at t; it returns
/// bool (false stops the run) or void.
template <class F, class T>
concept sampler_observer = std::invocable<std::remove_reference_t<F>&, std::size_t, timestep_t, std::span<const T>,
                                          std::span<const T>>;

namespace detail {

/// The descending timesteps a scheduler visits, with a position lookup.
/// Until set_timesteps is called it holds the full chain T − 1 … 0.
class timestep_chain {
public:
    timestep_chain() = default;
    explicit timestep_chain(std::int64_t num_train_timesteps) { set_full(num_train_timesteps); }

    void set_full(std::int64_t num_train_timesteps) {
        m_ts.resize(static_cast<std::size_t>(num_train_timesteps));
        for (std::size_t i = 0; i < m_ts.size(); ++i) m_ts[i] = num_train_timesteps - 1 - static_cast<timestep_t>(i);
        m_num_inference_steps = 0;
        m_custom = false;
    }
    void set(std::vector<timestep_t> ts, std::int64_t num_inference_steps, bool custom) {
        m_ts = std::move(ts);
        m_num_inference_steps = num_inference_steps;
        m_custom = custom;
    }

    [[nodiscard]] std::span<const timestep_t> timesteps() const noexcept { return m_ts; }
    [[nodiscard]] std::size_t size() const noexcept { return m_ts.size(); }
    [[nodiscard]] timestep_t operator[](std::size_t i) const noexcept { return m_ts[i]; }
    /// The entry after position i, or −1 after the last one.
    [[nodiscard]] timestep_t next(std::size_t i) const noexcept { return i + 1 < m_ts.size() ? m_ts[i + 1] : -1; }
    /// set_timesteps(n) was called: n; otherwise 0.
    [[nodiscard]] std::int64_t num_inference_steps() const noexcept { return m_num_inference_steps; }
    [[nodiscard]] bool custom() const noexcept { return m_custom; }

    /// Position of t in the (strictly descending) timesteps, or size() when absent.
    [[nodiscard]] std::size_t position_of(timestep_t t) const noexcept {
        const auto it = std::lower_bound(m_ts.begin(), m_ts.end(), t, [](timestep_t a, timestep_t b) { return a > b; });
        return (it != m_ts.end() && *it == t) ? static_cast<std::size_t>(it - m_ts.begin()) : m_ts.size();
    }

    /// position_of, throwing ddpm::invalid_argument when t is not in the chain.
    [[nodiscard]] std::size_t require(std::string_view where, std::string_view parameter, timestep_t t) const {
        const std::size_t p = position_of(t);
        if (p == m_ts.size())
            throw_invalid(where, parameter, t,
                          "one of the scheduler's timesteps() (" + std::to_string(m_ts.size()) + " entries from " +
                              (m_ts.empty() ? std::string("-") : std::to_string(m_ts.front())) + " down to " +
                              (m_ts.empty() ? std::string("-") : std::to_string(m_ts.back())) + ")");
        return p;
    }

private:
    std::vector<timestep_t> m_ts;
    std::int64_t m_num_inference_steps = 0;
    bool m_custom = false;
};

/// Per-sample scratch of a step: coefficients and clip bounds for the fused
/// kernels, and the dynamic-thresholding work area.
template <class T>
struct step_scratch {
    std::vector<kernels::reverse_coefficients<T>> ddpm;
    std::vector<kernels::ddim_coefficients<T>> ddim;
    std::vector<kernels::x0_clip<T>> clips;
    std::vector<T> threshold; // 2·D: |x̂_0| and a selection buffer

    void resize(std::size_t batch, std::size_t dim) {
        ddpm.resize(batch);
        ddim.resize(batch);
        clips.resize(batch);
        threshold.resize(2 * dim);
    }
};

/// Scratch of a sampling run, sized once before the loop.
template <class T>
struct chain_workspace {
    std::vector<T> x, x_next, model_out, x0, noise;
    std::vector<timestep_t> timesteps;
    step_scratch<T> step;

    void resize(std::size_t batch, std::size_t dim, std::size_t out_channels, bool noise_buffer) {
        const std::size_t n = batch * dim;
        x.resize(n);
        x_next.resize(n);
        model_out.resize(n * out_channels);
        x0.resize(n);
        noise.resize(noise_buffer ? n : 0);
        timesteps.resize(batch);
        step.resize(batch, dim);
    }
};

/// The buffers of a single-step call (the schedulers' step()), viewed and
/// checked once, before anything is written.
template <class T>
struct step_call {
    std::span<const T> out, x, z;
    std::span<T> prev, x0;
    batch_shape shape;
    [[nodiscard]] kernels::step_noise<T> noise() const {
        return z.empty() ? kernels::step_noise<T>::none() : kernels::step_noise<T>::from(z);
    }
};

template <class T, class MO, class X, class N, class P, class X0>
step_call<T> check_step_call(std::string_view where, variance_type variance, std::size_t batch, const MO& model_output,
                             const X& sample, const N& noise, P& prev_sample, X0& pred_original_sample) {
    static_assert(std::is_same_v<T, value_of<MO>> && std::is_same_v<T, value_of<X>> && std::is_same_v<T, value_of<N>> &&
                      std::is_same_v<T, value_of<P>> && std::is_same_v<T, value_of<X0>>,
                  "ddpm scheduler step: every buffer must hold the scheduler's T");
    step_call<T> c{as_span(model_output), as_span(sample), as_span(noise), as_mutable_span(prev_sample),
                   as_mutable_span(pred_original_sample), {}};
    c.shape = shape_from(where, batch, "sample", c.x.size());
    check_model_output(where, variance, c.out.size(), c.shape);
    if (!c.z.empty()) check_size(where, "noise", c.z.size(), c.shape.elements(), "elements (B x D), or 0 for none");
    check_size(where, "prev_sample", c.prev.size(), c.shape.elements());
    check_size(where, "pred_original_sample", c.x0.size(), c.shape.elements());
    // x̂_0 is written before the inputs are read (dynamic thresholding) and
    // beside prev_sample: it may share memory with none of them (issue 11).
    check_no_overlap(where, "pred_original_sample", c.x0, "sample", c.x);
    check_no_overlap(where, "pred_original_sample", c.x0, "model_output", c.out);
    check_no_overlap(where, "pred_original_sample", c.x0, "noise", c.z);
    check_no_overlap(where, "pred_original_sample", c.x0, "prev_sample", c.prev);
    return c;
}

/// A noise source the fused kernels can draw from directly (counter_noise).
template <class N>
concept stream_noise_source = requires(const std::remove_cvref_t<N>& n, std::uint64_t step) {
    { n.stream(step) } -> std::same_as<kernels::noise_stream>;
};

/// Fills `out` (B samples of `dim`) with the noise of chain step `step`.
template <class T, class Noise>
void fill_noise(Noise& noise, std::span<T> out, std::uint64_t step, std::size_t dim) {
    if constexpr (requires { noise.fill_rows(out, step, dim); }) noise.fill_rows(out, step, dim);
    else noise.fill(out, step);
}

/// B and D of a run: `out` must hold a positive whole number of samples.
inline batch_shape run_shape(std::string_view where, std::size_t out_size, std::size_t batch) {
    if (batch == 0) throw_invalid(where, "options.batch", 0, ">= 1");
    if (out_size == 0 || out_size % batch != 0)
        throw_invalid(where, "out.size()", out_size,
                      "a positive multiple of options.batch = " + std::to_string(batch) + " (B samples x D elements)");
    return {batch, out_size / batch};
}

/// Throws ddpm::numerical_error at the first non-finite network output.
template <class T>
void check_finite_output(std::string_view where, std::span<const T> out, std::size_t step, timestep_t t) {
    for (std::size_t k = 0; k < out.size(); ++k) {
        if (!std::isfinite(out[k])) {
            std::string msg(where);
            msg += ": the network output at step " + std::to_string(step) + " (t = " + std::to_string(t) +
                   ") is not finite: model_output[" + std::to_string(k) + "] = " +
                   (std::isnan(out[k]) ? std::string("nan") : (out[k] > 0 ? std::string("inf") : std::string("-inf")));
            DDPM_THROW(ddpm::numerical_error(msg));
        }
    }
}

template <class Obs, class T>
DDPM_FORCEINLINE bool notify(Obs& obs, std::size_t i, timestep_t t, std::span<const T> x, std::span<const T> x0) {
    if constexpr (std::is_same_v<std::remove_cvref_t<Obs>, no_observer>) {
        return true;
    } else if constexpr (std::is_void_v<std::invoke_result_t<Obs&, std::size_t, timestep_t, std::span<const T>,
                                                             std::span<const T>>>) {
        obs(i, t, x, x0);
        return true;
    } else {
        return static_cast<bool>(obs(i, t, x, x0));
    }
}

/// The sampling loop shared by every sampler. `Chain` provides
///   std::size_t num_steps() const;
///   timestep_t model_timestep(std::size_t i) const;   // what the network sees
///   std::size_t output_channels() const;              // 1, or 2 for a learned variance
///   bool adds_noise(std::size_t i) const;             // does step i consume noise?
///   void step_at(std::size_t i, std::span<const T> model_out, std::span<const T> x,
///                const kernels::step_noise<T>& noise, std::span<T> x_next,
///                std::span<T> x0, std::size_t dim, step_scratch<T>& scratch,
///                const execution& exec) const;
/// and optionally, for implicit steps solved by fixed-point iteration,
///   std::size_t refinements() const;                  // extra network calls per step
///   void refine_at(std::size_t i, std::span<const T> model_out /* at x_next */,
///                  std::span<const T> x, std::span<T> x_next, std::span<T> x0, std::size_t dim) const noexcept;
/// Nothing allocates inside the loop; `out` is written once, at the end, so a
/// throw (a non-finite check, or the network itself) leaves it untouched.
/// Returns the number of steps run (fewer than num_steps() when the observer
/// stopped the run).
template <class T, class Chain, class Model, class Noise, class Obs>
std::size_t run_chain(std::string_view where, const Chain& chain, Model& model, Noise& noise, std::span<T> out,
                      const sampler_options& opt, Obs& observe, chain_workspace<T>& ws) {
    const batch_shape shape = run_shape(where, out.size(), opt.batch);
    constexpr bool fused_noise = stream_noise_source<Noise>;
    ws.resize(shape.batch, shape.dim, chain.output_channels(), !fused_noise);

    if (opt.start_from_input) std::copy(out.begin(), out.end(), ws.x.begin());
    else fill_noise<T>(noise, std::span<T>(ws.x), std::uint64_t{0}, shape.dim);

    const std::size_t n = chain.num_steps();
    std::size_t i = 0;
    while (i < n) {
        const timestep_t t = chain.model_timestep(i);
        std::fill(ws.timesteps.begin(), ws.timesteps.end(), t);
        call_denoiser<T>(model, std::span<const T>(ws.x), std::span<const timestep_t>(ws.timesteps),
                         std::span<T>(ws.model_out));
        if (opt.check_finite) check_finite_output<T>(where, std::span<const T>(ws.model_out), i, t);
        // The step's noise: drawn inside the fused kernel for a counter-based
        // source, else filled into a buffer first.
        auto z = kernels::step_noise<T>::none();
        if (chain.adds_noise(i)) {
            const auto step = static_cast<std::uint64_t>(i) + 1;
            if constexpr (fused_noise) {
                z = kernels::step_noise<T>::from(noise.stream(step));
            } else {
                fill_noise<T>(noise, std::span<T>(ws.noise), step, shape.dim);
                z = kernels::step_noise<T>::from(std::span<const T>(ws.noise));
            }
        }
        chain.step_at(i, std::span<const T>(ws.model_out), std::span<const T>(ws.x), z, std::span<T>(ws.x_next),
                      std::span<T>(ws.x0), shape.dim, ws.step, opt.exec);
        if constexpr (requires { chain.refinements(); }) {
            // Implicit steps (exact DDIM inversion): re-evaluate the network at
            // the new state and redo the step from the same x.
            for (std::size_t k = 0; k < chain.refinements(); ++k) {
                call_denoiser<T>(model, std::span<const T>(ws.x_next), std::span<const timestep_t>(ws.timesteps),
                                 std::span<T>(ws.model_out));
                if (opt.check_finite) check_finite_output<T>(where, std::span<const T>(ws.model_out), i, t);
                chain.refine_at(i, std::span<const T>(ws.model_out), std::span<const T>(ws.x), std::span<T>(ws.x_next),
                                std::span<T>(ws.x0), shape.dim);
            }
        }
        ws.x.swap(ws.x_next);
        ++i;
        if (!notify<Obs, T>(observe, i - 1, t, std::span<const T>(ws.x), std::span<const T>(ws.x0))) break;
    }
    std::copy(ws.x.begin(), ws.x.end(), out.begin());
    return i;
}

} // namespace detail
} // namespace ddpm
