// ddpm/cuda/host_records.hpp — the host side of the GPU kernels
// (kernels/grid_threads.hpp, ddpm/cuda/*.cuh): the forward process's
// coefficient tables, and the step records (coefficients, noise rule, noise
// step) of DDPM and DDIM chains, taken from the CPU schedulers
// (samplers/ddpm.hpp, samplers/ddim.hpp: the single definitions of a chain's
// coefficients and noise rule). Plain C++, so that the host tests build the
// very tables and records the CUDA code uploads.
//
// Noise step numbering: the record of chain position p draws its z from
// counter step p + 1; x_T uses step 0 — the numbering of the CPU samplers'
// noise sources (samplers/noise.hpp, `fill(out, step)`).
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/core/clipping.hpp"
#include "ddpm/core/forward.hpp"
#include "ddpm/core/p_mean_variance.hpp"
#include "ddpm/core/types.hpp"
#include "ddpm/error.hpp"
#include "ddpm/kernels/grid_threads.hpp"
#include "ddpm/kernels/scalar.hpp"
#include "ddpm/samplers/ddim.hpp"
#include "ddpm/samplers/ddpm.hpp"
#include "ddpm/schedule/noise_schedule.hpp"
#include "ddpm/schedule/profile.hpp"

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ddpm::kernels::grid {

/// The forward process's per-timestep coefficients as ddpm::q_sample forms
/// them in precision C (core/forward.hpp): x_t = a[t]·x_0 + b[t]·ε with the
/// √ᾱ tables, or — in the diffusers profile — √ᾱ and √(1 − ᾱ) computed in C
/// from ᾱ, as torch does.
template <class C>
struct forward_tables {
    std::vector<C> a;
    std::vector<C> b;
};

template <class C>
[[nodiscard]] forward_tables<C> make_forward_tables(const noise_schedule& s) {
    std::vector<timestep_t> all(static_cast<std::size_t>(s.size()));
    for (std::size_t t = 0; t < all.size(); ++t) all[t] = static_cast<timestep_t>(t);
    forward_tables<C> f;
    ddpm::detail::forward_coefficients<C>(s, all, f.a, f.b); // the one rule (core/forward.hpp)
    return f;
}

/// The σ rule of a DDPM step for a variance type under a profile (as the CPU
/// sampler: "learned" channels are σ² in diffusers, log σ² elsewhere).
[[nodiscard]] constexpr sigma_mode sigma_mode_of(variance_type v, ddpm::profile p) noexcept {
    switch (v) {
    case variance_type::learned_range: return sigma_mode::learned_range;
    case variance_type::learned:
        return p == ddpm::profile::diffusers ? sigma_mode::learned_variance : sigma_mode::learned_log;
    default: return sigma_mode::fixed;
    }
}

/// The position of t in a chain's timesteps; throws when absent.
[[nodiscard]] inline std::size_t chain_position(std::string_view where, std::span<const timestep_t> chain,
                                                timestep_t t, std::size_t sample) {
    for (std::size_t p = 0; p < chain.size(); ++p)
        if (chain[p] == t) return p;
    ddpm::detail::throw_invalid(where, "t[" + std::to_string(sample) + "]", t,
                                "one of the chain's " + std::to_string(chain.size()) + " timesteps");
}

/// The record of position p of a DDPM scheduler's chain: its coefficients,
/// whether the step adds noise (scheduler.adds_noise), noise step p + 1.
template <class C>
[[nodiscard]] step_record<scalar::reverse_coefficients<C>> ddpm_position_record(const ddpm_scheduler<C>& scheduler,
                                                                               std::size_t p) {
    step_record<scalar::reverse_coefficients<C>> r;
    r.coef = scheduler.coefficients(scheduler.timesteps()[p]);
    r.noisy = scheduler.adds_noise(p) ? 1u : 0u;
    r.noise_step = static_cast<std::uint32_t>(p + 1);
    return r;
}

/// The records of every position of a DDPM scheduler's chain.
template <class C>
[[nodiscard]] std::vector<step_record<scalar::reverse_coefficients<C>>> ddpm_chain_records(
    const ddpm_scheduler<C>& scheduler) {
    std::vector<step_record<scalar::reverse_coefficients<C>>> r(scheduler.num_steps());
    for (std::size_t p = 0; p < r.size(); ++p) r[p] = ddpm_position_record(scheduler, p);
    return r;
}

/// The element-wise part of the CPU DDIM scheduler's coefficients
/// (samplers/ddim.hpp) as the kernels take it: kernels::scalar::ddim_coefficients,
/// the same forms and numbers (the scheduler's own kernel()).
template <class C>
[[nodiscard]] scalar::ddim_coefficients<C> kernel_coefficients(const ddpm::detail::ddim_coefficients<C>& d) noexcept {
    return d.kernel();
}

/// The record of position p of a DDIM scheduler's chain: its coefficients,
/// whether it adds noise (scheduler.adds_noise: σ > 0), noise step p + 1.
template <class C>
[[nodiscard]] step_record<scalar::ddim_coefficients<C>> ddim_position_record(const ddim_scheduler<C>& scheduler,
                                                                            std::size_t p) {
    step_record<scalar::ddim_coefficients<C>> r;
    r.coef = kernel_coefficients(scheduler.position_coefficients(p));
    r.noisy = scheduler.adds_noise(p) ? 1u : 0u;
    r.noise_step = static_cast<std::uint32_t>(p + 1);
    return r;
}

/// The records of every position of a DDIM scheduler's chain.
/// @throws ddpm::invalid_argument before set_timesteps (an empty chain).
template <class C>
[[nodiscard]] std::vector<step_record<scalar::ddim_coefficients<C>>> ddim_chain_records(
    const ddim_scheduler<C>& scheduler) {
    if (scheduler.num_steps() == 0)
        ddpm::detail::throw_invalid("ddpm::kernels::grid::ddim_chain_records", "num_inference_steps", 0,
                                    "a call to set_timesteps first");
    std::vector<step_record<scalar::ddim_coefficients<C>>> r(scheduler.num_steps());
    for (std::size_t p = 0; p < r.size(); ++p) r[p] = ddim_position_record(scheduler, p);
    return r;
}

} // namespace ddpm::kernels::grid
