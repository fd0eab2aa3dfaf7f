// ddpm/cuda/reverse.cuh — the fused reverse steps on the device.
//
//   DDPM (Algorithm 2, line 4):  x̂_0 → clip / threshold → μ̃(x̂_0, x_t) + σ z
//   DDIM (Song et al., eq. 12):  x̂_0, ε̂ → clip / threshold → √ᾱ_prev x̂_0 + √(1−ᾱ_prev−σ²) ε̂ + σ z
//
// in one pass over x_t and the network output (plus, for dynamic
// thresholding, one block-per-sample selection kernel before it). The
// per-sample coefficients are computed on the host by the CPU schedulers
// (ddpm_scheduler, ddim_scheduler: the single definitions of a chain) —
// packed in step records (cuda/host_records.hpp) and read by the
// kernel from device memory, either one per sample (record_stride 1) or one
// for the batch (record_stride 0, as the samplers do for each chain step).
//
// Noise: z of sample b at a step with record r is
// random::normal_at_v2(seed, first_sample + b, r.noise_step, i, D) (stream v2,
// the default; random::normal_at(seed, first_sample + b, r.noise_step, i) in
// stream v1, reverse_noise::version), where
// noise_step = chain position + 1 (0 is x_T) — the step numbering of the CPU
// samplers' noise sources (samplers/noise.hpp). Or the caller's buffer.
#pragma once

#if !defined(__CUDACC__)
#error "ddpm/cuda/*.cuh must be compiled by nvcc (a .cu file). Host-only code uses the .hpp headers."
#endif

#include "ddpm/buffer.hpp"
#include "ddpm/core/clipping.hpp"
#include "ddpm/core/p_mean_variance.hpp"
#include "ddpm/core/types.hpp"
#include "ddpm/cuda/error.cuh"
#include "ddpm/cuda/kernels.cuh"
#include "ddpm/cuda/memory.cuh"
#include "ddpm/cuda/types.cuh"
#include "ddpm/cuda/host_records.hpp"
#include "ddpm/kernels/quantile_scalar.hpp"
#include "ddpm/samplers/ddim.hpp"
#include "ddpm/samplers/ddpm.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ddpm::cuda {

/// The device buffers of one reverse step (B samples × D elements).
template <storage_type T>
struct step_buffers {
    const T* model_output = nullptr; ///< B·D, or B·2D for a learned variance (per sample: D predictions, D variances)
    const T* xt = nullptr;           ///< B·D
    T* x_prev = nullptr;             ///< B·D; may alias xt
    T* pred_x0 = nullptr;            ///< optional B·D: receives the clipped x̂_0
    const T* noise = nullptr;        ///< optional B·D caller noise; nullptr: the counter stream
    compute_t<T>* thresholds = nullptr; ///< B values of scratch, required for dynamic thresholding
};

/// The counter stream of the reverse steps: row b is sample first_sample + b;
/// the step comes from each record (noise_step); stream v2 by default (see
/// noise_stream).
struct reverse_noise {
    std::uint64_t seed = 0;
    std::uint32_t first_sample = 0;
    random::noise_version version = random::noise_version::v2;
};

using kernels::grid::sigma_mode_of;

// ---------------------------------------------------------------------------
// Records, built on the host (cuda/host_records.hpp).

namespace detail {

inline void validate_shape(std::string_view where, std::int64_t batch, std::int64_t dim) {
    if (batch < 1) ddpm::detail::throw_invalid(where, "batch", batch, ">= 1");
    if (dim < 1) ddpm::detail::throw_invalid(where, "dim", dim, ">= 1");
    if (batch > std::numeric_limits<std::int64_t>::max() / 2 / dim)
        ddpm::detail::throw_invalid(where, "batch * dim", "overflow", "< 2^62 elements");
}

} // namespace detail

/// Per-sample records of a DDPM step: sample b steps from t[b] (a member of
/// scheduler.timesteps()) to its previous timestep, with the coefficients,
/// noise rule and noise step (position + 1) of the CPU scheduler.
/// @throws ddpm::invalid_argument when a t[b] is not in the chain.
template <storage_type T>
[[nodiscard]] std::vector<ddpm_record<T>> ddpm_step_records(const ddpm_scheduler<compute_t<T>>& scheduler,
                                                            std::span<const timestep_t> t) {
    constexpr std::string_view where = "ddpm::cuda::ddpm_step_records";
    std::vector<ddpm_record<T>> out(t.size());
    for (std::size_t b = 0; b < t.size(); ++b)
        out[b] = kernels::grid::ddpm_position_record(
            scheduler, kernels::grid::chain_position(where, scheduler.timesteps(), t[b], b));
    return out;
}

/// Per-sample records of a DDIM step: sample b steps from t[b] (a member of
/// scheduler.timesteps()) to where the scheduler's chain goes next, with its
/// coefficients, noise rule and noise step (position + 1).
/// @throws ddpm::invalid_argument when a t[b] is not in the chain.
template <storage_type T>
[[nodiscard]] std::vector<ddim_record<T>> ddim_step_records(const ddim_scheduler<compute_t<T>>& scheduler,
                                                            std::span<const timestep_t> t) {
    constexpr std::string_view where = "ddpm::cuda::ddim_step_records";
    std::vector<ddim_record<T>> out(t.size());
    for (std::size_t b = 0; b < t.size(); ++b)
        out[b] = kernels::grid::ddim_position_record(
            scheduler, kernels::grid::chain_position(where, scheduler.timesteps(), t[b], b));
    return out;
}

// ---------------------------------------------------------------------------
// The steps.

namespace detail {

/// Throws for bad clip options, null or host buffers, a bad shape.
template <storage_type T>
void validate_step(std::string_view where, const step_buffers<T>& buf, const void* records, std::int64_t batch,
                   std::int64_t dim, const clip_options& clip, cudaStream_t stream) {
    clip.validate(where);
    validate_shape(where, batch, dim);
    check_device_pointer(where, "records", records, stream);
    check_device_pointer(where, "model_output", buf.model_output, stream);
    check_device_pointer(where, "xt", buf.xt, stream);
    check_device_pointer(where, "x_prev", buf.x_prev, stream);
    if (buf.pred_x0 != nullptr) check_device_pointer(where, "pred_x0", buf.pred_x0, stream);
    if (buf.noise != nullptr) check_device_pointer(where, "noise", buf.noise, stream);
    if (clip.kind == clip_options::mode::dynamic_threshold)
        check_device_pointer(where, "thresholds (B values of scratch for dynamic thresholding)", buf.thresholds,
                             stream);
}

/// Enqueues (threshold kernel +) reverse kernel. Arguments already validated;
/// a failed launch throws ddpm::cuda_error. No synchronisation.
template <storage_type T, class Coef>
void enqueue_reverse(std::string_view where, const step_record<Coef>* records, std::int64_t record_stride,
                     const step_buffers<T>& buf, std::int64_t batch, std::int64_t dim, const model_options& opt,
                     sigma_mode sigma, const reverse_noise& noise, cudaStream_t stream) {
    using C = compute_t<T>;
    const clip_options& clip = opt.clip;
    // A learned variance doubles the output channels (DDIM ignores the second half).
    const std::int64_t out_stride = (is_learned(opt.variance) ? 2 : 1) * dim;
    clip_mode mode = clip_mode::none;
    if (clip.kind == clip_options::mode::clip) mode = clip_mode::clip;
    if (clip.kind == clip_options::mode::dynamic_threshold) {
        mode = clip_mode::dynamic;
        kernels::grid::threshold_args<T, Coef> th;
        th.model_output = buf.model_output;
        th.xt = buf.xt;
        th.records = records;
        th.record_stride = record_stride;
        th.batch = batch;
        th.dim = dim;
        th.out_stride = out_stride;
        th.position = kernels::scalar::quantile_rank<C>(static_cast<C>(clip.dynamic_thresholding_ratio),
                                                        static_cast<std::uint64_t>(dim));
        th.max_value = static_cast<C>(clip.sample_max_value);
        th.thresholds = buf.thresholds;
        throw_if_failed(launch_threshold(th, stream), where, __FILE__, __LINE__);
    }
    kernels::grid::reverse_args<T, Coef> a;
    a.model_output = buf.model_output;
    a.xt = buf.xt;
    a.x_prev = buf.x_prev;
    a.pred_x0 = buf.pred_x0;
    a.noise_in = buf.noise;
    a.records = records;
    a.record_stride = record_stride;
    a.clip = mode;
    a.clip_range = static_cast<C>(clip.clip_range);
    a.thresholds = buf.thresholds;
    a.sigma = sigma;
    a.batch = batch;
    a.dim = dim;
    a.out_stride = out_stride;
    a.seed = noise.seed;
    a.first_sample = noise.first_sample;
    a.version = noise.version;
    throw_if_failed(launch_reverse(a, stream), where, __FILE__, __LINE__);
}

} // namespace detail

/// One fused DDPM reverse step for B samples on `stream` (asynchronous).
///
/// @param records device records: B (record_stride 1, e.g. from
///        ddpm_step_records) or 1 for the whole batch (record_stride 0).
/// @param opt     prediction / variance / clipping (as the scheduler's options()).
/// @param sigma   sigma_mode_of(opt.variance, profile).
/// @throws ddpm::invalid_argument on bad options, sizes or pointers;
///         ddpm::cuda_error if a launch fails.
template <storage_type T>
void ddpm_step(const ddpm_record<T>* records, std::int64_t record_stride, const step_buffers<T>& buf,
               std::int64_t batch, std::int64_t dim, const model_options& opt, sigma_mode sigma,
               const reverse_noise& noise, cudaStream_t stream = nullptr) {
    constexpr std::string_view where = "ddpm::cuda::ddpm_step";
    detail::validate_step(where, buf, records, batch, dim, opt.clip, stream);
    if ((sigma == sigma_mode::fixed) == is_learned(opt.variance))
        ddpm::detail::throw_invalid(where, "sigma", static_cast<int>(sigma),
                                    "sigma_mode_of(opt.variance, profile) (learned variance types read the variance "
                                    "channels)");
    detail::enqueue_reverse<T>(where, records, record_stride, buf, batch, dim, opt, sigma, noise, stream);
}

/// One fused DDIM step for B samples on `stream` (asynchronous); records from
/// ddim_step_records (stride 1) or one for the batch (stride 0). The network
/// output is B·D, or B·2D when opt.variance is learned (the variance half is
/// ignored, as improved-diffusion's DDIM does); opt.clip is applied to x̂_0.
template <storage_type T>
void ddim_step(const ddim_record<T>* records, std::int64_t record_stride, const step_buffers<T>& buf,
               std::int64_t batch, std::int64_t dim, const model_options& opt, const reverse_noise& noise,
               cudaStream_t stream = nullptr) {
    constexpr std::string_view where = "ddpm::cuda::ddim_step";
    detail::validate_step(where, buf, records, batch, dim, opt.clip, stream);
    detail::enqueue_reverse<T>(where, records, record_stride, buf, batch, dim, opt, sigma_mode::fixed, noise, stream);
}

/// Dynamic thresholding alone: thresholds[b] = clamp(quantile_p(|x̂_0[b, :]|), 1,
/// sample_max_value) with torch.quantile's linear interpolation, x̂_0 formed
/// from x_t and the network output with each sample's record — the value the
/// CPU's apply_clipping computes. (ddpm_step/ddim_step run this themselves.)
template <storage_type T, class Coef>
void dynamic_thresholds(const step_record<Coef>* records, std::int64_t record_stride, const T* model_output,
                        std::int64_t out_stride, const T* xt, std::int64_t batch, std::int64_t dim,
                        const clip_options& clip, compute_t<T>* thresholds, cudaStream_t stream = nullptr) {
    using C = compute_t<T>;
    constexpr std::string_view where = "ddpm::cuda::dynamic_thresholds";
    if (clip.kind != clip_options::mode::dynamic_threshold)
        ddpm::detail::throw_invalid(where, "clip.kind", static_cast<int>(clip.kind), "dynamic_threshold");
    clip.validate(where);
    detail::validate_shape(where, batch, dim);
    detail::check_device_pointer(where, "records", records, stream);
    detail::check_device_pointer(where, "model_output", model_output, stream);
    detail::check_device_pointer(where, "xt", xt, stream);
    detail::check_device_pointer(where, "thresholds", thresholds, stream);
    kernels::grid::threshold_args<T, Coef> th;
    th.model_output = model_output;
    th.xt = xt;
    th.records = records;
    th.record_stride = record_stride;
    th.batch = batch;
    th.dim = dim;
    th.out_stride = out_stride;
    th.position = kernels::scalar::quantile_rank<C>(static_cast<C>(clip.dynamic_thresholding_ratio),
                                                    static_cast<std::uint64_t>(dim));
    th.max_value = static_cast<C>(clip.sample_max_value);
    th.thresholds = thresholds;
    detail::throw_if_failed(launch_threshold(th, stream), where, __FILE__, __LINE__);
}

} // namespace ddpm::cuda
