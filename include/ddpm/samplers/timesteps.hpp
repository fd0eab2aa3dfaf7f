// ddpm/samplers/timesteps.hpp — which timesteps a sampling chain visits
// (docs/math.md#strided-and-respaced-chains; docs/samplers.md#spacing-rules).
//
//  * make_timesteps: diffusers' DDPMScheduler / DDIMScheduler.set_timesteps
//    (`timestep_spacing` linspace / leading / trailing, `steps_offset`),
//    reproduced operation for operation (numpy's linspace and float arange,
//    round-half-to-even), descending int64.
//  * check_custom_timesteps: diffusers' rules for user timesteps.
//  * space_timesteps: improved-diffusion's respacing ("ddimN" or per-section
//    counts "10,15,20"), returning the kept set sorted ascending.
//
// Every timestep is a 0-based index into the training schedule, t ∈ [0, T).
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/core/types.hpp" // timestep_spacing, to_string, timestep_spacing_from_string
#include "ddpm/error.hpp"
#include "ddpm/schedule/beta_schedule.hpp" // max_num_train_timesteps

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ddpm {

/// The descending timesteps of diffusers' `set_timesteps(num_inference_steps)`
/// for a schedule of `num_train_timesteps` steps.
///
/// @throws ddpm::invalid_argument when num_train_timesteps is outside
///         [1, max_num_train_timesteps], num_inference_steps < 1 or >
///         num_train_timesteps, steps_offset < 0, or (leading spacing) the
///         offset would push a timestep to T or beyond. Every range is checked
///         before any arithmetic, so no input overflows.
[[nodiscard]] inline std::vector<timestep_t> make_timesteps(std::int64_t num_train_timesteps,
                                                            std::int64_t num_inference_steps,
                                                            timestep_spacing spacing = timestep_spacing::leading,
                                                            std::int64_t steps_offset = 0) {
    constexpr std::string_view where = "ddpm::make_timesteps";
    const std::int64_t T = num_train_timesteps;
    const std::int64_t N = num_inference_steps;
    detail::check_num_train_timesteps(where, "num_train_timesteps", T);
    if (N < 1) detail::throw_invalid(where, "num_inference_steps", N, ">= 1");
    if (N > T)
        detail::throw_invalid(where, "num_inference_steps", N,
                              "<= num_train_timesteps = " + std::to_string(T) +
                                  " (the model was trained with that many steps)");
    if (steps_offset < 0) detail::throw_invalid(where, "steps_offset", steps_offset, ">= 0");
    if (spacing == timestep_spacing::leading) {
        // The first (largest) timestep is (N − 1)·(T // N) + steps_offset < T.
        // T <= max_num_train_timesteps, so the bound itself cannot overflow.
        const std::int64_t top = (N - 1) * (T / N);
        if (steps_offset > T - 1 - top)
            detail::throw_invalid(where, "steps_offset", steps_offset,
                                  "<= " + std::to_string(T - 1 - top) + " (so that the first timestep " +
                                      std::to_string(top) + " + steps_offset stays below num_train_timesteps = " +
                                      std::to_string(T) + ")");
    }

    std::vector<timestep_t> ts(static_cast<std::size_t>(N));
    switch (spacing) {
    case timestep_spacing::linspace: {
        // np.linspace(0, T − 1, N): y_i = i·step with step = (T − 1)/(N − 1), the
        // last element forced to T − 1; then .round() (half to even) and reversed.
        const double stop = static_cast<double>(T - 1);
        const double step = N > 1 ? stop / static_cast<double>(N - 1) : 0.0;
        for (std::int64_t i = 0; i < N; ++i) {
            double y = static_cast<double>(i) * step + 0.0;
            if (N > 1 && i == N - 1) y = stop;
            ts[static_cast<std::size_t>(N - 1 - i)] = static_cast<timestep_t>(std::nearbyint(y));
        }
        break;
    }
    case timestep_spacing::leading: {
        // (np.arange(0, N) · (T // N))[::-1] + steps_offset
        const std::int64_t ratio = T / N;
        for (std::int64_t i = 0; i < N; ++i) ts[static_cast<std::size_t>(N - 1 - i)] = i * ratio + steps_offset;
        break;
    }
    case timestep_spacing::trailing: {
        // np.round(np.arange(T, 0, −T/N)) − 1. numpy's float arange has
        // ceil(T/r) elements: a_0 = T, a_1 = T − r, and a_i = a_0 + i·(a_1 − a_0).
        const double r = static_cast<double>(T) / static_cast<double>(N);
        const double start = static_cast<double>(T);
        const auto len = static_cast<std::int64_t>(std::ceil((0.0 - start) / -r));
        const double delta = (start + -r) - start;
        ts.assign(static_cast<std::size_t>(len), 0);
        for (std::int64_t i = 0; i < len; ++i) {
            const double a = i == 0 ? start : (i == 1 ? start + -r : start + static_cast<double>(i) * delta);
            ts[static_cast<std::size_t>(i)] = static_cast<timestep_t>(std::nearbyint(a)) - 1;
        }
        break;
    }
    default:
        detail::throw_invalid(where, "timestep_spacing", static_cast<int>(spacing), "linspace, leading or trailing");
    }
    // numpy's float arange can produce one element too many when T/(T/N) rounds
    // above N; diffusers would then return a negative timestep. Refuse that.
    for (std::size_t i = 0; i < ts.size(); ++i)
        if (ts[i] < 0 || ts[i] >= T || (i > 0 && !(ts[i] < ts[i - 1])))
            detail::throw_invalid(where, "num_inference_steps", N,
                                  "a count for which " + std::string(to_string(spacing)) +
                                      " spacing yields distinct timesteps in [0, " + std::to_string(T) + ")");
    return ts;
}

/// diffusers' checks on custom timesteps: non-empty, strictly descending, the
/// first below T, the last >= 0.
/// @throws ddpm::invalid_argument naming `timesteps[i]`.
inline void check_custom_timesteps(std::span<const timestep_t> timesteps, std::int64_t num_train_timesteps,
                                   std::string_view where = "ddpm::check_custom_timesteps") {
    if (timesteps.empty()) detail::throw_invalid(where, "timesteps.size()", 0, ">= 1");
    if (timesteps.front() >= num_train_timesteps || timesteps.front() < 0)
        detail::throw_invalid(where, "timesteps[0]", timesteps.front(),
                              "in [0, num_train_timesteps = " + std::to_string(num_train_timesteps) + ")");
    for (std::size_t i = 1; i < timesteps.size(); ++i)
        if (!(timesteps[i] < timesteps[i - 1]))
            detail::throw_invalid(where, "timesteps[" + std::to_string(i) + "]", timesteps[i],
                                  "< timesteps[" + std::to_string(i - 1) + "] = " + std::to_string(timesteps[i - 1]) +
                                      " (custom timesteps must be strictly descending)");
    if (timesteps.back() < 0)
        detail::throw_invalid(where, "timesteps[" + std::to_string(timesteps.size() - 1) + "]", timesteps.back(),
                              ">= 0");
}

/// improved-diffusion's space_timesteps with per-section counts: the T steps
/// are cut into len(counts) sections of near-equal size (the first T mod n
/// sections one step longer), and section k keeps counts[k] steps at the
/// rounded (half to even) positions of a fractional stride (size−1)/(count−1)
/// accumulated by repeated addition. Returns the kept set, ascending.
/// @throws ddpm::invalid_argument when num_timesteps is outside [1,
///         max_num_train_timesteps], counts is empty, a count is negative or
///         larger than its section, or every count is 0.
[[nodiscard]] inline std::vector<timestep_t> space_timesteps(std::int64_t num_timesteps,
                                                             std::span<const std::int64_t> section_counts) {
    constexpr std::string_view where = "ddpm::space_timesteps";
    detail::check_num_train_timesteps(where, "num_timesteps", num_timesteps);
    if (section_counts.empty()) detail::throw_invalid(where, "section_counts.size()", 0, ">= 1");
    const auto n = static_cast<std::int64_t>(section_counts.size());
    const std::int64_t size_per = num_timesteps / n;
    const std::int64_t extra = num_timesteps % n;
    std::int64_t start = 0;
    std::vector<timestep_t> kept;
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t size = size_per + (i < extra ? 1 : 0);
        const std::int64_t count = section_counts[static_cast<std::size_t>(i)];
        if (count < 0)
            detail::throw_invalid(where, "section_counts[" + std::to_string(i) + "]", count, ">= 0");
        if (size < count)
            detail::throw_invalid(where, "section_counts[" + std::to_string(i) + "]", count,
                                  "<= the section size " + std::to_string(size) + " (cannot divide a section of " +
                                      std::to_string(size) + " steps into " + std::to_string(count) + ")");
        const double stride = count <= 1 ? 1.0 : static_cast<double>(size - 1) / static_cast<double>(count - 1);
        double cur = 0.0;
        for (std::int64_t k = 0; k < count; ++k) {
            kept.push_back(start + static_cast<timestep_t>(std::nearbyint(cur))); // Python round(): half to even
            cur += stride;
        }
        start += size;
    }
    if (kept.empty())
        detail::throw_invalid(where, "section_counts", "all 0",
                              "counts that keep at least one timestep (a chain needs one step)");
    std::sort(kept.begin(), kept.end());
    kept.erase(std::unique(kept.begin(), kept.end()), kept.end());
    return kept;
}

/// improved-diffusion's space_timesteps from a string: "ddimN" keeps
/// range(0, T, s) for the smallest integer stride s giving exactly N steps;
/// otherwise a comma-separated list of section counts ("10,15,20").
/// @throws ddpm::invalid_argument on a malformed string or an impossible count.
[[nodiscard]] inline std::vector<timestep_t> space_timesteps(std::int64_t num_timesteps,
                                                             std::string_view section_counts) {
    constexpr std::string_view where = "ddpm::space_timesteps";
    detail::check_num_train_timesteps(where, "num_timesteps", num_timesteps);
    auto parse = [&](std::string_view s) -> std::int64_t {
        std::int64_t v = 0;
        const auto* first = s.data();
        const auto* last = s.data() + s.size();
        const auto r = std::from_chars(first, last, v);
        if (s.empty() || r.ec != std::errc{} || r.ptr != last)
            detail::throw_invalid(where, "section_counts", section_counts,
                                  "\"ddimN\" or comma-separated non-negative integers such as \"10,15,20\"");
        return v;
    };
    if (section_counts.substr(0, 4) == "ddim") {
        const std::int64_t desired = parse(section_counts.substr(4));
        for (std::int64_t stride = 1; stride < num_timesteps; ++stride) {
            if ((num_timesteps + stride - 1) / stride == desired) {
                std::vector<timestep_t> kept;
                for (std::int64_t t = 0; t < num_timesteps; t += stride) kept.push_back(t);
                return kept;
            }
        }
        detail::throw_invalid(where, "section_counts", section_counts,
                              "a step count reachable with an integer stride (cannot create exactly " +
                                  std::to_string(desired) + " steps out of " + std::to_string(num_timesteps) + ")");
    }
    std::vector<std::int64_t> counts;
    std::size_t pos = 0;
    while (true) {
        const std::size_t comma = section_counts.find(',', pos);
        counts.push_back(parse(section_counts.substr(pos, comma == std::string_view::npos ? std::string_view::npos
                                                                                           : comma - pos)));
        if (comma == std::string_view::npos) break;
        pos = comma + 1;
    }
    return space_timesteps(num_timesteps, std::span<const std::int64_t>(counts));
}

} // namespace ddpm
