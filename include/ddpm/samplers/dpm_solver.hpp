// ddpm/samplers/dpm_solver.hpp — multistep DPM-Solver (Lu et al. 2022,
// arXiv 2206.00927) and DPM-Solver++ (Lu et al. 2022, arXiv 2211.01095),
// ODE and SDE, orders 1–3, as diffusers' DPMSolverMultistepScheduler.
//
// With α_t = 1/√(σ² + 1), σ_t = σ α_t, λ = log α_t − log σ_t, h = λ_t − λ_s0,
// r_k = (λ_{s_{k−1}} − λ_{s_k})/h, and m_k the converted model outputs of
// the last steps (x̂_0 for the ++ variants, ε̂ for dpmsolver):
//
//   DPM-Solver++ (1):   x_t = (σ_t/σ_s) x − α_t (e^{−h} − 1) m_0
//   DPM-Solver++ (2M):  D_1 = (m_0 − m_1)/r_0
//       midpoint        x_t = (σ_t/σ_s) x − α_t (e^{−h} − 1) m_0 − ½ α_t (e^{−h} − 1) D_1
//       heun            x_t = (σ_t/σ_s) x − α_t (e^{−h} − 1) m_0 + α_t ((e^{−h} − 1)/h + 1) D_1
//   DPM-Solver++ (3M):  D_1 = D_10 + r_0/(r_0 + r_1) (D_10 − D_11), D_2 = (D_10 − D_11)/(r_0 + r_1)
//                       x_t = (σ_t/σ_s) x − α_t (e^{−h} − 1) m_0 + α_t ((e^{−h} − 1)/h + 1) D_1
//                             − α_t ((e^{−h} − 1 + h)/h² − ½) D_2
//   SDE-DPM-Solver++:   x_t = (σ_t/σ_s) e^{−h} x + α_t (1 − e^{−2h}) m_0 + … + σ_t √(1 − e^{−2h}) z
//   DPM-Solver (ε):     x_t = (α_t/α_s) x − σ_t (e^h − 1) m_0 − …  (the same pattern in e^{h})
//
// (docs/solvers.md writes every variant out.) The order follows diffusers:
// first order at the first step, second at the second (warm-up), and at the
// end `lower_order_final` (first order for the last step, at most second for
// the one before, when fewer than 15 steps), `euler_at_final`, and always
// first order into σ = 0 (final_sigmas_type::zero).
//
// Two interfaces over the same update:
//  * dpm_solver_multistep_scheduler<T>::step(): diffusers' stateful step
//    (history inside, reset by set_timesteps), for line-by-line ports and
//    parity;
//  * ddpm::sample(scheduler, …) (or its alias ddpm::dpm_solver_sample): the
//    one loop of samplers/chain.hpp, with the history in the per-run
//    state_type sized before the loop — nothing allocates in it; one pass over
//    the batch per step (two with dynamic thresholding).
//
// What ddpm does where diffusers does not give a usable result
// (docs/solvers.md, "Fixed differences"):
//  * N = 0 (diffusers: empty timesteps, or ZeroDivisionError for trailing) and
//    N > T (repeated timesteps): set_timesteps throws ddpm::invalid_argument.
//  * A zero-length step (h = 0: Karras / Lu λ with final_sigmas_type::sigma_min
//    repeat the last σ) is the identity x_t = x_s. diffusers computes the
//    same for orders 1–2 and NaN for order 3 (0/0 in r_0/(r_0 + r_1)).
//  * algorithm dpmsolver with final_sigmas_type::zero is rejected, as diffusers
//    does (ε-integration cannot reach σ = 0).
//  * A timestep handed to step() that is not in timesteps() throws (diffusers
//    silently uses the last position).
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/core/clipping.hpp"
#include "ddpm/core/p_mean_variance.hpp"
#include "ddpm/denoiser.hpp"
#include "ddpm/error.hpp"
#include "ddpm/samplers/chain.hpp"
#include "ddpm/samplers/multistep.hpp"
#include "ddpm/samplers/noise.hpp"
#include "ddpm/samplers/timesteps.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

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

/// diffusers' `algorithm_type`.
enum class dpm_algorithm {
    dpmsolver_pp,     ///< "dpmsolver++": integrates x̂_0 (the usual choice)
    sde_dpmsolver_pp, ///< "sde-dpmsolver++": the SDE variant, draws noise every step
    dpmsolver,        ///< "dpmsolver": integrates ε̂ (needs final_sigmas_type::sigma_min)
};

/// diffusers' `solver_type` (second-order step only).
enum class dpm_solver_type { midpoint, heun };

[[nodiscard]] constexpr std::string_view to_string(dpm_algorithm a) noexcept {
    switch (a) {
    case dpm_algorithm::dpmsolver_pp: return "dpmsolver++";
    case dpm_algorithm::sde_dpmsolver_pp: return "sde-dpmsolver++";
    case dpm_algorithm::dpmsolver: return "dpmsolver";
    }
    return "?";
}

/// DPM-Solver settings (diffusers' names and defaults). Thresholding and the
/// prediction type come from model_options (clip_options::dynamic for
/// diffusers' `thresholding=True`).
struct dpm_solver_options {
    dpm_algorithm algorithm = dpm_algorithm::dpmsolver_pp;
    int solver_order = 2; ///< 1, 2 or 3
    dpm_solver_type solver_type = dpm_solver_type::midpoint;
    bool lower_order_final = true;
    bool euler_at_final = false;
    final_sigmas_type final_sigmas = final_sigmas_type::zero;
    sigma_schedule sigmas = sigma_schedule::discrete; ///< use_karras_sigmas / use_exponential_sigmas
    bool use_lu_lambdas = false; ///< log σ uniform between σ(T−1) and σ(0) (overrides `sigmas`)
    timestep_spacing spacing = timestep_spacing::linspace;
    std::int64_t steps_offset = 0;

    /// @throws ddpm::invalid_argument on an order outside 1–3, a negative
    ///         offset, or dpmsolver with final_sigmas_type::zero.
    void validate(std::string_view where) const {
        if (solver_order < 1 || solver_order > 3) detail::throw_invalid(where, "solver_order", solver_order, "1, 2 or 3");
        if (steps_offset < 0) detail::throw_invalid(where, "steps_offset", steps_offset, ">= 0");
        if (algorithm == dpm_algorithm::dpmsolver && final_sigmas == final_sigmas_type::zero)
            detail::throw_invalid(where, "final_sigmas_type", "zero",
                                  "sigma_min for algorithm dpmsolver (the epsilon form cannot step to sigma = 0)");
    }
};

namespace detail {

/// Everything one DPM-Solver step needs, as scalars in T: the conversion of
/// the network output and the update
///   order 1: x' = cx·x + c0·m_0
///   order 2: x' = (cx·x + c0·m_0) + c1·D_1,  D_1 = inv_r0·(m_0 − m_1)
///   order 3: x' = ((cx·x + c0·m_0) + c1·D_1) + c2·D_2 (D_1, D_2 as above)
/// + cz·z for the SDE. The signs are folded into the coefficients, which
/// changes no bit (a − b·y ≡ a + (−b)·y in IEEE arithmetic).
template <class T>
struct dpm_plan {
    int order = 1;
    bool identity = false; ///< h = 0: x' = x
    bool noise = false;
    T cx = 0, c0 = 0, c1 = 0, c2 = 0, cz = 0;
    T inv_r0 = 0, inv_r1 = 0, r_frac = 0, inv_r01 = 0;
    kernels::output_coefficients<T> convert;
    kernels::output_coefficients<T> to_x0; ///< ε̂ → x̂_0 (dpmsolver, for thresholding and the observer)
    kernels::output_coefficients<T> to_eps; ///< x̂_0 → ε̂ (dpmsolver thresholding)
};

/// The order diffusers uses at position i of n (DPMSolverMultistepScheduler.step).
[[nodiscard]] inline int dpm_update_order(const dpm_solver_options& o, std::size_t i, std::size_t n,
                                          std::size_t lower_order_nums) noexcept {
    const bool lower_final = i + 1 == n && (o.euler_at_final || (o.lower_order_final && n < 15) ||
                                            o.final_sigmas == final_sigmas_type::zero);
    const bool lower_second = i + 2 == n && o.lower_order_final && n < 15;
    if (o.solver_order == 1 || lower_order_nums < 1 || lower_final) return 1;
    if (o.solver_order == 2 || lower_order_nums < 2 || lower_second) return 2;
    return 3;
}

template <class T, class C>
[[nodiscard]] dpm_plan<T> make_dpm_plan(const dpm_solver_options& o, prediction_type pred, std::span<const double> sigmas,
                                        std::size_t i, int order) noexcept {
    dpm_plan<T> p;
    p.order = order;
    p.noise = o.algorithm == dpm_algorithm::sde_dpmsolver_pp;
    const auto pt = vp_of_sigma(static_cast<C>(sigmas[i + 1]));
    const auto p0 = vp_of_sigma(static_cast<C>(sigmas[i]));
    const bool pp = o.algorithm != dpm_algorithm::dpmsolver;
    p.convert = make_convert<T>(pred, pp, p0.alpha, p0.sigma);
    using kernels::output_form;
    p.to_x0 = {output_form::x_minus_bo_c, 0, static_cast<T>(p0.sigma), static_cast<T>(p0.alpha)};  // (x − σ ε̂)/α
    p.to_eps = {output_form::x_minus_bo_c, 0, static_cast<T>(p0.alpha), static_cast<T>(p0.sigma)}; // (x − α x̂_0)/σ
    const C at = pt.alpha, st = pt.sigma;
    const C h = pt.lambda - p0.lambda;
    if (h == C(0)) {
        p.identity = true;
        return p;
    }
    const C one(1);
    const C e = sigmas::exp_of(-h);            // e^{−h}
    const C E = sigmas::exp_of(h);             // e^{h}
    const C e2 = sigmas::exp_of(C(-2) * h);    // e^{−2h}
    const C decay = one - e2;          // 1 − e^{−2h}
    C cx{}, c0{}, c1{}, c2{}, cz{};
    switch (o.algorithm) {
    case dpm_algorithm::dpmsolver_pp: cx = st / p0.sigma; c0 = -(at * (e - one)); break;
    case dpm_algorithm::sde_dpmsolver_pp:
        cx = st / p0.sigma * e;
        c0 = at * decay;
        cz = st * std::sqrt(decay);
        break;
    case dpm_algorithm::dpmsolver: cx = at / p0.alpha; c0 = -(st * (E - one)); break;
    }
    if (order >= 2) {
        const auto p1 = vp_of_sigma(static_cast<C>(sigmas[i - 1]));
        const C r0 = (p0.lambda - p1.lambda) / h;
        p.inv_r0 = static_cast<T>(one / r0);
        if (order == 2) {
            const bool mid = o.solver_type == dpm_solver_type::midpoint;
            switch (o.algorithm) {
            case dpm_algorithm::dpmsolver_pp:
                c1 = mid ? -(C(0.5) * (at * (e - one))) : at * ((e - one) / h + one);
                break;
            case dpm_algorithm::sde_dpmsolver_pp:
                c1 = mid ? C(0.5) * (at * decay) : at * (decay / (C(-2) * h) + one);
                break;
            case dpm_algorithm::dpmsolver:
                c1 = mid ? -(C(0.5) * (st * (E - one))) : -(st * ((E - one) / h - one));
                break;
            }
        } else {
            const auto p2 = vp_of_sigma(static_cast<C>(sigmas[i - 2]));
            const C r1 = (p1.lambda - p2.lambda) / h;
            p.inv_r1 = static_cast<T>(one / r1);
            p.r_frac = static_cast<T>(r0 / (r0 + r1));
            p.inv_r01 = static_cast<T>(one / (r0 + r1));
            switch (o.algorithm) {
            case dpm_algorithm::dpmsolver_pp:
                c1 = at * ((e - one) / h + one);
                c2 = -(at * ((e - one + h) / (h * h) - C(0.5)));
                break;
            case dpm_algorithm::sde_dpmsolver_pp: {
                const C h2 = C(2) * h;
                c1 = at * (decay / (C(-2) * h) + one);
                c2 = at * ((decay - C(2) * h) / (h2 * h2) - C(0.5));
                break;
            }
            case dpm_algorithm::dpmsolver:
                c1 = -(st * ((E - one) / h - one));
                c2 = -(st * ((E - one - h) / (h * h) - C(0.5)));
                break;
            }
        }
    }
    p.cx = static_cast<T>(cx);
    p.c0 = static_cast<T>(c0);
    p.c1 = static_cast<T>(c1);
    p.c2 = static_cast<T>(c2);
    p.cz = static_cast<T>(cz);
    return p;
}

/// The update of one element, given m_0 (this step's converted output) and
/// the previous ones.
template <class T>
DDPM_FORCEINLINE T dpm_update(const dpm_plan<T>& p, T x, T m0, T m1, T m2) noexcept {
    T v = p.cx * x + p.c0 * m0;
    if (p.order == 2) {
        const T d1 = p.inv_r0 * (m0 - m1);
        v = v + p.c1 * d1;
    } else if (p.order == 3) {
        const T d10 = p.inv_r0 * (m0 - m1);
        const T d11 = p.inv_r1 * (m1 - m2);
        const T d1 = d10 + p.r_frac * (d10 - d11);
        const T d2 = p.inv_r01 * (d10 - d11);
        v = (v + p.c1 * d1) + p.c2 * d2;
    }
    return v;
}

/// The sizes of one step's buffers.
struct multistep_dims {
    std::size_t batch = 0, dim = 0, channels = 1;
};

/// One DPM-Solver step at position i over the whole batch: converts the
/// network output into the history (thresholding it when asked), then writes
/// x_next (and x̂_0 when `x0` is not empty). `x_next` may alias `x`.
template <class T, class C>
int dpm_advance(const dpm_solver_options& o, const model_options& mo, std::span<const double> sigmas, std::size_t n,
                multistep_state<T>& st, std::size_t i, std::span<const T> out, std::span<const T> x,
                const kernels::step_noise<T>& noise, std::span<T> x_next, std::span<T> x0, multistep_dims d,
                const execution& exec) {
    const int order = dpm_update_order(o, i, n, st.lower_order_nums);
    const dpm_plan<T> p = make_dpm_plan<T, C>(o, mo.prediction, sigmas, i, order);
    const bool pp = o.algorithm != dpm_algorithm::dpmsolver;
    const bool clip = mo.clip.kind != clip_options::mode::none;
    const std::size_t stride = d.channels * d.dim;
    T* hist = st.push();
    const T* h1 = st.recent(1);
    const T* h2 = st.recent(2);
    if (clip) {
        // Pass 1: the converted outputs of whole samples (the threshold is a
        // per-sample quantile of x̂_0).
        for (std::size_t b = 0; b < d.batch; ++b) {
            const T* ob = out.data() + b * stride;
            const T* xb = x.data() + b * d.dim;
            T* hb = hist + b * d.dim;
            for (std::size_t k = 0; k < d.dim; ++k) {
                const T m = convert_one(p.convert, ob[k], xb[k]);
                hb[k] = pp ? m : convert_one(p.to_x0, m, xb[k]);
            }
            apply_clipping<T>(mo.clip, std::span<T>(hb, d.dim), d.dim, std::span<T>(st.threshold));
            if (!pp)
                for (std::size_t k = 0; k < d.dim; ++k) hb[k] = convert_one(p.to_eps, hb[k], xb[k]);
        }
    }
    for_each_noise_chunk<T>(d.batch, d.dim, noise, p.noise && !p.identity, exec, [&](std::size_t row, std::size_t first, std::size_t count, const T* z) {
        const T* ob = out.data() + row * stride + first;
        const std::size_t at = row * d.dim + first;
        const T* xb = x.data() + at;
        T* hb = hist + at;
        T* nb = x_next.data() + at;
        T* x0b = x0.empty() ? nullptr : x0.data() + at;
        for (std::size_t k = 0; k < count; ++k) {
            const T xv = xb[k];
            const T m0 = clip ? hb[k] : convert_one(p.convert, ob[k], xv);
            if (!clip) hb[k] = m0;
            if (x0b) x0b[k] = pp ? m0 : convert_one(p.to_x0, m0, xv);
            T v = p.identity ? xv : dpm_update(p, xv, m0, h1[at + k], h2[at + k]);
            if (z) v = v + p.cz * z[k];
            nb[k] = v;
        }
    });
    if (st.lower_order_nums < static_cast<std::size_t>(o.solver_order)) ++st.lower_order_nums;
    return order;
}

} // namespace detail

/// A diffusers-like multistep DPM-Solver scheduler
/// (DPMSolverMultistepScheduler) over a noise_schedule. set_timesteps must be
/// called before stepping. init_noise_sigma() is 1 and the model input is the
/// sample itself (no scale_model_input).
template <std::floating_point T>
class dpm_solver_multistep_scheduler {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "ddpm::dpm_solver_multistep_scheduler<T>: T must be float or double");

public:
    using value_type = T;

    /// @throws ddpm::invalid_argument on bad options (see dpm_solver_options::validate,
    ///         clip_options::validate).
    explicit dpm_solver_multistep_scheduler(noise_schedule schedule, model_options options = {},
                                            dpm_solver_options dpm = {})
        : m_schedule(std::move(schedule)), m_options(options), m_dpm(dpm) {
        m_dpm.validate("ddpm::dpm_solver_multistep_scheduler");
        m_options.clip.validate("ddpm::dpm_solver_multistep_scheduler");
    }

    /// diffusers' set_timesteps(num_inference_steps) with the options'
    /// spacing and sigma schedule. Resets the history.
    /// @throws ddpm::invalid_argument when N < 1 or N > T, or the offset
    ///         pushes a timestep past T − 1.
    void set_timesteps(std::int64_t num_inference_steps) {
        constexpr std::string_view where = "ddpm::dpm_solver_multistep_scheduler::set_timesteps";
        auto s = diffusers_precision()
                     ? detail::make_multistep_schedule<T>(where, m_schedule, num_inference_steps, m_dpm.spacing,
                                                          m_dpm.steps_offset, m_dpm.sigmas, m_dpm.use_lu_lambdas, m_dpm.final_sigmas, false)
                     : detail::make_multistep_schedule<double>(where, m_schedule, num_inference_steps, m_dpm.spacing,
                                                               m_dpm.steps_offset, m_dpm.sigmas, m_dpm.use_lu_lambdas,
                                                               m_dpm.final_sigmas, false);
        m_timesteps = std::move(s.timesteps);
        m_sigmas = std::move(s.sigmas);
        m_state.reset();
        m_last_order = 0;
    }

    [[nodiscard]] std::span<const timestep_t> timesteps() const noexcept { return m_timesteps; }
    /// The N + 1 sigmas (VE σ = √((1 − ᾱ)/ᾱ); the last is the final sigma),
    /// in the precision the steps use (float values widened for float T in
    /// the diffusers profile).
    [[nodiscard]] std::span<const double> sigmas() const noexcept { return m_sigmas; }
    [[nodiscard]] static constexpr T init_noise_sigma() noexcept { return T(1); }
    [[nodiscard]] const dpm_solver_options& dpm() const noexcept { return m_dpm; }
    [[nodiscard]] const model_options& options() const noexcept { return m_options; }
    [[nodiscard]] const noise_schedule& schedule() const noexcept { return m_schedule; }
    [[nodiscard]] std::int64_t size() const noexcept { return m_schedule.size(); }

    /// diffusers' step(model_output, t, sample): converts the output, updates
    /// the history and writes prev_sample. The first call after set_timesteps
    /// places t in timesteps() (its second occurrence when repeated); later
    /// calls advance one position each.
    /// @param noise B·D standard normals for sde-dpmsolver++ (diffusers'
    ///              variance_noise), empty otherwise.
    /// @return the order of the update that ran (1, 2 or 3).
    /// @throws ddpm::invalid_argument before set_timesteps, past the last
    ///         timestep, for a t not in timesteps(), on size mismatches, or
    ///         without noise for the SDE; nothing is written then.
    template <input_buffer MO, input_buffer X, input_buffer N, output_buffer P>
    int step(const MO& model_output, timestep_t t, const X& sample, const N& noise, P&& prev_sample,
             std::size_t batch) {
        constexpr std::string_view where = "ddpm::dpm_solver_multistep_scheduler::step";
        const auto out = as_span(model_output);
        const auto x = as_span(sample);
        const auto z = as_span(noise);
        auto prev = as_mutable_span(prev_sample);
        static_assert(std::is_same_v<T, detail::value_of<MO>> && std::is_same_v<T, detail::value_of<X>> &&
                          std::is_same_v<T, detail::value_of<N>> && std::is_same_v<T, detail::value_of<P>>,
                      "ddpm::dpm_solver_multistep_scheduler::step: every buffer must hold the scheduler's T");
        const bool sde = m_dpm.algorithm == dpm_algorithm::sde_dpmsolver_pp;
        const auto [shape, i] = detail::begin_multistep_step<T>(
            where, m_timesteps, m_state, static_cast<std::size_t>(m_dpm.solver_order), false, m_options.variance, batch, t,
            out.size(), x.size(), prev.size(), sde, z.size());
        m_x0.resize(shape.elements());
        const auto zn = sde ? kernels::step_noise<T>::from(z) : kernels::step_noise<T>::none();
        m_last_order = advance(m_state, i, out, x, zn, prev, std::span<T>(m_x0), {shape.batch, shape.dim, channels()}, {});
        m_state.step_index = i + 1;
        return m_last_order;
    }

    /// The converted output of the last step() (x̂_0 for the ++ variants,
    /// ε̂ for dpmsolver; after thresholding), diffusers' convert_model_output.
    [[nodiscard]] std::span<const T> converted_model_output() const noexcept {
        return m_state.started ? std::span<const T>(m_state.recent(0), m_state.elements) : std::span<const T>();
    }
    /// x̂_0 of the last step() (after thresholding).
    [[nodiscard]] std::span<const T> pred_original_sample() const noexcept { return m_x0; }
    /// The position the next step() will take, or 0 before the first.
    [[nodiscard]] std::size_t step_index() const noexcept { return m_state.started ? m_state.step_index : 0; }

    // ----- the chain interface of the sampling loop, with the history in a
    // per-run state (state_type, made once before the loop by make_state).
    using state_type = detail::multistep_state<T>;
    [[nodiscard]] state_type make_state(std::size_t batch, std::size_t dim) const {
        state_type st;
        st.resize(static_cast<std::size_t>(m_dpm.solver_order), batch * dim, dim, false);
        st.started = true;
        return st;
    }
    void step_at(std::size_t i, std::span<const T> model_out, std::span<const T> x, const kernels::step_noise<T>& noise,
                 std::span<T> x_next, std::span<T> x0, std::size_t dim, detail::step_scratch<T>&, const execution& exec,
                 state_type& st) const {
        st.step_index = i;
        static_cast<void>(advance(st, i, model_out, x, noise, x_next, x0, {x.size() / dim, dim, channels()}, exec));
    }
    [[nodiscard]] std::size_t num_steps() const noexcept { return m_timesteps.size(); }
    [[nodiscard]] timestep_t model_timestep(std::size_t i) const noexcept { return m_timesteps[i]; }
    [[nodiscard]] std::size_t output_channels() const noexcept { return channels(); }
    [[nodiscard]] bool adds_noise(std::size_t) const noexcept { return m_dpm.algorithm == dpm_algorithm::sde_dpmsolver_pp; }
    /// One update at position i with the given state (the loop's).
    int advance(detail::multistep_state<T>& st, std::size_t i, std::span<const T> out, std::span<const T> x,
                const kernels::step_noise<T>& noise, std::span<T> x_next, std::span<T> x0, detail::multistep_dims d,
                const execution& exec) const {
        if (diffusers_precision())
            return detail::dpm_advance<T, T>(m_dpm, m_options, m_sigmas, m_timesteps.size(), st, i, out, x, noise, x_next,
                                             x0, d, exec);
        return detail::dpm_advance<T, double>(m_dpm, m_options, m_sigmas, m_timesteps.size(), st, i, out, x, noise,
                                              x_next, x0, d, exec);
    }

private:
    [[nodiscard]] bool diffusers_precision() const noexcept { return m_schedule.profile() == profile::diffusers; }
    [[nodiscard]] std::size_t channels() const noexcept { return detail::output_channels(m_options.variance); }

    noise_schedule m_schedule;
    model_options m_options;
    dpm_solver_options m_dpm;
    std::vector<timestep_t> m_timesteps;
    std::vector<double> m_sigmas;
    detail::multistep_state<T> m_state;
    std::vector<T> m_x0;
    int m_last_order = 0;
};


/// Multistep DPM-Solver sampling in one call — ddpm::sample(scheduler, …)
/// under its own name (the one loop of samplers/chain.hpp): x_T from
/// `noise` (step index 0; init_noise_sigma = 1) or from `out`; the network
/// called at every entry of scheduler.timesteps() with that integer timestep;
/// the update of dpm_solver_multistep_scheduler::step; for sde-dpmsolver++
/// the noise of position i drawn at step index i + 1 (counter noise: sample b,
/// step i + 1, element k — docs/random.md). The observer sees x̂_0 (after
/// thresholding). Allocates only before the loop.
/// @throws ddpm::invalid_argument on bad sizes or before set_timesteps;
///         ddpm::numerical_error on a non-finite network output when checked.
template <std::floating_point T, class Model, class Noise, output_buffer O, class Observer = no_observer>
std::size_t dpm_solver_sample(const dpm_solver_multistep_scheduler<T>& scheduler, Model&& model, Noise&& noise, O&& out,
                              const sampler_options& options = {}, Observer&& observe = Observer{}) {
    return detail::sample_with("ddpm::dpm_solver_sample", scheduler, std::forward<Model>(model),
                               std::forward<Noise>(noise), std::forward<O>(out), options,
                               std::forward<Observer>(observe));
}

} // namespace ddpm
