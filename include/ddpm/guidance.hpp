// ddpm/guidance.hpp — guidance as denoiser adapters (docs/guidance.md,
// docs/math.md#guidance).
//
// * classifier_free_guidance: classifier-free guidance (Ho & Salimans 2022)
//   over a network that takes a condition per sample,
//       out = out_u + w (out_c − out_u),
//   with the unconditional and the conditional halves in one network call of
//   2B samples (or two calls of B, for memory), and diffusers'
//   guidance_rescale (Lin et al. 2024, `rescale_noise_cfg`).
//   guidance_pair does the same over two plain denoisers.
// * classifier_guidance: classifier guidance (Dhariwal & Nichol 2021) by
//   guided-diffusion's `condition_score`: the caller's gradient
//   g = ∇_x log p(y | x_t) shifts the score, ε̂' = ε̂ − s √(1 − ᾱ_t) g.
//
// Each adapter is itself a ddpm::denoiser: hand it to any sampler (DDPM,
// DDIM, respaced chains, scheduler.step loops) in place of the network. The
// classifier-free adapters forward the timestep span they are called with
// unchanged (integer indices, or real-valued timesteps for samplers that use
// them), so they work with every sampler whose timesteps the network accepts.
//
// Prediction types: the classifier-free combination has weights (1 − w, w)
// that sum to 1, and x̂_0 and v̂ are affine functions of ε̂ for a fixed x_t, so
// combining raw x̂_0 or v̂ outputs gives exactly the x̂_0 or v̂ of the guided ε̂:
// the adapter combines the raw outputs whatever the network predicts.
// guidance_rescale is applied to the raw outputs, as diffusers does (for a
// v-model that is the paper's setting). A learned variance (2·D values per
// sample) is guided on its first D values; the variance values are the
// conditional half's (as DeepFloyd IF and DiT do). classifier_guidance is
// told the prediction type and shifts x̂_0 or v̂ by the same ε shift.
//
// Depends only on the denoiser concept and core/ (the schedule for ᾱ_t).
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/core/types.hpp"
#include "ddpm/denoiser.hpp"
#include "ddpm/error.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

#include <cmath>
#include <concepts>
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace ddpm {

/// How classifier-free guidance calls the network.
enum class guidance_batching {
    joint,    ///< one call of 2B samples: the B unconditional ones, then the B conditional ones (diffusers' order)
    separate, ///< two calls of B samples, unconditional then conditional: half the network's peak memory
};

/// Options of classifier-free guidance besides the scale.
struct cfg_options {
    /// φ of guidance_rescale (Lin et al. 2024, §3.4; diffusers' `guidance_rescale`),
    /// in [0, 1]: 0 leaves the guided output as it is, 1 rescales it to the
    /// conditional output's standard deviation (per sample).
    double guidance_rescale = 0;
    guidance_batching batching = guidance_batching::joint;

    /// @throws ddpm::invalid_argument when guidance_rescale ∉ [0, 1].
    void validate(std::string_view where) const {
        if (!(guidance_rescale >= 0 && guidance_rescale <= 1))
            detail::throw_invalid(where, "guidance_rescale", guidance_rescale, "in [0, 1]");
    }
};

namespace detail {

/// Reusable scratch vectors (three slots) of the element types a guidance
/// adapter meets; other types get a fresh vector per call.
class guidance_scratch {
public:
    template <class U>
    std::vector<U>& get(std::size_t slot) {
        static_assert(slot_types::template has<U>, "internal: no scratch for this type");
        return std::get<std::vector<U>>(m_slots[slot]);
    }

    struct slot_types {
        template <class U>
        static constexpr bool has = std::is_same_v<U, float> || std::is_same_v<U, double> ||
                                    std::is_same_v<U, timestep_t>;
    };

private:
    std::tuple<std::vector<float>, std::vector<double>, std::vector<timestep_t>> m_slots[3];
};

/// Takes a scratch vector of n elements of U: reused for the common types.
template <class U>
std::span<U> scratch_span(guidance_scratch& s, std::vector<U>& local, std::size_t slot, std::size_t n) {
    std::vector<U>* v = &local;
    if constexpr (guidance_scratch::slot_types::has<U>) v = &s.template get<U>(slot);
    if (v->size() < n) v->resize(n);
    return std::span<U>(v->data(), n);
}

/// B, D and the values per sample of `out` (D, or 2·D for a learned
/// variance) of a guidance call; checked once per call.
struct guidance_shape {
    std::size_t batch;
    std::size_t dim;
    std::size_t row; ///< out values per sample
};

inline guidance_shape check_guidance_call(std::string_view where, std::size_t x_size, std::size_t t_size,
                                          std::size_t out_size) {
    if (t_size == 0) throw_invalid(where, "t.size()", 0, ">= 1 (one timestep per sample)");
    if (x_size == 0 || x_size % t_size != 0)
        throw_invalid(where, "x_t.size()", x_size,
                      "a positive multiple of the batch B = " + std::to_string(t_size) + " (t.size())");
    if (out_size == 0 || out_size % x_size != 0)
        throw_invalid(where, "out.size()", out_size,
                      "a positive multiple of x_t.size() = " + std::to_string(x_size) +
                          " (D values per sample, or 2·D for a learned variance)");
    return {t_size, x_size / t_size, out_size / t_size};
}

/// out_b = u_b + w (c_b − u_b) on the first D values of each row, in double,
/// then guidance_rescale; the rest of the row (variance values) is c's. `c`
/// may alias `out` (each row of c is read before it is written).
template <class T>
void combine_guidance(std::span<const T> u, std::span<const T> c, std::span<T> out, const guidance_shape& sh,
                      double w, double phi) {
    for (std::size_t b = 0; b < sh.batch; ++b) {
        const T* ub = u.data() + b * sh.row;
        const T* cb = c.data() + b * sh.row;
        T* ob = out.data() + b * sh.row;
        // Per-sample standard deviation of the conditional half (torch's
        // unbiased std, as rescale_noise_cfg), taken before `out` is written.
        double std_c = 0;
        if (phi > 0) {
            double mean = 0;
            for (std::size_t i = 0; i < sh.dim; ++i) mean += static_cast<double>(cb[i]);
            mean /= static_cast<double>(sh.dim);
            double ss = 0;
            for (std::size_t i = 0; i < sh.dim; ++i) ss += (cb[i] - mean) * (cb[i] - mean);
            std_c = std::sqrt(ss / static_cast<double>(sh.dim - 1));
        }
        for (std::size_t i = 0; i < sh.row; ++i) {
            if (i < sh.dim) {
                const double uv = static_cast<double>(ub[i]);
                ob[i] = static_cast<T>(uv + w * (static_cast<double>(cb[i]) - uv));
            } else {
                ob[i] = cb[i];
            }
        }
        if (phi > 0) {
            double mean = 0;
            for (std::size_t i = 0; i < sh.dim; ++i) mean += static_cast<double>(ob[i]);
            mean /= static_cast<double>(sh.dim);
            double ss = 0;
            for (std::size_t i = 0; i < sh.dim; ++i) ss += (ob[i] - mean) * (ob[i] - mean);
            const double std_g = std::sqrt(ss / static_cast<double>(sh.dim - 1));
            // A guided output with no spread has nothing to rescale (diffusers would divide by 0).
            if (std_g > 0) {
                const double factor = phi * (std_c / std_g) + (1 - phi);
                for (std::size_t i = 0; i < sh.dim; ++i) ob[i] = static_cast<T>(static_cast<double>(ob[i]) * factor);
            }
        }
    }
}

inline void check_guidance_scale(std::string_view where, double scale) {
    if (!std::isfinite(scale)) throw_invalid(where, "scale", scale, "a finite number");
}

inline void check_rescale_dim(std::string_view where, const guidance_shape& sh, double phi) {
    if (phi > 0 && sh.dim < 2)
        throw_invalid(where, "D (values per sample)", sh.dim,
                      ">= 2 when guidance_rescale > 0 (it divides by a per-sample standard deviation)");
}

} // namespace detail

/// Classifier-free guidance over a conditional network.
///
/// The network is called as
///     net(std::span<const T> x_t, std::span<const Ts> t, std::span<const Cond> c, std::span<T> out)
/// — a denoiser with one condition per sample (a class label, an index into
/// the caller's prompt embeddings, a pointer to them, …). The adapter calls it
/// with the unconditional condition (a null label, an empty prompt) for the
/// unconditional half and with the caller's conditions for the conditional
/// half, and combines out = out_u + w (out_c − out_u) per element (in double,
/// rounded once). w = 0 is the unconditional model, w = 1 the conditional one
/// (both halves are still computed), w > 1 pushes further towards the condition.
///
/// `conditions` holds one condition per sample (B of them), or one that all
/// samples share. The adapter keeps its scratch buffers (2B inputs,
/// timesteps, conditions and outputs in joint mode; B outputs in separate
/// mode) between calls; it is not safe to call one adapter from two threads.
template <class Net, class Cond>
class classifier_free_guidance {
public:
    /// @throws ddpm::invalid_argument when scale is not finite, the options
    ///         are bad, or `conditions` is empty.
    classifier_free_guidance(Net net, std::vector<Cond> conditions, Cond unconditional, double scale,
                             cfg_options options = {})
        : m_net(std::move(net)), m_unconditional(std::move(unconditional)) {
        set_scale(scale);
        set_options(options);
        set_conditions(std::move(conditions));
    }

    /// @throws ddpm::invalid_argument when `conditions` is empty.
    void set_conditions(std::vector<Cond> conditions) {
        if (conditions.empty())
            detail::throw_invalid("ddpm::classifier_free_guidance", "conditions.size()", 0,
                                  ">= 1 (one per sample, or one for all samples)");
        m_conditions = std::move(conditions);
    }
    /// @throws ddpm::invalid_argument when scale is not finite.
    void set_scale(double scale) {
        detail::check_guidance_scale("ddpm::classifier_free_guidance", scale);
        m_scale = scale;
    }
    /// @throws ddpm::invalid_argument when guidance_rescale ∉ [0, 1].
    void set_options(const cfg_options& options) {
        options.validate("ddpm::classifier_free_guidance");
        m_options = options;
    }

    [[nodiscard]] double scale() const noexcept { return m_scale; }
    [[nodiscard]] const cfg_options& options() const noexcept { return m_options; }
    [[nodiscard]] const std::vector<Cond>& conditions() const noexcept { return m_conditions; }
    [[nodiscard]] const Cond& unconditional() const noexcept { return m_unconditional; }
    [[nodiscard]] Net& network() noexcept { return m_net; }
    [[nodiscard]] const Net& network() const noexcept { return m_net; }

    /// The denoiser call. Ts is whatever timestep type the sampler passes; it
    /// is forwarded to the network unchanged.
    /// @throws ddpm::invalid_argument on sizes that do not fit (before any
    ///         network call), or when the number of conditions is neither 1
    ///         nor B.
    template <std::floating_point T, class Ts>
    void operator()(std::span<const T> x, std::span<const Ts> t, std::span<T> out) {
        static_assert(std::invocable<Net&, std::span<const T>, std::span<const Ts>, std::span<const Cond>, std::span<T>>,
                      "ddpm::classifier_free_guidance: the network must be callable as net(std::span<const T> x_t, "
                      "std::span<const Ts> t, std::span<const Cond> conditions, std::span<T> out)");
        constexpr std::string_view where = "ddpm::classifier_free_guidance";
        const auto sh = detail::check_guidance_call(where, x.size(), t.size(), out.size());
        if (m_conditions.size() != 1 && m_conditions.size() != sh.batch)
            detail::throw_invalid(where, "conditions.size()", m_conditions.size(),
                                  "1 or the batch B = " + std::to_string(sh.batch));
        detail::check_rescale_dim(where, sh, m_options.guidance_rescale);
        const std::size_t B = sh.batch;
        std::vector<T> local_out, local_x;
        std::vector<Ts> local_t;
        if (m_options.batching == guidance_batching::joint) {
            auto x2 = detail::scratch_span(m_scratch, local_x, 0, 2 * x.size());
            auto t2 = detail::scratch_span(m_scratch, local_t, 2, 2 * B);
            auto o2 = detail::scratch_span(m_scratch, local_out, 1, 2 * out.size());
            std::copy(x.begin(), x.end(), x2.begin());
            std::copy(x.begin(), x.end(), x2.begin() + static_cast<std::ptrdiff_t>(x.size()));
            std::copy(t.begin(), t.end(), t2.begin());
            std::copy(t.begin(), t.end(), t2.begin() + static_cast<std::ptrdiff_t>(B));
            m_cond2.assign(B, m_unconditional);
            for (std::size_t b = 0; b < B; ++b) m_cond2.push_back(condition(b));
            static_cast<void>(m_net(std::span<const T>(x2), std::span<const Ts>(t2), std::span<const Cond>(m_cond2),
                                    o2));
            const std::span<const T> all(o2);
            detail::combine_guidance<T>(all.first(out.size()), all.subspan(out.size()), out, sh, m_scale,
                                        m_options.guidance_rescale);
        } else {
            auto ou = detail::scratch_span(m_scratch, local_out, 0, out.size());
            m_cond2.assign(B, m_unconditional);
            static_cast<void>(m_net(x, t, std::span<const Cond>(m_cond2), ou));
            if (m_conditions.size() == B) {
                static_cast<void>(m_net(x, t, std::span<const Cond>(m_conditions), out));
            } else {
                m_cond2.assign(B, m_conditions.front());
                static_cast<void>(m_net(x, t, std::span<const Cond>(m_cond2), out));
            }
            detail::combine_guidance<T>(std::span<const T>(ou), std::span<const T>(out), out, sh, m_scale,
                                        m_options.guidance_rescale);
        }
    }

private:
    [[nodiscard]] const Cond& condition(std::size_t b) const {
        return m_conditions.size() == 1 ? m_conditions.front() : m_conditions[b];
    }

    Net m_net;
    std::vector<Cond> m_conditions;
    Cond m_unconditional;
    double m_scale = 1;
    cfg_options m_options{};
    std::vector<Cond> m_cond2;
    detail::guidance_scratch m_scratch;
};

/// Classifier-free guidance over two plain denoisers: `unconditional` and
/// `conditional` (for example the same network with the condition captured),
/// each called once per step with the B samples; out = out_u + w (out_c − out_u)
/// as in classifier_free_guidance (cfg_options::batching is ignored: there
/// are always two calls).
template <class Uncond, class Cond>
class guidance_pair {
public:
    /// @throws ddpm::invalid_argument when scale is not finite or the options are bad.
    guidance_pair(Uncond unconditional, Cond conditional, double scale, cfg_options options = {})
        : m_uncond(std::move(unconditional)), m_cond(std::move(conditional)) {
        detail::check_guidance_scale("ddpm::guidance_pair", scale);
        options.validate("ddpm::guidance_pair");
        m_scale = scale;
        m_options = options;
    }

    [[nodiscard]] double scale() const noexcept { return m_scale; }
    [[nodiscard]] const cfg_options& options() const noexcept { return m_options; }

    /// @throws ddpm::invalid_argument on sizes that do not fit (before any network call).
    template <std::floating_point T, class Ts>
    void operator()(std::span<const T> x, std::span<const Ts> t, std::span<T> out) {
        static_assert(std::invocable<Uncond&, std::span<const T>, std::span<const Ts>, std::span<T>> &&
                          std::invocable<Cond&, std::span<const T>, std::span<const Ts>, std::span<T>>,
                      "ddpm::guidance_pair: both networks must be callable as d(std::span<const T> x_t, "
                      "std::span<const Ts> t, std::span<T> out)");
        constexpr std::string_view where = "ddpm::guidance_pair";
        const auto sh = detail::check_guidance_call(where, x.size(), t.size(), out.size());
        detail::check_rescale_dim(where, sh, m_options.guidance_rescale);
        std::vector<T> local;
        auto ou = detail::scratch_span(m_scratch, local, 0, out.size());
        static_cast<void>(m_uncond(x, t, ou));
        static_cast<void>(m_cond(x, t, out));
        detail::combine_guidance<T>(std::span<const T>(ou), std::span<const T>(out), out, sh, m_scale,
                                    m_options.guidance_rescale);
    }

private:
    Uncond m_uncond;
    Cond m_cond;
    double m_scale = 1;
    cfg_options m_options{};
    detail::guidance_scratch m_scratch;
};

/// Classifier guidance (Dhariwal & Nichol 2021, Algorithm 2; guided-diffusion's
/// `condition_score`): with the caller's gradient g = ∇_x log p(y | x_t) of a
/// classifier (noise-aware, trained on x_t), the guided score is
/// ∇ log p(x_t) + s g, that is
///     ε̂' = ε̂ − s √(1 − ᾱ_t) g,
/// and for the other parameterisations the same shift mapped through them:
///     x̂_0' = x̂_0 + s (1 − ᾱ_t)/√ᾱ_t · g,   v̂' = v̂ − s √(1 − ᾱ_t)/√ᾱ_t · g.
///
/// `gradient` is called as grad(std::span<const T> x_t, std::span<const
/// timestep_t> t, std::span<T> g) and writes B·D values; it holds the labels y
/// itself. ᾱ_t comes from `schedule`, the schedule the network was trained
/// with (a respaced chain still passes the original index, so this is right
/// for respaced chains too). Integer timesteps only: ᾱ at a real-valued
/// timestep is not a table entry. This is the score form, which fits DDIM and
/// every sampler; guided-diffusion's `condition_mean` (shifting the DDPM mean
/// by s σ_t² g) is not provided yet — the score form is what its DDIM sampler
/// uses, and for DDPM it differs from condition_mean only through x̂_0 clipping
/// and the variance choice.
template <class Net, class Grad>
class classifier_guidance {
public:
    /// @throws ddpm::invalid_argument when scale is not finite.
    classifier_guidance(Net net, Grad gradient, const noise_schedule& schedule, double scale,
                        prediction_type prediction = prediction_type::epsilon)
        : m_net(std::move(net)), m_grad(std::move(gradient)), m_alphas_cumprod(schedule.f64().alphas_cumprod),
          m_prediction(prediction) {
        detail::check_guidance_scale("ddpm::classifier_guidance", scale);
        m_scale = scale;
    }

    [[nodiscard]] double scale() const noexcept { return m_scale; }
    [[nodiscard]] Net& network() noexcept { return m_net; }

    /// @throws ddpm::invalid_argument on sizes that do not fit or a timestep
    ///         outside [0, T) (before any call).
    template <std::floating_point T>
    void operator()(std::span<const T> x, std::span<const timestep_t> t, std::span<T> out) {
        static_assert(std::invocable<Net&, std::span<const T>, std::span<const timestep_t>, std::span<T>> &&
                          std::invocable<Grad&, std::span<const T>, std::span<const timestep_t>, std::span<T>>,
                      "ddpm::classifier_guidance: the network and the gradient must be callable as "
                      "f(std::span<const T> x_t, std::span<const ddpm::timestep_t> t, std::span<T> out)");
        constexpr std::string_view where = "ddpm::classifier_guidance";
        const auto sh = detail::check_guidance_call(where, x.size(), t.size(), out.size());
        detail::check_timesteps(where, t, static_cast<std::int64_t>(m_alphas_cumprod.size()));
        std::vector<T> local;
        auto g = detail::scratch_span(m_scratch, local, 0, x.size());
        static_cast<void>(m_net(x, t, out));
        static_cast<void>(m_grad(x, t, g));
        for (std::size_t b = 0; b < sh.batch; ++b) {
            const double ab = m_alphas_cumprod[static_cast<std::size_t>(t[b])];
            double k = -m_scale * std::sqrt(1 - ab); // ε shift per unit of g
            if (m_prediction == prediction_type::sample) k = m_scale * (1 - ab) / std::sqrt(ab);
            else if (m_prediction == prediction_type::v_prediction) k /= std::sqrt(ab);
            T* ob = out.data() + b * sh.row;
            const T* gb = g.data() + b * sh.dim;
            for (std::size_t i = 0; i < sh.dim; ++i)
                ob[i] = static_cast<T>(static_cast<double>(ob[i]) + k * static_cast<double>(gb[i]));
        }
    }

private:
    Net m_net;
    Grad m_grad;
    std::vector<double> m_alphas_cumprod;
    prediction_type m_prediction;
    double m_scale = 1;
    detail::guidance_scratch m_scratch;
};

} // namespace ddpm
