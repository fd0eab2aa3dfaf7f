// ddpm/schedule/profile.hpp — convention profiles.
//
// Peer implementations differ in small ways that matter when porting a trained
// model. A profile names one peer's conventions; `profile::standard` (spelled
// "default") is the library's documented choice. docs/conventions.md lists
// every difference; `conventions_of(p)` is the single place they are decided.
#pragma once

#include "ddpm/error.hpp"

#include <string_view>

namespace ddpm {

enum class profile {
    standard,           ///< "default": float64 tables, paper conventions, exact normal CDF.
    ho2020,             ///< the original DDPM code (Ho et al. 2020, diffusion_utils_2.py).
    improved_diffusion, ///< openai/improved-diffusion (Nichol & Dhariwal 2021).
    diffusers,          ///< huggingface/diffusers DDPMScheduler / DDIMScheduler, float32 tables.
};

/// How the variance at t = 0 is chosen for the fixed_large variance type.
enum class fixed_large_first { beta, posterior_variance_1 };
/// How log β̃_0 (which is log 0) is made finite.
enum class log_variance_rule { clipped, floor_1e20 };
/// Which normal CDF the discretised decoder likelihood uses.
enum class normal_cdf { exact, tanh_approx };

/// The conventions a profile implies.
struct conventions {
    /// Build betas and ᾱ in float32 as torch on the CPU does (diffusers).
    bool float32_tables = false;
    /// Scale the linear schedule's endpoints by 1000/T (improved-diffusion).
    bool scale_linear_by_T = false;
    /// fixed_large: variance (not only its log) at t = 0 is β̃_1 instead of β_0.
    fixed_large_first large_variance_first = fixed_large_first::beta;
    /// fixed_large: log-variance at t = 0 is log β̃_1 instead of log β_0.
    fixed_large_first large_log_variance_first = fixed_large_first::beta;
    /// fixed_small / learned_range lower bound at t = 0.
    log_variance_rule small_log_variance = log_variance_rule::clipped;
    normal_cdf cdf = normal_cdf::exact;
};

[[nodiscard]] constexpr conventions conventions_of(profile p) noexcept {
    conventions c{};
    switch (p) {
    case profile::standard:
        break;
    case profile::ho2020:
        // fixedlarge keeps variance β but takes log β̃_1 at t = 0; tanh CDF.
        c.large_log_variance_first = fixed_large_first::posterior_variance_1;
        c.cdf = normal_cdf::tanh_approx;
        break;
    case profile::improved_diffusion:
        c.scale_linear_by_T = true;
        c.large_variance_first = fixed_large_first::posterior_variance_1;
        c.large_log_variance_first = fixed_large_first::posterior_variance_1;
        c.cdf = normal_cdf::tanh_approx;
        break;
    case profile::diffusers:
        c.float32_tables = true;
        c.small_log_variance = log_variance_rule::floor_1e20;
        break;
    }
    return c;
}

[[nodiscard]] constexpr std::string_view to_string(profile p) noexcept {
    switch (p) {
    case profile::standard: return "default";
    case profile::ho2020: return "ho2020";
    case profile::improved_diffusion: return "improved_diffusion";
    case profile::diffusers: return "diffusers";
    }
    return "?";
}

/// Parses "default" (or "standard"), "ho2020", "improved_diffusion", "diffusers".
[[nodiscard]] inline profile profile_from_string(std::string_view name) {
    if (name == "default" || name == "standard") return profile::standard;
    if (name == "ho2020") return profile::ho2020;
    if (name == "improved_diffusion") return profile::improved_diffusion;
    if (name == "diffusers") return profile::diffusers;
    detail::throw_invalid("ddpm::profile_from_string", "profile", name,
                          "one of \"default\", \"ho2020\", \"improved_diffusion\", \"diffusers\"");
}

} // namespace ddpm
