// ddpm/samplers/chain.hpp — what every sampler shares: the options of a
// sampling run, the observer hook, the scratch workspace, the one loop
// (detail::run_chain) and the one entry point ddpm::sample for every
// scheduler (DDPM, DDIM, Euler, Euler ancestral, Heun, and the σ/λ solvers).
//
// ## How a scheduler plugs into the loop
//
// A scheduler object is const during sample(): everything a run mutates
// lives in the workspace (chain_workspace: state, network input/output,
// x̂_0, noise) and in the scheduler's own per-run `state_type`, both sized
// before the first network call. set_timesteps only changes the const
// description of the chain, so it "resets" every run. The loop counts
// network calls i = 0 … num_steps() − 1 (Heun's 2N − 1, DDPM's N), and for
// each call:
//
//   1. in = x, or the scheduler's scaled copy (scale_model_input_at);
//   2. out = net(in, t_i) with t_i = model_timestep(i) for every sample
//      (timestep_t, or T when the scheduler declares continuous_timesteps);
//   3. optional finite check of out;
//   4. z: noise step i + 1 (a counter stream drawn inside the fused kernel,
//      or any noise source filled into a buffer) when adds_noise(i);
//   5. step_at(i, out, x, z, x_next, x̂_0, …[, state]) — one fused pass;
//   6. swap x and x_next, notify the observer (i, t_i, x, x̂_0).
//
// x̂_0 is stored only when something reads it: an observer (decided at
// compile time: ddpm::no_observer reads nothing), or a Chain that declares
// `static constexpr bool reads_x0 = true`. Otherwise step_at gets an empty
// x̂_0 span and no x̂_0 buffer is allocated; every step_at accepts that (a
// dynamic threshold forms its x̂_0 rows in step_scratch). The workspace is
// 64-byte aligned (core/aligned.hpp).
//
// A scheduler (the `Chain`) provides
//
//   using value_type = T;
//   std::size_t num_steps() const;                // network calls
//   timestep_t|T model_timestep(std::size_t i) const;
//   std::size_t output_channels() const;          // 1, or 2 for a learned variance
//   bool adds_noise(std::size_t i) const;         // does call i consume noise?
//   void step_at(std::size_t i, std::span<const T> model_out, std::span<const T> x,
//                const kernels::step_noise<T>& noise, std::span<T> x_next, std::span<T> x0,
//                std::size_t dim, step_scratch<T>& scratch, const execution& exec
//                [, state_type& state]) const;
//
// and optionally
//
//   static constexpr bool continuous_timesteps = true;  // the network gets real timesteps
//   T init_noise_sigma() const;      // the drawn x_T is multiplied by it (in T); not
//                                    // applied with start_from_input
//   void scale_model_input_at(std::size_t i, std::span<const T> x, std::span<T> in,
//                             const execution& exec) const;   // the network sees `in`
//   using state_type = …;            // per-run multistep state (history of x̂_0 /
//   state_type make_state(std::size_t batch, std::size_t dim) const;  // derivatives, …)
//   static constexpr bool reads_x0 = true; // step_at needs the x̂_0 it wrote earlier
//   std::size_t refinements() const; // implicit steps (DDIM inversion), see run_chain
//   void refine_at(…) const;
//
// make_state runs once before the loop (its allocations are the run's; the
// loop itself allocates nothing). Per-sample coefficients go in step_scratch
// or the state; the element-wise update runs through the fused kernels
// (kernels/fused.hpp, kernels/combine.hpp).
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/core/aligned.hpp"
#include "ddpm/core/overlap.hpp"
#include "ddpm/core/p_mean_variance.hpp"
#include "ddpm/denoiser.hpp"
#include "ddpm/error.hpp"
#include "ddpm/kernels/combine.hpp"
#include "ddpm/kernels/fused.hpp"
#include "ddpm/parallel.hpp"
#include "ddpm/samplers/noise.hpp"
#include "ddpm/samplers/timesteps.hpp"

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace ddpm {

/// Options of a one-call sampling run.
struct sampler_options {
    /// Number of samples B; the output holds B·D values. Required: it has no
    /// default (0 means "not set" and every sampler throws), because a
    /// forgotten batch of 1 would silently treat B samples as one sample of
    /// B·D values. Write `ddpm::sampler_options{.batch = B}`.
    std::size_t batch = 0;
    /// Check every network output for NaN/±Inf and throw ddpm::numerical_error
    /// naming the step and timestep. The output buffer is filled with NaN
    /// before each call, so a network that writes only part of it (or a
    /// learned-variance model writing D instead of 2D values per sample) is
    /// caught too. Costs two passes over the output per network call (the
    /// fill and the check).
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

/// An observer is called after every network call as
/// `f(std::size_t step_index, Tv t, std::span<const T> x, std::span<const T> x0_hat)`
/// with the chain state after the step and the x̂_0 predicted at t; it returns
/// bool (false stops the run) or void. Tv is timestep_t for DDPM/DDIM and T
/// for the schedulers with real-valued timesteps (Euler, Euler ancestral, Heun).
template <class F, class T, class Tv = timestep_t>
concept sampler_observer =
    std::invocable<std::remove_reference_t<F>&, std::size_t, Tv, std::span<const T>, std::span<const T>>;

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
    std::vector<kernels::sigma_step_coefficients<T>> sigma; ///< the Euler family
    /// 3·D: |x̂_0| and a selection buffer, then one sample's x̂_0 when the
    /// step keeps no x̂_0 buffer.
    std::vector<T> threshold;

    void resize(std::size_t batch, std::size_t dim) {
        ddpm.resize(batch);
        ddim.resize(batch);
        sigma.resize(batch);
        clips.resize(batch);
        threshold.resize(3 * dim);
    }
};

/// Resizes `v` to n values; an allocation failure names `where`, "the sampler
/// workspace's <what>" and the size.
template <class V>
void resize_buffer(std::string_view where, const char* what, V& v, std::size_t n) {
    guard_allocation_with(
        where,
        [&] {
            return std::string("the sampler workspace's ") + what + " (" + std::to_string(n) + " values of " +
                   std::to_string(sizeof(typename V::value_type)) + " bytes)";
        },
        [&] { v.resize(n); });
}

/// Scratch of a sampling run, sized once before the loop. The B·D buffers are
/// 64-byte aligned; x0 is empty when nothing reads x̂_0, noise when the noise
/// is drawn inside the kernels (counter_noise).
template <class T>
struct chain_workspace {
    aligned_vector<T> x, x_next, model_in, model_out, x0, noise;
    std::vector<timestep_t> timesteps;
    std::vector<T> real_timesteps;
    step_scratch<T> step;

    /// @throws ddpm::allocation_error naming `where` and the buffer that
    ///         could not be allocated (B·D too large for this machine).
    void resize(std::string_view where, batch_shape shape, std::size_t out_channels, bool noise_buffer,
                bool scaled_input, bool x0_buffer) {
        const std::size_t n = shape.batch * shape.dim;
        if (out_channels != 0 && n > std::numeric_limits<std::size_t>::max() / out_channels)
            DDPM_THROW(ddpm::allocation_error(std::string(where) +
                                              ": cannot allocate the sampler workspace's network output (" +
                                              std::to_string(out_channels) + " x " + std::to_string(n) +
                                              " values overflow std::size_t)"));
        resize_buffer(where, "state x", x, n);
        resize_buffer(where, "next state", x_next, n);
        resize_buffer(where, "network input", model_in, scaled_input ? n : 0);
        resize_buffer(where, "network output", model_out, n * out_channels);
        resize_buffer(where, "x0_hat", x0, x0_buffer ? n : 0);
        resize_buffer(where, "noise buffer", noise, noise_buffer ? n : 0);
        guard_allocation_with(
            where,
            [&] {
                return "the sampler workspace's per-sample scratch (B = " + std::to_string(shape.batch) +
                       ", D = " + std::to_string(shape.dim) + ")";
            },
            [&] {
                timesteps.resize(shape.batch);
                real_timesteps.resize(shape.batch);
                step.resize(shape.batch, shape.dim);
            });
    }
};

/// Does the scheduler hand the network real-valued timesteps?
template <class Chain>
inline constexpr bool continuous_timesteps_v = [] {
    if constexpr (requires { Chain::continuous_timesteps; }) return static_cast<bool>(Chain::continuous_timesteps);
    else return false;
}();

/// The type of the timestep the network (and the observer) sees.
template <class Chain>
using model_timestep_t = std::remove_cvref_t<decltype(std::declval<const Chain&>().model_timestep(std::size_t{}))>;

/// Does the Chain's step_at read an x̂_0 it stored earlier (so the loop must
/// keep an x̂_0 buffer even without an observer)?
template <class Chain>
inline constexpr bool chain_reads_x0_v = [] {
    if constexpr (requires { Chain::reads_x0; }) return static_cast<bool>(Chain::reads_x0);
    else return false;
}();

/// A scheduler without per-run state.
struct no_state {};

/// The scheduler's per-run state; an allocation failure in make_state becomes
/// ddpm::allocation_error naming `where` and the shape.
template <class Chain>
auto make_run_state(std::string_view where, const Chain& chain, std::size_t batch, std::size_t dim) {
    if constexpr (requires { chain.make_state(batch, dim); }) {
        return guard_allocation_with(
            where,
            [&] {
                return "the scheduler's per-run state for B = " + std::to_string(batch) + " samples of D = " +
                       std::to_string(dim) + " values";
            },
            [&] { return chain.make_state(batch, dim); });
    } else {
        return no_state{};
    }
}

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
    if (batch == 0)
        throw_invalid(where, "options.batch", "0 (not set)",
                      "the number of samples B in out: sampler_options has no default batch, write "
                      "ddpm::sampler_options{.batch = B}");
    if (out_size == 0 || out_size % batch != 0)
        throw_invalid(where, "out.size()", out_size,
                      "a positive multiple of options.batch = " + std::to_string(batch) + " (B samples x D elements)");
    return {batch, out_size / batch};
}

/// "999" for integer timesteps, the shortest round-trip decimal otherwise.
template <class Tv>
std::string timestep_string(Tv t) {
    if constexpr (std::is_integral_v<Tv>) {
        return std::to_string(t);
    } else {
        std::ostringstream os;
        os.precision(std::numeric_limits<Tv>::max_digits10);
        os << t;
        return os.str();
    }
}

/// Throws ddpm::numerical_error at the first non-finite network output.
/// The loop fills the output with NaN before each checked call, so a NaN is
/// also a value the network did not write: `channels` (2 for a learned
/// variance) and `dim` name that case in the message.
template <class T, class Tv>
void check_finite_output(std::string_view where, std::span<const T> out, std::size_t step, Tv t,
                         std::size_t channels = 1, std::size_t dim = 0) {
    for (std::size_t k = 0; k < out.size(); ++k) {
        if (!std::isfinite(out[k])) {
            std::string msg(where);
            msg += ": the network output at step " + std::to_string(step) + " (t = " + timestep_string(t) +
                   ") is not finite: model_output[" + std::to_string(k) + "] = " +
                   (std::isnan(out[k]) ? std::string("nan") : (out[k] > 0 ? std::string("inf") : std::string("-inf")));
            if (std::isnan(out[k]) && dim > 0) {
                const std::size_t per_sample = channels * dim;
                msg += " (NaN is also what the network did not write: out holds " + std::to_string(out.size()) +
                       " values, " + std::to_string(per_sample) + " per sample";
                if (channels == 2 && k % per_sample >= dim)
                    msg += "; a learned / learned_range model writes its D predictions, then D variance values";
                msg += ")";
            }
            DDPM_THROW(ddpm::numerical_error(msg));
        }
    }
}

/// With options.check_finite: fills the network's output buffer with NaN
/// before each call, so that values it does not write are caught by
/// check_finite_output (one extra pass over B·C·D values per call).
template <class T>
void poison(std::span<T> out) noexcept {
    std::fill(out.begin(), out.end(), std::numeric_limits<T>::quiet_NaN());
}

template <class Obs, class T, class Tv>
DDPM_FORCEINLINE bool notify(Obs& obs, std::size_t i, Tv t, std::span<const T> x, std::span<const T> x0) {
    if constexpr (std::is_same_v<std::remove_cvref_t<Obs>, no_observer>) {
        return true;
    } else if constexpr (std::is_void_v<std::invoke_result_t<Obs&, std::size_t, Tv, std::span<const T>,
                                                             std::span<const T>>>) {
        obs(i, t, x, x0);
        return true;
    } else {
        return static_cast<bool>(obs(i, t, x, x0));
    }
}

/// The sampling loop shared by every sampler (the scheduler interface is
/// described at the top of this file). For implicit steps solved by
/// fixed-point iteration a Chain may also provide
///   std::size_t refinements() const;                  // extra network calls per step
///   void refine_at(std::size_t i, std::span<const T> model_out /* at x_next */,
///                  std::span<const T> x, std::span<T> x_next, std::span<T> x0, std::size_t dim) const noexcept;
/// Nothing allocates inside the loop; `out` is written once, at the end, so a
/// throw (a non-finite check, or the network itself) leaves it untouched.
/// Returns the number of network calls run (fewer than num_steps() when the
/// observer stopped the run).
template <class T, class Chain, class Model, class Noise, class Obs>
std::size_t run_chain(std::string_view where, const Chain& chain, Model& model, Noise& noise, std::span<T> out,
                      const sampler_options& opt, Obs& observe, chain_workspace<T>& ws) {
    constexpr bool continuous = continuous_timesteps_v<Chain>;
    constexpr bool scaled_input = requires(std::span<const T> x, std::span<T> in, const execution& e) {
        chain.scale_model_input_at(std::size_t{}, x, in, e);
    };
    const batch_shape shape = run_shape(where, out.size(), opt.batch);
    constexpr bool fused_noise = stream_noise_source<Noise>;
    // x̂_0 is stored only for a reader: the observer, or a Chain that reads it back.
    constexpr bool keep_x0 = !std::is_same_v<std::remove_cvref_t<Obs>, no_observer> || chain_reads_x0_v<Chain>;
    ws.resize(where, shape, chain.output_channels(), !fused_noise, scaled_input, keep_x0);
    auto state = make_run_state(where, chain, shape.batch, shape.dim);

    if (opt.start_from_input) {
        std::copy(out.begin(), out.end(), ws.x.begin());
    } else {
        fill_noise<T>(noise, std::span<T>(ws.x), std::uint64_t{0}, shape.dim);
        if constexpr (requires { chain.init_noise_sigma(); }) {
            const T s = chain.init_noise_sigma();
            for (T& v : ws.x) v = v * s; // diffusers: x_T * init_noise_sigma
        }
    }

    const std::size_t n = chain.num_steps();
    std::size_t i = 0;
    while (i < n) {
        const auto t = chain.model_timestep(i);
        auto net_input = std::span<const T>(ws.x);
        if constexpr (scaled_input) {
            chain.scale_model_input_at(i, std::span<const T>(ws.x), std::span<T>(ws.model_in), opt.exec);
            net_input = std::span<const T>(ws.model_in);
        }
        if (opt.check_finite) poison(std::span<T>(ws.model_out));
        call_network<T, continuous>(model, net_input, t, std::span<timestep_t>(ws.timesteps),
                                    std::span<T>(ws.real_timesteps), std::span<T>(ws.model_out));
        if (opt.check_finite)
            check_finite_output<T>(where, std::span<const T>(ws.model_out), i, t, chain.output_channels(), shape.dim);
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
        if constexpr (std::is_same_v<decltype(state), no_state>) {
            chain.step_at(i, std::span<const T>(ws.model_out), std::span<const T>(ws.x), z, std::span<T>(ws.x_next),
                          std::span<T>(ws.x0), shape.dim, ws.step, opt.exec);
        } else {
            chain.step_at(i, std::span<const T>(ws.model_out), std::span<const T>(ws.x), z, std::span<T>(ws.x_next),
                          std::span<T>(ws.x0), shape.dim, ws.step, opt.exec, state);
        }
        if constexpr (requires { chain.refinements(); }) {
            // Implicit steps (exact DDIM inversion): re-evaluate the network at
            // the new state and redo the step from the same x.
            for (std::size_t k = 0; k < chain.refinements(); ++k) {
                if (opt.check_finite) poison(std::span<T>(ws.model_out));
                call_network<T, continuous>(model, std::span<const T>(ws.x_next), t,
                                            std::span<timestep_t>(ws.timesteps), std::span<T>(ws.real_timesteps),
                                            std::span<T>(ws.model_out));
                if (opt.check_finite)
                    check_finite_output<T>(where, std::span<const T>(ws.model_out), i, t, chain.output_channels(),
                                           shape.dim);
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

/// A scheduler the one loop can run (see the top of this file).
template <class S>
concept chain_scheduler = requires(const S& s, std::size_t i) {
    typename S::value_type;
    { s.num_steps() } -> std::convertible_to<std::size_t>;
    s.model_timestep(i);
    { s.output_channels() } -> std::convertible_to<std::size_t>;
    { s.adds_noise(i) } -> std::convertible_to<bool>;
};

/// ddpm::sample's body, with the entry point's name for messages.
template <class S, class Model, class Noise, class O, class Observer>
std::size_t sample_with(std::string_view where, const S& scheduler, Model&& model, Noise&& noise, O&& out,
                        const sampler_options& options, Observer&& observe) {
    using T = typename S::value_type;
    using Tv = model_timestep_t<S>;
    constexpr bool continuous = continuous_timesteps_v<S>;
    static_assert(std::is_same_v<T, value_of<O>>, "ddpm::sample: out must hold the scheduler's T");
    static_assert(continuous || callable_with_timesteps_v<Model, T, false>,
                  "ddpm::sample: the model does not satisfy ddpm::denoiser<D, T>: it must be callable as "
                  "d(std::span<const T> x_t, std::span<const ddpm::timestep_t> t, std::span<T> out)");
    static_assert(!continuous || callable_with_timesteps_v<Model, T, true>,
                  "ddpm::sample: this scheduler passes fractional timesteps, so the model must satisfy "
                  "ddpm::continuous_denoiser<D, T>: d(std::span<const T> x_t, std::span<const T> t, std::span<T> out). "
                  "An integer-timestep ddpm::denoiser needs the explicit opt-in ddpm::round_timesteps(net)");
    static_assert(noise_source<Noise, T>,
                  "ddpm::sample: the noise does not satisfy ddpm::noise_source<N, T>: it needs "
                  "n.fill(std::span<T> out, std::uint64_t step)");
    static_assert(std::is_same_v<std::remove_cvref_t<Observer>, no_observer> || sampler_observer<Observer, T, Tv>,
                  "ddpm::sample: the observer must be callable as f(std::size_t step, t, std::span<const T> x, "
                  "std::span<const T> x0_hat), t a ddpm::timestep_t (or T for real-valued timesteps)");
    if constexpr (callable_with_timesteps_v<Model, T, continuous> && noise_source<Noise, T>) {
        if (scheduler.num_steps() == 0)
            throw_invalid(where, "num_inference_steps", 0, "a call to set_timesteps first");
        check_output_layout(out, options.batch, "out");
        chain_workspace<T> ws;
        return run_chain<T>(where, scheduler, model, noise, as_mutable_span(out), options, observe, ws);
    } else {
        return 0;
    }
}

} // namespace detail

/// Sampling in one call, for every scheduler (DDPM, DDIM, Euler, Euler
/// ancestral, Heun, DPM-Solver, UniPC, any_scheduler; ddim_sample,
/// dpm_solver_sample and unipc_sample are aliases of it): x_T is drawn from `noise` (step index 0; multiplied
/// by the scheduler's init_noise_sigma where it has one) or read from `out`
/// when options.start_from_input; then for every network call i the network
/// is called on the whole batch (input scaled where the scheduler scales it)
/// with the scheduler's timestep, its output optionally checked for NaN/Inf,
/// and the scheduler's fused update applied, with noise step i + 1 where the
/// step adds noise. `observe(i, t, x, x̂_0)` runs after each call; returning
/// false stops.
///
/// @param out B·D: receives x_0 (or the state where the observer stopped).
///            Written once, at the end: untouched when anything throws.
/// @return the number of network calls run.
/// @throws ddpm::invalid_argument on bad sizes or before set_timesteps (a
///         scheduler with no timesteps); ddpm::numerical_error when
///         options.check_finite and the network writes NaN/Inf; whatever the
///         network or the noise source throws.
/// Allocates only before the loop (its scratch and the scheduler's per-run
/// state); nothing inside it.
template <detail::chain_scheduler S, class Model, class Noise, output_buffer O, class Observer = no_observer>
std::size_t sample(const S& scheduler, Model&& model, Noise&& noise, O&& out, const sampler_options& options = {},
                   Observer&& observe = Observer{}) {
    return detail::sample_with("ddpm::sample", scheduler, std::forward<Model>(model), std::forward<Noise>(noise),
                               std::forward<O>(out), options, std::forward<Observer>(observe));
}

} // namespace ddpm
