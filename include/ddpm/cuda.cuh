// ddpm/cuda.cuh — the CUDA part of ddpm: include it from a .cu file compiled
// by nvcc (-std=c++20). docs/cuda.md describes the API; in short:
//
//   ddpm::cuda::device_schedule       the schedule's tables on the device (RAII)
//   ddpm::cuda::device_buffer<T>      device memory (RAII)
//   ddpm::cuda::fill_normal/uniform   the counter noise, bit-identical to the CPU
//   ddpm::cuda::forward_noise         fused x_t (and ε, v) with on-device noise
//   ddpm::cuda::q_sample              x_t with caller noise
//   ddpm::cuda::ddpm_step/ddim_step   fused reverse steps (per-sample records)
//   ddpm::cuda::dynamic_thresholds    per-sample quantile of |x̂_0| on the device
//   ddpm::cuda::ddpm_sampler/ddim_sampler  whole chains, no host sync, graph capture
//   ddpm::cuda::graph                 a captured, instantiated CUDA graph (RAII)
//
// Storage types: float, double, __half, __nv_bfloat16 (16-bit types compute
// in float). Every launch takes a cudaStream_t and is asynchronous; errors
// throw ddpm::invalid_argument (bad arguments, checked on the host before any
// launch) or ddpm::cuda_error (cudaGetErrorString and the call site). The
// noexcept launchers of ddpm/cuda/kernels.cuh return a ddpm::cuda::status instead.
#pragma once

#if !defined(__CUDACC__)
#error "ddpm/cuda.cuh must be compiled by nvcc (a .cu file). Host-only code uses <ddpm/ddpm.hpp>."
#endif

#include "ddpm/cuda/error.cuh"
#include "ddpm/cuda/types.cuh"
#include "ddpm/cuda/memory.cuh"
#include "ddpm/cuda/schedule.cuh"
#include "ddpm/cuda/kernels.cuh"
#include "ddpm/cuda/noise.cuh"
#include "ddpm/cuda/forward.cuh"
#include "ddpm/cuda/reverse.cuh"
#include "ddpm/cuda/sampler.cuh"
