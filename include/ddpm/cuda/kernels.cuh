// ddpm/cuda/kernels.cuh — the __global__ kernels and their noexcept launchers.
//
// Each kernel is a grid-stride loop over (sample, thread chunk) calling the
// per-thread body of kernels/grid_threads.hpp; the threshold kernel is
// block-cooperative (one block per sample). Each launcher checks its
// arguments once (returning status::invalid naming the first bad one), takes
// an error left pending by earlier work (returned as status::pending, nothing
// launched: it is not ddpm's), picks the vector path when the shapes and
// alignments allow it, launches on the caller's stream and returns
// cudaGetLastError(). Launchers never synchronise
// and never throw, so they are legal inside a stream capture.
#pragma once

#if !defined(__CUDACC__)
#error "ddpm/cuda/*.cuh must be compiled by nvcc (a .cu file). Host-only code uses the .hpp headers."
#endif

#include "ddpm/cuda/error.cuh"
#include "ddpm/cuda/types.cuh"
#include "ddpm/kernels/grid_threads.hpp"
#include "ddpm/kernels/quantile_scalar.hpp"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace ddpm::cuda {

namespace detail {

inline constexpr int block_threads = 256;
/// Dynamic shared memory the threshold kernel may use to keep a sample's keys
/// (below the 48 KiB a block gets without cudaFuncSetAttribute).
inline constexpr std::size_t threshold_cache_bytes = 40 * 1024;

[[nodiscard]] inline unsigned grid_blocks(std::int64_t threads) noexcept {
    const std::int64_t blocks = (threads + block_threads - 1) / block_threads;
    constexpr std::int64_t max_blocks = std::numeric_limits<int>::max();
    return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > max_blocks ? max_blocks : blocks));
}

template <class T>
[[nodiscard]] inline bool vector_aligned(const void* p) noexcept {
    return p == nullptr || reinterpret_cast<std::uintptr_t>(p) % (4 * sizeof(T)) == 0;
}

/// A noise layout the kernels know: random::noise_version::v1 or ::v2.
[[nodiscard]] inline bool known_version(random::noise_version v) noexcept {
    return v == random::noise_version::v1 || v == random::noise_version::v2;
}

/// Sample indices first_sample .. first_sample + batch − 1 must fit the 32-bit counter word.
[[nodiscard]] inline bool samples_fit(std::uint32_t first_sample, std::int64_t batch) noexcept {
    return batch >= 1 && static_cast<std::uint64_t>(first_sample) + static_cast<std::uint64_t>(batch) - 1u <=
                             std::numeric_limits<std::uint32_t>::max();
}

// ---------------------------------------------------------------------------
// Kernels.

template <class T>
__global__ void __launch_bounds__(block_threads) fill_kernel(const kernels::grid::fill_args<T> a, std::int64_t chunks) {
    const std::int64_t total = a.batch * chunks;
    const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
    for (std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += stride) {
        const std::int64_t b = idx / chunks;
        kernels::grid::fill_thread(a, b, idx - b * chunks);
    }
}

template <int V, bool Full, class T>
__global__ void __launch_bounds__(block_threads)
    forward_kernel(const kernels::grid::forward_args<T> a, std::int64_t chunks) {
    const std::int64_t total = a.batch * chunks;
    const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
    for (std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += stride) {
        const std::int64_t b = idx / chunks;
        kernels::grid::forward_thread<V, Full>(a, b, idx - b * chunks);
    }
}

template <int V, bool Full, class T, class Coef>
__global__ void __launch_bounds__(block_threads)
    reverse_kernel(const kernels::grid::reverse_args<T, Coef> a, std::int64_t chunks) {
    const std::int64_t total = a.batch * chunks;
    const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
    for (std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += stride) {
        const std::int64_t b = idx / chunks;
        kernels::grid::reverse_thread<V, Full>(a, b, idx - b * chunks);
    }
}

/// Dynamic thresholding's s_b for every sample: one block of 256 threads per
/// sample (grid-stride over samples) runs the radix selection of
/// kernels/quantile_scalar.hpp on the keys of |x̂_0|: per pass a shared
/// histogram of the candidates' 8-bit digits (warp-aggregated atomics), a
/// block-wide prefix sum, and the bin holding the wanted rank. With `Cached`
/// the keys are computed once into shared memory; otherwise every pass
/// recomputes x̂_0 from x_t and the network output (read from L2/global).
/// A NaN in a sample's x̂_0 makes its s_b NaN, as torch.quantile does.
template <class T, class Coef, bool Cached>
__global__ void __launch_bounds__(block_threads) threshold_kernel(const kernels::grid::threshold_args<T, Coef> a) {
    namespace ks = kernels::scalar;
    using C = compute_t<T>;
    using K = ks::radix_key_t<C>;
    static_assert(ks::radix_bins == block_threads, "one histogram bin per thread");
    constexpr unsigned warps = block_threads / 32;
    constexpr unsigned full = 0xffffffffu;

    __shared__ std::uint32_t hist[ks::radix_bins];
    __shared__ std::uint32_t warp_sums[warps];
    __shared__ K warp_min[warps];
    __shared__ unsigned s_digit;
    __shared__ std::uint32_t s_rank;
    __shared__ std::uint32_t s_count;
    extern __shared__ __align__(16) unsigned char cache_raw[];
    K* cache = reinterpret_cast<K*>(cache_raw);

    const unsigned tid = threadIdx.x;
    const unsigned lane = tid & 31u;
    const unsigned warp = tid >> 5;
    const std::int64_t n = a.dim;
    const std::int64_t n_round = (n + block_threads - 1) / block_threads * block_threads;

    for (std::int64_t b = blockIdx.x; b < a.batch; b += gridDim.x) {
        const Coef c = a.records[b * a.record_stride].coef;
        auto key_at = [&](std::int64_t i) -> K { return ks::abs_key(kernels::grid::x0_at(a, c, b, i)); };
        if constexpr (Cached) {
            for (std::int64_t i = tid; i < n; i += block_threads) cache[i] = key_at(i);
            __syncthreads();
        }

        K prefix = 0;
        K mask = 0;
        std::uint32_t rank = static_cast<std::uint32_t>(a.position.below);
        std::uint32_t count = 0;
        // torch.quantile's NaN rule: a NaN anywhere in the sample makes the
        // quantile NaN (|NaN| keys sort above +inf, so the selection alone
        // would ignore NaNs below the rank). Seen during the first pass.
        constexpr K inf_key = static_cast<K>(sizeof(K) == 4 ? 0x7f800000ull : 0x7ff0000000000000ull); // |+inf|
        bool nan_seen = false;
        for (unsigned p = ks::radix_passes<C>; p-- > 0;) {
            hist[tid] = 0;
            __syncthreads();
            // Uniform trip count: every lane of every warp reaches the shuffles.
            for (std::int64_t i = tid; i < n_round; i += block_threads) {
                unsigned bin = ks::radix_bins; // "not a candidate"
                if (i < n) {
                    K k;
                    if constexpr (Cached) k = cache[i];
                    else k = key_at(i);
                    if (mask == 0 && k > inf_key) nan_seen = true; // first pass: every key is a candidate
                    if ((k & mask) == prefix) bin = ks::radix_digit(k, p);
                }
                const unsigned peers = __match_any_sync(full, bin);
                if (bin < ks::radix_bins && lane == static_cast<unsigned>(__ffs(peers) - 1))
                    atomicAdd(&hist[bin], static_cast<std::uint32_t>(__popc(peers)));
            }
            __syncthreads();
            // Block-wide exclusive prefix sum of the histogram; the thread whose
            // bin holds `rank` records the decision (radix_choose in parallel).
            const std::uint32_t h = hist[tid];
            std::uint32_t incl = h;
#pragma unroll
            for (unsigned o = 1; o < 32; o <<= 1) {
                const std::uint32_t y = __shfl_up_sync(full, incl, o);
                if (lane >= o) incl += y;
            }
            if (lane == 31) warp_sums[warp] = incl;
            __syncthreads();
            std::uint32_t before = 0;
            for (unsigned w = 0; w < warp; ++w) before += warp_sums[w];
            const std::uint32_t excl = before + incl - h;
            if (h != 0 && excl <= rank && rank < excl + h) {
                s_digit = tid;
                s_rank = rank - excl;
                s_count = h;
            }
            __syncthreads();
            prefix |= static_cast<K>(static_cast<K>(s_digit) << (p * ks::radix_digit_bits));
            mask = ks::radix_prefix_mask<K>(p);
            rank = s_rank;
            count = s_count;
            __syncthreads(); // everyone has read s_*: the next pass may reuse hist
        }

        if (__syncthreads_or(nan_seen ? 1 : 0) != 0) { // block-uniform
            if (tid == 0) a.thresholds[b] = kernels::grid::quiet_nan<C>();
            __syncthreads();
            continue;
        }
        const C lo = ks::key_value<C>(prefix);
        C hi = lo;
        if (a.position.above != a.position.below && rank + 1 >= count) {
            // sorted[below + 1] is the smallest key above lo.
            K m = ~K(0);
            for (std::int64_t i = tid; i < n; i += block_threads) {
                K k;
                if constexpr (Cached) k = cache[i];
                else k = key_at(i);
                if (k > prefix && k < m) m = k;
            }
#pragma unroll
            for (unsigned o = 16; o > 0; o >>= 1) {
                const K y = __shfl_down_sync(full, m, o);
                m = y < m ? y : m;
            }
            if (lane == 0) warp_min[warp] = m;
            __syncthreads();
            K best = warp_min[0];
            for (unsigned w = 1; w < warps; ++w) best = warp_min[w] < best ? warp_min[w] : best;
            hi = ks::key_value<C>(best);
        }
        if (tid == 0)
            a.thresholds[b] = ks::threshold_scale(ks::quantile_lerp(lo, hi, a.position.weight), a.max_value);
        __syncthreads(); // the next sample reuses the shared memory
    }
}

} // namespace detail

// ---------------------------------------------------------------------------
// Launchers.

/// Fills B×D normals (or uniforms) from the counter stream; see kernels::grid::fill_args.
template <storage_type T>
[[nodiscard]] status launch_fill(const kernels::grid::fill_args<T>& a, cudaStream_t stream) noexcept {
    if (a.out == nullptr) return status::invalid("out", 0, "a device pointer");
    if (a.batch < 1) return status::invalid("batch", a.batch, ">= 1");
    if (a.dim < 1) return status::invalid("dim", a.dim, ">= 1");
    if (!detail::samples_fit(a.first_sample, a.batch))
        return status::invalid("batch", a.batch, "first_sample + batch - 1 <= 2^32 - 1 (32-bit sample index)");
    if (a.element_offset > std::numeric_limits<std::uint64_t>::max() - static_cast<std::uint64_t>(a.dim))
        return status::invalid("element_offset", static_cast<long long>(a.element_offset),
                               "element_offset + dim <= 2^64");
    if (!detail::known_version(a.version))
        return status::invalid("version", static_cast<long long>(a.version), "noise_version::v1 or ::v2");
    if (const status pending = detail::take_pending_error(); !pending.ok()) return pending;
    const std::int64_t chunks = kernels::grid::fill_chunks(a.element_offset, a.dim);
    detail::fill_kernel<T><<<detail::grid_blocks(a.batch * chunks), detail::block_threads, 0, stream>>>(a, chunks);
    return status::from(cudaGetLastError());
}

/// Fused forward noising; see kernels::grid::forward_args.
template <storage_type T>
[[nodiscard]] status launch_forward(const kernels::grid::forward_args<T>& a, cudaStream_t stream) noexcept {
    if (a.x0 == nullptr) return status::invalid("x0", 0, "a device pointer");
    if (a.xt == nullptr) return status::invalid("xt", 0, "a device pointer");
    if (a.timesteps == nullptr) return status::invalid("timesteps", 0, "a device pointer (B timesteps)");
    if (a.coef_a == nullptr || a.coef_b == nullptr)
        return status::invalid("schedule", 0, "device tables (ddpm::cuda::device_schedule)");
    if (a.num_timesteps < 1) return status::invalid("num_timesteps", a.num_timesteps, ">= 1");
    if (a.batch < 1) return status::invalid("batch", a.batch, ">= 1");
    if (a.dim < 1) return status::invalid("dim", a.dim, ">= 1");
    if (a.noise_in == nullptr && !detail::samples_fit(a.first_sample, a.batch))
        return status::invalid("batch", a.batch, "first_sample + batch - 1 <= 2^32 - 1 (32-bit sample index)");
    if (a.noise_in == nullptr && !detail::known_version(a.version))
        return status::invalid("version", static_cast<long long>(a.version), "noise_version::v1 or ::v2");
    if (const status pending = detail::take_pending_error(); !pending.ok()) return pending;
    const bool full = a.dim % kernels::grid::group_elements == 0 && detail::vector_aligned<T>(a.x0) &&
                      detail::vector_aligned<T>(a.xt) && detail::vector_aligned<T>(a.eps_out) &&
                      detail::vector_aligned<T>(a.v_out) && detail::vector_aligned<T>(a.noise_in);
    if (full) {
        const std::int64_t chunks = kernels::grid::thread_chunks<4>(a.dim);
        detail::forward_kernel<4, true, T>
            <<<detail::grid_blocks(a.batch * chunks), detail::block_threads, 0, stream>>>(a, chunks);
    } else {
        const std::int64_t chunks = kernels::grid::thread_chunks<1>(a.dim);
        detail::forward_kernel<1, false, T>
            <<<detail::grid_blocks(a.batch * chunks), detail::block_threads, 0, stream>>>(a, chunks);
    }
    return status::from(cudaGetLastError());
}

/// Fused reverse step (DDPM when Coef is reverse_coefficients, DDIM when it
/// is ddim_coefficients); see kernels::grid::reverse_args.
template <storage_type T, class Coef>
[[nodiscard]] status launch_reverse(const kernels::grid::reverse_args<T, Coef>& a, cudaStream_t stream) noexcept {
    constexpr bool ddim = kernels::grid::is_ddim_coefficients_v<Coef>;
    if (a.model_output == nullptr) return status::invalid("model_output", 0, "a device pointer");
    if (a.xt == nullptr) return status::invalid("xt", 0, "a device pointer");
    if (a.x_prev == nullptr) return status::invalid("x_prev", 0, "a device pointer");
    if (a.records == nullptr) return status::invalid("records", 0, "a device pointer (step records)");
    if (a.record_stride != 0 && a.record_stride != 1)
        return status::invalid("record_stride", a.record_stride, "0 (one record for the batch) or 1 (one per sample)");
    if (a.batch < 1) return status::invalid("batch", a.batch, ">= 1");
    if (a.dim < 1) return status::invalid("dim", a.dim, ">= 1");
    if constexpr (ddim) {
        if (a.out_stride != a.dim && a.out_stride != 2 * a.dim)
            return status::invalid("out_stride", a.out_stride, "dim, or 2 * dim (a learned variance's channels)");
    } else {
        const bool learned = a.sigma != sigma_mode::fixed;
        if (a.out_stride != (learned ? 2 : 1) * a.dim)
            return status::invalid("out_stride", a.out_stride,
                                   learned ? "2 * dim (a learned variance doubles the channels)" : "dim");
    }
    if (a.clip == clip_mode::clip && !(a.clip_range > 0 && std::isfinite(static_cast<double>(a.clip_range))))
        return status::invalid("clip_range", static_cast<long long>(a.clip_range), "a finite number > 0");
    if (a.clip == clip_mode::dynamic && a.thresholds == nullptr)
        return status::invalid("thresholds", 0, "a device pointer (B values from launch_threshold)");
    if (a.noise_in == nullptr && !detail::samples_fit(a.first_sample, a.batch))
        return status::invalid("batch", a.batch, "first_sample + batch - 1 <= 2^32 - 1 (32-bit sample index)");
    if (a.noise_in == nullptr && !detail::known_version(a.version))
        return status::invalid("version", static_cast<long long>(a.version), "noise_version::v1 or ::v2");
    if (const status pending = detail::take_pending_error(); !pending.ok()) return pending;
    const bool full = a.dim % kernels::grid::group_elements == 0 && detail::vector_aligned<T>(a.model_output) &&
                      detail::vector_aligned<T>(a.xt) && detail::vector_aligned<T>(a.x_prev) &&
                      detail::vector_aligned<T>(a.pred_x0) && detail::vector_aligned<T>(a.noise_in);
    if (full) {
        const std::int64_t chunks = kernels::grid::thread_chunks<4>(a.dim);
        detail::reverse_kernel<4, true, T, Coef>
            <<<detail::grid_blocks(a.batch * chunks), detail::block_threads, 0, stream>>>(a, chunks);
    } else {
        const std::int64_t chunks = kernels::grid::thread_chunks<1>(a.dim);
        detail::reverse_kernel<1, false, T, Coef>
            <<<detail::grid_blocks(a.batch * chunks), detail::block_threads, 0, stream>>>(a, chunks);
    }
    return status::from(cudaGetLastError());
}

/// Whether the threshold kernel keeps a sample's keys in shared memory.
template <storage_type T>
[[nodiscard]] constexpr bool threshold_cached(std::int64_t dim) noexcept {
    return static_cast<std::uint64_t>(dim) * sizeof(kernels::scalar::radix_key_t<compute_t<T>>) <=
           detail::threshold_cache_bytes;
}

/// Dynamic thresholding's per-sample s_b; see kernels::grid::threshold_args.
template <storage_type T, class Coef>
[[nodiscard]] status launch_threshold(const kernels::grid::threshold_args<T, Coef>& a, cudaStream_t stream) noexcept {
    if (a.model_output == nullptr) return status::invalid("model_output", 0, "a device pointer");
    if (a.xt == nullptr) return status::invalid("xt", 0, "a device pointer");
    if (a.records == nullptr) return status::invalid("records", 0, "a device pointer (step records)");
    if (a.thresholds == nullptr) return status::invalid("thresholds", 0, "a device pointer (B values)");
    if (a.record_stride != 0 && a.record_stride != 1)
        return status::invalid("record_stride", a.record_stride, "0 (one record for the batch) or 1 (one per sample)");
    if (a.batch < 1) return status::invalid("batch", a.batch, ">= 1");
    if (a.dim < 1) return status::invalid("dim", a.dim, ">= 1");
    if (a.dim > static_cast<std::int64_t>(std::numeric_limits<std::uint32_t>::max()))
        return status::invalid("dim", a.dim, "<= 2^32 - 1 (32-bit counts in the selection)");
    if (a.out_stride < a.dim) return status::invalid("out_stride", a.out_stride, ">= dim");
    if (a.position.below >= static_cast<std::uint64_t>(a.dim) || a.position.above >= static_cast<std::uint64_t>(a.dim))
        return status::invalid("position.above", static_cast<long long>(a.position.above),
                               "< dim (kernels::scalar::quantile_rank(ratio, dim))");
    if (const status pending = detail::take_pending_error(); !pending.ok()) return pending;
    const unsigned blocks = static_cast<unsigned>(a.batch < 65535 * 16 ? a.batch : 65535 * 16);
    if (threshold_cached<T>(a.dim)) {
        const std::size_t bytes =
            static_cast<std::size_t>(a.dim) * sizeof(kernels::scalar::radix_key_t<compute_t<T>>);
        detail::threshold_kernel<T, Coef, true><<<blocks, detail::block_threads, bytes, stream>>>(a);
    } else {
        detail::threshold_kernel<T, Coef, false><<<blocks, detail::block_threads, 0, stream>>>(a);
    }
    return status::from(cudaGetLastError());
}

} // namespace ddpm::cuda
