// ddpm/cuda/noise.cuh — the counter-based noise on the device: the same
// values as random::normal_at_v2 (stream v2, the default) or normal_at
// (stream v1) and uniform_at (random/counter_noise.hpp), bit for bit, for any
// (seed, sample, step, element).
#pragma once

#if !defined(__CUDACC__)
#error "ddpm/cuda/*.cuh must be compiled by nvcc (a .cu file). Host-only code uses the .hpp headers."
#endif

#include "ddpm/cuda/error.cuh"
#include "ddpm/cuda/kernels.cuh"
#include "ddpm/cuda/memory.cuh"
#include "ddpm/cuda/types.cuh"

#include <cuda_runtime.h>

#include <cstdint>

namespace ddpm::cuda {

/// Which counter stream a call draws from: element i of row b (D elements)
/// gets random::normal_at_v2(seed, first_sample + b, step, i, D) in stream v2
/// (the default), random::normal_at(seed, first_sample + b, step, i) with
/// version = random::noise_version::v1 (the fields of kernels::noise_stream,
/// the CPU kernels' equivalent, with the same default).
struct noise_stream {
    std::uint64_t seed = 0;
    std::uint32_t step = 0;
    std::uint32_t first_sample = 0;
    random::noise_version version = random::noise_version::v2;
};

namespace detail {
template <storage_type T>
void fill(std::string_view where, T* out, std::int64_t batch, std::int64_t dim, const noise_stream& ns,
          cudaStream_t stream, std::uint64_t element_offset, bool uniform) {
    detail::check_device_pointer(where, "out", out, stream);
    kernels::grid::fill_args<T> a;
    a.out = out;
    a.batch = batch;
    a.dim = dim;
    a.seed = ns.seed;
    a.step = ns.step;
    a.first_sample = ns.first_sample;
    a.element_offset = element_offset;
    a.uniform = uniform;
    a.version = ns.version;
    detail::throw_if_failed(launch_fill(a, stream), where, __FILE__, __LINE__);
}
} // namespace detail

/// out[b·dim + k] = normal_at_v2(ns.seed, ns.first_sample + b, ns.step,
/// element_offset + k, element_offset + dim) in stream v2 (each row the last
/// dim elements of a sample of element_offset + dim; element_offset = 0: a
/// whole sample, as random::fill_normal_rows), or normal_at(ns.seed,
/// ns.first_sample + b, ns.step, element_offset + k) in stream v1, for b <
/// batch, k < dim, rounded to T (widened for double): bit-identical to the
/// CPU. Asynchronous on `stream`.
/// @throws ddpm::invalid_argument on a null/host pointer, batch or dim < 1,
///         sample indices past 2^32 − 1, or a version other than v1 or v2;
///         ddpm::cuda_error if the launch fails.
template <storage_type T>
void fill_normal(T* out, std::int64_t batch, std::int64_t dim, const noise_stream& ns, cudaStream_t stream = nullptr,
                 std::uint64_t element_offset = 0) {
    detail::fill<T>("ddpm::cuda::fill_normal", out, batch, dim, ns, stream, element_offset, false);
}

/// out[b·dim + k] = uniform_at(ns.seed, ns.first_sample + b, ns.step, element_offset + k), in [0, 1)
/// (uniforms have one layout whatever ns.version).
template <storage_type T>
void fill_uniform(T* out, std::int64_t batch, std::int64_t dim, const noise_stream& ns, cudaStream_t stream = nullptr,
                  std::uint64_t element_offset = 0) {
    detail::fill<T>("ddpm::cuda::fill_uniform", out, batch, dim, ns, stream, element_offset, true);
}

} // namespace ddpm::cuda
