// ddpm/schedule/beta_schedule.hpp — named β schedules (docs/math.md#noise-schedules).
//
// Every schedule is produced in float64 exactly as the peers' numpy code does
// it (numpy's linspace, a sequential cumulative product). The float32 variants
// (`*_torch_f32`) reproduce what diffusers builds with torch on the CPU.
// Timesteps are indexed t = 0..T-1 (code convention); formulas in comments use
// the paper's t = 1..T.
#pragma once

#include "ddpm/error.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ddpm {

enum class beta_schedule {
    linear,            ///< "linear": linspace(β_start, β_end, T)
    scaled_linear,     ///< "scaled_linear" (alias "quad"): linspace(√β_start, √β_end, T)²
    squaredcos_cap_v2, ///< "squaredcos_cap_v2" (alias "cosine"): Nichol & Dhariwal's cosine ᾱ
    sigmoid,           ///< "sigmoid": diffusers' σ(linspace(−6, 6, T))·(β_end − β_start) + β_start
    constant,          ///< "const": β_t = β_end
    jsd,               ///< "jsd": β_t = 1/(T − t + 1), paper indexing
    warmup10,          ///< "warmup10": linear warm-up over the first 10 % of steps, then β_end
    warmup50,          ///< "warmup50": linear warm-up over the first 50 % of steps, then β_end
};

[[nodiscard]] constexpr std::string_view to_string(beta_schedule s) noexcept {
    switch (s) {
    case beta_schedule::linear: return "linear";
    case beta_schedule::scaled_linear: return "scaled_linear";
    case beta_schedule::squaredcos_cap_v2: return "squaredcos_cap_v2";
    case beta_schedule::sigmoid: return "sigmoid";
    case beta_schedule::constant: return "const";
    case beta_schedule::jsd: return "jsd";
    case beta_schedule::warmup10: return "warmup10";
    case beta_schedule::warmup50: return "warmup50";
    }
    return "?";
}

/// Accepts diffusers' strings and the original code's: "linear",
/// "scaled_linear" | "quad", "squaredcos_cap_v2" | "cosine", "sigmoid",
/// "const", "jsd", "warmup10", "warmup50".
[[nodiscard]] inline beta_schedule beta_schedule_from_string(std::string_view name) {
    if (name == "linear") return beta_schedule::linear;
    if (name == "scaled_linear" || name == "quad") return beta_schedule::scaled_linear;
    if (name == "squaredcos_cap_v2" || name == "cosine") return beta_schedule::squaredcos_cap_v2;
    if (name == "sigmoid") return beta_schedule::sigmoid;
    if (name == "const") return beta_schedule::constant;
    if (name == "jsd") return beta_schedule::jsd;
    if (name == "warmup10") return beta_schedule::warmup10;
    if (name == "warmup50") return beta_schedule::warmup50;
    detail::throw_invalid("ddpm::beta_schedule_from_string", "beta_schedule", name,
                          "one of linear, scaled_linear (quad), squaredcos_cap_v2 (cosine), sigmoid, const, jsd, "
                          "warmup10, warmup50");
}

/// Parameters of a named schedule. Defaults are the paper's / diffusers'.
struct schedule_config {
    std::int64_t num_train_timesteps = 1000;
    beta_schedule schedule = beta_schedule::linear;
    double beta_start = 0.0001;
    double beta_end = 0.02;
    double cosine_s = 0.008;   ///< offset s of the cosine schedule
    double max_beta = 0.999;   ///< cap of the cosine schedule
    bool rescale_betas_zero_snr = false; ///< Lin et al. 2023: force ᾱ_T = 0
};

/// The largest number of training timesteps ddpm accepts (diffusers' models
/// use at most a few thousand). A schedule holds about 15 tables of T doubles
/// plus a float32 copy, 180 MB at this maximum; larger T would only exhaust
/// memory, so every entry point that takes T refuses it with
/// ddpm::invalid_argument.
inline constexpr std::int64_t max_num_train_timesteps = 1'000'000;

namespace detail {

inline void check_finite(std::string_view where, std::string_view name, double v) {
    if (!std::isfinite(v)) throw_invalid(where, name, v, "a finite number");
}

/// Throws ddpm::invalid_argument unless 1 <= T <= max_num_train_timesteps.
template <class Int>
void check_num_train_timesteps(std::string_view where, std::string_view name, Int T) {
    if (T < 1 || static_cast<std::uint64_t>(T) > static_cast<std::uint64_t>(max_num_train_timesteps))
        throw_invalid(where, name, T, "an integer in [1, " + std::to_string(max_num_train_timesteps) +
                                          "] (<= 1000000, ddpm's maximum number of training timesteps)");
}

/// numpy.linspace(start, stop, n) in float64: start + i·step, last = stop.
[[nodiscard]] inline std::vector<double> linspace_f64(double start, double stop, std::int64_t n) {
    std::vector<double> y(static_cast<std::size_t>(n));
    if (n == 1) {
        y[0] = start;
        return y;
    }
    const double step = (stop - start) / static_cast<double>(n - 1);
    for (std::int64_t i = 0; i < n; ++i) y[static_cast<std::size_t>(i)] = static_cast<double>(i) * step + start;
    y.back() = stop;
    return y;
}

/// torch.linspace(start, end, n, dtype=float32) as its CPU kernel computes it
/// (checked bit for bit against diffusers' tensors): the step is float32; the
/// first half counts up from start, the second half down from end. The kernel
/// fills 8-wide vectors (AVX2) from a per-vector base, so element
/// i = base(i₀) + (i − i₀)·step with i₀ = i rounded down to a multiple of 8,
/// and the scalar base `start + step·i₀` was contracted to one fused
/// multiply-add by the compiler that built torch.
[[nodiscard]] inline std::vector<float> linspace_torch_f32(float start, float end, std::int64_t n) {
    std::vector<float> y(static_cast<std::size_t>(n));
    if (n == 1) {
        y[0] = start;
        return y;
    }
    const float step = (end - start) / static_cast<float>(n - 1);
    const std::int64_t halfway = n / 2;
    const auto base = [&](std::int64_t i) {
        return (i < halfway) ? std::fma(step, static_cast<float>(i), start)
                             : std::fma(-step, static_cast<float>(n - i - 1), end);
    };
    constexpr std::int64_t width = 8;
    const std::int64_t vector_end = n - n % width;
    for (std::int64_t i0 = 0; i0 < vector_end; i0 += width) {
        const float b = base(i0);
        for (std::int64_t j = 0; j < width; ++j) {
            volatile float scaled = static_cast<float>(j) * step; // not contracted in the vector code
            y[static_cast<std::size_t>(i0 + j)] = b + scaled;
        }
    }
    for (std::int64_t i = vector_end; i < n; ++i) y[static_cast<std::size_t>(i)] = base(i);
    return y;
}

/// expf as torch's vectorised CPU kernels evaluate it (SLEEF's 1-ulp
/// single-precision exp, with fused multiply-adds): round x/ln 2 to q, reduce
/// with a two-part ln 2, a degree-6 polynomial, scale by 2^q. diffusers'
/// sigmoid schedule goes through it, and glibc's correctly rounded expf
/// differs from it by an ulp on about 3 % of inputs.
[[nodiscard]] inline float torch_expf(float x) {
    const float q = std::nearbyint(x * 1.44269504088896340736f);
    float r = std::fma(q, -0.693145751953125f, x);
    r = std::fma(q, -1.428606765330187045e-06f, r);
    float p = 0.000198527617612853646278381f;
    p = std::fma(p, r, 0.00139304355252534151077271f);
    p = std::fma(p, r, 0.00833336077630519866943359f);
    p = std::fma(p, r, 0.0416664853692054748535156f);
    p = std::fma(p, r, 0.166666671633720397949219f);
    p = std::fma(p, r, 0.5f);
    const float e = 1.0f + std::fma(r * r, p, r);
    if (x < -104.0f) return 0.0f;
    if (x > 100.0f) return std::numeric_limits<float>::infinity();
    return std::ldexp(e, static_cast<int>(q));
}

/// Nichol & Dhariwal's ᾱ(t) = cos²(((t + s)/(1 + s))·π/2), unnormalised
/// (only ratios are used), evaluated in the peers' operation order.
[[nodiscard]] inline double cosine_alpha_bar(double t, double s) {
    const double c = std::cos((t + s) / (1.0 + s) * std::numbers::pi / 2.0);
    return c * c;
}

} // namespace detail

/// The float64 β table of a named schedule (no zero-SNR rescale, no
/// validation of the result). `where` names the caller in error messages.
[[nodiscard]] inline std::vector<double> make_betas(const schedule_config& c,
                                                    std::string_view where = "ddpm::make_betas") {
    const std::int64_t T = c.num_train_timesteps;
    detail::check_num_train_timesteps(where, "num_train_timesteps", T);
    detail::check_finite(where, "beta_start", c.beta_start);
    detail::check_finite(where, "beta_end", c.beta_end);
    if (c.schedule != beta_schedule::squaredcos_cap_v2 && c.schedule != beta_schedule::jsd) {
        if (!(c.beta_start > 0.0 && c.beta_start <= 1.0))
            detail::throw_invalid(where, "beta_start", c.beta_start, "in (0, 1]");
        if (!(c.beta_end > 0.0 && c.beta_end <= 1.0)) detail::throw_invalid(where, "beta_end", c.beta_end, "in (0, 1]");
    }
    // The schedules that ramp from beta_start to beta_end increase: a reversed
    // pair is almost always a swapped configuration. Explicit βs (from_betas,
    // trained_betas) may decrease.
    const bool ramps = c.schedule == beta_schedule::linear || c.schedule == beta_schedule::scaled_linear ||
                       c.schedule == beta_schedule::sigmoid || c.schedule == beta_schedule::warmup10 ||
                       c.schedule == beta_schedule::warmup50;
    if (ramps && c.beta_start > c.beta_end)
        detail::throw_invalid(where, "beta_start", c.beta_start,
                              "<= beta_end = " + std::to_string(c.beta_end) + " (the " +
                                  std::string(to_string(c.schedule)) +
                                  " schedule increases from beta_start to beta_end; for decreasing betas pass them "
                                  "explicitly: noise_schedule::from_betas or trained_betas)");
    const auto n = static_cast<std::size_t>(T);
    std::vector<double> betas;
    switch (c.schedule) {
    case beta_schedule::linear:
        betas = detail::linspace_f64(c.beta_start, c.beta_end, T);
        break;
    case beta_schedule::scaled_linear: {
        betas = detail::linspace_f64(std::sqrt(c.beta_start), std::sqrt(c.beta_end), T);
        for (auto& b : betas) b = b * b;
        break;
    }
    case beta_schedule::squaredcos_cap_v2: {
        detail::check_finite(where, "cosine_s", c.cosine_s);
        detail::check_finite(where, "max_beta", c.max_beta);
        if (c.cosine_s < 0) detail::throw_invalid(where, "cosine_s", c.cosine_s, ">= 0");
        if (!(c.max_beta > 0 && c.max_beta <= 1)) detail::throw_invalid(where, "max_beta", c.max_beta, "in (0, 1]");
        betas.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            const double t1 = static_cast<double>(i) / static_cast<double>(T);
            const double t2 = static_cast<double>(i + 1) / static_cast<double>(T);
            const double b = 1.0 - detail::cosine_alpha_bar(t2, c.cosine_s) / detail::cosine_alpha_bar(t1, c.cosine_s);
            betas[i] = std::min(b, c.max_beta);
        }
        break;
    }
    case beta_schedule::sigmoid: {
        const auto x = detail::linspace_f64(-6.0, 6.0, T);
        betas.resize(n);
        for (std::size_t i = 0; i < n; ++i)
            betas[i] = 1.0 / (1.0 + std::exp(-x[i])) * (c.beta_end - c.beta_start) + c.beta_start;
        break;
    }
    case beta_schedule::constant:
        betas.assign(n, c.beta_end);
        break;
    case beta_schedule::jsd: {
        // 1 / linspace(T, 1, T): 1/T, 1/(T-1), ..., 1
        const auto d = detail::linspace_f64(static_cast<double>(T), 1.0, T);
        betas.resize(n);
        for (std::size_t i = 0; i < n; ++i) betas[i] = 1.0 / d[i];
        break;
    }
    case beta_schedule::warmup10:
    case beta_schedule::warmup50: {
        const double frac = c.schedule == beta_schedule::warmup10 ? 0.1 : 0.5;
        betas.assign(n, c.beta_end);
        const auto warmup = static_cast<std::int64_t>(static_cast<double>(T) * frac); // Python int(T * frac)
        if (warmup > 0) {
            const auto ramp = detail::linspace_f64(c.beta_start, c.beta_end, warmup);
            std::copy(ramp.begin(), ramp.end(), betas.begin());
        }
        break;
    }
    }
    return betas;
}

/// Lin et al. 2023, Algorithm 1: shift and scale √ᾱ so that √ᾱ_T = 0 while
/// √ᾱ_1 is unchanged, then recover β. Works in float (diffusers) or double.
template <class T>
[[nodiscard]] std::vector<T> rescale_zero_terminal_snr(std::span<const T> betas) {
    const std::size_t n = betas.size();
    std::vector<T> sqrt_ab(n);
    double acc = 1.0; // torch's CPU cumprod accumulates in double
    for (std::size_t i = 0; i < n; ++i) {
        const T alpha = T(1) - betas[i];
        acc *= static_cast<double>(alpha);
        sqrt_ab[i] = std::sqrt(static_cast<T>(acc));
    }
    const T first = sqrt_ab.front();
    const T last = sqrt_ab.back();
    const T scale = first / (first - last);
    for (auto& s : sqrt_ab) {
        s -= last;
        s *= scale;
    }
    std::vector<T> out(n);
    for (std::size_t i = 0; i < n; ++i) {
        const T ab = sqrt_ab[i] * sqrt_ab[i];
        const T alpha = (i == 0) ? ab : ab / (sqrt_ab[i - 1] * sqrt_ab[i - 1]);
        out[i] = T(1) - alpha;
    }
    return out;
}

/// The float32 β table diffusers' DDPMScheduler builds with torch on the CPU.
[[nodiscard]] inline std::vector<float> make_betas_torch_f32(const schedule_config& c,
                                                             std::string_view where = "ddpm::make_betas_torch_f32") {
    std::vector<float> betas;
    switch (c.schedule) {
    case beta_schedule::linear:
        (void)make_betas(c, where); // validation
        betas = detail::linspace_torch_f32(static_cast<float>(c.beta_start), static_cast<float>(c.beta_end),
                                           c.num_train_timesteps);
        break;
    case beta_schedule::scaled_linear: {
        (void)make_betas(c, where);
        betas = detail::linspace_torch_f32(static_cast<float>(std::sqrt(c.beta_start)),
                                           static_cast<float>(std::sqrt(c.beta_end)), c.num_train_timesteps);
        for (auto& b : betas) b = b * b;
        break;
    }
    case beta_schedule::sigmoid: {
        (void)make_betas(c, where);
        const auto x = detail::linspace_torch_f32(-6.0f, 6.0f, c.num_train_timesteps);
        const auto range = static_cast<float>(c.beta_end - c.beta_start);
        const auto start = static_cast<float>(c.beta_start);
        betas.resize(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) {
            const float s = 1.0f / (1.0f + detail::torch_expf(-x[i]));
            volatile float scaled = s * range; // no FMA contraction
            betas[i] = scaled + start;
        }
        break;
    }
    default: {
        // cosine and the original code's schedules are computed in Python
        // float64 and then converted: round the float64 table.
        const auto d = make_betas(c, where);
        betas.assign(d.begin(), d.end());
        break;
    }
    }
    return betas;
}

} // namespace ddpm
