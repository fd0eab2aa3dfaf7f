// ddpm/core/clipping.hpp — keeping x̂_0 in range (docs/math.md#clipping-and-dynamic-thresholding):
// static clipping to [−r, r], and dynamic thresholding (Saharia et al. 2022):
// per sample s = clamp(quantile_p(|x̂_0|), 1, max), then x̂_0 = clamp(x̂_0, −s, s)/s.
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/error.hpp"
#include "ddpm/kernels/scalar.hpp"

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

namespace ddpm {

/// What happens to x̂_0 before the posterior mean is formed.
struct clip_options {
    enum class mode { none, clip, dynamic_threshold };
    mode kind = mode::none;
    double clip_range = 1.0;                  ///< r of clip: x̂_0 ∈ [−r, r] (> 0)
    double dynamic_thresholding_ratio = 0.995; ///< p of the quantile, in (0, 1)
    double sample_max_value = 1.0;             ///< cap on s (>= 1 is typical; > 0 required)

    [[nodiscard]] static constexpr clip_options none() { return {}; }
    [[nodiscard]] static constexpr clip_options clip(double range = 1.0) { return {mode::clip, range, 0.995, 1.0}; }
    [[nodiscard]] static constexpr clip_options dynamic(double ratio = 0.995, double max_value = 1.0) {
        return {mode::dynamic_threshold, 1.0, ratio, max_value};
    }

    /// Throws ddpm::invalid_argument on a range <= 0, a ratio outside (0, 1), a
    /// non-positive max value or any non-finite number.
    void validate(std::string_view where) const {
        if (kind == mode::clip && !(std::isfinite(clip_range) && clip_range > 0))
            detail::throw_invalid(where, "clip_range", clip_range, "a finite number > 0");
        if (kind == mode::dynamic_threshold) {
            if (!(std::isfinite(dynamic_thresholding_ratio) && dynamic_thresholding_ratio > 0 &&
                  dynamic_thresholding_ratio < 1))
                detail::throw_invalid(where, "dynamic_thresholding_ratio", dynamic_thresholding_ratio, "in (0, 1)");
            if (!(std::isfinite(sample_max_value) && sample_max_value > 0))
                detail::throw_invalid(where, "sample_max_value", sample_max_value, "a finite number > 0");
        }
    }
};

namespace detail {

/// torch.quantile(values, q) with linear interpolation, computed in T as torch
/// does: rank = q·(n − 1), lerp between the neighbours of the sorted values
/// (torch.lerp's two-sided form). `scratch` must hold values.size() elements.
template <class T>
T quantile_linear(std::span<const T> values, T q, std::span<T> scratch) noexcept {
    const std::size_t n = values.size();
    std::copy(values.begin(), values.end(), scratch.begin());
    const T rank = q * static_cast<T>(n - 1);
    const auto below = static_cast<std::size_t>(rank);
    const auto above = static_cast<std::size_t>(std::ceil(rank));
    std::nth_element(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(below), scratch.begin() + static_cast<std::ptrdiff_t>(n));
    const T lo = scratch[below];
    T hi = lo;
    if (above != below) hi = *std::min_element(scratch.begin() + static_cast<std::ptrdiff_t>(below) + 1, scratch.begin() + static_cast<std::ptrdiff_t>(n));
    const T w = rank - static_cast<T>(below);
    return w < T(0.5) ? lo + w * (hi - lo) : hi - (hi - lo) * (T(1) - w);
}

} // namespace detail

/// Dynamic thresholding's per-sample scale (Saharia et al. 2022, as diffusers'
/// _threshold_sample): s = clamp(quantile_p(|x̂_0|), 1, sample_max_value), for
/// one sample's x̂_0. `scratch` holds 2·x0.size() values.
template <class T>
[[nodiscard]] T dynamic_threshold_scale(const clip_options& opt, std::span<const T> x0, std::span<T> scratch) noexcept {
    const std::size_t dim = x0.size();
    for (std::size_t i = 0; i < dim; ++i) scratch[i] = std::abs(x0[i]);
    const T q = detail::quantile_linear<T>(std::span<const T>(scratch.data(), dim),
                                           static_cast<T>(opt.dynamic_thresholding_ratio), scratch.subspan(dim, dim));
    // torch.clamp(s, min=1, max=sample_max_value)
    const T s = std::max(q, T(1));
    return std::min(s, static_cast<T>(opt.sample_max_value));
}

/// Applies `opt` in place to a batch of x̂_0 (B samples of `dim` elements).
/// `scratch` (2·dim elements) is used only by dynamic thresholding. Validation
/// is the caller's (clip_options::validate).
template <class T>
void apply_clipping(const clip_options& opt, std::span<T> x0, std::size_t dim, std::span<T> scratch) noexcept {
    using kernels::scalar::clamp;
    switch (opt.kind) {
    case clip_options::mode::none: return;
    case clip_options::mode::clip: {
        const T r = static_cast<T>(opt.clip_range);
        for (auto& v : x0) v = clamp(v, -r, r);
        return;
    }
    case clip_options::mode::dynamic_threshold: {
        const std::size_t batch = dim == 0 ? 0 : x0.size() / dim;
        for (std::size_t b = 0; b < batch; ++b) {
            const auto sample = x0.subspan(b * dim, dim);
            const T s = dynamic_threshold_scale<T>(opt, sample, scratch);
            for (auto& v : sample) v = clamp(v, -s, s) / s;
        }
        return;
    }
    }
}

/// Clips or thresholds a batch of x̂_0 in place (B samples × D elements; the
/// number of samples is `batch`). Throws on bad options or sizes before any write.
template <output_buffer X>
void clip_x0(const clip_options& opt, std::size_t batch, X&& x0) {
    using T = detail::value_of<X>;
    constexpr std::string_view where = "ddpm::clip_x0";
    opt.validate(where);
    auto x = as_mutable_span(x0);
    if (batch == 0) detail::throw_invalid(where, "batch", batch, ">= 1");
    if (x.size() % batch != 0)
        detail::throw_invalid(where, "x0.size()", x.size(), "a multiple of batch = " + std::to_string(batch));
    const std::size_t dim = x.size() / batch;
    std::vector<T> scratch(opt.kind == clip_options::mode::dynamic_threshold ? 2 * dim : 0);
    apply_clipping<T>(opt, x, dim, scratch);
}

} // namespace ddpm
