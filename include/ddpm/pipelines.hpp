// ddpm/pipelines.hpp — the loop with a state-changing hook, img2img (SDEdit)
// and inpainting (RePaint's replacement), for every scheduler: DDPM, DDIM,
// Euler, Euler ancestral, Heun, DPM-Solver multistep, UniPC (and
// any_scheduler through ddpm/samplers/from_config.hpp).
//
//   sched.set_timesteps(50);
//   ddpm::img2img(sched, 0.6, net, noise, image, out, {.batch = B});            // SDEdit
//   ddpm::inpaint(sched, net, noise, known, mask, out, {.batch = B});           // RePaint replacement
//   ddpm::sample_with_hook(sched, net, noise, out, {.batch = B}, on_step_end);  // your own edit
//
// Positions. A scheduler's run is num_steps() network calls at positions
// i = 0 … n − 1 (Heun: 2N − 1 calls for N steps); position p's noise level
// is the level of the state the call at p sees: timesteps()[p] (DDPM/DDIM,
// ᾱ of that timestep) or sigmas()[p] (σ schedulers and the multistep
// solvers); position n is the end of the chain (the clean sample, or the
// final σ). noise_to_position(s, p, x0, z, out) puts a clean x0 at that
// level with the scheduler's own forward rule, as diffusers' add_noise does:
//   DDPM/DDIM            √ᾱ_t x0 + √(1 − ᾱ_t) z       (t = timesteps()[p]; x0 at p = n)
//   Euler, Heun, EA      x0 + σ_p z                    (VE form; diffusers' scale_noise)
//   DPM-Solver, UniPC    α_p x0 + σ̃_p z, α_p = 1/√(σ_p² + 1), σ̃_p = σ_p α_p
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/error.hpp"
#include "ddpm/samplers/chain.hpp"
#include "ddpm/samplers/ddim.hpp"
#include "ddpm/samplers/ddpm.hpp"
#include "ddpm/samplers/dpm_solver.hpp"
#include "ddpm/samplers/euler.hpp"
#include "ddpm/samplers/heun.hpp"
#include "ddpm/samplers/sigmas.hpp"
#include "ddpm/samplers/unipc.hpp"

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

namespace detail::pipelines {

template <class S, class T>
inline constexpr bool is_ddpm_or_ddim_v = std::is_same_v<S, ddpm_scheduler<T>> || std::is_same_v<S, ddim_scheduler<T>>;
template <class S, class T>
inline constexpr bool is_multistep_v =
    std::is_same_v<S, dpm_solver_multistep_scheduler<T>> || std::is_same_v<S, unipc_scheduler<T>>;

/// diffusers' scheduler.order: Heun makes two network calls per step.
template <class S>
inline constexpr std::size_t order_v = std::is_same_v<S, heun_scheduler<typename S::value_type>> ? 2 : 1;

/// The chain a pipeline runs: the scheduler's chain from position `first`,
/// with `hook(i, t, x, x̂_0)` applied to the state after every call (it may
/// change x). Positions are those of the scheduler (first + i).
template <class T, class Chain, class Hook>
struct hooked_chain {
    using value_type = T;
    static constexpr bool continuous_timesteps = continuous_timesteps_v<Chain>;

    const Chain& c;
    std::size_t first;
    Hook& hook;
    bool& stop;
    bool start_given; ///< x_T comes ready-made (img2img): no init_noise_sigma

    [[nodiscard]] std::size_t num_steps() const { return c.num_steps() - first; }
    [[nodiscard]] auto model_timestep(std::size_t i) const { return c.model_timestep(first + i); }
    [[nodiscard]] std::size_t output_channels() const { return c.output_channels(); }
    [[nodiscard]] bool adds_noise(std::size_t i) const { return c.adds_noise(first + i); }
    [[nodiscard]] T init_noise_sigma() const
        requires requires(const Chain& k) { k.init_noise_sigma(); }
    {
        return start_given ? T(1) : c.init_noise_sigma();
    }
    void scale_model_input_at(std::size_t i, std::span<const T> x, std::span<T> in, const execution& e) const
        requires requires(const Chain& k) { k.scale_model_input_at(i, x, in, e); }
    {
        c.scale_model_input_at(first + i, x, in, e);
    }
    auto make_state(std::size_t batch, std::size_t dim) const
        requires requires(const Chain& k) { k.make_state(batch, dim); }
    {
        return c.make_state(batch, dim);
    }
    template <class... Rest>
    void step_at(std::size_t i, std::span<const T> model_out, std::span<const T> x, const kernels::step_noise<T>& z,
                 std::span<T> x_next, std::span<T> x0, Rest&&... rest) const {
        c.step_at(first + i, model_out, x, z, x_next, x0, std::forward<Rest>(rest)...);
        using R = std::invoke_result_t<Hook&, std::size_t, model_timestep_t<Chain>, std::span<T>, std::span<const T>>;
        if constexpr (std::is_void_v<R>) hook(first + i, model_timestep(i), x_next, std::span<const T>(x0));
        else if (!static_cast<bool>(hook(first + i, model_timestep(i), x_next, std::span<const T>(x0)))) stop = true;
    }
};

/// The caller's noise, except that step 0 (x_T) is a prepared start.
template <class Noise, class T>
struct start_noise {
    Noise& inner;
    std::span<const T> start;
    void fill(std::span<T> out, std::uint64_t step) {
        if (step == 0) std::copy(start.begin(), start.end(), out.begin());
        else inner.fill(out, step);
    }
    void fill_rows(std::span<T> out, std::uint64_t step, std::size_t dim)
        requires requires(Noise& n) { n.fill_rows(out, step, dim); }
    {
        if (step == 0) std::copy(start.begin(), start.end(), out.begin());
        else inner.fill_rows(out, step, dim);
    }
    [[nodiscard]] kernels::noise_stream stream(std::uint64_t step) const
        requires stream_noise_source<Noise>
    {
        return inner.stream(step);
    }
};

struct no_hook {
    template <class... A>
    constexpr void operator()(A&&...) const noexcept {}
};

/// Runs scheduler `s` from position `first` with the hook; x_T from the
/// noise (step 0), or `start` when it is not empty.
template <class T, class S, class Model, class Noise, class Hook>
std::size_t run(std::string_view where, const S& s, std::size_t first, Model& model, Noise& noise, std::span<T> out,
                sampler_options opt, Hook& hook, std::span<const T> start) {
    if (s.num_steps() == 0) throw_invalid(where, "num_inference_steps", 0, "a call to set_timesteps first");
    if (first >= s.num_steps())
        throw_invalid(where, "first step", first, "< num_steps() = " + std::to_string(s.num_steps()));
    bool stop = false;
    const auto observer = [&stop](auto&&...) { return !stop; };
    auto observe = observer;
    chain_workspace<T> ws;
    // A multistep scheduler's history comes from its make_state (hooked_chain
    // forwards it); run_chain checks the sizes before anything runs.
    const hooked_chain<T, S, Hook> chain{s, first, hook, stop, !start.empty()};
    if (start.empty()) return run_chain<T>(where, chain, model, noise, out, opt, observe, ws);
    start_noise<Noise, T> sn{noise, start};
    opt.start_from_input = false;
    return run_chain<T>(where, chain, model, sn, out, opt, observe, ws);
}

} // namespace detail::pipelines

/// Network calls of a scheduler per inference step (diffusers' `order`: 2 for Heun, else 1).
template <class S>
[[nodiscard]] constexpr std::size_t scheduler_order(const S&) noexcept {
    return detail::pipelines::order_v<S>;
}

/// Puts clean samples x0 at the noise level of chain position p (0 ≤ p ≤
/// num_steps()) with the scheduler's own forward rule (table at the top of
/// this file): out = a_p·x0 + b_p·z.
/// @throws ddpm::invalid_argument before set_timesteps, for p > num_steps(),
///         or on mismatched sizes; nothing is written then.
template <class S, input_buffer X, input_buffer N, output_buffer O>
void noise_to_position(const S& s, std::size_t p, const X& x0, const N& z, O&& out) {
    using T = typename S::value_type;
    constexpr std::string_view where = "ddpm::noise_to_position";
    const auto x = as_span(x0);
    const auto zs = as_span(z);
    const auto o = as_mutable_span(out);
    static_assert(std::is_same_v<T, detail::value_of<X>> && std::is_same_v<T, detail::value_of<N>> &&
                      std::is_same_v<T, detail::value_of<O>>,
                  "ddpm::noise_to_position: every buffer must hold the scheduler's T");
    const std::size_t n = s.num_steps();
    if (n == 0) detail::throw_invalid(where, "num_inference_steps", 0, "a call to set_timesteps first");
    if (p > n) detail::throw_invalid(where, "p", p, "<= num_steps() = " + std::to_string(n));
    detail::check_size(where, "noise", zs.size(), x.size());
    detail::check_size(where, "out", o.size(), x.size());
    T a = 1, b = 0;
    if constexpr (detail::pipelines::is_ddpm_or_ddim_v<S, T>) {
        // the scheduler's add_noise on the training schedule (q_sample)
        if (p < n) {
            const timestep_t t[1] = {s.timesteps()[p]};
            std::span<T> dst = o;
            s.add_noise(x, zs, std::span<const timestep_t>(t), dst);
            return;
        }
    } else if constexpr (detail::pipelines::is_multistep_v<S, T>) {
        const auto ab = sigmas::to_alpha_sigma<T>(static_cast<T>(s.sigmas()[p]));
        a = ab.alpha;
        b = ab.sigma;
    } else {
        b = static_cast<T>(s.sigmas()[p]);
    }
    for (std::size_t k = 0; k < x.size(); ++k) o[k] = a * x[k] + b * zs[k];
}

/// diffusers' get_timesteps(num_inference_steps, strength): the first chain
/// position of an img2img run. With N inference steps, init = min(⌊N·strength⌋, N)
/// steps are run, from step N − init (position (N − init)·order).
/// @throws ddpm::invalid_argument for strength outside (0, 1], before
///         set_timesteps, or when ⌊N·strength⌋ = 0 (no step would run).
template <class S>
[[nodiscard]] std::size_t img2img_first_step(const S& s, double strength) {
    constexpr std::string_view where = "ddpm::img2img";
    if (!(std::isfinite(strength) && strength > 0.0 && strength <= 1.0))
        detail::throw_invalid(where, "strength", strength, "in (0, 1]");
    const std::size_t calls = s.num_steps();
    if (calls == 0) detail::throw_invalid(where, "num_inference_steps", 0, "a call to set_timesteps first");
    const std::size_t order = scheduler_order(s);
    const std::size_t n = (calls + order - 1) / order; // Heun: 2N − 1 calls
    const auto init = std::min(static_cast<std::size_t>(static_cast<double>(n) * strength), n);
    if (init == 0)
        detail::throw_invalid(where, "strength", strength,
                              "at least 1/num_inference_steps = " + std::to_string(1.0 / static_cast<double>(n)) +
                                  " (floor(N * strength) steps run)");
    return (n - init) * order;
}

/// Sampling with a hook that may change the state between steps (diffusers'
/// callback_on_step_end): after network call i the hook runs as
/// `hook(std::size_t position, Tv t, std::span<T> x, std::span<const T> x̂_0)`
/// on the state the next call will see; it returns void, or bool (false
/// stops the run). Otherwise as ddpm::sample (x_T from the noise, step 0, or
/// from `out` with options.start_from_input; out written once, at the end).
template <class S, class Model, class Noise, output_buffer O, class Hook>
std::size_t sample_with_hook(const S& scheduler, Model&& model, Noise&& noise, O&& out, const sampler_options& options,
                             Hook&& hook) {
    using T = typename S::value_type;
    detail::check_output_layout(out, options.batch, "out");
    return detail::pipelines::run<T>("ddpm::sample_with_hook", scheduler, 0, model, noise, as_mutable_span(out),
                                     options, hook, std::span<const T>{});
}

/// img2img (SDEdit, Meng et al. 2022) in one call, as diffusers' img2img
/// pipelines: the chain truncated by `strength` (img2img_first_step), the
/// clean `image` put at that position's noise level with noise step 0
/// (noise_to_position), then the rest of the chain; `hook` as in
/// sample_with_hook. strength = 1 starts from (almost) pure noise.
/// @param image B·D clean samples; @param out B·D: the result (written once,
///        at the end; untouched when anything throws).
/// @return the network calls run.
template <class S, class Model, class Noise, input_buffer I, output_buffer O,
          class Hook = detail::pipelines::no_hook>
std::size_t img2img(const S& scheduler, double strength, Model&& model, Noise&& noise, const I& image, O&& out,
                    const sampler_options& options, Hook&& hook = Hook{}) {
    using T = typename S::value_type;
    constexpr std::string_view where = "ddpm::img2img";
    const std::size_t first = img2img_first_step(scheduler, strength);
    detail::check_output_layout(out, options.batch, "out");
    const auto x0 = as_span(image);
    const auto o = as_mutable_span(out);
    detail::check_size(where, "image", x0.size(), o.size());
    (void)detail::run_shape(where, o.size(), options.batch);
    std::vector<T> z(x0.size()), start(x0.size());
    detail::fill_noise<T>(noise, std::span<T>(z), std::uint64_t{0}, x0.size() / options.batch);
    noise_to_position(scheduler, first, x0, z, start);
    return detail::pipelines::run<T>(where, scheduler, first, model, noise, o, options, hook,
                                     std::span<const T>(start));
}

/// Options of inpaint().
struct inpaint_options {
    /// RePaint's resampling is not offered; the replacement runs once per step.
    /// Noise steps of the known region are known_noise_step + p (distinct from the
    /// chain's 0 … n; counter_noise takes steps below 2^32).
    std::uint64_t known_noise_step = std::uint64_t{1} << 31;
};

/// Re-imposes a known region after every step (RePaint's replacement, Lugmayr
/// et al. 2022, without resampling jumps): x ← m ⊙ noise_to_position(x0_known,
/// p + 1) + (1 − m) ⊙ x, the known part at the noise level of the state the
/// next call sees (the clean x0_known after the last call). Mask values
/// in [0, 1] (1 = known, kept; 0 = generated); soft masks blend.
template <class S, class Noise>
class inpaint_hook {
public:
    using T = typename S::value_type;
    inpaint_hook(const S& scheduler, std::span<const T> known, std::span<const T> mask, Noise& noise, std::size_t dim,
                 inpaint_options options = {})
        : m_s(scheduler), m_known(known), m_mask(mask), m_noise(noise), m_dim(dim), m_options(options),
          m_z(known.size()), m_level(known.size()) {}

    template <class Tv>
    void operator()(std::size_t position, Tv, std::span<T> x, std::span<const T>) {
        const std::size_t p = position + 1;
        detail::fill_noise<T>(m_noise, std::span<T>(m_z), m_options.known_noise_step + p, m_dim);
        noise_to_position(m_s, p, m_known, m_z, m_level);
        for (std::size_t k = 0; k < x.size(); ++k) x[k] = m_mask[k] * m_level[k] + (T(1) - m_mask[k]) * x[k];
    }

private:
    const S& m_s;
    std::span<const T> m_known, m_mask;
    Noise& m_noise;
    std::size_t m_dim;
    inpaint_options m_options;
    std::vector<T> m_z, m_level;
};

/// Inpainting in one call: sample_with_hook with an inpaint_hook. x_T is
/// drawn from the noise (step 0) for the whole sample; `known` holds the
/// clean values of the known region (anything elsewhere), `mask` 1 where
/// known, 0 where generated (B·D each, like out).
/// @throws ddpm::invalid_argument on sizes, a mask value outside [0, 1], or
///         as ddpm::sample; out untouched then.
template <class S, class Model, class Noise, input_buffer K, input_buffer M, output_buffer O>
std::size_t inpaint(const S& scheduler, Model&& model, Noise&& noise, const K& known, const M& mask, O&& out,
                    const sampler_options& options, inpaint_options io = {}) {
    using T = typename S::value_type;
    constexpr std::string_view where = "ddpm::inpaint";
    detail::check_output_layout(out, options.batch, "out");
    const auto k = as_span(known);
    const auto m = as_span(mask);
    const auto o = as_mutable_span(out);
    detail::check_size(where, "known", k.size(), o.size());
    detail::check_size(where, "mask", m.size(), o.size());
    for (std::size_t i = 0; i < m.size(); ++i)
        if (!(m[i] >= T(0) && m[i] <= T(1)))
            detail::throw_invalid(where, "mask[" + std::to_string(i) + "]", m[i], "in [0, 1] (1 = known)");
    const detail::batch_shape shape = detail::run_shape(where, o.size(), options.batch);
    auto& n = noise;
    inpaint_hook<S, std::remove_reference_t<Noise>> hook(scheduler, k, m, n, shape.dim, io);
    return detail::pipelines::run<T>(where, scheduler, 0, model, noise, o, options, hook, std::span<const T>{});
}

} // namespace ddpm
