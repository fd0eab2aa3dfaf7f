// ddpm/samplers/multistep.hpp — what the multistep solvers in λ form
// (DPM-Solver / DPM-Solver++, samplers/dpm_solver.hpp; UniPC,
// samplers/unipc.hpp) share:
//
//  * the options vocabulary (final sigma, sigma schedule);
//  * diffusers' set_timesteps rules of DPMSolverMultistepScheduler and
//    UniPCMultistepScheduler (integer timesteps, σ table, Karras / exponential
//    / Lu-λ schedules, the final sigma), in the precision diffusers uses;
//  * σ → (α_t, σ_t, λ_t) with λ = log α_t − log σ_t, where α_t = 1/√(σ² + 1),
//    σ_t = σ α_t (the VP quantities of the VE sigma σ = √((1 − ᾱ)/ᾱ));
//  * the per-run state (the history of converted model outputs), sized once
//    before a run, so nothing allocates in the loop;
//  * the chunked element loop the updates run on (threads, counter noise).
//
// ## Precision
//
// In the diffusers profile every scalar (σ, α, λ, h, exp, the coefficients)
// is formed in T in diffusers' order of operations, with log / exp / expm1
// correctly rounded (evaluated in double and rounded once, as glibc's logf /
// expf do), x² as x·x and ^0.5 as sqrt; float runs then reproduce
// diffusers' float32 arithmetic bit for bit (tests/samplers/
// test_solver_parity_multistep.cpp). Other profiles form the scalars in
// double and round each coefficient once. The element-wise updates are
// written without fused multiply-adds in mind: compile with
// -ffp-contract=off for bit parity on FMA targets.
#pragma once

#include "ddpm/config.hpp"
#include "ddpm/core/types.hpp"
#include "ddpm/error.hpp"
#include "ddpm/kernels/fused.hpp"
#include "ddpm/parallel.hpp"
#include "ddpm/samplers/timesteps.hpp"
#include "ddpm/schedule/beta_schedule.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ddpm {

/// The σ after the last step (diffusers' `final_sigmas_type`).
enum class final_sigmas {
    zero,      ///< σ = 0: the last step lands on the data (x̂_0)
    sigma_min, ///< σ of timestep 0 (UniPC with Karras: the last Karras σ)
};

/// How the N sigmas of a multistep solver are placed.
enum class sigma_spacing {
    discrete,    ///< σ of the integer timesteps chosen by timestep_spacing
    karras,      ///< Karras et al. (2022), ρ = 7, from σ(T−1) to σ(0); timesteps rounded
    exponential, ///< log σ uniform from σ(T−1) to σ(0); timesteps rounded
    lu_lambdas,  ///< DPM-Solver only: log σ uniform (diffusers' use_lu_lambdas); timesteps rounded
};

[[nodiscard]] constexpr std::string_view to_string(final_sigmas f) noexcept {
    return f == final_sigmas::zero ? "zero" : "sigma_min";
}
[[nodiscard]] constexpr std::string_view to_string(sigma_spacing s) noexcept {
    switch (s) {
    case sigma_spacing::discrete: return "discrete";
    case sigma_spacing::karras: return "karras";
    case sigma_spacing::exponential: return "exponential";
    case sigma_spacing::lu_lambdas: return "lu_lambdas";
    }
    return "?";
}

namespace detail {

// ----- correctly rounded elementary functions in T --------------------------

template <class C>
[[nodiscard]] inline C cr_log(C x) noexcept {
    return static_cast<C>(std::log(static_cast<double>(x)));
}
template <class C>
[[nodiscard]] inline C cr_exp(C x) noexcept {
    return static_cast<C>(std::exp(static_cast<double>(x)));
}
template <class C>
[[nodiscard]] inline C cr_expm1(C x) noexcept {
    return static_cast<C>(std::expm1(static_cast<double>(x)));
}

/// α_t, σ_t and λ_t of a VE sigma, in diffusers' order:
/// α = 1/√(σ·σ + 1), σ_t = σ·α, λ = log α − log σ_t (+∞ at σ = 0).
template <class C>
struct vp_point {
    C alpha = 1, sigma = 0, lambda = 0;
};
template <class C>
[[nodiscard]] inline vp_point<C> vp_of_sigma(C s) noexcept {
    vp_point<C> p;
    p.alpha = C(1) / std::sqrt(s * s + C(1));
    p.sigma = s * p.alpha;
    p.lambda = cr_log(p.alpha) - cr_log(p.sigma);
    return p;
}

/// How a model output m becomes what a solver integrates (x̂_0 or ε̂), with
/// the α_s, σ_s of the current point, in diffusers' order:
///   identity m;  divide (x − b·m)/a;  multiply a·x − b·m;  vform a·m + b·x.
enum class convert_form { identity, divide, multiply, vform };

template <class T>
struct convert_coefficients {
    convert_form form = convert_form::identity;
    T a = 1, b = 0;

    [[nodiscard]] DDPM_FORCEINLINE T apply(T m, T x) const noexcept {
        switch (form) {
        case convert_form::identity: return m;
        case convert_form::divide: return (x - b * m) / a;
        case convert_form::multiply: return a * x - b * m;
        case convert_form::vform: return a * m + b * x;
        }
        return m;
    }
};

/// diffusers' convert_model_output: x̂_0 (to_x0) or ε̂ from a network that
/// predicts `pred`, at the point (α, σ).
template <class T, class C>
[[nodiscard]] convert_coefficients<T> make_convert(prediction_type pred, bool to_x0, C alpha, C sigma) noexcept {
    convert_coefficients<T> c;
    const T a = static_cast<T>(alpha), s = static_cast<T>(sigma);
    if (to_x0) {
        switch (pred) {
        case prediction_type::epsilon: c = {convert_form::divide, a, s}; break;      // (x − σ ε̂)/α
        case prediction_type::sample: c = {convert_form::identity, 1, 0}; break;     // x̂_0
        case prediction_type::v_prediction: c = {convert_form::multiply, a, s}; break; // α x − σ v̂
        }
    } else {
        switch (pred) {
        case prediction_type::epsilon: c = {convert_form::identity, 1, 0}; break;   // ε̂
        case prediction_type::sample: c = {convert_form::divide, s, a}; break;      // (x − α x̂_0)/σ
        case prediction_type::v_prediction: c = {convert_form::vform, a, s}; break; // α v̂ + σ x
        }
    }
    return c;
}

/// Solves R·x = b (n ≤ 3) as torch.linalg.solve does on the CPU: LAPACK sees
/// the row-major R as column-major Rᵀ, factors it (getrf: partial pivoting,
/// first largest |pivot|, multipliers scaled by the reciprocal of the pivot)
/// and solves the transposed system (getrs 'T': Uᵀ, then unit Lᵀ, then the
/// row interchanges in reverse). Plain arithmetic, no fused multiply-add.
template <class C, std::size_t N>
[[nodiscard]] std::array<C, N> solve_like_torch(std::array<std::array<C, N>, N> r, std::array<C, N> b) noexcept {
    // m = Rᵀ
    std::array<std::array<C, N>, N> m{};
    for (std::size_t i = 0; i < N; ++i)
        for (std::size_t j = 0; j < N; ++j) m[i][j] = r[j][i];
    std::array<std::size_t, N> piv{};
    for (std::size_t k = 0; k < N; ++k) {
        std::size_t p = k;
        for (std::size_t i = k + 1; i < N; ++i)
            if (std::abs(m[i][k]) > std::abs(m[p][k])) p = i;
        piv[k] = p;
        if (p != k) std::swap(m[p], m[k]);
        if (m[k][k] != C(0)) {
            const C inv = C(1) / m[k][k];
            for (std::size_t i = k + 1; i < N; ++i) m[i][k] = m[i][k] * inv;
        }
        for (std::size_t i = k + 1; i < N; ++i)
            for (std::size_t j = k + 1; j < N; ++j) m[i][j] = m[i][j] - m[i][k] * m[k][j];
    }
    // Uᵀ y = b (forward), U upper of m.
    std::array<C, N> x = b;
    for (std::size_t i = 0; i < N; ++i) {
        C v = x[i];
        for (std::size_t k = 0; k < i; ++k) v = v - m[k][i] * x[k];
        x[i] = v / m[i][i];
    }
    // Lᵀ z = y (backward, unit diagonal), L strictly lower of m.
    for (std::size_t ii = N; ii-- > 0;) {
        C v = x[ii];
        for (std::size_t k = ii + 1; k < N; ++k) v = v - m[k][ii] * x[k];
        x[ii] = v;
    }
    for (std::size_t kk = N; kk-- > 0;)
        if (piv[kk] != kk) std::swap(x[kk], x[piv[kk]]);
    return x;
}

// ----- set_timesteps ---------------------------------------------------------

/// The integer timesteps of DPMSolverMultistepScheduler / UniPCMultistepScheduler
/// (without Karras-type sigmas): linspace rounds linspace(0, T−1, N+1) and
/// drops the last entry; leading uses the ratio T // (N+1) (+ steps_offset);
/// trailing is round(arange(T, 0, −T/N)) − 1.
[[nodiscard]] inline std::vector<timestep_t> multistep_timesteps(std::string_view where, std::int64_t T,
                                                                 std::int64_t N, timestep_spacing spacing,
                                                                 std::int64_t steps_offset) {
    if (N < 1)
        throw_invalid(where, "num_inference_steps", N,
                      ">= 1 (diffusers returns no timesteps for 0, or divides by zero)");
    if (N > T)
        throw_invalid(where, "num_inference_steps", N,
                      "<= num_train_timesteps = " + std::to_string(T) +
                          " (more steps than training timesteps only repeats timesteps)");
    std::vector<timestep_t> ts(static_cast<std::size_t>(N));
    switch (spacing) {
    case timestep_spacing::linspace: {
        // np.linspace(0, T − 1, N + 1): i·step, the last forced to T − 1.
        const double stop = static_cast<double>(T - 1);
        const double step = stop / static_cast<double>(N);
        for (std::int64_t k = 0; k < N; ++k) {
            const std::int64_t i = N - k; // reversed, the entry i = 0 dropped
            const double y = i == N ? stop : static_cast<double>(i) * step + 0.0;
            ts[static_cast<std::size_t>(k)] = static_cast<timestep_t>(std::nearbyint(y));
        }
        break;
    }
    case timestep_spacing::leading: {
        const std::int64_t ratio = T / (N + 1);
        for (std::int64_t k = 0; k < N; ++k) ts[static_cast<std::size_t>(k)] = (N - k) * ratio + steps_offset;
        break;
    }
    case timestep_spacing::trailing: {
        const double ratio = static_cast<double>(T) / static_cast<double>(N);
        // np.arange(T, 0, −ratio): ceil(T / ratio) entries T − i·ratio.
        const auto count = static_cast<std::size_t>(std::ceil((0.0 - static_cast<double>(T)) / -ratio));
        ts.resize(count);
        for (std::size_t i = 0; i < count; ++i)
            ts[i] = static_cast<timestep_t>(std::nearbyint(static_cast<double>(T) + static_cast<double>(i) * -ratio)) - 1;
        break;
    }
    }
    for (const auto t : ts)
        if (t < 0 || t >= T)
            throw_invalid(where, "steps_offset", steps_offset,
                          "small enough to keep every timestep below num_train_timesteps = " + std::to_string(T));
    return ts;
}

/// σ(t) = √((1 − ᾱ_t)/ᾱ_t) for every training timestep, formed in C from the
/// C tables (diffusers: ((1 − ᾱ)/ᾱ) ** 0.5 on float32 tensors), widened.
template <class C>
[[nodiscard]] std::vector<double> train_sigmas(const noise_schedule& s) {
    const auto& acp = s.tables<C>().alphas_cumprod;
    std::vector<double> out(acp.size());
    for (std::size_t i = 0; i < acp.size(); ++i) out[i] = static_cast<double>(std::sqrt((C(1) - acp[i]) / acp[i]));
    return out;
}

/// diffusers' _sigma_to_t: the fractional timestep whose log σ (linear
/// interpolation of the C-precision log σ table) equals log σ.
[[nodiscard]] inline double sigma_to_t(double sigma, std::span<const double> log_sigmas) noexcept {
    const double ls = std::log(std::max(sigma, 1e-10));
    const std::size_t n = log_sigmas.size();
    std::size_t low = 0;
    for (std::size_t j = 0; j < n; ++j)
        if (ls - log_sigmas[j] >= 0) low = j; // last j with dists >= 0 (cumsum argmax)
    low = std::min(low, n - 2);
    const double lo = log_sigmas[low], hi = log_sigmas[low + 1];
    double w = (lo - ls) / (lo - hi);
    w = std::clamp(w, 0.0, 1.0);
    return (1.0 - w) * static_cast<double>(low) + w * static_cast<double>(low + 1);
}

/// The sigmas and integer timesteps of a multistep solver after
/// set_timesteps(N), as diffusers keeps them (σ values are those of C,
/// widened; the last entry is the final sigma).
struct multistep_schedule {
    std::vector<timestep_t> timesteps;
    std::vector<double> sigmas; ///< N + 1 entries
};

/// Shared set_timesteps of DPM-Solver and UniPC. `unipc_final` selects UniPC's
/// final sigma for non-discrete schedules (the last schedule σ instead of σ(0)).
template <class C>
[[nodiscard]] multistep_schedule make_multistep_schedule(std::string_view where, const noise_schedule& s,
                                                         std::int64_t N, timestep_spacing spacing,
                                                         std::int64_t steps_offset, sigma_spacing placement,
                                                         final_sigmas final, bool unipc_final) {
    const std::int64_t T = s.size();
    multistep_schedule out;
    // Karras-type schedules ignore the spacing, but diffusers still computes
    // (and validates) it first.
    out.timesteps = multistep_timesteps(where, T, N, spacing, steps_offset);
    const std::vector<double> train = train_sigmas<C>(s);
    const double sigma0 = train.front();
    if (placement == sigma_spacing::discrete) {
        out.sigmas.reserve(out.timesteps.size() + 1);
        for (const auto t : out.timesteps) out.sigmas.push_back(train[static_cast<std::size_t>(t)]);
        out.sigmas.push_back(final == final_sigmas::zero ? 0.0 : sigma0);
        return out;
    }
    std::vector<double> log_sigmas(train.size());
    for (std::size_t i = 0; i < train.size(); ++i) log_sigmas[i] = static_cast<double>(cr_log(static_cast<C>(train[i])));
    const double sigma_min = sigma0, sigma_max = train.back();
    const auto n = static_cast<std::size_t>(N);
    std::vector<double> sig(n);
    const std::vector<double> ramp = linspace_f64(0.0, 1.0, N);
    switch (placement) {
    case sigma_spacing::karras: { // Karras et al. (2022), eq. (5), ρ = 7
        constexpr double rho = 7.0;
        const double min_inv = std::pow(sigma_min, 1.0 / rho), max_inv = std::pow(sigma_max, 1.0 / rho);
        for (std::size_t i = 0; i < n; ++i) sig[i] = std::pow(max_inv + ramp[i] * (min_inv - max_inv), rho);
        break;
    }
    case sigma_spacing::exponential: {
        const std::vector<double> l = linspace_f64(std::log(sigma_max), std::log(sigma_min), N);
        for (std::size_t i = 0; i < n; ++i) sig[i] = std::exp(l[i]);
        break;
    }
    case sigma_spacing::lu_lambdas: { // Lu et al. (2022): log σ uniform (diffusers' ρ = 1)
        const double lmin = log_sigmas.front(), lmax = log_sigmas.back();
        for (std::size_t i = 0; i < n; ++i) sig[i] = std::exp(lmax + ramp[i] * (lmin - lmax));
        break;
    }
    case sigma_spacing::discrete: break;
    }
    out.timesteps.resize(n);
    out.sigmas.resize(n + 1);
    for (std::size_t i = 0; i < n; ++i) {
        out.timesteps[i] = static_cast<timestep_t>(std::nearbyint(sigma_to_t(sig[i], log_sigmas)));
        out.sigmas[i] = static_cast<double>(static_cast<C>(sig[i]));
    }
    double last = 0.0;
    if (final == final_sigmas::sigma_min) last = unipc_final ? sig[n - 1] : sigma0;
    out.sigmas[n] = static_cast<double>(static_cast<C>(last));
    return out;
}

/// diffusers' index_for_timestep: the position of t in the timesteps (the
/// second one when t occurs more than once, as after img2img truncation).
/// @throws ddpm::invalid_argument when t is not among them (diffusers would
///         silently take the last position).
[[nodiscard]] inline std::size_t multistep_index_for(std::string_view where, std::span<const timestep_t> ts,
                                                     timestep_t t) {
    std::size_t found = ts.size(), count = 0;
    for (std::size_t i = 0; i < ts.size(); ++i) {
        if (ts[i] != t) continue;
        ++count;
        if (count == 1 || count == 2) found = i;
        if (count == 2) break;
    }
    if (count == 0)
        throw_invalid(where, "timestep", t,
                      "one of the scheduler's timesteps() (" + std::to_string(ts.size()) + " entries from " +
                          (ts.empty() ? std::string("-") : std::to_string(ts.front())) + " down to " +
                          (ts.empty() ? std::string("-") : std::to_string(ts.back())) + ")");
    return found;
}

/// The history of a multistep run: the last `order` converted model outputs
/// (B·D each, a ring), the sample the last predictor started from (UniPC's
/// corrector) and the counters diffusers keeps. Sized once, before the loop.
template <class T>
struct multistep_state {
    std::vector<T> ring;        ///< order × B·D
    std::vector<T> last_sample; ///< B·D (UniPC)
    std::vector<T> threshold;   ///< 2·D: dynamic thresholding work area
    std::size_t slots = 0, elements = 0, newest = 0;
    std::size_t lower_order_nums = 0;
    std::size_t step_index = 0;
    bool started = false;
    int this_order = 0; ///< UniPC: the last predictor's order

    void resize(std::size_t order, std::size_t n, std::size_t dim, bool with_last) {
        slots = order;
        elements = n;
        ring.assign(order * n, T(0));
        last_sample.assign(with_last ? n : 0, T(0));
        threshold.assign(2 * dim, T(0));
        reset();
    }
    void reset() noexcept {
        newest = 0;
        lower_order_nums = 0;
        step_index = 0;
        started = false;
        this_order = 0;
    }
    /// The k-th most recent converted output (0 = newest).
    [[nodiscard]] T* recent(std::size_t k) noexcept {
        return ring.data() + ((newest + slots - k % slots) % slots) * elements;
    }
    [[nodiscard]] const T* recent(std::size_t k) const noexcept {
        return ring.data() + ((newest + slots - k % slots) % slots) * elements;
    }
    /// Rotates the ring: the slot of the oldest output becomes the newest.
    T* push() noexcept {
        newest = (newest + 1) % slots;
        return recent(0);
    }
};

/// Runs f(row, first, count, z) over a B × D batch in chunks on the threads
/// `exec` allows; z points at the chunk's noise (drawn from a counter stream
/// at (sample b, the stream's step, element), or read from the buffer), or is
/// null without noise.
template <class T, class F>
void for_each_noise_chunk(std::size_t batch, std::size_t dim, const kernels::step_noise<T>& noise,
                          const execution& exec, F&& f) {
    kernels::detail::for_each_chunk(batch, dim, exec, [&](std::size_t row, std::size_t first, std::size_t count) {
        alignas(64) T z[kernels::detail::chunk_elements];
        const T* zp = nullptr;
        if (noise.source == kernels::step_noise<T>::kind::stream) {
            kernels::detail::draw<T>(noise.stream, row, first, count, z, kernels::best_backend);
            zp = z;
        } else if (noise.source == kernels::step_noise<T>::kind::buffer) {
            zp = noise.buffer.data() + row * dim + first;
        }
        f(row, first, count, zp);
    });
}

} // namespace detail
} // namespace ddpm
