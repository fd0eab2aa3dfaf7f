// ddpm/samplers/ddpm.hpp — ancestral sampling (Ho et al. 2020, Algorithm 2)
// with a diffusers-like scheduler (DDPMScheduler) and a one-call driver.
//
//   x_T ~ N(0, I); for t = T … 1: x_{t−1} = μ_θ(x_t, t) + σ_t z, z = 0 at the last step
//
// μ_θ is the posterior mean μ̃_t(x̂_0, x_t) of the (optionally clipped or
// thresholded) x̂_0 (paper eq. 7 with x̂_0 from eq. 15); σ_t follows the
// variance type. The per-step coefficients, for every profile and for strided
// steps (prev ≠ t − 1), come from ddpm::reverse_step_coefficients
// (core/coefficients.hpp).
//
// Three chains:
//   * the full chain T − 1 … 0 (the default);
//   * a diffusers strided chain: set_timesteps(n, spacing, steps_offset) or
//     custom descending timesteps; the previous timestep is the next entry of
//     the array (DDPMScheduler.previous_timestep);
//   * an improved-diffusion respaced chain (ddpm_scheduler::respaced): a new
//     schedule β'_i = 1 − ᾱ_{τ_i}/ᾱ_{τ_{i−1}} over the kept steps τ, the network
//     still called with the original index τ_i (docs/math.md#strided-and-respaced-chains).
//
// Timesteps are 0-based indices t ∈ [0, T) of the training schedule
// everywhere in this API (timesteps(), step(), the network call).
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/core/clipping.hpp"
#include "ddpm/core/coefficients.hpp"
#include "ddpm/core/forward.hpp"
#include "ddpm/core/p_mean_variance.hpp"
#include "ddpm/denoiser.hpp"
#include "ddpm/error.hpp"
#include "ddpm/kernels/scalar.hpp"
#include "ddpm/samplers/chain.hpp"
#include "ddpm/samplers/noise.hpp"
#include "ddpm/samplers/timesteps.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace ddpm {

/// The schedule of a respaced chain (improved-diffusion's SpacedDiffusion):
/// ᾱ'_i = ᾱ_{τ_i} for the kept steps τ (ascending, from `base`'s float64
/// tables), hence β'_i = 1 − ᾱ_{τ_i}/ᾱ_{τ_{i−1}} (β'_0 = 1 − ᾱ_{τ_0}), built by
/// noise_schedule::from_alphas_cumprod under base's profile.
/// @throws ddpm::invalid_argument unless `kept` is non-empty, strictly
///         ascending and inside [0, T).
[[nodiscard]] inline noise_schedule respace_schedule(const noise_schedule& base, std::span<const timestep_t> kept) {
    constexpr std::string_view where = "ddpm::respace_schedule";
    if (kept.empty()) detail::throw_invalid(where, "kept.size()", 0, ">= 1");
    for (std::size_t i = 0; i < kept.size(); ++i) {
        if (kept[i] < 0 || kept[i] >= base.size())
            detail::throw_invalid(where, "kept[" + std::to_string(i) + "]", kept[i],
                                  "in [0, " + std::to_string(base.size()) + ")");
        if (i > 0 && !(kept[i] > kept[i - 1]))
            detail::throw_invalid(where, "kept[" + std::to_string(i) + "]", kept[i],
                                  "> kept[" + std::to_string(i - 1) + "] (the kept set must be strictly ascending)");
    }
    std::vector<double> acp(kept.size());
    for (std::size_t i = 0; i < kept.size(); ++i) acp[i] = base.f64().alphas_cumprod[static_cast<std::size_t>(kept[i])];
    return noise_schedule::from_alphas_cumprod(acp, base.profile());
}

namespace detail {

/// Does the step t → prev add noise? diffusers adds it while t > 0; the other
/// profiles while prev >= 0 (Algorithm 2: z = 0 on the last step). Matches
/// reverse_step_coefficients' noise_scale rule.
[[nodiscard]] inline bool ddpm_step_has_noise(const noise_schedule& s, timestep_t t, timestep_t prev) noexcept {
    return s.profile() == profile::diffusers ? t > 0 : prev >= 0;
}

/// The fused-kernel clip bounds of a step (kernels::x0_clip per sample), or
/// an empty span for no clipping. Dynamic thresholding first forms x̂_0 (into
/// `x0`, or a scratch row when `x0` is empty: nobody reads it) to find each
/// sample's scale s; the kernel then clamps to [−s, s] and divides by s, as
/// diffusers' _threshold_sample does. With `one_for_all` (the *_step_uniform
/// kernels) static clipping is one x0_clip for every sample.
template <class T, class X0Of>
std::span<const kernels::x0_clip<T>> step_clips(const clip_options& clip, X0Of&& x0_of, std::span<T> x0,
                                                std::size_t batch, std::size_t dim, step_scratch<T>& scratch,
                                                bool one_for_all = false) {
    switch (clip.kind) {
    case clip_options::mode::none: return {};
    case clip_options::mode::clip:
        if (one_for_all) batch = 1;
        for (std::size_t b = 0; b < batch; ++b)
            scratch.clips[b] = {true, static_cast<T>(clip.clip_range), T(1)};
        break;
    case clip_options::mode::dynamic_threshold:
        for (std::size_t b = 0; b < batch; ++b) {
            const auto work = std::span<T>(scratch.threshold);
            const auto row = x0.empty() ? work.subspan(2 * dim, dim) : x0.subspan(b * dim, dim);
            x0_of(b, row);
            const T s = dynamic_threshold_scale<T>(clip, std::span<const T>(row), work.first(2 * dim));
            scratch.clips[b] = {true, s, s};
        }
        break;
    }
    return {scratch.clips.data(), batch};
}

/// How the fused kernel finds σ for a variance type.
[[nodiscard]] constexpr kernels::step_variance step_variance_of(variance_type v, bool diffusers) noexcept {
    switch (v) {
    case variance_type::learned_range: return kernels::step_variance::learned_range;
    // diffusers: the extra channels are σ²; improved-diffusion: log σ².
    case variance_type::learned: return diffusers ? kernels::step_variance::learned_raw : kernels::step_variance::learned_log;
    default: return kernels::step_variance::fixed;
    }
}

/// One DDPM reverse step for B samples of `dim` elements, on the fused kernel
/// (kernels::ddpm_step, whose element functions are kernels/scalar.hpp's):
///
///   x̂_0 = f(x_t, out)           (eq. 15 for ε; per core/coefficients.hpp)
///   x̂_0 ← clip / threshold(x̂_0)
///   μ   = c_x0 x̂_0 + c_xt x_t     (posterior mean, eq. 7)
///   x_prev = μ + σ z              (σ from the variance type; no z when `noise` is none)
///
/// `coef(b)` returns {reverse_coefficients, noisy} for sample b; with
/// `uniform` (a batch at one timestep) only coef(0) is asked for and the step
/// runs on kernels::ddpm_step_uniform, with no per-sample copies. `prev` may
/// alias `x` or the noise buffer; `x0` must not alias any input.
template <class T, class Coef>
void ddpm_step_kernel(const model_options& opt, bool diffusers, Coef&& coef, std::span<const T> out,
                      std::span<const T> x, const kernels::step_noise<T>& noise, std::span<T> prev, std::span<T> x0,
                      std::size_t batch, std::size_t dim, step_scratch<T>& scratch, const execution& exec,
                      bool uniform = false) {
    const std::size_t stride = output_channels(opt.variance) * dim;
    for (std::size_t b = 0; b < (uniform ? 1 : batch); ++b) {
        const auto cb = coef(b);
        scratch.ddpm[b] = cb.c;
        scratch.ddpm[b].final_step = !cb.noisy;
    }
    const auto clips = step_clips<T>(
        opt.clip,
        [&](std::size_t b, std::span<T> row) {
            const T* o = out.data() + b * stride;
            const T* xb = x.data() + b * dim;
            const auto& c = scratch.ddpm[uniform ? 0 : b];
            for (std::size_t i = 0; i < dim; ++i) row[i] = kernels::scalar::predict_x0(c, xb[i], o[i]);
        },
        x0, batch, dim, scratch, uniform);
    const auto variance = step_variance_of(opt.variance, diffusers);
    if (uniform)
        kernels::ddpm_step_uniform<T>(scratch.ddpm[0], batch, clips, variance, out, x, noise, prev, x0, exec);
    else
        kernels::ddpm_step<T>(std::span<const kernels::reverse_coefficients<T>>(scratch.ddpm.data(), batch), clips,
                              variance, out, x, noise, prev, x0, exec);
}

template <class T>
struct ddpm_sample_coefficients {
    reverse_coefficients<T> c;
    bool noisy;
};

} // namespace detail

/// A diffusers-like DDPM scheduler (DDPMScheduler) over a noise_schedule.
///
/// Holds a copy of the schedule (and, when respaced, the respaced schedule),
/// the model options and the chain of timesteps. `step` is const and
/// thread-compatible; only set_timesteps mutates.
///
/// @tparam T float or double: the precision of the buffers and of the maths.
///   In the diffusers profile, float uses the schedule's float32 tables (torch's
///   tensors) and double the float64 formula, as core/coefficients.hpp does.
template <std::floating_point T>
class ddpm_scheduler {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "ddpm::ddpm_scheduler<T>: T must be float or double");

public:
    using value_type = T;

    /// The full chain T − 1 … 0 over `schedule`.
    explicit ddpm_scheduler(noise_schedule schedule, model_options options = {})
        : m_base(std::move(schedule)), m_options(options), m_chain(m_base.size()) {
        options.clip.validate("ddpm::ddpm_scheduler");
        detail::check_terminal_snr("ddpm::ddpm_scheduler", m_base, options.prediction);
    }

    /// improved-diffusion's respaced chain over the kept steps (any order,
    /// duplicates not allowed): β'_i = 1 − ᾱ_{τ_i}/ᾱ_{τ_{i−1}}, the network
    /// called with τ_i. timesteps() is τ descending.
    [[nodiscard]] static ddpm_scheduler respaced(const noise_schedule& base, std::span<const timestep_t> kept,
                                                 model_options options = {}) {
        std::vector<timestep_t> sorted(kept.begin(), kept.end());
        std::sort(sorted.begin(), sorted.end());
        ddpm_scheduler s(base, options);
        s.m_respaced.emplace(respace_schedule(base, sorted));
        s.m_chain.set(std::vector<timestep_t>(sorted.rbegin(), sorted.rend()), 0, true);
        return s;
    }

    /// respaced() with improved-diffusion's section string ("ddim50", "10,15,20").
    [[nodiscard]] static ddpm_scheduler respaced(const noise_schedule& base, std::string_view section_counts,
                                                 model_options options = {}) {
        const auto kept = space_timesteps(base.size(), section_counts);
        return respaced(base, std::span<const timestep_t>(kept), options);
    }

    /// diffusers' set_timesteps(num_inference_steps): a strided chain whose
    /// previous timestep is the next entry of the array.
    /// @throws ddpm::invalid_argument (see make_timesteps), or on a respaced scheduler.
    void set_timesteps(std::int64_t num_inference_steps, timestep_spacing spacing = timestep_spacing::leading,
                       std::int64_t steps_offset = 0) {
        refuse_if_respaced("num_inference_steps");
        m_chain.set(make_timesteps(size(), num_inference_steps, spacing, steps_offset), num_inference_steps, false);
    }

    /// diffusers' set_timesteps(timesteps=…): strictly descending, in [0, T).
    void set_timesteps(std::span<const timestep_t> custom_timesteps) {
        refuse_if_respaced("custom_timesteps");
        check_custom_timesteps(custom_timesteps, size(), "ddpm::ddpm_scheduler::set_timesteps");
        m_chain.set(std::vector<timestep_t>(custom_timesteps.begin(), custom_timesteps.end()), 0, true);
    }

    /// The chain, descending (original indices of the training schedule).
    [[nodiscard]] std::span<const timestep_t> timesteps() const noexcept { return m_chain.timesteps(); }
    /// diffusers' previous_timestep: the next entry of timesteps(), −1 after the last.
    /// @throws ddpm::invalid_argument when t is not in timesteps().
    [[nodiscard]] timestep_t previous_timestep(timestep_t t) const {
        return m_chain.next(m_chain.require("ddpm::ddpm_scheduler::previous_timestep", "t", t));
    }
    /// T, the number of training timesteps (diffusers' __len__).
    [[nodiscard]] std::int64_t size() const noexcept { return m_base.size(); }
    /// n of the last set_timesteps(n); 0 for the full, custom or respaced chain.
    [[nodiscard]] std::int64_t num_inference_steps() const noexcept { return m_chain.num_inference_steps(); }
    [[nodiscard]] bool is_respaced() const noexcept { return m_respaced.has_value(); }
    /// The training schedule (add_noise, the network's timesteps).
    [[nodiscard]] const noise_schedule& schedule() const noexcept { return m_base; }
    /// The schedule the steps use: the respaced one, or the training schedule.
    [[nodiscard]] const noise_schedule& chain_schedule() const noexcept { return m_respaced ? *m_respaced : m_base; }
    [[nodiscard]] const model_options& options() const noexcept { return m_options; }

    /// The coefficients of the step taken from timestep t (x̂_0 form, posterior
    /// mean coefficients, variance, noise scale).
    [[nodiscard]] reverse_coefficients<T> coefficients(timestep_t t) const {
        const std::size_t p = m_chain.require("ddpm::ddpm_scheduler::coefficients", "t", t);
        return position_coefficients(p).c;
    }

    /// One reverse step for B samples at one timestep t (diffusers' step):
    /// prev_sample = μ_θ(sample, t) + σ_t·noise, pred_original_sample = x̂_0.
    ///
    /// @param model_output B·D network outputs (B·2D for a learned variance:
    ///                     per sample the D predictions, then the D variance values).
    /// @param t            a member of timesteps().
    /// @param sample       B·D, x_t.
    /// @param noise        B·D standard normals, or empty for none (the mean).
    /// @param prev_sample  B·D; may alias sample or noise.
    /// @param pred_original_sample B·D; must not alias an input.
    /// @param batch        B (it decides the learned-variance layout and the
    ///                     per-sample dynamic threshold, so it is not defaulted).
    /// @throws ddpm::invalid_argument on a size mismatch or a t not in
    ///         timesteps(); nothing is written then.
    template <input_buffer MO, input_buffer X, input_buffer N, output_buffer P, output_buffer X0>
    void step(const MO& model_output, timestep_t t, const X& sample, const N& noise, P&& prev_sample,
              X0&& pred_original_sample, std::size_t batch) const {
        constexpr std::string_view where = "ddpm::ddpm_scheduler::step";
        if (batch == 0) detail::throw_invalid(where, "batch", 0, ">= 1");
        const std::size_t p = m_chain.require(where, "t", t);
        step_impl(where, model_output, batch, [p](std::size_t) { return p; }, sample, noise, prev_sample,
                  pred_original_sample);
    }

    /// The same step without a pred_original_sample buffer (diffusers' step
    /// returns x̂_0 too, but most loops only read prev_sample): x̂_0 goes to a
    /// scratch buffer allocated for the call.
    template <input_buffer MO, input_buffer X, input_buffer N, output_buffer P>
    void step(const MO& model_output, timestep_t t, const X& sample, const N& noise, P&& prev_sample,
              std::size_t batch) const {
        std::vector<T> x0(ddpm::as_span(sample).size());
        step(model_output, t, sample, noise, prev_sample, x0, batch);
    }

    /// One reverse step with a timestep per sample: B = t.size(), each sample
    /// b stepping from t[b] to previous_timestep(t[b]).
    template <input_buffer MO, timestep_buffer Ts, input_buffer X, input_buffer N, output_buffer P, output_buffer X0>
    void step(const MO& model_output, const Ts& t, const X& sample, const N& noise, P&& prev_sample,
              X0&& pred_original_sample) const {
        constexpr std::string_view where = "ddpm::ddpm_scheduler::step";
        const std::size_t batch = std::ranges::size(t);
        if (batch == 0) detail::throw_invalid(where, "t.size()", 0, ">= 1 (one timestep per sample)");
        std::vector<std::size_t> pos(batch);
        std::size_t b = 0;
        for (const auto tv : t) {
            pos[b] = m_chain.require(where, "t[" + std::to_string(b) + "]", static_cast<timestep_t>(tv));
            ++b;
        }
        step_impl(where, model_output, batch, [&pos](std::size_t k) { return pos[k]; }, sample, noise, prev_sample,
                  pred_original_sample);
    }

    /// diffusers' add_noise on the training schedule (core/forward.hpp).
    template <input_buffer X, input_buffer N, timestep_buffer Ts, output_buffer O>
    void add_noise(const X& x0, const N& noise, const Ts& timesteps, O&& out) const {
        ddpm::add_noise(m_base, x0, noise, timesteps, out);
    }
    /// diffusers' get_velocity on the training schedule.
    template <input_buffer X, input_buffer N, timestep_buffer Ts, output_buffer O>
    void get_velocity(const X& x0, const N& noise, const Ts& timesteps, O&& out) const {
        ddpm::get_velocity(m_base, x0, noise, timesteps, out);
    }

    // ----- the chain interface (positions i in timesteps()); used by ddpm::sample.
    [[nodiscard]] std::size_t num_steps() const noexcept { return m_chain.size(); }
    [[nodiscard]] timestep_t model_timestep(std::size_t i) const noexcept { return m_chain[i]; }
    [[nodiscard]] std::size_t output_channels() const noexcept { return detail::output_channels(m_options.variance); }
    [[nodiscard]] bool adds_noise(std::size_t i) const noexcept {
        const auto [t, prev] = table_indices(i);
        if (!detail::ddpm_step_has_noise(chain_schedule(), t, prev)) return false;
        if (is_learned(m_options.variance)) return true;
        return position_coefficients(i).c.noise_scale != T(0);
    }
    /// Step i of the chain for a batch sharing timesteps()[i]; sizes unchecked.
    void step_at(std::size_t i, std::span<const T> model_out, std::span<const T> x, const kernels::step_noise<T>& noise,
                 std::span<T> x_next, std::span<T> x0, std::size_t dim, detail::step_scratch<T>& scratch,
                 const execution& exec) const {
        const auto c = position_coefficients(i);
        detail::ddpm_step_kernel<T>(
            m_options, chain_schedule().profile() == profile::diffusers, [&](std::size_t) { return c; }, model_out,
            x, noise, x_next, x0, x.size() / dim, dim, scratch, exec, true);
    }

private:
    template <class MO, class Pos, class X, class N, class P, class X0>
    void step_impl(std::string_view where, const MO& model_output, std::size_t batch, Pos&& pos, const X& sample,
                   const N& noise, P&& prev_sample, X0&& pred_original_sample) const {
        const auto c = detail::check_step_call<T>(where, m_options.variance, batch, model_output, sample, noise,
                                                  prev_sample, pred_original_sample);
        detail::step_scratch<T> scratch;
        scratch.resize(c.shape.batch, c.shape.dim);
        detail::ddpm_step_kernel<T>(
            m_options, chain_schedule().profile() == profile::diffusers,
            [&](std::size_t k) { return position_coefficients(pos(k)); }, c.out, c.x, c.noise(), c.prev, c.x0,
            c.shape.batch, c.shape.dim, scratch, execution{});
    }

    void refuse_if_respaced(std::string_view parameter) const {
        if (m_respaced)
            detail::throw_invalid("ddpm::ddpm_scheduler::set_timesteps", parameter, "(any)",
                                  "no call: a respaced scheduler's timesteps are fixed by its kept set");
    }

    /// (t, prev) as indices into chain_schedule().
    [[nodiscard]] std::pair<timestep_t, timestep_t> table_indices(std::size_t i) const noexcept {
        if (m_respaced) {
            const auto k = static_cast<timestep_t>(m_chain.size());
            const auto j = k - 1 - static_cast<timestep_t>(i);
            return {j, j - 1};
        }
        return {m_chain[i], m_chain.next(i)};
    }

    [[nodiscard]] detail::ddpm_sample_coefficients<T> position_coefficients(std::size_t i) const noexcept {
        const auto [t, prev] = table_indices(i);
        const noise_schedule& s = chain_schedule();
        return {reverse_step_coefficients<T>(s, t, prev, m_options.prediction, m_options.variance),
                detail::ddpm_step_has_noise(s, t, prev)};
    }

    noise_schedule m_base;
    std::optional<noise_schedule> m_respaced;
    model_options m_options;
    detail::timestep_chain m_chain;
};

/// Owns a scheduler and the scratch of a sampling run, so that repeated runs
/// allocate nothing (the buffers grow only when B·D grows).
template <std::floating_point T>
class ddpm_sampler {
public:
    explicit ddpm_sampler(ddpm_scheduler<T> scheduler) : m_scheduler(std::move(scheduler)) {}

    [[nodiscard]] const ddpm_scheduler<T>& scheduler() const noexcept { return m_scheduler; }
    [[nodiscard]] ddpm_scheduler<T>& scheduler() noexcept { return m_scheduler; }

    /// Runs Algorithm 2 over scheduler().timesteps(); see ddpm::sample.
    template <class Model, class Noise, output_buffer O, class Observer = no_observer>
    std::size_t sample(Model&& model, Noise&& noise, O&& out, const sampler_options& options = {},
                       Observer&& observe = Observer{}) {
        static_assert(std::is_same_v<T, detail::value_of<O>>, "ddpm::ddpm_sampler<T>::sample: out must hold T");
        static_assert(callable_with_timesteps_v<Model, T, false>,
                      "ddpm::ddpm_sampler::sample: the model does not satisfy ddpm::denoiser<D, T>: it must be "
                      "callable as d(std::span<const T> x_t, std::span<const ddpm::timestep_t> t, std::span<T> out)");
        static_assert(noise_source<Noise, T>,
                      "ddpm::ddpm_sampler::sample: the noise does not satisfy ddpm::noise_source<N, T>: it needs "
                      "n.fill(std::span<T> out, std::uint64_t step)");
        static_assert(std::is_same_v<std::remove_cvref_t<Observer>, no_observer> || sampler_observer<Observer, T>,
                      "ddpm::ddpm_sampler::sample: the observer must be callable as f(std::size_t step, "
                      "ddpm::timestep_t t, std::span<const T> x, std::span<const T> x0_hat)");
        if constexpr (callable_with_timesteps_v<Model, T, false> && noise_source<Noise, T>) {
            detail::check_output_layout(out, options.batch, "out");
            return detail::run_chain<T>("ddpm::sample", m_scheduler, model, noise, as_mutable_span(out), options,
                                        observe, m_workspace);
        } else {
            return 0;
        }
    }

private:
    ddpm_scheduler<T> m_scheduler;
    detail::chain_workspace<T> m_workspace;
};

// Ancestral sampling in one call is ddpm::sample(scheduler, net, noise, out,
// options[, observer]) (samplers/chain.hpp): x_T from `noise` (step index 0)
// or from `out`; for every position i of scheduler.timesteps() the network is
// called with t = timesteps()[i] (the original index for a respaced chain),
// x̂_0 formed and clipped/thresholded, and x ← μ + σ z with z from
// noise.fill(…, i + 1) when the step adds noise.

} // namespace ddpm
