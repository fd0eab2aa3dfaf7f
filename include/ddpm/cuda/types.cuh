// ddpm/cuda/types.cuh — the storage types of the CUDA kernels: float, double,
// __half and __nv_bfloat16. The 16-bit types are read into float, computed in
// float and rounded to nearest-even on store; double computes in double.
#pragma once

#if !defined(__CUDACC__)
#error "ddpm/cuda/*.cuh must be compiled by nvcc (a .cu file). Host-only code uses the .hpp headers."
#endif

#include "ddpm/kernels/grid_threads.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <concepts>
#include <type_traits>

namespace ddpm::kernels::grid {

template <>
struct storage_traits<__half> {
    using compute_type = float;
    DDPM_HOST_DEVICE DDPM_FORCEINLINE static float load(__half v) noexcept { return __half2float(v); }
    DDPM_HOST_DEVICE DDPM_FORCEINLINE static __half store(float v) noexcept { return __float2half_rn(v); }
};

template <>
struct storage_traits<__nv_bfloat16> {
    using compute_type = float;
    DDPM_HOST_DEVICE DDPM_FORCEINLINE static float load(__nv_bfloat16 v) noexcept { return __bfloat162float(v); }
    DDPM_HOST_DEVICE DDPM_FORCEINLINE static __nv_bfloat16 store(float v) noexcept { return __float2bfloat16_rn(v); }
};

} // namespace ddpm::kernels::grid

namespace ddpm::cuda {

/// A type the CUDA kernels store: float, double, __half or __nv_bfloat16.
template <class T>
concept storage_type = std::same_as<T, float> || std::same_as<T, double> || std::same_as<T, __half> ||
                       std::same_as<T, __nv_bfloat16>;

/// The arithmetic type for storage T: double for double, float otherwise.
template <storage_type T>
using compute_t = kernels::grid::compute_t<T>;

using kernels::grid::clip_mode;
using kernels::grid::sigma_mode;
using kernels::grid::step_record;

/// Per-step record of a DDPM step for storage T.
template <storage_type T>
using ddpm_record = step_record<kernels::scalar::reverse_coefficients<compute_t<T>>>;
/// Per-step record of a DDIM step for storage T.
template <storage_type T>
using ddim_record = step_record<kernels::scalar::ddim_coefficients<compute_t<T>>>;

} // namespace ddpm::cuda
