// ddpm/cuda/forward.cuh — the forward process on the device (docs/math.md
// #forward-process; Algorithm 1's x_t): x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε in one
// pass, with ε drawn on the device from the counter stream (forward_noise) or
// supplied by the caller (q_sample). The coefficients are those ddpm::q_sample
// uses for the precision and profile (device_schedule::tables<C>().forward_a/b).
#pragma once

#if !defined(__CUDACC__)
#error "ddpm/cuda/*.cuh must be compiled by nvcc (a .cu file). Host-only code uses the .hpp headers."
#endif

#include "ddpm/buffer.hpp"
#include "ddpm/cuda/error.cuh"
#include "ddpm/cuda/kernels.cuh"
#include "ddpm/cuda/memory.cuh"
#include "ddpm/cuda/noise.cuh"
#include "ddpm/cuda/schedule.cuh"
#include "ddpm/cuda/types.cuh"

#include <cuda_runtime.h>

#include <cstdint>
#include <span>
#include <string_view>

namespace ddpm::cuda {

/// Checks host timesteps against [0, T) and copies them to `device` (B
/// entries) on `stream`. The copy is from pageable memory, so `host` may be
/// released when this returns.
/// @throws ddpm::invalid_argument naming the first timestep outside [0, T).
inline void upload_timesteps(const device_schedule& s, std::span<const timestep_t> host, timestep_t* device,
                             cudaStream_t stream = nullptr) {
    constexpr std::string_view where = "ddpm::cuda::upload_timesteps";
    if (host.empty()) ddpm::detail::throw_invalid(where, "host.size()", 0, ">= 1");
    ddpm::detail::check_timesteps(where, host, s.size());
    detail::check_device_pointer(where, "device", device, stream);
    DDPM_CUDA_CHECK(cudaMemcpyAsync(device, host.data(), host.size_bytes(), cudaMemcpyHostToDevice, stream));
}

namespace detail {
template <storage_type T>
kernels::grid::forward_args<T> forward_args_of(const device_schedule& s, const T* x0, const timestep_t* timesteps,
                                              std::int64_t batch, std::int64_t dim, T* xt) noexcept {
    const auto tab = s.tables<compute_t<T>>();
    kernels::grid::forward_args<T> a;
    a.x0 = x0;
    a.xt = xt;
    a.timesteps = timesteps;
    a.coef_a = tab.forward_a;
    a.coef_b = tab.forward_b;
    a.num_timesteps = tab.size;
    a.batch = batch;
    a.dim = dim;
    a.error_flag = s.error_flag();
    return a;
}
} // namespace detail

/// Fused forward noising (the training step's x_t): for every sample b and
/// element i, ε = normal_at_v2(noise.seed, noise.first_sample + b, noise.step, i, dim)
/// (normal_at(noise.seed, noise.first_sample + b, noise.step, i) in stream v1),
/// x_t = √ᾱ_{t_b} x_0 + √(1 − ᾱ_{t_b}) ε. Writes x_t, ε (`eps`, may be
/// nullptr) and, if `velocity` is given, v = √ᾱ ε − √(1 − ᾱ) x_0 — one read
/// of x_0, no ε round trip through memory.
///
/// @param timesteps B device timesteps. They are not read on the host: a
///        timestep outside [0, T) makes that sample's outputs NaN and raises
///        the schedule's error word (device_schedule::check_errors throws);
///        validate host timesteps with upload_timesteps.
/// @throws ddpm::invalid_argument on null/host pointers or sizes < 1;
///         ddpm::cuda_error if the launch fails. Asynchronous on `stream`.
template <storage_type T>
void forward_noise(const device_schedule& s, const T* x0, const timestep_t* timesteps, std::int64_t batch,
                   std::int64_t dim, const noise_stream& noise, T* xt, T* eps, cudaStream_t stream = nullptr,
                   T* velocity = nullptr) {
    constexpr std::string_view where = "ddpm::cuda::forward_noise";
    detail::check_device_pointer(where, "x0", x0, stream);
    detail::check_device_pointer(where, "timesteps", timesteps, stream);
    detail::check_device_pointer(where, "xt", xt, stream);
    auto a = detail::forward_args_of(s, x0, timesteps, batch, dim, xt);
    a.eps_out = eps;
    a.v_out = velocity;
    a.seed = noise.seed;
    a.step = noise.step;
    a.first_sample = noise.first_sample;
    a.version = noise.version;
    detail::throw_if_failed(launch_forward(a, stream), where, __FILE__, __LINE__);
}

/// q_sample with caller noise (ddpm::q_sample on the device): x_t = √ᾱ_{t_b} x_0
/// + √(1 − ᾱ_{t_b}) noise, and optionally v. `xt` may alias x0 or noise.
template <storage_type T>
void q_sample(const device_schedule& s, const T* x0, const T* noise, const timestep_t* timesteps, std::int64_t batch,
              std::int64_t dim, T* xt, cudaStream_t stream = nullptr, T* velocity = nullptr) {
    constexpr std::string_view where = "ddpm::cuda::q_sample";
    detail::check_device_pointer(where, "x0", x0, stream);
    detail::check_device_pointer(where, "noise", noise, stream);
    detail::check_device_pointer(where, "timesteps", timesteps, stream);
    detail::check_device_pointer(where, "xt", xt, stream);
    auto a = detail::forward_args_of(s, x0, timesteps, batch, dim, xt);
    a.noise_in = noise;
    a.v_out = velocity;
    detail::throw_if_failed(launch_forward(a, stream), where, __FILE__, __LINE__);
}

} // namespace ddpm::cuda
