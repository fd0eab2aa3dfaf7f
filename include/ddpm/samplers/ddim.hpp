// ddpm/samplers/ddim.hpp — denoising diffusion implicit models (Song, Meng,
// Ermon 2021) with a diffusers-like scheduler (DDIMScheduler), a one-call
// driver and DDIM inversion.
//
// With ᾱ_t, ᾱ_prev the cumulative products at the current and previous
// timestep of the chain (ᾱ_prev = 1 after the last step when
// set_alpha_to_one, else ᾱ_0), DDIM paper eqs. (12) and (16):
//
//   x̂_0    = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t                   (eq. 12, "predicted x_0")
//   σ      = η √((1 − ᾱ_prev)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev)   (eq. 16)
//   x_prev = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ²) ε̂ + σ z        (eq. 12)
//
// η = 0 is deterministic; η = 1 is DDPM's fixed_small variance on the strided
// chain. In the diffusers profile every scalar is formed in T from the
// schedule's T tables in the order of DDIMScheduler.step (so float32 runs
// reproduce torch's float32 arithmetic); the other profiles form them in
// float64 from the float64 tables, as improved-diffusion does, and round once.
//
// ## The previous timestep
//
// By default the previous timestep is the next entry of timesteps() (or the
// end of the chain after the last entry) — the step actually taken by the
// chain, for every spacing. diffusers' DDIMScheduler instead uses
// prev = t − T // num_inference_steps. That agrees with the next entry for
// "leading" and for "trailing" when N divides T, but not for "linspace" (999,
// 979, 958, …: 979 − 20 = 959 ≠ 958) nor for "trailing" with N ∤ T: there
// diffusers jumps to a timestep the chain never visits, so x_prev is formed
// for a ᾱ the next network call does not assume. `ddim_previous_rule::diffusers`
// reproduces that rule exactly (for parity with a diffusers pipeline);
// `next_entry` is the consistent chain.
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

/// How a DDIM step finds the timestep it lands on.
enum class ddim_previous_rule {
    next_entry, ///< the next entry of timesteps(); −1 (ᾱ_prev = final) after the last
    diffusers,  ///< diffusers' t − T // num_inference_steps, whatever the spacing
};

[[nodiscard]] constexpr std::string_view to_string(ddim_previous_rule r) noexcept {
    switch (r) {
    case ddim_previous_rule::next_entry: return "next_entry";
    case ddim_previous_rule::diffusers: return "diffusers";
    }
    return "?";
}

[[nodiscard]] inline ddim_previous_rule ddim_previous_rule_from_string(std::string_view s) {
    if (s == "next_entry") return ddim_previous_rule::next_entry;
    if (s == "diffusers") return ddim_previous_rule::diffusers;
    detail::throw_invalid("ddpm::ddim_previous_rule_from_string", "previous_rule", s,
                          "one of \"next_entry\", \"diffusers\"");
}

/// DDIM settings (diffusers' names).
struct ddim_options {
    /// η ∈ [0, 1]: 0 deterministic DDIM, 1 the DDPM posterior variance.
    double eta = 0.0;
    /// Re-derive ε̂ from the clipped x̂_0 (GLIDE / improved-diffusion do this always).
    bool use_clipped_model_output = false;
    /// ᾱ_prev after the last step: 1 (true) or ᾱ_0 (false).
    bool set_alpha_to_one = true;
    ddim_previous_rule previous = ddim_previous_rule::next_entry;

    /// @throws ddpm::invalid_argument when η is not a finite number in [0, 1].
    void validate(std::string_view where) const {
        if (!(std::isfinite(eta) && eta >= 0.0 && eta <= 1.0)) detail::throw_invalid(where, "eta", eta, "in [0, 1]");
    }
};

/// The scalars of one DDIM step (what diffusers' step computes), in T.
template <class T>
struct ddim_step_parameters {
    timestep_t t = 0;
    timestep_t prev_timestep = 0; ///< < 0: past the end (ᾱ_prev = final_alpha_cumprod)
    T alpha_prod_t = 0;
    T alpha_prod_t_prev = 0;
    T variance = 0;  ///< (1 − ᾱ_prev)/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_prev)
    T std_dev_t = 0; ///< η √variance
};

namespace detail {

/// How ε̂ is obtained in a DDIM step: kernels::scalar::eps_form
///   model_output ε̂ = out;  from_v ε̂ = a·out + b·x_t;  from_out ε̂ = (a·x_t − c·out)/b;
///   from_x0 ε̂ = (a·x_t − c·x̂_0)/b (from the clipped x̂_0).
using ddim_eps_form = kernels::scalar::eps_form;

/// Per-step coefficients of a DDIM step (and of its inversion).
template <class T>
struct ddim_coefficients {
    kernels::scalar::reverse_coefficients<T> x0; ///< only form / x0_a / x0_b are used
    ddim_eps_form eps = ddim_eps_form::model_output;
    T eps_a = 0, eps_b = 1, eps_c = 0;
    T coef_x0 = 0;  ///< √ᾱ_prev
    T coef_eps = 0; ///< √(1 − ᾱ_prev − σ²)
    T sigma = 0;    ///< η √variance
    T sqrt_alpha_t = 0, sqrt_one_minus_alpha_t = 0, sqrt_one_minus_alpha_prev = 0; ///< for inversion
    ddim_step_parameters<T> params;

    /// The element-wise part, as the fused kernels take it.
    [[nodiscard]] kernels::ddim_coefficients<T> kernel() const noexcept {
        return {x0.form, x0.x0_a, x0.x0_b, eps, eps_a, eps_b, eps_c, coef_x0, coef_eps, sigma};
    }
};

/// The one place the DDIM scalars are formed (DDIMScheduler.step steps 2, 3
/// and 5–6, or improved-diffusion's ddim_sample in float64).
template <class T>
[[nodiscard]] ddim_coefficients<T> ddim_step_coefficients(const noise_schedule& s, timestep_t t, timestep_t prev,
                                                          const ddim_options& o, prediction_type pred) noexcept {
    using kernels::scalar::x0_form;
    ddim_coefficients<T> c;
    const auto i = static_cast<std::size_t>(t);
    const bool clipped_eps = o.use_clipped_model_output;
    if (s.profile() == profile::diffusers) {
        const auto& tab = s.tables<T>();
        const T a = tab.alphas_cumprod[i];
        const T a_prev = prev >= 0 ? tab.alphas_cumprod[static_cast<std::size_t>(prev)]
                                   : (o.set_alpha_to_one ? T(1) : tab.alphas_cumprod[0]);
        const T beta_prod = T(1) - a;
        const T sa = std::sqrt(a);
        const T sb = std::sqrt(beta_prod);
        switch (pred) {
        case prediction_type::epsilon:
            c.x0.form = x0_form::divide; // (x − √(1−ᾱ) ε̂)/√ᾱ
            c.x0.x0_a = sa;
            c.x0.x0_b = sb;
            c.eps = ddim_eps_form::model_output;
            break;
        case prediction_type::sample:
            c.x0.form = x0_form::identity;
            c.eps = ddim_eps_form::from_out;
            break;
        case prediction_type::v_prediction:
            c.x0.form = x0_form::multiply; // √ᾱ x − √(1−ᾱ) v̂
            c.x0.x0_a = sa;
            c.x0.x0_b = sb;
            c.eps = ddim_eps_form::from_v; // √ᾱ v̂ + √(1−ᾱ) x
            c.eps_a = sa;
            c.eps_b = sb;
            break;
        }
        if (clipped_eps || pred == prediction_type::sample) {
            if (clipped_eps) c.eps = ddim_eps_form::from_x0;
            c.eps_a = T(1); // (x − √ᾱ x̂_0)/√(1−ᾱ)
            c.eps_c = sa;
            c.eps_b = sb;
        }
        // _get_variance: (β_prod_prev / β_prod_t) · (1 − ᾱ_t/ᾱ_prev)
        const T variance = ((T(1) - a_prev) / beta_prod) * (T(1) - a / a_prev);
        const T std_dev = static_cast<T>(o.eta) * std::sqrt(variance);
        c.coef_x0 = std::sqrt(a_prev);
        c.coef_eps = std::sqrt(T(1) - a_prev - std_dev * std_dev);
        c.sigma = std_dev;
        c.sqrt_alpha_t = sa;
        c.sqrt_one_minus_alpha_t = sb;
        c.sqrt_one_minus_alpha_prev = std::sqrt(T(1) - a_prev);
        c.params = {t, prev, a, a_prev, variance, std_dev};
        return c;
    }
    // improved-diffusion: float64 tables, rounded once.
    const auto& d = s.f64();
    const double a = d.alphas_cumprod[i];
    const double a_prev = prev >= 0 ? d.alphas_cumprod[static_cast<std::size_t>(prev)]
                                    : (o.set_alpha_to_one ? 1.0 : d.alphas_cumprod[0]);
    switch (pred) {
    case prediction_type::epsilon:
        c.x0.form = x0_form::multiply; // √(1/ᾱ) x − √(1/ᾱ − 1) ε̂
        c.x0.x0_a = static_cast<T>(d.sqrt_recip_alphas_cumprod[i]);
        c.x0.x0_b = static_cast<T>(d.sqrt_recipm1_alphas_cumprod[i]);
        c.eps = ddim_eps_form::model_output;
        break;
    case prediction_type::sample:
        c.x0.form = x0_form::identity;
        c.eps = ddim_eps_form::from_out;
        break;
    case prediction_type::v_prediction:
        c.x0.form = x0_form::multiply;
        c.x0.x0_a = static_cast<T>(d.sqrt_alphas_cumprod[i]);
        c.x0.x0_b = static_cast<T>(d.sqrt_one_minus_alphas_cumprod[i]);
        c.eps = ddim_eps_form::from_v;
        c.eps_a = static_cast<T>(d.sqrt_alphas_cumprod[i]);
        c.eps_b = static_cast<T>(d.sqrt_one_minus_alphas_cumprod[i]);
        break;
    }
    if (clipped_eps || pred == prediction_type::sample) {
        if (clipped_eps) c.eps = ddim_eps_form::from_x0;
        // _predict_eps_from_xstart: (√(1/ᾱ) x − x̂_0) / √(1/ᾱ − 1)
        c.eps_a = static_cast<T>(d.sqrt_recip_alphas_cumprod[i]);
        c.eps_c = T(1);
        c.eps_b = static_cast<T>(d.sqrt_recipm1_alphas_cumprod[i]);
    }
    const double variance = (1.0 - a_prev) / (1.0 - a) * (1.0 - a / a_prev);
    const double sigma = o.eta * std::sqrt((1.0 - a_prev) / (1.0 - a)) * std::sqrt(1.0 - a / a_prev);
    c.coef_x0 = static_cast<T>(std::sqrt(a_prev));
    c.coef_eps = static_cast<T>(std::sqrt(1.0 - a_prev - sigma * sigma));
    c.sigma = static_cast<T>(sigma);
    c.sqrt_alpha_t = static_cast<T>(d.sqrt_alphas_cumprod[i]);
    c.sqrt_one_minus_alpha_t = static_cast<T>(d.sqrt_one_minus_alphas_cumprod[i]);
    c.sqrt_one_minus_alpha_prev = static_cast<T>(std::sqrt(1.0 - a_prev));
    c.params = {t, prev, static_cast<T>(a), static_cast<T>(a_prev), static_cast<T>(variance), static_cast<T>(sigma)};
    return c;
}

/// One DDIM step for B samples of `dim` elements on the fused kernel
/// (kernels::ddim_step). `coef(b)` gives sample b's coefficients; no noise
/// when `noise` is none or σ = 0. `prev` may alias `x` or the noise buffer;
/// `x0` must not alias an input. The network output has `channels`·dim
/// values per sample (a learned variance's extra channels are ignored, as
/// diffusers does). With `uniform` (a batch at one timestep) only coef(0) is
/// asked for and the step runs on kernels::ddim_step_uniform.
template <class T, class Coef>
void ddim_step_kernel(const clip_options& clip, Coef&& coef, std::span<const T> out, std::span<const T> x,
                      const kernels::step_noise<T>& noise, std::span<T> prev, std::span<T> x0, std::size_t batch,
                      std::size_t dim, std::size_t channels, step_scratch<T>& scratch, const execution& exec,
                      bool uniform = false) {
    const std::size_t stride = channels * dim;
    for (std::size_t b = 0; b < (uniform ? 1 : batch); ++b) scratch.ddim[b] = coef(b).kernel();
    const auto clips = step_clips<T>(
        clip,
        [&](std::size_t b, std::span<T> row) {
            const T* o = out.data() + b * stride;
            const T* xb = x.data() + b * dim;
            const auto& c = scratch.ddim[uniform ? 0 : b];
            for (std::size_t i = 0; i < dim; ++i) row[i] = kernels::scalar::ddim_x0(c, xb[i], o[i]);
        },
        x0, batch, dim, scratch, uniform);
    if (uniform)
        kernels::ddim_step_uniform<T>(scratch.ddim[0], batch, clips, out, x, noise, prev, x0, exec,
                                      kernels::best_backend, channels);
    else
        kernels::ddim_step<T>(std::span<const kernels::ddim_coefficients<T>>(scratch.ddim.data(), batch), clips, out,
                              x, noise, prev, x0, exec, kernels::best_backend, channels);
}

/// One step of DDIM inversion (η = 0) from the level ᾱ_prev (`x`, known) up
/// to ᾱ_t:
///   ε̂ from the network output at t, interpreted with `x_eps` as x_t;
///   x̂_0 = (x − √(1 − ᾱ_prev) ε̂)/√ᾱ_prev;   x_t = √ᾱ_t x̂_0 + √(1 − ᾱ_t) ε̂.
/// The usual (explicit) inversion evaluates the network on x_eps = x, i.e.
/// assumes ε̂(x_prev, t) ≈ ε̂(x_t, t), which is first-order accurate; calling it
/// again with the network evaluated on the new x_t (x_eps = that x_t) is a
/// fixed-point iteration towards the exact inverse of the sampling step.
/// `next` may alias `x_eps`; `x0` may be empty (x̂_0 not kept).
template <class T>
void ddim_invert_kernel(const ddim_coefficients<T>& c, std::span<const T> out, std::span<const T> x_eps,
                        std::span<const T> x, std::span<T> next, std::span<T> x0, std::size_t batch, std::size_t dim,
                        std::size_t channels) noexcept {
    using kernels::scalar::predict_x0;
    const std::size_t stride = channels * dim;
    const kernels::ddim_coefficients<T> k = c.kernel();
    for (std::size_t b = 0; b < batch; ++b) {
        const T* o = out.data() + b * stride;
        const T* eb = x_eps.data() + b * dim;
        const T* xb = x.data() + b * dim;
        T* x0b = x0.empty() ? nullptr : x0.data() + b * dim;
        T* nb = next.data() + b * dim;
        for (std::size_t i = 0; i < dim; ++i) {
            const T xe = eb[i];
            const T eps = kernels::scalar::ddim_eps(k, xe, o[i], predict_x0(c.x0, xe, o[i]));
            const T xhat = (xb[i] - c.sqrt_one_minus_alpha_prev * eps) / c.coef_x0;
            if (x0b) x0b[i] = xhat;
            nb[i] = c.sqrt_alpha_t * xhat + c.sqrt_one_minus_alpha_t * eps;
        }
    }
}

} // namespace detail

/// A diffusers-like DDIM scheduler (DDIMScheduler) over a noise_schedule.
/// set_timesteps must be called before stepping (as in diffusers).
template <std::floating_point T>
class ddim_scheduler {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "ddpm::ddim_scheduler<T>: T must be float or double");

public:
    using value_type = T;

    /// @throws ddpm::invalid_argument when η ∉ [0, 1] or the clip options are bad.
    explicit ddim_scheduler(noise_schedule schedule, model_options options = {}, ddim_options ddim = {})
        : m_schedule(std::move(schedule)), m_options(options), m_ddim(ddim) {
        m_ddim.validate("ddpm::ddim_scheduler");
        m_options.clip.validate("ddpm::ddim_scheduler");
        detail::check_terminal_snr("ddpm::ddim_scheduler", m_schedule, m_options.prediction);
    }

    /// diffusers' set_timesteps(num_inference_steps) with the given spacing
    /// (diffusers' DDIM default is "leading").
    /// @throws ddpm::invalid_argument (see make_timesteps).
    void set_timesteps(std::int64_t num_inference_steps, timestep_spacing spacing = timestep_spacing::leading,
                       std::int64_t steps_offset = 0) {
        m_chain.set(make_timesteps(size(), num_inference_steps, spacing, steps_offset), num_inference_steps, false);
    }
    /// Custom strictly descending timesteps (for example improved-diffusion's
    /// space_timesteps(T, "ddim50") reversed). Under the diffusers previous
    /// rule, N = the number of entries.
    void set_timesteps(std::span<const timestep_t> custom_timesteps) {
        check_custom_timesteps(custom_timesteps, size(), "ddpm::ddim_scheduler::set_timesteps");
        m_chain.set(std::vector<timestep_t>(custom_timesteps.begin(), custom_timesteps.end()),
                    static_cast<std::int64_t>(custom_timesteps.size()), true);
    }

    /// @throws ddpm::invalid_argument when η ∉ [0, 1].
    void set_eta(double eta) {
        ddim_options o = m_ddim;
        o.eta = eta;
        o.validate("ddpm::ddim_scheduler::set_eta");
        m_ddim = o;
    }
    [[nodiscard]] double eta() const noexcept { return m_ddim.eta; }
    [[nodiscard]] const ddim_options& ddim() const noexcept { return m_ddim; }
    [[nodiscard]] const model_options& options() const noexcept { return m_options; }
    [[nodiscard]] const noise_schedule& schedule() const noexcept { return m_schedule; }
    [[nodiscard]] std::int64_t size() const noexcept { return m_schedule.size(); }
    [[nodiscard]] std::int64_t num_inference_steps() const noexcept { return m_chain.num_inference_steps(); }
    /// Empty until set_timesteps.
    [[nodiscard]] std::span<const timestep_t> timesteps() const noexcept { return m_chain.timesteps(); }

    /// The timestep a step from t lands on; negative means past the end
    /// (ᾱ_prev = final_alpha_cumprod). Under the diffusers rule this is
    /// t − T // N exactly (so it can be −20), under next_entry −1.
    /// @throws ddpm::invalid_argument before set_timesteps, or (next_entry
    ///         rule) when t is not in timesteps(), or t ∉ [0, T).
    [[nodiscard]] timestep_t previous_timestep(timestep_t t) const {
        return prev_of(t, "ddpm::ddim_scheduler::previous_timestep", "t");
    }

    /// The scalars of the step from t (ᾱ_t, ᾱ_prev, variance, σ).
    [[nodiscard]] ddim_step_parameters<T> step_parameters(timestep_t t) const {
        const timestep_t prev = prev_of(t, "ddpm::ddim_scheduler::step_parameters", "t");
        return detail::ddim_step_coefficients<T>(m_schedule, t, prev, m_ddim, m_options.prediction).params;
    }

    /// One DDIM step for B samples at one timestep t (diffusers' step, with
    /// η from ddim()): prev_sample = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ²) ε̂ + σ·noise.
    /// @param noise B·D standard normals (diffusers' variance_noise), or empty
    ///              for none; unused when σ = 0.
    /// @param batch B (decides the learned-variance layout and per-sample thresholding).
    /// @throws ddpm::invalid_argument on a size mismatch, before
    ///         set_timesteps, or for a t the rule cannot place; nothing is
    ///         written then.
    template <input_buffer MO, input_buffer X, input_buffer N, output_buffer P, output_buffer X0>
    void step(const MO& model_output, timestep_t t, const X& sample, const N& noise, P&& prev_sample,
              X0&& pred_original_sample, std::size_t batch) const {
        constexpr std::string_view where = "ddpm::ddim_scheduler::step";
        if (batch == 0) detail::throw_invalid(where, "batch", 0, ">= 1");
        const auto c = detail::ddim_step_coefficients<T>(m_schedule, t, prev_of(t, where, "t"), m_ddim,
                                                         m_options.prediction);
        step_impl(where, model_output, batch, [&c](std::size_t) { return c; }, sample, noise, prev_sample,
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

    /// One DDIM step with a timestep per sample (B = t.size()).
    template <input_buffer MO, timestep_buffer Ts, input_buffer X, input_buffer N, output_buffer P, output_buffer X0>
    void step(const MO& model_output, const Ts& t, const X& sample, const N& noise, P&& prev_sample,
              X0&& pred_original_sample) const {
        constexpr std::string_view where = "ddpm::ddim_scheduler::step";
        const std::size_t batch = std::ranges::size(t);
        if (batch == 0) detail::throw_invalid(where, "t.size()", 0, ">= 1 (one timestep per sample)");
        std::vector<detail::ddim_coefficients<T>> cs;
        cs.reserve(batch);
        std::size_t b = 0;
        for (const auto tv : t) {
            const auto tb = static_cast<timestep_t>(tv);
            cs.push_back(detail::ddim_step_coefficients<T>(
                m_schedule, tb, prev_of(tb, where, "t[" + std::to_string(b) + "]"), m_ddim, m_options.prediction));
            ++b;
        }
        step_impl(where, model_output, batch, [&cs](std::size_t k) { return cs[k]; }, sample, noise, prev_sample,
                  pred_original_sample);
    }

    /// diffusers' add_noise (core/forward.hpp).
    template <input_buffer X, input_buffer N, timestep_buffer Ts, output_buffer O>
    void add_noise(const X& x0, const N& noise, const Ts& timesteps, O&& out) const {
        ddpm::add_noise(m_schedule, x0, noise, timesteps, out);
    }

    // ----- the chain interface (positions i in timesteps()); used by ddim_sample.
    [[nodiscard]] std::size_t num_steps() const noexcept { return m_chain.size(); }
    [[nodiscard]] timestep_t model_timestep(std::size_t i) const noexcept { return m_chain[i]; }
    [[nodiscard]] std::size_t output_channels() const noexcept { return detail::output_channels(m_options.variance); }
    [[nodiscard]] bool adds_noise(std::size_t i) const noexcept { return position_coefficients(i).sigma > T(0); }
    void step_at(std::size_t i, std::span<const T> model_out, std::span<const T> x, const kernels::step_noise<T>& noise,
                 std::span<T> x_next, std::span<T> x0, std::size_t dim, detail::step_scratch<T>& scratch,
                 const execution& exec) const {
        const auto c = position_coefficients(i);
        detail::ddim_step_kernel<T>(m_options.clip, [&c](std::size_t) { return c; }, model_out, x, noise, x_next, x0,
                                    x.size() / dim, dim, output_channels(), scratch, exec, true);
    }
    /// The coefficients of position i (public for the inversion driver).
    [[nodiscard]] detail::ddim_coefficients<T> position_coefficients(std::size_t i) const noexcept {
        const timestep_t t = m_chain[i];
        return detail::ddim_step_coefficients<T>(m_schedule, t, position_prev(i), m_ddim, m_options.prediction);
    }

private:
    [[nodiscard]] timestep_t position_prev(std::size_t i) const noexcept {
        if (m_ddim.previous == ddim_previous_rule::diffusers) {
            return m_chain[i] - size() / m_chain.num_inference_steps(); // may be < −1, as in diffusers
        }
        return m_chain.next(i);
    }

    [[nodiscard]] timestep_t prev_of(timestep_t t, std::string_view where, std::string_view parameter) const {
        if (m_chain.size() == 0)
            detail::throw_invalid(where, "num_inference_steps", 0,
                                  "a call to set_timesteps before stepping (as diffusers' DDIMScheduler requires)");
        if (m_ddim.previous == ddim_previous_rule::diffusers) {
            m_schedule.check_timestep(t, where, parameter);
            return t - size() / m_chain.num_inference_steps();
        }
        return m_chain.next(m_chain.require(where, parameter, t));
    }

    template <class MO, class Coef, class X, class N, class P, class X0>
    void step_impl(std::string_view where, const MO& model_output, std::size_t batch, Coef&& coef, const X& sample,
                   const N& noise, P&& prev_sample, X0&& pred_original_sample) const {
        const auto c = detail::check_step_call<T>(where, m_options.variance, batch, model_output, sample, noise,
                                                  prev_sample, pred_original_sample);
        detail::step_scratch<T> scratch;
        scratch.resize(c.shape.batch, c.shape.dim);
        detail::ddim_step_kernel<T>(m_options.clip, coef, c.out, c.x, c.noise(), c.prev, c.x0, c.shape.batch, c.shape.dim,
                                    output_channels(), scratch, execution{});
    }

    noise_schedule m_schedule;
    model_options m_options;
    ddim_options m_ddim;
    detail::timestep_chain m_chain;
};

namespace detail {

/// The inversion chain: positions run the sampling chain backwards, the
/// network called at the upper timestep of each pair.
template <class T>
struct ddim_inversion_chain {
    const ddim_scheduler<T>& s;
    std::size_t iterations = 0;
    [[nodiscard]] std::size_t num_steps() const noexcept { return s.num_steps(); }
    [[nodiscard]] timestep_t model_timestep(std::size_t j) const noexcept { return s.model_timestep(num_steps() - 1 - j); }
    [[nodiscard]] std::size_t output_channels() const noexcept { return s.output_channels(); }
    [[nodiscard]] bool adds_noise(std::size_t) const noexcept { return false; }
    void step_at(std::size_t j, std::span<const T> model_out, std::span<const T> x, const kernels::step_noise<T>&,
                 std::span<T> x_next, std::span<T> x0, std::size_t dim, step_scratch<T>&, const execution&) const {
        const auto c = s.position_coefficients(num_steps() - 1 - j);
        ddim_invert_kernel<T>(c, model_out, x, x, x_next, x0, x.size() / dim, dim, output_channels());
    }
    [[nodiscard]] std::size_t refinements() const noexcept { return iterations; }
    void refine_at(std::size_t j, std::span<const T> model_out, std::span<const T> x, std::span<T> x_next,
                   std::span<T> x0, std::size_t dim) const noexcept {
        const auto c = s.position_coefficients(num_steps() - 1 - j);
        ddim_invert_kernel<T>(c, model_out, std::span<const T>(x_next), x, x_next, x0, x.size() / dim, dim,
                              output_channels());
    }
};

} // namespace detail

/// DDIM sampling in one call, a thin alias of ddpm::sample(scheduler, …)
/// (kept for existing code; its messages name ddpm::ddim_sample): as ddpm::sample (x_T from `noise` at step
/// index 0 or from `out`; the network called at every entry of
/// scheduler.timesteps(); optional finite check and observer), with the DDIM
/// update and noise drawn (step index i + 1) only where σ > 0.
/// @throws ddpm::invalid_argument on bad sizes or before set_timesteps;
///         ddpm::numerical_error on a non-finite network output when checked.
template <std::floating_point T, class Model, class Noise, output_buffer O, class Observer = no_observer>
std::size_t ddim_sample(const ddim_scheduler<T>& scheduler, Model&& model, Noise&& noise, O&& out,
                        const sampler_options& options = {}, Observer&& observe = Observer{}) {
    return detail::sample_with("ddpm::ddim_sample", scheduler, std::forward<Model>(model), std::forward<Noise>(noise),
                               std::forward<O>(out), options, std::forward<Observer>(observe));
}

/// Owns a ddim_scheduler and the scratch of a sampling run, so that repeated
/// runs allocate nothing (the buffers grow only when B·D grows); as
/// ddpm_sampler. sample() is ddim_sample().
template <std::floating_point T>
class ddim_sampler {
public:
    explicit ddim_sampler(ddim_scheduler<T> scheduler) : m_scheduler(std::move(scheduler)) {}

    [[nodiscard]] const ddim_scheduler<T>& scheduler() const noexcept { return m_scheduler; }
    [[nodiscard]] ddim_scheduler<T>& scheduler() noexcept { return m_scheduler; }

    /// As ddim_sample(scheduler(), …), reusing this object's scratch.
    template <class Model, class Noise, output_buffer O, class Observer = no_observer>
    std::size_t sample(Model&& model, Noise&& noise, O&& out, const sampler_options& options = {},
                       Observer&& observe = Observer{}) {
        static_assert(std::is_same_v<T, detail::value_of<O>> && callable_with_timesteps_v<Model, T, false> &&
                          noise_source<Noise, T>,
                      "ddpm::ddim_sampler::sample: out must hold T, the model must satisfy ddpm::denoiser<D, T> and "
                      "the noise ddpm::noise_source<N, T> (see ddpm::sample)");
        if constexpr (callable_with_timesteps_v<Model, T, false> && noise_source<Noise, T>) {
            if (m_scheduler.num_steps() == 0)
                detail::throw_invalid("ddpm::ddim_sampler::sample", "num_inference_steps", 0,
                                      "a call to set_timesteps first");
            detail::check_output_layout(out, options.batch, "out");
            return detail::run_chain<T>("ddpm::ddim_sampler::sample", m_scheduler, model, noise, as_mutable_span(out),
                                        options, observe, m_workspace);
        } else {
            return 0;
        }
    }

private:
    ddim_scheduler<T> m_scheduler;
    detail::chain_workspace<T> m_workspace;
};

/// Options of ddim_invert.
struct inversion_options {
    /// Number of samples B; `out` holds B·D values.
    std::size_t batch = 1;
    /// Throw ddpm::numerical_error on a non-finite network output.
    bool check_finite = false;
    /// Extra network evaluations per step that solve the implicit inverse of
    /// the sampling step by fixed-point iteration (0: the usual explicit DDIM
    /// inversion, first-order accurate in the step size; see docs/samplers.md).
    std::size_t fixed_point_iterations = 0;
};

/// DDIM inversion (η = 0): maps x_0 (read from `out`) to x_T (written to
/// `out`) by running the deterministic chain of scheduler.timesteps()
/// backwards: step j goes from the level of the previous timestep of
/// timesteps()[N−1−j] (ᾱ = final_alpha_cumprod for the first step) up to
/// timesteps()[N−1−j], calling the network there (on the lower-level state,
/// then, with fixed_point_iterations > 0, on the current estimate of x_t).
/// No clipping is applied and the scheduler's η is ignored; the previous
/// timestep rule is the scheduler's. With the same scheduler,
/// ddim_sample(…, start_from_input) maps the result back to ≈ x_0.
/// `observe(j, t, x_t, x̂_0)` runs after each step. `out` is untouched when
/// anything throws.
/// @return the number of steps run.
template <std::floating_point T, class Model, output_buffer O, class Observer = no_observer>
std::size_t ddim_invert(const ddim_scheduler<T>& scheduler, Model&& model, O&& out,
                        const inversion_options& options = {}, Observer&& observe = Observer{}) {
    static_assert(std::is_same_v<T, detail::value_of<O>>, "ddpm::ddim_invert: out must hold the scheduler's T");
    static_assert(callable_with_timesteps_v<Model, T, false>,
                  "ddpm::ddim_invert: the model does not satisfy ddpm::denoiser<D, T>: it must be callable as "
                  "d(std::span<const T> x_t, std::span<const ddpm::timestep_t> t, std::span<T> out)");
    static_assert(std::is_same_v<std::remove_cvref_t<Observer>, no_observer> || sampler_observer<Observer, T>,
                  "ddpm::ddim_invert: the observer must be callable as f(std::size_t step, ddpm::timestep_t t, "
                  "std::span<const T> x, std::span<const T> x0_hat)");
    if constexpr (callable_with_timesteps_v<Model, T, false>) {
        if (scheduler.num_steps() == 0)
            detail::throw_invalid("ddpm::ddim_invert", "num_inference_steps", 0, "a call to set_timesteps first");
        ddim_scheduler<T> deterministic = scheduler;
        deterministic.set_eta(0.0);
        const detail::ddim_inversion_chain<T> chain{deterministic, options.fixed_point_iterations};
        zero_noise none;
        sampler_options run;
        run.batch = options.batch;
        run.check_finite = options.check_finite;
        run.start_from_input = true;
        detail::chain_workspace<T> ws;
        return detail::run_chain<T>("ddpm::ddim_invert", chain, model, none, as_mutable_span(out), run, observe, ws);
    } else {
        return 0;
    }
}

} // namespace ddpm
