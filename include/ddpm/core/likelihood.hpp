// ddpm/core/likelihood.hpp — the variational bound in bits per dimension
// (docs/math.md#likelihood-and-bits-per-dimension; Ho et al. 2020 eq. 5 and
// eq. 13; Nichol & Dhariwal 2021 eqs. 4–7).
//
//   L = L_T + Σ_{t=2}^{T} L_{t−1} + L_0                (paper indexing)
//   L_T     = KL(q(x_T | x_0) ‖ N(0, I))                     prior_bpd
//   L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t))  vb_terms_bpd at index t − 1 ≥ 1
//   L_0     = −log p_θ(x_0 | x_1), a discretised Gaussian     vb_terms_bpd at index 0
//
// Everything here follows improved-diffusion (gaussian_diffusion.py
// `_vb_terms_bpd`, `_prior_bpd`; losses.py `normal_kl`,
// `discretized_gaussian_log_likelihood`), operation for operation, so that a
// float64 run reproduces it to rounding. Per-sample results are means over the
// D elements of a sample, in bits: bits = nats / ln 2.
//
// Timesteps are 0-based (code index i = paper t − 1, i ∈ [0, T)): at i = 0
// vb_terms_bpd returns the decoder term L_0 = −log p_θ(x_0 | x_1), and at
// i > 0 the KL term L_i = KL(q(x_i | x_{i+1}, x_0) ‖ p_θ(x_i | x_{i+1})) in
// paper indexing — the step the network takes when called with index i.
//
// The normal CDF of the decoder comes from the profile (`s.conventions().cdf`):
// `normal_cdf::exact` (erf-based, the default profile and diffusers) or
// `normal_cdf::tanh_approx` (improved-diffusion and the original DDPM code).
//
// Batch functions validate sizes, timesteps and options once per call and
// throw ddpm::invalid_argument before writing anything.
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/config.hpp"
#include "ddpm/core/p_mean_variance.hpp"
#include "ddpm/core/posterior.hpp"
#include "ddpm/schedule/noise_schedule.hpp"
#include "ddpm/schedule/profile.hpp"

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace ddpm {

// ---------------------------------------------------------------------------
// Element-wise maths (host/device, noexcept, no validation).
namespace kernels::detail {
/// max(p, 1e-12) that lets NaN through, as torch.clamp(min=1e-12) does.
template <class T>
DDPM_HOST_DEVICE constexpr T floor_probability(T p) noexcept {
    return p < T(1e-12) ? T(1e-12) : p;
}
} // namespace kernels::detail

namespace kernels::scalar {

/// ln 2 (numpy's np.log(2.0)): bits = nats / ln 2.
inline constexpr double ln2 = 0.6931471805599453;
/// √(2/π) as improved-diffusion computes it (np.sqrt(2.0 / np.pi)).
inline constexpr double sqrt_2_over_pi = 0.7978845608028654;
/// 1/√2.
inline constexpr double sqrt1_2 = 0.7071067811865476;
/// Half the width of one of the 256 bins on [−1, 1]: 1/255.
inline constexpr double half_bin = 1.0 / 255.0;
/// Floor applied to probabilities before their log (improved-diffusion: 1e-12).
inline constexpr double log_prob_floor = 1e-12;
/// x below −edge (above +edge) is the first (last) bin, extended to ∓∞.
inline constexpr double edge_threshold = 0.999;

/// KL(N(μ1, e^{lv1}) ‖ N(μ2, e^{lv2})) of one element, in nats (docs/math.md
/// #likelihood-and-bits-per-dimension):
///   ½ (−1 + lv2 − lv1 + e^{lv1 − lv2} + (μ1 − μ2)² e^{−lv2}).
///
/// improved-diffusion evaluates (−1 + lv2) − lv1 left to right; here lv2 − lv1
/// is formed first (as −(lv1 − lv2), which is exact in IEEE arithmetic), so
/// equal log-variances cancel exactly: KL(p‖p) = 0, and the variance part
/// −1 − x + e^x (x = lv1 − lv2, ≥ 0 in exact arithmetic) is floored at 0, so
/// KL ≥ 0 always. The two orders differ by a rounding of −1 + lv2, i.e. at most
/// ulp(1 + |lv2|) per element; against N(0, 1) (lv2 = 0) they are identical.
///
/// Precision: −1 − x + e^x ≈ x²/2 is formed from O(1) terms, so its absolute
/// error is ~ulp(1) (1.1e-16 in double, 1.2e-7 in float) whatever its size. In
/// float that part vanishes for |x| ≲ 3e-4 — prior_bpd of linear T = 1000 is
/// then 5.4e-5 relative (6e-10 bits) off its double value, as in
/// improved-diffusion's float32 run. An expm1-based form would be exact there
/// but would leave improved-diffusion's float64 results by up to 1.6e-11
/// relative (their own rounding), so the peer-compatible form is kept.
template <class T>
DDPM_HOST_DEVICE inline T normal_kl(T mean1, T logvar1, T mean2, T logvar2) noexcept {
    using std::exp;
    const T x = logvar1 - logvar2;
    const T var_part = T(-1) - x + exp(x);
    const T d = mean1 - mean2;
    return T(0.5) * ((var_part < T(0) ? T(0) : var_part) + (d * d) * exp(-logvar2));
}

/// Φ(x) of the standard normal, exact: ½ erfc(−x/√2).
template <class T>
DDPM_HOST_DEVICE inline T standard_normal_cdf(T x) noexcept {
    using std::erfc;
    return T(0.5) * erfc(-x * T(sqrt1_2));
}

/// 1 − Φ(x) = ½ erfc(x/√2), accurate in the upper tail.
template <class T>
DDPM_HOST_DEVICE inline T standard_normal_sf(T x) noexcept {
    using std::erfc;
    return T(0.5) * erfc(x * T(sqrt1_2));
}

/// improved-diffusion's (and the original DDPM code's) approximation
/// Φ(x) ≈ ½ (1 + tanh(√(2/π) (x + 0.044715 x³))). Its absolute error is below
/// 2e-4 everywhere (see tests/likelihood).
template <class T>
DDPM_HOST_DEVICE inline T approx_standard_normal_cdf(T x) noexcept {
    using std::tanh;
    return T(0.5) * (T(1) + tanh(T(sqrt_2_over_pi) * (x + T(0.044715) * (x * x * x))));
}

/// log P(bin of x) under N(mean, e^{2·log_scale}), the discretised decoder of
/// Ho et al. 2020 eq. 13: 256 bins of width 2/255 centred on x ∈ [−1, 1], the
/// first (x < −0.999) and last (x > 0.999) bins extended to ∓∞; probabilities
/// are floored at 1e-12 before the log. In nats.
///
/// `tanh_approx` reproduces improved-diffusion exactly (CDF differences taken
/// as written). `exact` uses Φ via erfc and takes every difference on the side
/// of the tails where it does not cancel (1 − Φ(a) − (1 − Φ(b)) above the mean).
template <class T>
DDPM_HOST_DEVICE inline T discretized_gaussian_log_likelihood(T x, T mean, T log_scale, normal_cdf cdf) noexcept {
    using std::exp;
    using std::log;
    const T centered = x - mean;
    const T inv_stdv = exp(-log_scale);
    const T plus_in = inv_stdv * (centered + T(half_bin));
    const T min_in = inv_stdv * (centered - T(half_bin));
    if (cdf == normal_cdf::tanh_approx) {
        const T cdf_plus = approx_standard_normal_cdf(plus_in);
        const T cdf_min = approx_standard_normal_cdf(min_in);
        if (x < T(-edge_threshold)) return log(detail::floor_probability(cdf_plus));
        if (x > T(edge_threshold)) return log(detail::floor_probability(T(1) - cdf_min));
        return log(detail::floor_probability(cdf_plus - cdf_min));
    }
    if (x < T(-edge_threshold)) return log(detail::floor_probability(standard_normal_cdf(plus_in)));
    if (x > T(edge_threshold)) return log(detail::floor_probability(standard_normal_sf(min_in)));
    const T p = min_in > T(0) ? standard_normal_sf(min_in) - standard_normal_sf(plus_in)
                              : standard_normal_cdf(plus_in) - standard_normal_cdf(min_in);
    return log(detail::floor_probability(p));
}

} // namespace kernels::scalar

// ---------------------------------------------------------------------------
// Scalar conveniences.

/// Φ(x) of the standard normal with the chosen CDF (exact erf-based, or
/// improved-diffusion's tanh approximation).
template <std::floating_point T>
[[nodiscard]] inline T standard_normal_cdf(T x, normal_cdf which = normal_cdf::exact) noexcept {
    return which == normal_cdf::tanh_approx ? kernels::scalar::approx_standard_normal_cdf(x)
                                            : kernels::scalar::standard_normal_cdf(x);
}

// ---------------------------------------------------------------------------
// Element-wise batch functions.

namespace detail {

/// An operand of an element-wise function: a buffer (N elements, or 1 that is
/// broadcast) or a floating-point scalar (broadcast).
template <class A>
concept elementwise_operand = input_buffer<A> || std::floating_point<std::remove_cvref_t<A>>;

/// A read view of an elementwise_operand: v[i] is element i, or the single
/// element for a broadcast operand.
template <class T>
struct broadcast_view {
    const T* data = nullptr;
    std::size_t stride = 0;
    T value = T(0);
    [[nodiscard]] T operator[](std::size_t i) const noexcept { return data ? data[i * stride] : value; }
};

/// Checks one operand against N elements and returns its view.
template <class T, class A>
broadcast_view<T> operand_view(std::string_view where, std::string_view name, const A& a, std::size_t n) {
    if constexpr (std::floating_point<std::remove_cvref_t<A>>) {
        return {nullptr, 0, static_cast<T>(a)};
    } else {
        static_assert(std::is_same_v<value_of<A>, T>,
                      "ddpm: buffer operands must have the output's element type (scalars are converted)");
        const auto sp = as_span(a);
        if (sp.size() != n && sp.size() != 1)
            throw_invalid(where, std::string(name) + ".size()", sp.size(),
                          std::to_string(n) + " (out.size()) or 1 (broadcast)");
        return {sp.data(), sp.size() == 1 ? std::size_t(0) : std::size_t(1), T(0)};
    }
}

/// Throws unless every sample has at least one element (the means divide by D).
inline void check_nonempty_samples(std::string_view where, batch_shape shape) {
    if (shape.dim == 0)
        throw_invalid(where, "x0.size()", 0, ">= the number of samples (D >= 1 elements per sample)");
}

/// Throws unless `c` is one of the normal_cdf enumerators.
inline void check_cdf(std::string_view where, normal_cdf c) {
    if (c != normal_cdf::exact && c != normal_cdf::tanh_approx)
        throw_invalid(where, "cdf", static_cast<int>(c), "normal_cdf::exact or normal_cdf::tanh_approx");
}

} // namespace detail

/// Element-wise KL(N(mean1, e^{logvar1}) ‖ N(mean2, e^{logvar2})) in nats
/// (improved-diffusion `normal_kl`; docs/math.md#likelihood-and-bits-per-dimension).
///
/// Each operand is a buffer of out.size() elements, a buffer of 1 element, or
/// a floating-point scalar; the last two are broadcast (so `normal_kl(m, lv,
/// 0.0, 0.0, out)` is the KL against N(0, 1)). `out` may alias any full-size
/// operand.
/// @throws ddpm::invalid_argument when an operand has neither out.size() nor 1
///         elements; nothing is written then.
template <detail::elementwise_operand M1, detail::elementwise_operand L1, detail::elementwise_operand M2,
          detail::elementwise_operand L2, output_buffer O>
void normal_kl(const M1& mean1, const L1& logvar1, const M2& mean2, const L2& logvar2, O&& out) {
    using T = detail::value_of<O>;
    constexpr std::string_view where = "ddpm::normal_kl";
    auto o = as_mutable_span(out);
    const std::size_t n = o.size();
    const auto m1 = detail::operand_view<T>(where, "mean1", mean1, n);
    const auto l1 = detail::operand_view<T>(where, "logvar1", logvar1, n);
    const auto m2 = detail::operand_view<T>(where, "mean2", mean2, n);
    const auto l2 = detail::operand_view<T>(where, "logvar2", logvar2, n);
    for (std::size_t i = 0; i < n; ++i) o[i] = kernels::scalar::normal_kl(m1[i], l1[i], m2[i], l2[i]);
}

/// Element-wise log-probability (nats) of the bin holding each x under
/// N(means, e^{2·log_scales}): the discretised decoder of Ho et al. 2020
/// eq. 13 (improved-diffusion `discretized_gaussian_log_likelihood`).
///
/// @param x          N data values on the 256-level grid 2k/255 − 1 of [−1, 1].
/// @param means      N values, 1 value or a scalar (broadcast).
/// @param log_scales log σ (not log σ²): N values, 1 value or a scalar.
/// @param out        N log-probabilities; may alias any full-size input.
/// @param cdf        normal_cdf::exact (default) or normal_cdf::tanh_approx
///                   (improved-diffusion, ho2020); `s.conventions().cdf` is the
///                   profile's choice.
/// @throws ddpm::invalid_argument on a size mismatch or an unknown `cdf`.
template <input_buffer X, detail::elementwise_operand M, detail::elementwise_operand S, output_buffer O>
void discretized_gaussian_log_likelihood(const X& x, const M& means, const S& log_scales, O&& out,
                                         normal_cdf cdf = normal_cdf::exact) {
    using T = detail::value_of<O>;
    static_assert(std::is_same_v<T, detail::value_of<X>>,
                  "ddpm::discretized_gaussian_log_likelihood: x and out must share one element type");
    constexpr std::string_view where = "ddpm::discretized_gaussian_log_likelihood";
    const auto xs = as_span(x);
    auto o = as_mutable_span(out);
    detail::check_size(where, "out", o.size(), xs.size(), "(x.size())");
    const auto m = detail::operand_view<T>(where, "means", means, xs.size());
    const auto ls = detail::operand_view<T>(where, "log_scales", log_scales, xs.size());
    detail::check_cdf(where, cdf);
    for (std::size_t i = 0; i < xs.size(); ++i)
        o[i] = kernels::scalar::discretized_gaussian_log_likelihood(xs[i], m[i], ls[i], cdf);
}

/// As above, with the CDF of a profile's conventions.
template <input_buffer X, detail::elementwise_operand M, detail::elementwise_operand S, output_buffer O>
void discretized_gaussian_log_likelihood(const X& x, const M& means, const S& log_scales, O&& out, profile p) {
    discretized_gaussian_log_likelihood(x, means, log_scales, out, conventions_of(p).cdf);
}

// ---------------------------------------------------------------------------
// Terms of the bound, per sample, in bits per dimension.

/// L_T in bits/dim for each sample: KL(q(x_T | x_0) ‖ N(0, I)) averaged over the
/// D elements of the sample, / ln 2 (improved-diffusion `_prior_bpd`;
/// Nichol & Dhariwal 2021 eq. 7). q(x_T | x_0) = N(√ᾱ_T x_0, (1 − ᾱ_T) I) uses
/// the schedule's tables in the buffers' precision (sqrt_alphas_cumprod and
/// log_one_minus_alphas_cumprod at the last index T − 1).
///
/// @param x0             B·D clean samples (batch-first).
/// @param out_per_sample B values; B is taken from its size.
/// @throws ddpm::invalid_argument when out_per_sample is empty or x0.size() is
///         not a positive multiple of it; nothing is written then.
template <input_buffer X, output_buffer O>
void prior_bpd(const noise_schedule& s, const X& x0, O&& out_per_sample) {
    using T = detail::value_of<X>;
    static_assert(std::is_same_v<T, detail::value_of<O>>, "ddpm::prior_bpd: x0 and out must share one element type");
    constexpr std::string_view where = "ddpm::prior_bpd";
    const auto x = as_span(x0);
    auto o = as_mutable_span(out_per_sample);
    const auto shape = detail::shape_from(where, o.size(), "x0", x.size());
    detail::check_nonempty_samples(where, shape);
    const auto last = static_cast<std::size_t>(s.size() - 1);
    const auto& tab = s.tables<T>();
    const T mean_coef = tab.sqrt_alphas_cumprod[last];
    const T logvar = tab.log_one_minus_alphas_cumprod[last];
    for (std::size_t b = 0; b < shape.batch; ++b) {
        double acc = 0.0;
        for (std::size_t i = b * shape.dim; i < (b + 1) * shape.dim; ++i)
            acc += static_cast<double>(kernels::scalar::normal_kl(mean_coef * x[i], logvar, T(0), T(0)));
        // mean_flat(kl) / log(2), as improved-diffusion divides
        o[b] = static_cast<T>(acc / static_cast<double>(shape.dim) / kernels::scalar::ln2);
    }
}

namespace detail {

/// Validates every argument of vb_terms_bpd; returns B × D.
template <class MO, class X0, class Xt, class Ts, class O>
batch_shape check_vb_terms(std::string_view where, const noise_schedule& s, const model_options& opt,
                           const MO& model_output, const X0& x0, const Xt& xt, const Ts& timesteps, const O& out,
                           std::size_t pred_x0_size, bool has_pred_x0) {
    const auto shape = shape_from(where, std::ranges::size(timesteps), "x0", as_span(x0).size());
    check_nonempty_samples(where, shape);
    check_size(where, "xt", as_span(xt).size(), shape.elements());
    check_model_output(where, opt.variance, as_span(model_output).size(), shape);
    check_size(where, "out_per_sample", as_span(out).size(), shape.batch, "(one per sample, B)");
    if (has_pred_x0) check_size(where, "pred_x0", pred_x0_size, shape.elements());
    check_timesteps(where, timesteps, s.size());
    opt.clip.validate(where);
    return shape;
}

/// The body of vb_terms_bpd once the arguments are checked; `px0` receives x̂_0.
template <class T, class MO, class X0, class Xt, class Ts>
void vb_terms_bpd_impl(const noise_schedule& s, const model_options& opt, const MO& model_output, const X0& x0,
                       const Xt& xt, const Ts& timesteps, std::span<T> out, std::span<T> px0, batch_shape shape) {
    const std::size_t n = shape.elements();
    std::vector<T> mean(n), var(n), logvar(n), post_mean(n), post_var(shape.batch), post_logvar(shape.batch);
    // p_θ(x_{t−1} | x_t): mean, log σ² and x̂_0 (clipped per opt.clip).
    p_mean_variance(s, opt, model_output, xt, timesteps, mean, var, logvar, px0);
    // q(x_{t−1} | x_t, x_0): μ̃_t and the clipped log β̃_t.
    q_posterior_mean_variance(s, x0, xt, timesteps, post_mean, post_var, post_logvar);
    const auto a = as_span(x0);
    const normal_cdf cdf = s.conventions().cdf;
    const std::size_t D = shape.dim;
    std::size_t b = 0;
    for (const auto tv : timesteps) {
        double acc = 0.0;
        if (static_cast<std::int64_t>(tv) == 0) {
            // L_0 = −log p_θ(x_0 | x_1), decoder with log σ = ½ log σ² (eq. 13).
            for (std::size_t k = b * D; k < (b + 1) * D; ++k)
                acc += -static_cast<double>(
                    kernels::scalar::discretized_gaussian_log_likelihood(a[k], mean[k], T(0.5) * logvar[k], cdf));
        } else {
            // L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)).
            for (std::size_t k = b * D; k < (b + 1) * D; ++k)
                acc += static_cast<double>(kernels::scalar::normal_kl(post_mean[k], post_logvar[b], mean[k], logvar[k]));
        }
        out[b] = static_cast<T>(acc / static_cast<double>(D) / kernels::scalar::ln2);
        ++b;
    }
}

} // namespace detail

/// One term of the bound per sample, in bits/dim (improved-diffusion
/// `_vb_terms_bpd`; Nichol & Dhariwal 2021 eqs. 5–6). With t the 0-based
/// timestep of the sample and x_prev the sample one step less noisy:
///  * t > 0: KL(q(x_prev | x_t, x_0) ‖ p_θ(x_prev | x_t)), the KL of diagonal
///    Gaussians averaged over D, / ln 2. q's log-variance is the clipped
///    log β̃_t; p_θ's mean and variance come from ddpm::p_mean_variance (so
///    opt.variance, opt.prediction and opt.clip apply, with the profile's
///    variance conventions).
///  * t = 0: the decoder NLL −log p_θ(x_0 | x_t) (Ho et al. 2020 eq. 13; the
///    paper's L_0), discretised with log σ = ½ log σ² of p_θ and the profile's
///    normal CDF, averaged over D, / ln 2.
/// Summed over t ∈ [0, T) and added to prior_bpd this is the bound in bits/dim
/// (improved-diffusion `calc_bpd_loop`'s total_bpd).
///
/// @param model_output   B·D network outputs, or B·2D when the variance is
///                       learned (per sample: predictions, then variance values).
/// @param x0             B·D data on the 256-level grid of [−1, 1].
/// @param xt             B·D noised samples at each sample's timestep.
/// @param timesteps      B 0-based timesteps in [0, T).
/// @param out_per_sample B values (bits/dim).
/// @throws ddpm::invalid_argument on any size mismatch (including a
///         learned-variance output without 2D values per sample, or D = 0), a
///         timestep outside [0, T) or bad clip options; nothing is written then.
template <input_buffer MO, input_buffer X0, input_buffer Xt, timestep_buffer Ts, output_buffer O>
void vb_terms_bpd(const noise_schedule& s, const model_options& opt, const MO& model_output, const X0& x0,
                  const Xt& xt, const Ts& timesteps, O&& out_per_sample) {
    using T = detail::value_of<X0>;
    static_assert(std::is_same_v<T, detail::value_of<MO>> && std::is_same_v<T, detail::value_of<Xt>> &&
                      std::is_same_v<T, detail::value_of<O>>,
                  "ddpm::vb_terms_bpd: every buffer must share one element type");
    const auto shape = detail::check_vb_terms("ddpm::vb_terms_bpd", s, opt, model_output, x0, xt, timesteps,
                                              out_per_sample, 0, false);
    std::vector<T> px0(shape.elements());
    detail::vb_terms_bpd_impl<T>(s, opt, model_output, x0, xt, timesteps, as_mutable_span(out_per_sample),
                                 std::span<T>(px0), shape);
}

/// As above, also writing x̂_0 (B·D, clipped per opt.clip) to `pred_x0`, as
/// improved-diffusion returns `pred_xstart` (calc_bpd_loop's xstart_mse and,
/// through ddpm::predict_eps_from_x0, its mse). `pred_x0` must not alias any input.
template <input_buffer MO, input_buffer X0, input_buffer Xt, timestep_buffer Ts, output_buffer O, output_buffer P>
void vb_terms_bpd(const noise_schedule& s, const model_options& opt, const MO& model_output, const X0& x0,
                  const Xt& xt, const Ts& timesteps, O&& out_per_sample, P&& pred_x0) {
    using T = detail::value_of<X0>;
    static_assert(std::is_same_v<T, detail::value_of<MO>> && std::is_same_v<T, detail::value_of<Xt>> &&
                      std::is_same_v<T, detail::value_of<O>> && std::is_same_v<T, detail::value_of<P>>,
                  "ddpm::vb_terms_bpd: every buffer must share one element type");
    const auto shape = detail::check_vb_terms("ddpm::vb_terms_bpd", s, opt, model_output, x0, xt, timesteps,
                                              out_per_sample, as_span(pred_x0).size(), true);
    detail::vb_terms_bpd_impl<T>(s, opt, model_output, x0, xt, timesteps, as_mutable_span(out_per_sample),
                                 as_mutable_span(pred_x0), shape);
}

} // namespace ddpm
