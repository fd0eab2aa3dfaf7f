// ddpm/samplers/unipc.hpp — UniPC (Zhao et al. 2023, arXiv 2302.04867): the
// unified predictor (UniP) and corrector (UniC) in their B(h) form, orders
// 1–3, as diffusers' UniPCMultistepScheduler.
//
// In λ = log α − log σ form, with h = λ_t − λ_s0, hh = −h when predicting
// x̂_0 (else h), the converted outputs m_k (x̂_0 or ε̂) and
// D_k = (m_k − m_0)/r_k, r_k = (λ_{s_k} − λ_{s0})/h:
//
//   φ: hφ_1 = e^{hh} − 1;  B(h) = hh (bh1) or e^{hh} − 1 (bh2)
//   UniP-p:  x_t = (σ_t/σ_s0) x − α_t hφ_1 m_0 − α_t B(h) Σ_k ρ_k D_k
//   UniC-p:  x_t^c = (σ_t/σ_s0) x_s − α_t hφ_1 m_0 − α_t B(h) (Σ_k ρ^c_k D_k + ρ^c_p (m_t − m_0))
//
// (α ↔ σ and σ_t/σ_s0 → α_t/α_s0 for the ε form). The ρ solve the order
// conditions R ρ = b with R_{jk} = r_k^j and b_j = j!·hφ_{j+1}/B(h)
// (hφ_{k+1} = hφ_k/hh − 1/k!); UniP-2 uses ρ = ½, UniC-1 ρ = ½. At step i the
// corrector refines the previous prediction with the new model output (order
// of the previous predictor), then the predictor runs at order
// min(solver_order, N − i, i + 1) (the N − i cap with lower_order_final).
//
// Two interfaces (as DPM-Solver, samplers/dpm_solver.hpp): the stateful
// unipc_scheduler<T>::step() and the loop ddpm::sample() (alias
// ddpm::unipc_sample()).
//
// Fixed differences from diffusers (docs/solvers.md):
//  * A first-order predictor has no B(h) term (diffusers multiplies B(h) by a
//    zero residual; with bh1 into σ = 0, B(h) = −∞ and the final sample is
//    all NaN — here it is the x̂_0 prediction, the limit of the step).
//  * A step into σ = 0 is first order whatever lower_order_final says (the
//    higher-order terms are 0·∞ there); a zero-length step (Karras +
//    sigma_min repeats the last σ) is the identity.
//  * predict_x0 = false with final_sigmas_type::zero is rejected (σ_t·hφ_1 = 0·∞).
//  * N = 0 / N > T and timesteps not in timesteps() throw, as for DPM-Solver.
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/core/clipping.hpp"
#include "ddpm/core/p_mean_variance.hpp"
#include "ddpm/denoiser.hpp"
#include "ddpm/error.hpp"
#include "ddpm/samplers/chain.hpp"
#include "ddpm/samplers/dpm_solver.hpp"
#include "ddpm/samplers/multistep.hpp"
#include "ddpm/samplers/noise.hpp"
#include "ddpm/samplers/timesteps.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace ddpm {

/// diffusers' UniPC `solver_type`: B(h) = h (bh1) or e^h − 1 (bh2, the default).
enum class unipc_solver_type { bh1, bh2 };

/// UniPC settings (diffusers' names and defaults). Thresholding and the
/// prediction type come from model_options.
struct unipc_options {
    int solver_order = 2; ///< 1, 2 or 3
    unipc_solver_type solver_type = unipc_solver_type::bh2;
    bool predict_x0 = true;
    bool lower_order_final = true;
    /// Steps k whose following corrector (at step k + 1) is skipped.
    std::vector<std::size_t> disable_corrector{};
    final_sigmas_type final_sigmas = final_sigmas_type::zero;
    sigma_schedule sigmas = sigma_schedule::discrete; ///< use_karras_sigmas / use_exponential_sigmas
    timestep_spacing spacing = timestep_spacing::linspace;
    std::int64_t steps_offset = 0;

    /// @throws ddpm::invalid_argument on an order outside 1–3, a negative
    ///         offset, or predict_x0 = false with final_sigmas_type::zero.
    void validate(std::string_view where) const {
        if (solver_order < 1 || solver_order > 3) detail::throw_invalid(where, "solver_order", solver_order, "1, 2 or 3");
        if (steps_offset < 0) detail::throw_invalid(where, "steps_offset", steps_offset, ">= 0");
        if (!predict_x0 && final_sigmas == final_sigmas_type::zero)
            detail::throw_invalid(where, "final_sigmas_type", "zero",
                                  "sigma_min when predict_x0 = false (the epsilon form cannot step to sigma = 0)");
    }
};

namespace detail {

/// One UniP or UniC update as scalars: x' = (px·x + pm·m_0) + pres·(Σ ρ_k D_k
/// [+ ρ_t (m_t − m_0)]), D_k = (m_k − m_0)/rk_k.
template <class T>
struct unipc_plan {
    int order = 1;
    bool identity = false;
    T px = 0, pm = 0, pres = 0;
    std::array<T, 3> rk{1, 1, 1};
    std::array<T, 3> rho{0, 0, 0};
};

/// The coefficients of UniP (corrector = false: from sigmas[s0] to
/// sigmas[t], D_k from positions s0 − k) or UniC (from sigmas[s0] to
/// sigmas[t] = the current point, D_k from positions s0 − k), in C.
template <class T, class C>
[[nodiscard]] unipc_plan<T> make_unipc_plan(const unipc_options& o, std::span<const double> sigmas, std::size_t t_pos,
                                            std::size_t s0_pos, int order, bool corrector) noexcept {
    unipc_plan<T> p;
    p.order = order;
    const auto pt = vp_of_sigma(static_cast<C>(sigmas[t_pos]));
    const auto p0 = vp_of_sigma(static_cast<C>(sigmas[s0_pos]));
    const C h = pt.lambda - p0.lambda;
    if (h == C(0)) {
        p.identity = true;
        return p;
    }
    const C one(1);
    std::array<C, 3> rks{one, one, one};
    for (int k = 1; k < order; ++k) {
        const auto pk = vp_of_sigma(static_cast<C>(sigmas[s0_pos - static_cast<std::size_t>(k)]));
        rks[static_cast<std::size_t>(k - 1)] = (pk.lambda - p0.lambda) / h;
    }
    rks[static_cast<std::size_t>(order - 1)] = one;
    const C hh = o.predict_x0 ? -h : h;
    const C h_phi_1 = expm1_of(hh);
    C h_phi_k = h_phi_1 / hh - one;
    const C B_h = o.solver_type == unipc_solver_type::bh1 ? hh : expm1_of(hh);
    std::array<C, 3> b{};
    std::int64_t fact = 1;
    for (int i = 1; i <= order; ++i) {
        b[static_cast<std::size_t>(i - 1)] = h_phi_k * static_cast<C>(fact) / B_h;
        fact *= i + 1;
        h_phi_k = h_phi_k / hh - static_cast<C>(1.0 / static_cast<double>(fact));
    }
    std::array<C, 3> rho{};
    if (!corrector) {
        if (order == 2) rho[0] = C(0.5);
        else if (order == 3) {
            const auto r = solve_like_torch<C, 2>({{{one, one}, {rks[0], rks[1]}}}, {b[0], b[1]});
            rho[0] = r[0];
            rho[1] = r[1];
        }
    } else {
        if (order == 1) rho[0] = C(0.5);
        else if (order == 2) {
            const auto r = solve_like_torch<C, 2>({{{one, one}, {rks[0], one}}}, {b[0], b[1]});
            rho[0] = r[0];
            rho[1] = r[1];
        } else {
            const auto r = solve_like_torch<C, 3>(
                {{{one, one, one}, {rks[0], rks[1], one}, {rks[0] * rks[0], rks[1] * rks[1], one}}}, {b[0], b[1], b[2]});
            rho = r;
        }
    }
    if (o.predict_x0) {
        p.px = static_cast<T>(pt.sigma / p0.sigma);
        p.pm = static_cast<T>(-(pt.alpha * h_phi_1));
        p.pres = static_cast<T>(-(pt.alpha * B_h));
    } else {
        p.px = static_cast<T>(pt.alpha / p0.alpha);
        p.pm = static_cast<T>(-(pt.sigma * h_phi_1));
        p.pres = static_cast<T>(-(pt.sigma * B_h));
    }
    for (std::size_t k = 0; k < 3; ++k) {
        p.rk[k] = static_cast<T>(rks[k]);
        p.rho[k] = static_cast<T>(rho[k]);
    }
    return p;
}

/// UniP on one element: m[0] the newest converted output, m[k] older ones.
template <class T>
DDPM_FORCEINLINE T unipc_predict(const unipc_plan<T>& p, T x, T m0, T m1, T m2) noexcept {
    if (p.identity) return x;
    const T base = p.px * x + p.pm * m0;
    if (p.order == 1) return base;
    if (p.order == 2) return base + p.pres * (p.rho[0] * ((m1 - m0) / p.rk[0]));
    const T res = p.rho[0] * ((m1 - m0) / p.rk[0]) + p.rho[1] * ((m2 - m0) / p.rk[1]);
    return base + p.pres * res;
}

/// UniC on one element: x_last the sample the previous predictor started
/// from, m0 its converted output, mt the new one, m1/m2 older outputs.
template <class T>
DDPM_FORCEINLINE T unipc_correct(const unipc_plan<T>& p, T x_last, T x_pred, T mt, T m0, T m1, T m2) noexcept {
    if (p.identity) return x_pred;
    const T base = p.px * x_last + p.pm * m0;
    const T d1t = mt - m0;
    if (p.order == 1) return base + p.pres * (p.rho[0] * d1t);
    if (p.order == 2) return base + p.pres * (p.rho[0] * ((m1 - m0) / p.rk[0]) + p.rho[1] * d1t);
    const T corr = p.rho[0] * ((m1 - m0) / p.rk[0]) + p.rho[1] * ((m2 - m0) / p.rk[1]);
    return base + p.pres * (corr + p.rho[2] * d1t);
}

/// What one UniPC step did (for parity and tests).
struct unipc_step_info {
    int corrector_order = 0; ///< 0: not applied
    int predictor_order = 1;
};

/// One UniPC step at position i: convert (and threshold), correct the
/// incoming sample with the new output, store it as the next corrector's
/// start, predict x_next. The state holds order + 1 outputs.
template <class T, class C>
unipc_step_info unipc_advance(const unipc_options& o, const model_options& mo, std::span<const double> sigmas,
                              std::size_t n, multistep_state<T>& st, std::size_t i, std::span<const T> out,
                              std::span<const T> x, std::span<T> x_next, std::span<T> x0, multistep_dims d,
                              const execution& exec) {
    unipc_step_info info;
    const bool disabled = i > 0 && std::find(o.disable_corrector.begin(), o.disable_corrector.end(), i - 1) !=
                                       o.disable_corrector.end();
    const bool use_corrector = i > 0 && !disabled && st.this_order > 0;
    unipc_plan<T> corr;
    if (use_corrector) {
        info.corrector_order = st.this_order;
        corr = make_unipc_plan<T, C>(o, sigmas, i, i - 1, st.this_order, true);
    }
    int order = o.lower_order_final ? std::min<int>(o.solver_order, static_cast<int>(n - i)) : o.solver_order;
    order = std::min<int>(order, static_cast<int>(st.lower_order_nums) + 1);
    if (sigmas[i + 1] == 0.0) order = 1; // into σ = 0 only the first-order step is finite
    info.predictor_order = order;
    const unipc_plan<T> pred = make_unipc_plan<T, C>(o, sigmas, i + 1, i, order, false);

    const auto p0 = vp_of_sigma(static_cast<C>(sigmas[i]));
    const auto conv = make_convert<T>(mo.prediction, o.predict_x0, p0.alpha, p0.sigma);
    const kernels::output_coefficients<T> to_x0{kernels::output_form::x_minus_bo_c, 0, static_cast<T>(p0.sigma),
                                                static_cast<T>(p0.alpha)}; // (x − σ ε̂)/α
    const bool clip = mo.clip.kind != clip_options::mode::none && o.predict_x0;
    const std::size_t stride = d.channels * d.dim;
    T* hist = st.push();
    const T* h1 = st.recent(1);
    const T* h2 = st.recent(2);
    const T* h3 = st.recent(3);
    if (clip) {
        for (std::size_t b = 0; b < d.batch; ++b) {
            const T* ob = out.data() + b * stride;
            const T* xb = x.data() + b * d.dim;
            T* hb = hist + b * d.dim;
            for (std::size_t k = 0; k < d.dim; ++k) hb[k] = convert_one(conv, ob[k], xb[k]);
            apply_clipping<T>(mo.clip, std::span<T>(hb, d.dim), d.dim, std::span<T>(st.threshold));
        }
    }
    T* last = st.last_sample.data();
    const kernels::step_noise<T> none = kernels::step_noise<T>::none();
    for_each_noise_chunk<T>(d.batch, d.dim, none, false, exec, [&](std::size_t row, std::size_t first, std::size_t count, const T*) {
        const T* ob = out.data() + row * stride + first;
        const std::size_t at = row * d.dim + first;
        const T* xb = x.data() + at;
        T* hb = hist + at;
        T* nb = x_next.data() + at;
        T* lb = last + at;
        T* x0b = x0.empty() ? nullptr : x0.data() + at;
        for (std::size_t k = 0; k < count; ++k) {
            const std::size_t j = at + k;
            T xv = xb[k];
            const T mt = clip ? hb[k] : convert_one(conv, ob[k], xv);
            if (!clip) hb[k] = mt;
            if (x0b) x0b[k] = o.predict_x0 ? mt : convert_one(to_x0, mt, xv);
            if (use_corrector) xv = unipc_correct(corr, lb[k], xv, mt, h1[j], h2[j], h3[j]);
            lb[k] = xv;
            nb[k] = unipc_predict(pred, xv, mt, h1[j], h2[j]);
        }
    });
    st.this_order = order;
    if (st.lower_order_nums < static_cast<std::size_t>(o.solver_order)) ++st.lower_order_nums;
    return info;
}

} // namespace detail

/// A diffusers-like UniPC scheduler (UniPCMultistepScheduler) over a
/// noise_schedule. set_timesteps must be called before stepping;
/// init_noise_sigma() is 1 and the model input is the sample itself.
template <std::floating_point T>
class unipc_scheduler {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "ddpm::unipc_scheduler<T>: T must be float or double");

public:
    using value_type = T;

    /// @throws ddpm::invalid_argument on bad options (unipc_options::validate,
    ///         clip_options::validate).
    explicit unipc_scheduler(noise_schedule schedule, model_options options = {}, unipc_options uni = {})
        : m_schedule(std::move(schedule)), m_options(options), m_uni(std::move(uni)) {
        m_uni.validate("ddpm::unipc_scheduler");
        m_options.clip.validate("ddpm::unipc_scheduler");
    }

    /// diffusers' set_timesteps(num_inference_steps). Resets the history.
    /// @throws ddpm::invalid_argument when N < 1 or N > T, or the offset
    ///         pushes a timestep past T − 1.
    void set_timesteps(std::int64_t num_inference_steps) {
        constexpr std::string_view where = "ddpm::unipc_scheduler::set_timesteps";
        auto s = diffusers_precision()
                     ? detail::make_multistep_schedule<T>(where, m_schedule, num_inference_steps, m_uni.spacing,
                                                          m_uni.steps_offset, m_uni.sigmas, false, m_uni.final_sigmas, true)
                     : detail::make_multistep_schedule<double>(where, m_schedule, num_inference_steps, m_uni.spacing,
                                                               m_uni.steps_offset, m_uni.sigmas, false,
                                                               m_uni.final_sigmas, true);
        m_timesteps = std::move(s.timesteps);
        m_sigmas = std::move(s.sigmas);
        m_state.reset();
        m_last = {};
    }

    [[nodiscard]] std::span<const timestep_t> timesteps() const noexcept { return m_timesteps; }
    [[nodiscard]] std::span<const double> sigmas() const noexcept { return m_sigmas; }
    [[nodiscard]] static constexpr T init_noise_sigma() noexcept { return T(1); }
    [[nodiscard]] const unipc_options& uni() const noexcept { return m_uni; }
    [[nodiscard]] const model_options& options() const noexcept { return m_options; }
    [[nodiscard]] const noise_schedule& schedule() const noexcept { return m_schedule; }
    [[nodiscard]] std::int64_t size() const noexcept { return m_schedule.size(); }

    /// diffusers' step(model_output, t, sample): corrector (from the second
    /// step on), then predictor; writes prev_sample.
    /// @return the corrector order (0 = none) and the predictor order.
    /// @throws ddpm::invalid_argument as dpm_solver_multistep_scheduler::step.
    template <input_buffer MO, input_buffer X, output_buffer P>
    detail::unipc_step_info step(const MO& model_output, timestep_t t, const X& sample, P&& prev_sample,
                                 std::size_t batch) {
        constexpr std::string_view where = "ddpm::unipc_scheduler::step";
        static_assert(std::is_same_v<T, detail::value_of<MO>> && std::is_same_v<T, detail::value_of<X>> &&
                          std::is_same_v<T, detail::value_of<P>>,
                      "ddpm::unipc_scheduler::step: every buffer must hold the scheduler's T");
        const auto out = as_span(model_output);
        const auto x = as_span(sample);
        auto prev = as_mutable_span(prev_sample);
        const auto [shape, i] = detail::begin_multistep_step<T>(
            where, m_timesteps, m_state, static_cast<std::size_t>(m_uni.solver_order) + 1, true, m_options.variance, batch,
            t, out.size(), x.size(), prev.size());
        m_x0.resize(shape.elements());
        m_last = advance(m_state, i, out, x, prev, std::span<T>(m_x0), {shape.batch, shape.dim, channels()}, {});
        m_state.step_index = i + 1;
        return m_last;
    }

    /// The converted output of the last step() (x̂_0 with predict_x0).
    [[nodiscard]] std::span<const T> converted_model_output() const noexcept {
        return m_state.started ? std::span<const T>(m_state.recent(0), m_state.elements) : std::span<const T>();
    }
    /// The sample the last predictor started from (the corrected sample when
    /// the corrector ran).
    [[nodiscard]] std::span<const T> corrected_sample() const noexcept { return m_state.last_sample; }
    /// x̂_0 of the last step().
    [[nodiscard]] std::span<const T> pred_original_sample() const noexcept { return m_x0; }

    // ----- the chain interface of the sampling loop (as DPM-Solver's).
    using state_type = detail::multistep_state<T>;
    [[nodiscard]] state_type make_state(std::size_t batch, std::size_t dim) const {
        state_type st;
        st.resize(static_cast<std::size_t>(m_uni.solver_order) + 1, batch * dim, dim, true);
        st.started = true;
        return st;
    }
    void step_at(std::size_t i, std::span<const T> model_out, std::span<const T> x, const kernels::step_noise<T>&,
                 std::span<T> x_next, std::span<T> x0, std::size_t dim, detail::step_scratch<T>&, const execution& exec,
                 state_type& st) const {
        st.step_index = i;
        static_cast<void>(advance(st, i, model_out, x, x_next, x0, {x.size() / dim, dim, channels()}, exec));
    }
    [[nodiscard]] std::size_t num_steps() const noexcept { return m_timesteps.size(); }
    [[nodiscard]] timestep_t model_timestep(std::size_t i) const noexcept { return m_timesteps[i]; }
    [[nodiscard]] std::size_t output_channels() const noexcept { return channels(); }
    [[nodiscard]] bool adds_noise(std::size_t) const noexcept { return false; }
    detail::unipc_step_info advance(detail::multistep_state<T>& st, std::size_t i, std::span<const T> out,
                                    std::span<const T> x, std::span<T> x_next, std::span<T> x0,
                                    detail::multistep_dims d, const execution& exec) const {
        if (diffusers_precision())
            return detail::unipc_advance<T, T>(m_uni, m_options, m_sigmas, m_timesteps.size(), st, i, out, x, x_next, x0,
                                               d, exec);
        return detail::unipc_advance<T, double>(m_uni, m_options, m_sigmas, m_timesteps.size(), st, i, out, x, x_next,
                                                x0, d, exec);
    }

private:
    [[nodiscard]] bool diffusers_precision() const noexcept { return m_schedule.profile() == profile::diffusers; }
    [[nodiscard]] std::size_t channels() const noexcept { return detail::output_channels(m_options.variance); }

    noise_schedule m_schedule;
    model_options m_options;
    unipc_options m_uni;
    std::vector<timestep_t> m_timesteps;
    std::vector<double> m_sigmas;
    detail::multistep_state<T> m_state;
    std::vector<T> m_x0;
    detail::unipc_step_info m_last{};
};

/// UniPC sampling in one call — ddpm::sample(scheduler, …) under its own name
/// (deterministic: no noise after x_T). Allocates only before the loop.
template <std::floating_point T, class Model, class Noise, output_buffer O, class Observer = no_observer>
std::size_t unipc_sample(const unipc_scheduler<T>& scheduler, Model&& model, Noise&& noise, O&& out,
                         const sampler_options& options = {}, Observer&& observe = Observer{}) {
    return detail::sample_with("ddpm::unipc_sample", scheduler, std::forward<Model>(model), std::forward<Noise>(noise),
                               std::forward<O>(out), options, std::forward<Observer>(observe));
}

} // namespace ddpm
