// ddpm/samplers/euler.hpp — the Euler family in σ form (Karras et al. 2022,
// "Elucidating the design space", Algorithm 1 without churn; diffusers'
// EulerDiscreteScheduler and EulerAncestralDiscreteScheduler), over the σ
// vocabulary of samplers/sigmas.hpp. Heun (samplers/heun.hpp) shares the
// chain built here.
//
// With the VE state x (x_VP·√(σ² + 1)), the network called on
// x/√(σ_i² + 1) at its fractional timestep t_i, and x̂_0 from its output
// (ε: x − σ_i ε̂; v: v̂·(−σ_i/√(σ_i²+1)) + x/(σ_i²+1); sample: the output):
//
//   Euler:            d = (x − x̂_0)/σ_i;  x ← x + d·(σ_{i+1} − σ_i)
//   Euler ancestral:  σ_up = √(σ_{i+1}² (σ_i² − σ_{i+1}²)/σ_i²),  σ_down = √(σ_{i+1}² − σ_up²)
//                     x ← x + d·(σ_down − σ_i) + σ_up·z
//
// Every scalar is formed in T in diffusers' order (float32 as diffusers ships
// it), and the element-wise update runs in one fused pass
// (kernels::sigma_step). set_timesteps follows diffusers exactly
// (docs/solvers.md, "Euler family"): timestep_spacing linspace / leading /
// trailing with steps_offset, σ interpolated at the (float32-rounded)
// timesteps, Karras or exponential σ with timesteps from _sigma_to_t, the
// final σ zero or σ_min, everything rounded to T; init_noise_sigma is
// max σ (linspace, trailing) or √(max σ² + 1) (leading).
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/core/p_mean_variance.hpp"
#include "ddpm/error.hpp"
#include "ddpm/kernels/combine.hpp"
#include "ddpm/samplers/chain.hpp"
#include "ddpm/samplers/sigmas.hpp"
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

/// Options of the Euler-family schedulers (diffusers' config names).
struct euler_options {
    timestep_spacing spacing = timestep_spacing::linspace; ///< diffusers' default for the Euler family
    std::int64_t steps_offset = 0;                         ///< added to leading timesteps
    /// use_karras_sigmas / use_exponential_sigmas.
    sigma_schedule sigmas = sigma_schedule::discrete;
    /// The σ after the last step (EulerDiscreteScheduler only; Euler ancestral
    /// and Heun always end at zero, as in diffusers).
    final_sigmas_type final_sigmas = final_sigmas_type::zero;
};

namespace detail {

/// Which diffusers class's set_timesteps rules apply.
enum class euler_family { euler, ancestral, heun };

/// The chain of a σ-based scheduler after set_timesteps.
template <class T>
struct sigma_chain {
    std::vector<T> timesteps; ///< what the network gets at each call
    std::vector<T> sigmas;    ///< one more than timesteps
    T init_noise_sigma = 1;
    std::int64_t num_inference_steps = 0;
};

/// init_noise_sigma: max σ, or √(max σ² + 1) for leading spacing (in T).
template <class T>
[[nodiscard]] T euler_init_noise_sigma(std::span<const T> sigmas, timestep_spacing spacing) noexcept {
    T m = sigmas.empty() ? T(0) : sigmas[0];
    for (const T s : sigmas) m = std::max(m, s);
    return spacing == timestep_spacing::leading ? std::sqrt(m * m + T(1)) : m;
}

/// Heun's interleaving: σ = [s0, s1, s1, …, s(N−1), s(N−1), s(N)], t = [t0, t1, t1, …].
template <class T>
void heun_interleave(sigma_chain<T>& c) {
    std::vector<T> s{c.sigmas.front()}, t{c.timesteps.front()};
    for (std::size_t i = 1; i + 1 < c.sigmas.size(); ++i) s.insert(s.end(), 2, c.sigmas[i]);
    s.push_back(c.sigmas.back());
    for (std::size_t i = 1; i < c.timesteps.size(); ++i) t.insert(t.end(), 2, c.timesteps[i]);
    c.sigmas = std::move(s);
    c.timesteps = std::move(t);
}

/// Timesteps (as doubles) and σ from spaced/custom timesteps, then the
/// Karras/exponential conversion and the final σ: diffusers' set_timesteps of
/// the Euler family, in T.
template <class T>
[[nodiscard]] sigma_chain<T> euler_chain_from_timesteps(const noise_schedule& s, std::vector<double> ts,
                                                        const euler_options& o, euler_family fam) {
    const std::vector<T> train = sigmas::training_sigmas<T>(s);
    const std::vector<T> log_train = sigmas::log_sigmas<T>(train);
    const std::size_t n = ts.size();
    std::vector<double> sig(n);
    for (std::size_t i = 0; i < n; ++i) sig[i] = sigmas::interp<T>(ts[i], train);
    if (o.sigmas != sigma_schedule::discrete) {
        sig = o.sigmas == sigma_schedule::karras ? sigmas::karras_sigmas(sig.back(), sig.front(), n)
                                                 : sigmas::exponential_sigmas(sig.back(), sig.front(), n);
        for (std::size_t i = 0; i < n; ++i) ts[i] = sigmas::sigma_to_t<T>(sig[i], log_train);
    }
    sigma_chain<T> c;
    c.num_inference_steps = static_cast<std::int64_t>(n);
    c.timesteps.resize(n);
    c.sigmas.resize(n + 1);
    for (std::size_t i = 0; i < n; ++i) {
        c.timesteps[i] = static_cast<T>(ts[i]);
        c.sigmas[i] = static_cast<T>(sig[i]);
    }
    c.sigmas[n] = (fam == euler_family::euler && o.final_sigmas == final_sigmas_type::sigma_min) ? train[0] : T(0);
    c.init_noise_sigma = euler_init_noise_sigma<T>(c.sigmas, o.spacing);
    if (fam == euler_family::heun) heun_interleave(c);
    return c;
}

/// The spaced timesteps of the Euler family, as the doubles diffusers
/// interpolates σ at (linspace rounded to T first: np.linspace(…,
/// dtype=np.float32) in all three classes).
/// @throws ddpm::invalid_argument for N < 1 (diffusers divides by zero or
///         returns an empty chain), steps_offset < 0, or a leading timestep
///         pushed to T or beyond by steps_offset.
template <class T>
[[nodiscard]] std::vector<double> euler_spaced_timesteps(std::int64_t T_train, std::int64_t N, const euler_options& o,
                                                         std::string_view where) {
    if (N < 1)
        throw_invalid(where, "num_inference_steps", N,
                      ">= 1 (diffusers returns an empty chain or raises ZeroDivisionError/IndexError/TypeError here)");
    if (o.steps_offset < 0) throw_invalid(where, "steps_offset", o.steps_offset, ">= 0");
    const auto n = static_cast<std::size_t>(N);
    std::vector<double> ts(n);
    switch (o.spacing) {
    case timestep_spacing::linspace: {
        const std::vector<double> lin = sigmas::linspace(0.0, static_cast<double>(T_train - 1), n);
        for (std::size_t i = 0; i < n; ++i) ts[i] = static_cast<double>(static_cast<T>(lin[n - 1 - i]));
        break;
    }
    case timestep_spacing::leading: {
        // (arange(N) · (T // N)).round()[::-1] + steps_offset; T // N = 0 for N > T (all zeros, as diffusers)
        const std::int64_t ratio = T_train / N;
        for (std::size_t i = 0; i < n; ++i)
            ts[i] = static_cast<double>(static_cast<std::int64_t>(n - 1 - i) * ratio + o.steps_offset);
        if (ts.front() >= static_cast<double>(T_train))
            throw_invalid(where, "steps_offset", o.steps_offset,
                          "small enough that the first timestep " + std::to_string(static_cast<std::int64_t>(ts.front())) +
                              " stays below num_train_timesteps = " + std::to_string(T_train));
        break;
    }
    case timestep_spacing::trailing: {
        // round(arange(T, 0, −T/N)) − 1, numpy's float arange: a_i = a_0 + i·(a_1 − a_0)
        const double r = static_cast<double>(T_train) / static_cast<double>(N);
        const double start = static_cast<double>(T_train);
        const auto len = static_cast<std::size_t>(std::ceil((0.0 - start) / -r));
        const double delta = (start + -r) - start;
        ts.assign(len, 0.0);
        for (std::size_t i = 0; i < len; ++i) {
            const double a = i == 0 ? start : (i == 1 ? start + -r : start + static_cast<double>(i) * delta);
            ts[i] = std::nearbyint(a) - 1.0;
        }
        break;
    }
    }
    return ts;
}

/// What every Euler-family scheduler shares: the schedule, the options, the
/// chain, the per-step σ coefficients and the diffusers step index.
template <class T>
class euler_family_base {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "ddpm Euler-family schedulers: T must be float or double");

public:
    using value_type = T;
    /// The network gets real-valued timesteps (ddpm::continuous_denoiser).
    static constexpr bool continuous_timesteps = true;

    [[nodiscard]] const noise_schedule& schedule() const noexcept { return m_schedule; }
    [[nodiscard]] const model_options& options() const noexcept { return m_options; }
    [[nodiscard]] const euler_options& euler() const noexcept { return m_euler; }
    [[nodiscard]] std::int64_t size() const noexcept { return m_schedule.size(); }
    [[nodiscard]] std::int64_t num_inference_steps() const noexcept { return m_chain.num_inference_steps; }
    /// The timesteps the network gets (empty until set_timesteps).
    [[nodiscard]] std::span<const T> timesteps() const noexcept { return m_chain.timesteps; }
    /// σ at each call, plus the final σ (one more than timesteps()).
    [[nodiscard]] std::span<const T> sigmas() const noexcept { return m_chain.sigmas; }
    /// The scale of x_T (diffusers' init_noise_sigma); 1 before set_timesteps.
    [[nodiscard]] T init_noise_sigma() const noexcept { return m_chain.init_noise_sigma; }
    /// diffusers' step_index: the next call's position (nullopt until the first step/scale_model_input).
    [[nodiscard]] std::optional<std::size_t> step_index() const noexcept { return m_step_index; }

    /// diffusers' scale_model_input: sample / √(σ² + 1) at the current step
    /// (the step index is found from `timestep` on the first call).
    /// @throws ddpm::invalid_argument on a size mismatch, before set_timesteps,
    ///         or when timestep is not in timesteps().
    template <input_buffer X, output_buffer O>
    void scale_model_input(const X& sample, T timestep, O&& out) {
        constexpr std::string_view where = "scale_model_input";
        const auto x = as_span(sample);
        const auto y = as_mutable_span(out);
        check_size(where, "out", y.size(), x.size());
        init_step_index(timestep, where);
        scale_input(*m_step_index, x, y);
    }

    // ----- the loop interface (samplers/chain.hpp)
    [[nodiscard]] std::size_t num_steps() const noexcept { return m_chain.timesteps.size(); }
    [[nodiscard]] T model_timestep(std::size_t i) const noexcept { return m_chain.timesteps[i]; }
    [[nodiscard]] std::size_t output_channels() const noexcept { return detail::output_channels(m_options.variance); }
    void scale_model_input_at(std::size_t i, std::span<const T> x, std::span<T> in, const execution&) const noexcept {
        scale_input(i, x, in);
    }

protected:
    euler_family_base(noise_schedule schedule, model_options options, euler_options euler, euler_family fam,
                      std::string_view where)
        : m_schedule(std::move(schedule)), m_options(options), m_euler(euler), m_family(fam) {
        m_options.clip.validate(where);
        if (m_options.clip.kind == clip_options::mode::dynamic_threshold)
            throw_invalid(where, "options.clip", "dynamic_threshold",
                          "none or a static clip (the Euler family has no dynamic thresholding)");
        if (m_euler.steps_offset < 0) throw_invalid(where, "steps_offset", m_euler.steps_offset, ">= 0");
    }

    void set_spaced(std::int64_t num_inference_steps, std::string_view where) {
        auto ts = euler_spaced_timesteps<T>(size(), num_inference_steps, m_euler, where);
        install(euler_chain_from_timesteps<T>(m_schedule, std::move(ts), m_euler, m_family));
    }

    /// diffusers' set_timesteps(timesteps=…): values rounded to T (float32 in
    /// Euler / Euler ancestral; Heun's too), σ interpolated there.
    void set_custom_timesteps(std::span<const double> custom, std::string_view where) {
        if (custom.empty()) throw_invalid(where, "timesteps.size()", 0, ">= 1");
        if (m_euler.sigmas != sigma_schedule::discrete)
            throw_invalid(where, "timesteps", "(custom)",
                          "no custom timesteps together with Karras or exponential sigmas (as diffusers)");
        std::vector<double> ts(custom.size());
        for (std::size_t i = 0; i < custom.size(); ++i) {
            const double v = custom[i];
            if (!(std::isfinite(v) && v >= 0.0 && v <= static_cast<double>(size() - 1)))
                throw_invalid(where, "timesteps[" + std::to_string(i) + "]", v,
                              "in [0, num_train_timesteps − 1 = " + std::to_string(size() - 1) + "]");
            if (i > 0 && !(v < custom[i - 1]))
                throw_invalid(where, "timesteps[" + std::to_string(i) + "]", v,
                              "< timesteps[" + std::to_string(i - 1) + "] (strictly descending)");
            ts[i] = static_cast<double>(static_cast<T>(v));
        }
        install(euler_chain_from_timesteps<T>(m_schedule, std::move(ts), m_euler, m_family));
    }

    /// diffusers' set_timesteps(sigmas=…): the σ values (the last one ends the
    /// chain) rounded to T, the timesteps from _sigma_to_t.
    void set_custom_sigmas(std::span<const double> custom, std::string_view where) {
        if (custom.size() < 2)
            throw_invalid(where, "sigmas.size()", custom.size(), ">= 2 (the σ of each step, then the final σ)");
        for (std::size_t i = 0; i < custom.size(); ++i) {
            const double v = custom[i];
            const bool last = i + 1 == custom.size();
            if (!(std::isfinite(v) && (last ? v >= 0.0 : v > 0.0)))
                throw_invalid(where, "sigmas[" + std::to_string(i) + "]", v,
                              last ? "finite and >= 0" : "finite and > 0");
            if (i > 0 && !(v < custom[i - 1]))
                throw_invalid(where, "sigmas[" + std::to_string(i) + "]", v, "< sigmas[" + std::to_string(i - 1) +
                                                                                  "] (strictly descending)");
        }
        const std::vector<T> log_train = sigmas::log_sigmas<T>(sigmas::training_sigmas<T>(m_schedule));
        sigma_chain<T> c;
        const std::size_t n = custom.size() - 1;
        c.num_inference_steps = static_cast<std::int64_t>(n);
        c.sigmas.resize(n + 1);
        c.timesteps.resize(n);
        for (std::size_t i = 0; i <= n; ++i) c.sigmas[i] = static_cast<T>(custom[i]);
        for (std::size_t i = 0; i < n; ++i)
            c.timesteps[i] = static_cast<T>(sigmas::sigma_to_t<T>(static_cast<double>(c.sigmas[i]), log_train));
        c.init_noise_sigma = euler_init_noise_sigma<T>(c.sigmas, m_euler.spacing);
        if (m_family == euler_family::heun) heun_interleave(c);
        install(std::move(c));
    }

    void install(sigma_chain<T> c) {
        m_chain = std::move(c);
        m_step_index.reset();
    }

    /// x̂_0 coefficients at σ (diffusers' step, step 1), in T.
    void x0_coefficients(kernels::sigma_step_coefficients<T>& c, T sigma) const noexcept {
        switch (m_options.prediction) {
        case prediction_type::epsilon:
            c.form = kernels::sigma_x0_form::epsilon;
            c.a = sigma;
            break;
        case prediction_type::v_prediction:
            c.form = kernels::sigma_x0_form::v;
            c.a = -sigma / std::sqrt(sigma * sigma + T(1));
            c.b = sigma * sigma + T(1);
            break;
        case prediction_type::sample: c.form = kernels::sigma_x0_form::sample; break;
        }
        if (m_options.clip.kind == clip_options::mode::clip) {
            c.clip = true;
            c.clip_range = static_cast<T>(m_options.clip.clip_range);
        }
    }

    /// One fused pass of kernels::sigma_step with the same coefficients for every sample.
    void run_sigma_step(const kernels::sigma_step_coefficients<T>& c, const kernels::sigma_step_buffers<T>& buf,
                        const kernels::step_noise<T>& noise, std::size_t batch, step_scratch<T>& scratch,
                        const execution& exec) const {
        scratch.sigma.assign(batch, c); // sized before the loop: no allocation
        kernels::sigma_step<T>(std::span<const kernels::sigma_step_coefficients<T>>(scratch.sigma.data(), batch), buf,
                               noise, exec, kernels::best_backend, output_channels());
    }

    void scale_input(std::size_t i, std::span<const T> x, std::span<T> in) const noexcept {
        const T sigma = m_chain.sigmas[i];
        const T divisor = std::sqrt(sigma * sigma + T(1));
        for (std::size_t k = 0; k < x.size(); ++k) in[k] = x[k] / divisor;
    }

    /// diffusers' _init_step_index: the position of `timestep` (the second
    /// match when it occurs more than once).
    void init_step_index(T timestep, std::string_view where) {
        if (m_chain.timesteps.empty())
            throw_invalid(where, "num_inference_steps", 0, "a call to set_timesteps before stepping");
        if (m_step_index) return;
        std::size_t first = m_chain.timesteps.size(), count = 0, second = 0;
        for (std::size_t i = 0; i < m_chain.timesteps.size(); ++i)
            if (m_chain.timesteps[i] == timestep) {
                if (count == 0) first = i;
                if (count == 1) second = i;
                ++count;
            }
        if (count == 0)
            throw_invalid(where, "timestep", timestep, "one of the scheduler's timesteps()");
        m_step_index = count > 1 ? second : first;
    }

    /// Checks a single-step call's buffers and the step index; returns B·D.
    template <class MO, class X, class P, class X0>
    [[nodiscard]] step_call<T> begin_step(std::string_view where, const MO& model_output, T timestep, const X& sample,
                                          P& prev_sample, X0& pred_original_sample, std::size_t batch) {
        if (batch == 0) throw_invalid(where, "batch", 0, ">= 1");
        const std::vector<T> none;
        auto c = check_step_call<T>(where, m_options.variance, batch, model_output, sample, none, prev_sample,
                                    pred_original_sample);
        init_step_index(timestep, where);
        if (*m_step_index >= num_steps())
            throw_invalid(where, "step_index", *m_step_index,
                          "< " + std::to_string(num_steps()) + " (every step of the chain has been taken; call "
                                                               "set_timesteps again)");
        return c;
    }

    noise_schedule m_schedule;
    model_options m_options;
    euler_options m_euler;
    euler_family m_family;
    sigma_chain<T> m_chain;
    std::optional<std::size_t> m_step_index;
};

} // namespace detail

/// diffusers' EulerDiscreteScheduler: the first-order ODE step in σ form.
template <std::floating_point T>
class euler_scheduler : public detail::euler_family_base<T> {
    using base = detail::euler_family_base<T>;

public:
    /// @throws ddpm::invalid_argument for bad clip options (dynamic
    ///         thresholding is not available) or steps_offset < 0.
    explicit euler_scheduler(noise_schedule schedule, model_options options = {}, euler_options euler = {})
        : base(std::move(schedule), options, euler, detail::euler_family::euler, "ddpm::euler_scheduler") {}

    /// diffusers' set_timesteps(num_inference_steps) (spacing and σ schedule from euler()).
    /// @throws ddpm::invalid_argument for N < 1 (see docs/solvers.md).
    void set_timesteps(std::int64_t num_inference_steps) {
        this->set_spaced(num_inference_steps, "ddpm::euler_scheduler::set_timesteps");
    }
    /// Custom strictly descending timesteps in [0, T − 1] (rounded to T).
    void set_timesteps(std::span<const double> timesteps) {
        this->set_custom_timesteps(timesteps, "ddpm::euler_scheduler::set_timesteps");
    }
    /// Custom strictly descending σ: one per step, then the final σ (>= 0).
    void set_sigmas(std::span<const double> sigmas) {
        this->set_custom_sigmas(sigmas, "ddpm::euler_scheduler::set_sigmas");
    }

    /// diffusers' step (s_churn = 0): x̂_0 from the output at the current σ,
    /// prev_sample = sample + (sample − x̂_0)/σ · (σ_next − σ); advances step_index().
    /// @throws ddpm::invalid_argument on a size mismatch, before
    ///         set_timesteps, after the last step, or for a timestep not in
    ///         timesteps() on the first step; nothing is written then.
    template <input_buffer MO, input_buffer X, output_buffer P, output_buffer X0>
    void step(const MO& model_output, T timestep, const X& sample, P&& prev_sample, X0&& pred_original_sample,
              std::size_t batch = 1) {
        const auto c = this->begin_step("ddpm::euler_scheduler::step", model_output, timestep, sample, prev_sample,
                                        pred_original_sample, batch);
        detail::step_scratch<T> scratch;
        const std::size_t i = *this->m_step_index;
        step_at(i, c.out, c.x, kernels::step_noise<T>::none(), c.prev, c.x0, c.shape.dim, scratch, {});
        this->m_step_index = i + 1;
    }

    // ----- the loop interface
    [[nodiscard]] bool adds_noise(std::size_t) const noexcept { return false; }
    void step_at(std::size_t i, std::span<const T> model_out, std::span<const T> x, const kernels::step_noise<T>&,
                 std::span<T> x_next, std::span<T> x0, std::size_t dim, detail::step_scratch<T>& scratch,
                 const execution& exec) const {
        this->run_sigma_step(coefficients(i), {model_out, x, {}, {}, x_next, x0, {}}, kernels::step_noise<T>::none(),
                             x.size() / dim, scratch, exec);
    }

    /// The element-wise coefficients of call i (diffusers' step with γ = 0,
    /// so σ̂ = σ·(γ + 1) = σ exactly).
    [[nodiscard]] kernels::sigma_step_coefficients<T> coefficients(std::size_t i) const noexcept {
        const T sigma = this->m_chain.sigmas[i];
        kernels::sigma_step_coefficients<T> c;
        this->x0_coefficients(c, sigma);
        c.s = sigma;
        c.dt = this->m_chain.sigmas[i + 1] - sigma;
        return c;
    }
};

/// diffusers' EulerAncestralDiscreteScheduler: an Euler step down to σ_down
/// plus fresh noise σ_up·z (σ_down² + σ_up² = σ_next²).
///
/// Noise: call i draws noise step i + 1 of the run's noise source (counter
/// noise: random::normal_at_v2(seed, sample, i + 1, element, D)); the last step
/// (σ_next = 0, hence σ_up = 0) draws none.
template <std::floating_point T>
class euler_ancestral_scheduler : public detail::euler_family_base<T> {
    using base = detail::euler_family_base<T>;

public:
    /// @throws ddpm::invalid_argument for bad clip options or steps_offset < 0.
    /// euler.final_sigmas must be zero (the ancestral step ends at σ = 0).
    explicit euler_ancestral_scheduler(noise_schedule schedule, model_options options = {}, euler_options euler = {})
        : base(std::move(schedule), options, euler, detail::euler_family::ancestral,
               "ddpm::euler_ancestral_scheduler") {
        if (euler.final_sigmas != final_sigmas_type::zero)
            detail::throw_invalid("ddpm::euler_ancestral_scheduler", "final_sigmas", to_string(euler.final_sigmas),
                                  "zero (EulerAncestralDiscreteScheduler always ends at sigma 0)");
    }

    void set_timesteps(std::int64_t num_inference_steps) {
        this->set_spaced(num_inference_steps, "ddpm::euler_ancestral_scheduler::set_timesteps");
    }
    void set_timesteps(std::span<const double> timesteps) {
        this->set_custom_timesteps(timesteps, "ddpm::euler_ancestral_scheduler::set_timesteps");
    }
    void set_sigmas(std::span<const double> sigmas) {
        this->set_custom_sigmas(sigmas, "ddpm::euler_ancestral_scheduler::set_sigmas");
    }

    /// diffusers' step with the noise passed in (B·D standard normals, or
    /// empty for none); advances step_index().
    /// @throws ddpm::invalid_argument as euler_scheduler::step, or when noise
    ///         is missing for a step with σ_up > 0; nothing is written then.
    template <input_buffer MO, input_buffer X, input_buffer N, output_buffer P, output_buffer X0>
    void step(const MO& model_output, T timestep, const X& sample, const N& noise, P&& prev_sample,
              X0&& pred_original_sample, std::size_t batch = 1) {
        constexpr std::string_view where = "ddpm::euler_ancestral_scheduler::step";
        const auto c = this->begin_step(where, model_output, timestep, sample, prev_sample, pred_original_sample, batch);
        const auto z = as_span(noise);
        const std::size_t i = *this->m_step_index;
        if (adds_noise(i) || !z.empty())
            detail::check_size(where, "noise", z.size(), c.shape.elements(), "elements (B x D; this step adds noise)");
        detail::step_scratch<T> scratch;
        const auto zn = z.empty() ? kernels::step_noise<T>::none() : kernels::step_noise<T>::from(z);
        step_at(i, c.out, c.x, zn, c.prev, c.x0, c.shape.dim, scratch, {});
        this->m_step_index = i + 1;
    }

    // ----- the loop interface
    [[nodiscard]] bool adds_noise(std::size_t i) const noexcept { return coefficients(i).sigma_up > T(0); }
    void step_at(std::size_t i, std::span<const T> model_out, std::span<const T> x, const kernels::step_noise<T>& noise,
                 std::span<T> x_next, std::span<T> x0, std::size_t dim, detail::step_scratch<T>& scratch,
                 const execution& exec) const {
        this->run_sigma_step(coefficients(i), {model_out, x, {}, {}, x_next, x0, {}}, noise, x.size() / dim, scratch,
                             exec);
    }

    /// The element-wise coefficients of call i, formed in T in diffusers' order:
    /// σ_up = (σ_to²·(σ_from² − σ_to²)/σ_from²)^½, σ_down = (σ_to² − σ_up²)^½.
    [[nodiscard]] kernels::sigma_step_coefficients<T> coefficients(std::size_t i) const noexcept {
        const T sigma = this->m_chain.sigmas[i];
        const T to = this->m_chain.sigmas[i + 1];
        const T up = std::sqrt(to * to * (sigma * sigma - to * to) / (sigma * sigma));
        const T down = std::sqrt(to * to - up * up);
        kernels::sigma_step_coefficients<T> c;
        this->x0_coefficients(c, sigma);
        c.s = sigma;
        c.dt = down - sigma;
        c.sigma_up = up;
        return c;
    }
};

} // namespace ddpm
