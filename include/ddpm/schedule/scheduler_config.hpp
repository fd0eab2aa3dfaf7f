// ddpm/schedule/scheduler_config.hpp — diffusers' scheduler configuration as
// one aggregate, and the noise schedule it describes.
//
// This header needs only the standard library. The loader for diffusers'
// `scheduler_config.json` files lives in the optional header
// <ddpm/schedule/scheduler_config_json.hpp>, which needs nlohmann_json;
// docs/scheduler_config.md lists every key.
//
// Field names and defaults copy diffusers' DDPMScheduler / DDIMScheduler
// `__init__` (src/diffusers/schedulers/scheduling_ddpm.py, scheduling_ddim.py),
// so a configuration maps field by field.
#pragma once

#include "ddpm/core/types.hpp" // prediction_type, variance_type, timestep_spacing
#include "ddpm/error.hpp"
#include "ddpm/schedule/beta_schedule.hpp"
#include "ddpm/schedule/noise_schedule.hpp"
#include "ddpm/schedule/profile.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ddpm {

/// Everything a diffusers DDPM/DDIM scheduler configuration says about the
/// maths, with diffusers' defaults (DDPMScheduler / DDIMScheduler).
///
/// The training schedule itself is `schedule` (num_train_timesteps,
/// beta_schedule, beta_start, beta_end, rescale_betas_zero_snr), unless
/// `trained_betas` is set, in which case those βs are used instead of the
/// named schedule (as diffusers does). Build the tables with make_schedule().
struct scheduler_config {
    /// The named schedule: num_train_timesteps, beta_schedule, beta_start,
    /// beta_end, rescale_betas_zero_snr (defaults 1000, linear, 1e-4, 0.02, false).
    schedule_config schedule{};
    /// `trained_betas`: explicit β_1..β_T; when set, it replaces the named
    /// schedule and its size equals schedule.num_train_timesteps.
    std::optional<std::vector<double>> trained_betas{};
    /// `prediction_type` (default epsilon).
    ddpm::prediction_type prediction_type = ddpm::prediction_type::epsilon;
    /// `variance_type` (default fixed_small; DDPMScheduler only).
    ddpm::variance_type variance_type = ddpm::variance_type::fixed_small;
    /// `clip_sample`: clamp x̂_0 to [−clip_sample_range, clip_sample_range] (default true).
    bool clip_sample = true;
    /// `clip_sample_range` (default 1.0).
    double clip_sample_range = 1.0;
    /// `thresholding`: dynamic thresholding of x̂_0 (Saharia et al. 2022; default false).
    bool thresholding = false;
    /// `dynamic_thresholding_ratio`: the quantile p (default 0.995).
    double dynamic_thresholding_ratio = 0.995;
    /// `sample_max_value`: the cap on the dynamic threshold s (default 1.0).
    double sample_max_value = 1.0;
    /// `timestep_spacing` (default leading).
    ddpm::timestep_spacing timestep_spacing = ddpm::timestep_spacing::leading;
    /// `steps_offset`, added to the inference timesteps by the leading spacing (default 0).
    std::int64_t steps_offset = 0;
    /// `set_alpha_to_one` (DDIM): ᾱ_prev of the last step is 1 instead of ᾱ_0 (default true).
    bool set_alpha_to_one = true;
    /// `_class_name`, e.g. "DDIMScheduler"; empty when absent. Informational.
    std::string class_name{};
    /// `_diffusers_version`; empty when absent. Informational.
    std::string diffusers_version{};
};

/// The noise schedule a configuration describes, under profile `p`.
///
/// Without trained_betas this is `noise_schedule(config.schedule, p)`. With
/// trained_betas it is `noise_schedule::from_betas(trained_betas, p)`, after
/// the zero-terminal-SNR rescale when schedule.rescale_betas_zero_snr is set
/// (done in float64; in the diffusers profile the float32 view is then a
/// rounding of it, whereas diffusers rescales in float32).
/// @throws ddpm::invalid_argument if trained_betas is empty, its size differs
/// from schedule.num_train_timesteps, or a β is outside (0, 1).
[[nodiscard]] inline noise_schedule make_schedule(const scheduler_config& config,
                                                  ddpm::profile p = ddpm::profile::standard) {
    if (!config.trained_betas) return noise_schedule(config.schedule, p);
    constexpr std::string_view where = "ddpm::make_schedule";
    const std::vector<double>& betas = *config.trained_betas;
    if (betas.empty()) detail::throw_invalid(where, "trained_betas.size()", 0, ">= 1");
    if (static_cast<std::int64_t>(betas.size()) != config.schedule.num_train_timesteps)
        detail::throw_invalid(where, "trained_betas.size()", betas.size(),
                              "num_train_timesteps = " + std::to_string(config.schedule.num_train_timesteps));
    if (!config.schedule.rescale_betas_zero_snr) return noise_schedule::from_betas(betas, p);
    // Validate the βs as given (each in (0, 1)), then rescale: only the last
    // rescaled β is 1.
    (void)noise_schedule::from_betas(betas, ddpm::profile::standard);
    if (betas.size() < 2)
        detail::throw_invalid(where, "num_train_timesteps", betas.size(), ">= 2 for rescale_betas_zero_snr");
    const auto rescaled = rescale_zero_terminal_snr<double>(std::span<const double>(betas));
    return noise_schedule::from_betas(rescaled, p);
}

} // namespace ddpm
