// ddpm/core/types.hpp — the shared vocabulary, with diffusers' spellings: what a
// network predicts and how the reverse variance is chosen
// (docs/math.md#parameterisations and docs/math.md#reverse-process-variance),
// and how inference timesteps are spaced (used by schedule/scheduler_config.hpp
// and samplers/timesteps.hpp alike, so the schedule layer need not include samplers).
#pragma once

#include "ddpm/error.hpp"

#include <string_view>

namespace ddpm {

/// What the network returns (diffusers' `prediction_type`).
enum class prediction_type {
    epsilon,      ///< ε̂, the noise (Ho et al. 2020)
    sample,       ///< x̂_0 directly
    v_prediction, ///< v̂ = √ᾱ_t ε − √(1 − ᾱ_t) x_0 (Salimans & Ho 2022)
};

/// How σ_t² of p(x_{t−1} | x_t) is chosen (diffusers' `variance_type`).
enum class variance_type {
    fixed_small,     ///< β̃_t
    fixed_small_log, ///< β̃_t, σ formed as exp(½ log β̃_t)
    fixed_large,     ///< β_t
    fixed_large_log, ///< β_t, σ formed as exp(½ log β_t) (finite, unlike diffusers' NaN)
    learned,         ///< the network's extra channels give the variance (see docs/conventions.md)
    learned_range,   ///< interpolate log β̃_t … log β_t with v = (output + 1)/2 (Nichol & Dhariwal 2021)
};

/// True when the network outputs 2·C channels: the prediction, then the variance.
[[nodiscard]] constexpr bool is_learned(variance_type v) noexcept {
    return v == variance_type::learned || v == variance_type::learned_range;
}

[[nodiscard]] constexpr std::string_view to_string(prediction_type p) noexcept {
    switch (p) {
    case prediction_type::epsilon: return "epsilon";
    case prediction_type::sample: return "sample";
    case prediction_type::v_prediction: return "v_prediction";
    }
    return "?";
}

[[nodiscard]] constexpr std::string_view to_string(variance_type v) noexcept {
    switch (v) {
    case variance_type::fixed_small: return "fixed_small";
    case variance_type::fixed_small_log: return "fixed_small_log";
    case variance_type::fixed_large: return "fixed_large";
    case variance_type::fixed_large_log: return "fixed_large_log";
    case variance_type::learned: return "learned";
    case variance_type::learned_range: return "learned_range";
    }
    return "?";
}

[[nodiscard]] inline prediction_type prediction_type_from_string(std::string_view s) {
    if (s == "epsilon") return prediction_type::epsilon;
    if (s == "sample") return prediction_type::sample;
    if (s == "v_prediction") return prediction_type::v_prediction;
    detail::throw_invalid("ddpm::prediction_type_from_string", "prediction_type", s,
                          "one of \"epsilon\", \"sample\", \"v_prediction\"");
}

[[nodiscard]] inline variance_type variance_type_from_string(std::string_view s) {
    if (s == "fixed_small") return variance_type::fixed_small;
    if (s == "fixed_small_log") return variance_type::fixed_small_log;
    if (s == "fixed_large") return variance_type::fixed_large;
    if (s == "fixed_large_log") return variance_type::fixed_large_log;
    if (s == "learned") return variance_type::learned;
    if (s == "learned_range") return variance_type::learned_range;
    detail::throw_invalid("ddpm::variance_type_from_string", "variance_type", s,
                          "one of fixed_small, fixed_small_log, fixed_large, fixed_large_log, learned, "
                          "learned_range");
}

/// How num_inference_steps timesteps are picked among T (diffusers'
/// `timestep_spacing`; "Common Diffusion Noise Schedules and Sample Steps are
/// Flawed", Lin et al. 2023, table 2).
enum class timestep_spacing {
    linspace, ///< round(linspace(0, T − 1, N)), descending; ignores steps_offset
    leading,  ///< (0, r, 2r, …)·descending + steps_offset, r = T // N
    trailing, ///< round(arange(T, 0, −T/N)) − 1; ignores steps_offset
};

[[nodiscard]] constexpr std::string_view to_string(timestep_spacing s) noexcept {
    switch (s) {
    case timestep_spacing::linspace: return "linspace";
    case timestep_spacing::leading: return "leading";
    case timestep_spacing::trailing: return "trailing";
    }
    return "?";
}

/// Parses diffusers' strings "linspace", "leading", "trailing".
[[nodiscard]] inline timestep_spacing timestep_spacing_from_string(std::string_view s) {
    if (s == "linspace") return timestep_spacing::linspace;
    if (s == "leading") return timestep_spacing::leading;
    if (s == "trailing") return timestep_spacing::trailing;
    detail::throw_invalid("ddpm::timestep_spacing_from_string", "timestep_spacing", s,
                          "one of \"linspace\", \"leading\", \"trailing\"");
}

} // namespace ddpm
