// ddpm/samplers/multistep.hpp — what the multistep solvers in λ form
// (DPM-Solver / DPM-Solver++, samplers/dpm_solver.hpp; UniPC,
// samplers/unipc.hpp) share:
//
//  * diffusers' set_timesteps rules of DPMSolverMultistepScheduler and
//    UniPCMultistepScheduler (integer timesteps, σ table, Karras / exponential
//    / Lu-λ schedules, the final sigma), in the precision diffusers uses, on
//    the σ vocabulary of samplers/sigmas.hpp;
//  * σ → (α_t, σ_t, λ_t) with λ = log α_t − log σ_t, where α_t = 1/√(σ² + 1),
//    σ_t = σ α_t (the VP quantities of the VE sigma σ = √((1 − ᾱ)/ᾱ));
//  * the small linear solve of UniPC, as torch.linalg.solve does it;
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

#include "ddpm/buffer.hpp"
#include "ddpm/config.hpp"
#include "ddpm/core/p_mean_variance.hpp"
#include "ddpm/core/types.hpp"
#include "ddpm/error.hpp"
#include "ddpm/kernels/combine.hpp"
#include "ddpm/kernels/fused.hpp"
#include "ddpm/parallel.hpp"
#include "ddpm/samplers/sigmas.hpp"
#include "ddpm/samplers/timesteps.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ddpm {

namespace detail {

/// expm1 in C, correctly rounded for float (evaluated in double and rounded,
/// like sigmas::exp_of).
template <class C>
[[nodiscard]] inline C expm1_of(C x) noexcept {
    if constexpr (std::is_same_v<C, float>) return static_cast<float>(std::expm1(static_cast<double>(x)));
    else return std::expm1(x);
}

/// α_t, σ_t (sigmas::to_alpha_sigma) and λ_t = log α_t − log σ_t (+∞ at σ = 0) of a VE σ.
template <class C>
struct vp_point {
    C alpha = 1, sigma = 0, lambda = 0;
};
template <class C>
[[nodiscard]] inline vp_point<C> vp_of_sigma(C s) noexcept {
    const auto p = sigmas::to_alpha_sigma(s);
    return {p.alpha, p.sigma, sigmas::log_of(p.alpha) - sigmas::log_of(p.sigma)};
}

/// kernels::output_coefficients applied to one element (the form chosen at
/// run time): identity o; (x − b·o)/c; a·x − b·o; a·o + b·x.
template <class T>
[[nodiscard]] DDPM_FORCEINLINE T convert_one(const kernels::output_coefficients<T>& c, T o, T x) noexcept {
    using kernels::output_form;
    switch (c.form) {
    case output_form::identity: return o;
    case output_form::x_minus_bo_c: return kernels::detail::convert_element<output_form::x_minus_bo_c>(o, x, c.a, c.b, c.c);
    case output_form::ax_minus_bo: return kernels::detail::convert_element<output_form::ax_minus_bo>(o, x, c.a, c.b, c.c);
    case output_form::ao_plus_bx: return kernels::detail::convert_element<output_form::ao_plus_bx>(o, x, c.a, c.b, c.c);
    }
    return o;
}

/// diffusers' convert_model_output: x̂_0 (to_x0) or ε̂ from a network that
/// predicts `pred`, at the point (α, σ), in diffusers' order.
template <class T, class C>
[[nodiscard]] kernels::output_coefficients<T> make_convert(prediction_type pred, bool to_x0, C alpha, C sigma) noexcept {
    using kernels::output_form;
    const T a = static_cast<T>(alpha), s = static_cast<T>(sigma);
    if (to_x0) {
        switch (pred) {
        case prediction_type::epsilon: return {output_form::x_minus_bo_c, 0, s, a};  // (x − σ ε̂)/α
        case prediction_type::sample: return {output_form::identity, 0, 0, 1};       // x̂_0
        case prediction_type::v_prediction: return {output_form::ax_minus_bo, a, s, 1}; // α x − σ v̂
        }
    } else {
        switch (pred) {
        case prediction_type::epsilon: return {output_form::identity, 0, 0, 1};      // ε̂
        case prediction_type::sample: return {output_form::x_minus_bo_c, 0, a, s};   // (x − α x̂_0)/σ
        case prediction_type::v_prediction: return {output_form::ao_plus_bx, a, s, 1}; // α v̂ + σ x
        }
    }
    return {};
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

/// The sigmas and integer timesteps of a multistep solver after
/// set_timesteps(N), as diffusers keeps them (σ values are those of C,
/// widened; the last entry is the final sigma).
struct multistep_schedule {
    std::vector<timestep_t> timesteps;
    std::vector<double> sigmas; ///< N + 1 entries
};

/// Shared set_timesteps of DPM-Solver and UniPC, in C (float for diffusers as
/// shipped). Karras / exponential / Lu λ ignore the spacing and run from σ(T−1)
/// to σ(0) with rounded timesteps. `unipc_final`: UniPC's sigma_min for those
/// schedules is their last σ (DPM-Solver's is σ(0)).
template <class C>
[[nodiscard]] multistep_schedule make_multistep_schedule(std::string_view where, const noise_schedule& s,
                                                         std::int64_t N, timestep_spacing spacing,
                                                         std::int64_t steps_offset, sigma_schedule placement,
                                                         bool lu_lambdas, final_sigmas_type final, bool unipc_final) {
    const std::int64_t T = s.size();
    multistep_schedule out;
    // The Karras-type schedules ignore the spacing, but diffusers still
    // computes (and validates) it first.
    out.timesteps = multistep_timesteps(where, T, N, spacing, steps_offset);
    const std::vector<C> train = sigmas::training_sigmas<C>(s);
    const double sigma0 = static_cast<double>(train.front());
    if (placement == sigma_schedule::discrete && !lu_lambdas) {
        out.sigmas.reserve(out.timesteps.size() + 1);
        for (const auto t : out.timesteps) out.sigmas.push_back(static_cast<double>(train[static_cast<std::size_t>(t)]));
        out.sigmas.push_back(final == final_sigmas_type::zero ? 0.0 : sigma0);
        return out;
    }
    const std::vector<C> logs = sigmas::log_sigmas<C>(std::span<const C>(train));
    const double sigma_max = static_cast<double>(train.back());
    const auto n = static_cast<std::size_t>(N);
    std::vector<double> sig;
    if (lu_lambdas) { // Lu et al. (2022): log σ uniform (diffusers' _convert_to_lu, ρ = 1)
        const double lmin = static_cast<double>(logs.front()), lmax = static_cast<double>(logs.back());
        sig = sigmas::linspace(0.0, 1.0, n);
        for (double& v : sig) v = std::exp(lmax + v * (lmin - lmax));
    } else if (placement == sigma_schedule::karras) {
        sig = sigmas::karras_sigmas(sigma0, sigma_max, n);
    } else {
        sig = sigmas::exponential_sigmas(sigma0, sigma_max, n);
    }
    out.timesteps.resize(n);
    out.sigmas.resize(n + 1);
    for (std::size_t i = 0; i < n; ++i) {
        out.timesteps[i] = static_cast<timestep_t>(std::nearbyint(sigmas::sigma_to_t<C>(sig[i], logs)));
        out.sigmas[i] = static_cast<double>(static_cast<C>(sig[i]));
    }
    double last = 0.0;
    if (final == final_sigmas_type::sigma_min) last = unipc_final ? sig[n - 1] : sigma0;
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

/// The checks and bookkeeping at the start of a stateful step() (DPM-Solver,
/// UniPC): sizes (and the noise, for an SDE), the position of t (the first call after set_timesteps) or
/// the next one, and the history sized on the first call. Throws before
/// anything is written. Returns the shape and the position.
template <class T>
std::pair<batch_shape, std::size_t> begin_multistep_step(std::string_view where, std::span<const timestep_t> timesteps,
                                                         multistep_state<T>& st, std::size_t slots, bool with_last,
                                                         variance_type variance, std::size_t batch, timestep_t t,
                                                         std::size_t out_size, std::size_t x_size, std::size_t prev_size,
                                                         bool needs_noise = false, std::size_t noise_size = 0) {
    if (timesteps.empty()) throw_invalid(where, "num_inference_steps", 0, "a call to set_timesteps before stepping");
    if (batch == 0) throw_invalid(where, "batch", 0, ">= 1");
    const batch_shape shape = shape_from(where, batch, "sample", x_size);
    check_model_output(where, variance, out_size, shape);
    check_size(where, "prev_sample", prev_size, shape.elements());
    if (needs_noise) check_size(where, "noise", noise_size, shape.elements(), "elements (B x D) for the SDE");
    const std::size_t i = st.started ? st.step_index : multistep_index_for(where, timesteps, t);
    if (i >= timesteps.size())
        throw_invalid(where, "step", i,
                      "< " + std::to_string(timesteps.size()) + " (every timestep was stepped; call set_timesteps again)");
    if (st.started && st.elements != shape.elements())
        throw_invalid(where, "sample.size()", x_size, std::to_string(st.elements) + " (the size of the run's first step)");
    if (!st.started) {
        st.resize(slots, shape.elements(), shape.dim, with_last);
        st.started = true;
    }
    return {shape, i};
}

/// Runs f(row, first, count, z) over a B × D batch in the fused kernels'
/// chunks, on the threads `exec` allows; z points at the chunk's noise (a
/// counter stream drawn at (sample b, the stream's step, element), or the
/// caller's buffer) when `noisy`, else is null.
template <class T, class F>
void for_each_noise_chunk(std::size_t batch, std::size_t dim, const kernels::step_noise<T>& noise, bool noisy,
                          const execution& exec, F&& f) {
    kernels::detail::for_each_chunk(batch, dim, exec, [&](std::size_t row, std::size_t first, std::size_t count) {
        alignas(64) T z[kernels::detail::chunk_elements];
        f(row, first, count,
          kernels::detail::chunk_noise<T>(noise, noisy, row, dim, first, count, z, kernels::best_backend));
    });
}

} // namespace detail
} // namespace ddpm
