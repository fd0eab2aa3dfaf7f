// ddpm/cuda/sampler.cuh — whole sampling chains on the device, with no host
// synchronisation inside the loop, so that a chain can be captured into a
// CUDA graph and replayed.
//
// A sampler is built once for (chain, B, D): it takes every step's
// coefficients and noise rule from the CPU scheduler (ddpm_scheduler or
// ddim_scheduler, as set up when the sampler is built), uploads them, and
// allocates the network output, a B-entry timestep buffer for the network and
// the threshold scratch. sample() then only enqueues work on the caller's
// stream:
//
//   x_T  = normal(seed, first_sample + b, 0, i)        (unless start_from_input)
//   for i = 0 … S − 1 (t = timesteps[i]):
//       t_device[b] = t                                 (one small kernel)
//       net(x, t_device, out, B, D, stream)             (the user's CUDA network)
//       [dynamic thresholding: one selection kernel]
//       x ← step_i(x, out) + σ_i z,  z = normal(seed, first_sample + b, i + 1, e)
//
// where normal is random::normal_at_v2(…, D) in stream v2 (the default,
// sampling_options::version) and random::normal_at in stream v1.
//
// The step numbering (0 for x_T, i + 1 for the noise of step i) is the one of
// the CPU samplers' noise sources (samplers/noise.hpp), so a CPU chain run
// with ddpm::counter_noise of the same version draws the same numbers.
//
// The network is any callable
//   net(const T* x_t, const ddpm::timestep_t* t_device, T* out, int B, int D, cudaStream_t stream)
// that enqueues its work on `stream` and writes B·D values to `out` (B·2D
// with a learned variance). It must not synchronise or allocate if the chain
// is to be captured into a graph. t_device (B entries) is valid for the call
// only: the next step rewrites it.
//
// A sampler owns one workspace (network output, timestep buffer, threshold
// scratch): chains run from it on two streams at once would overwrite each
// other's. Use one sampler per concurrent stream (or order the streams).
#pragma once

#if !defined(__CUDACC__)
#error "ddpm/cuda/*.cuh must be compiled by nvcc (a .cu file). Host-only code uses the .hpp headers."
#endif

#include "ddpm/buffer.hpp"
#include "ddpm/core/p_mean_variance.hpp"
#include "ddpm/cuda/error.cuh"
#include "ddpm/cuda/kernels.cuh"
#include "ddpm/cuda/memory.cuh"
#include "ddpm/cuda/noise.cuh"
#include "ddpm/cuda/reverse.cuh"
#include "ddpm/cuda/types.cuh"
#include "ddpm/samplers/ddim.hpp"
#include "ddpm/samplers/ddpm.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

#include <cuda_runtime.h>

#include <concepts>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace ddpm::cuda {

/// A CUDA ε-network (or x̂_0 / v network): called as
/// net(x_t, t_device, out, B, D, stream), every pointer on the device.
template <class Net, class T>
concept device_denoiser = std::invocable<Net&, const T*, const timestep_t*, T*, int, int, cudaStream_t>;

/// Options of one sampling run.
struct sampling_options {
    std::uint64_t seed = 0;          ///< key of the counter stream
    std::uint32_t first_sample = 0;  ///< sample index of row 0 (rows first_sample … first_sample + B − 1)
    bool start_from_input = false;   ///< x already holds x_T; otherwise it is drawn (step 0)
    /// The counter stream's layout: v2 (the default, as ddpm::counter_noise) or v1.
    random::noise_version version = random::noise_version::v2;
};

namespace detail {

/// t[b] = value for b < batch: the B timesteps the network receives at one
/// step (the value is a kernel argument, so a captured graph keeps it). A
/// template only so that the header may be included by several .cu files.
template <class Timestep>
__global__ void __launch_bounds__(block_threads) fill_timesteps_kernel(Timestep* t, std::int64_t batch,
                                                                      Timestep value) {
    const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
    for (std::int64_t b = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < batch; b += stride)
        t[b] = value;
}

/// The device side of a chain: records, the network's timestep buffer (B
/// entries, rewritten before each network call), scratch.
template <storage_type T, class Coef>
class chain_runner {
public:
    chain_runner(std::string_view where, const std::vector<step_record<Coef>>& records,
                 std::span<const timestep_t> model_timesteps, const model_options& opt, sigma_mode sigma,
                 std::int64_t batch, std::int64_t dim, cudaStream_t stream)
        : m_options(opt), m_sigma(sigma), m_batch(batch), m_dim(dim), m_steps(records.size()),
          m_host_timesteps(model_timesteps.begin(), model_timesteps.end()) {
        validate_shape(where, batch, dim);
        const std::int64_t channels = is_learned(opt.variance) ? 2 : 1;
        if (batch > std::numeric_limits<int>::max())
            ddpm::detail::throw_invalid(where, "batch", batch, "<= INT_MAX (the network takes int B)");
        if (channels * dim > std::numeric_limits<int>::max())
            ddpm::detail::throw_invalid(where, "dim", dim, "with the output channels <= INT_MAX (the network takes int D)");
        if (static_cast<std::uint64_t>(batch) - 1u > std::numeric_limits<std::uint32_t>::max())
            ddpm::detail::throw_invalid(where, "batch", batch, "<= 2^32 (32-bit sample index)");
        // Copied on `stream` and waited for: on the device before any work on any stream.
        m_records = device_buffer<step_record<Coef>>(std::span<const step_record<Coef>>(records), stream);
        m_timesteps = device_buffer<timestep_t>(static_cast<std::size_t>(batch));
        m_out = device_buffer<T>(static_cast<std::size_t>(channels * batch * dim));
        if (opt.clip.kind == clip_options::mode::dynamic_threshold)
            m_thresholds = device_buffer<compute_t<T>>(static_cast<std::size_t>(batch));
    }

    template <class Net>
    void enqueue(std::string_view where, Net& net, T* x, const sampling_options& o, cudaStream_t stream,
                 T* pred_x0) {
        check_device_pointer(where, "x", x, stream);
        if (pred_x0 != nullptr) check_device_pointer(where, "pred_x0", pred_x0, stream);
        if (static_cast<std::uint64_t>(o.first_sample) + static_cast<std::uint64_t>(m_batch) - 1u >
            std::numeric_limits<std::uint32_t>::max())
            ddpm::detail::throw_invalid(where, "options.first_sample", o.first_sample,
                                        "first_sample + B - 1 <= 2^32 - 1 (32-bit sample index)");
        if (!o.start_from_input) {
            kernels::grid::fill_args<T> f;
            f.out = x;
            f.batch = m_batch;
            f.dim = m_dim;
            f.seed = o.seed;
            f.step = 0;
            f.first_sample = o.first_sample;
            f.version = o.version;
            throw_if_failed(launch_fill(f, stream), where, __FILE__, __LINE__);
        }
        step_buffers<T> buf;
        buf.model_output = m_out.data();
        buf.xt = x;
        buf.x_prev = x; // in place: each element is read and written by one thread
        buf.pred_x0 = pred_x0;
        buf.thresholds = m_thresholds.data();
        const reverse_noise noise{o.seed, o.first_sample, o.version};
        const auto B = static_cast<int>(m_batch);
        const auto D = static_cast<int>(m_dim);
        for (std::size_t i = 0; i < m_steps; ++i) {
            throw_if_failed(take_pending_error(), where, __FILE__, __LINE__);
            fill_timesteps_kernel<timestep_t><<<grid_blocks(m_batch), block_threads, 0, stream>>>(m_timesteps.data(), m_batch,
                                                                                     m_host_timesteps[i]);
            throw_if_failed(status::from(cudaGetLastError()), where, __FILE__, __LINE__);
            net(static_cast<const T*>(x), static_cast<const timestep_t*>(m_timesteps.data()), m_out.data(), B, D,
                stream);
            enqueue_reverse<T>(where, m_records.data() + i, 0, buf, m_batch, m_dim, m_options, m_sigma, noise, stream);
        }
    }

    [[nodiscard]] std::size_t steps() const noexcept { return m_steps; }
    [[nodiscard]] std::int64_t batch() const noexcept { return m_batch; }
    [[nodiscard]] std::int64_t dim() const noexcept { return m_dim; }
    [[nodiscard]] std::span<const timestep_t> timesteps() const noexcept { return m_host_timesteps; }
    [[nodiscard]] const step_record<Coef>* device_records() const noexcept { return m_records.data(); }
    [[nodiscard]] T* model_output() noexcept { return m_out.data(); }

private:
    model_options m_options;
    sigma_mode m_sigma;
    std::int64_t m_batch;
    std::int64_t m_dim;
    std::size_t m_steps;
    std::vector<timestep_t> m_host_timesteps;
    device_buffer<step_record<Coef>> m_records;
    device_buffer<timestep_t> m_timesteps;
    device_buffer<T> m_out;
    device_buffer<compute_t<T>> m_thresholds;
};

template <class Net, class T>
constexpr void check_net() {
    static_assert(device_denoiser<Net, T>,
                  "ddpm::cuda sampler: the network must be callable as net(const T* x_t, const ddpm::timestep_t* "
                  "t_device, T* out, int B, int D, cudaStream_t stream)");
}

} // namespace detail

/// Ancestral DDPM sampling (Algorithm 2) of a ddpm_scheduler's chain on the
/// device: the full chain, a strided (set_timesteps) or a respaced one —
/// whatever scheduler.timesteps() holds when the sampler is built, with the
/// scheduler's coefficients and noise rule.
///
/// @tparam T storage: float, double, __half, __nv_bfloat16 (the scheduler
///           is ddpm_scheduler<compute_t<T>>: float for the 16-bit types).
template <storage_type T>
class ddpm_sampler {
public:
    using compute_type = compute_t<T>;
    using record_type = ddpm_record<T>;

    /// Builds and uploads the chain for B samples of D elements. The copies
    /// run on `stream` and are waited for: when the constructor returns the
    /// chain is on the device, for work on any stream.
    /// @throws ddpm::invalid_argument on B or D < 1 or past INT_MAX;
    ///         ddpm::cuda_error on an allocation or copy failure.
    ddpm_sampler(const ddpm_scheduler<compute_type>& scheduler, std::int64_t batch, std::int64_t dim,
                 cudaStream_t stream = nullptr)
        : m_runner("ddpm::cuda::ddpm_sampler", records_of(scheduler), scheduler.timesteps(), scheduler.options(),
                   sigma_mode_of(scheduler.options().variance, scheduler.chain_schedule().profile()), batch, dim,
                   stream) {}

    /// Enqueues the whole chain on `stream` and returns (no synchronisation):
    /// x (B·D, device) ends holding x_0. pred_x0 (optional, B·D) receives each
    /// step's clipped x̂_0 (the last one at the end).
    /// @throws ddpm::invalid_argument on a null/host x; ddpm::cuda_error if a
    ///         launch fails; whatever the network throws.
    template <class Net>
    void sample(Net&& net, T* x, const sampling_options& options = {}, cudaStream_t stream = nullptr,
                T* pred_x0 = nullptr) {
        detail::check_net<Net, T>();
        if constexpr (device_denoiser<Net, T>)
            m_runner.enqueue("ddpm::cuda::ddpm_sampler::sample", net, x, options, stream, pred_x0);
    }

    /// Captures sample(...) on `stream` (not the legacy default stream) into a
    /// graph; replay it with graph::launch. The graph keeps x, pred_x0, the
    /// options and this sampler's buffers: keep the sampler alive.
    template <class Net>
    [[nodiscard]] graph capture(Net&& net, T* x, const sampling_options& options, cudaStream_t stream,
                                T* pred_x0 = nullptr) {
        return graph::capture(stream, [&](cudaStream_t s) { sample(net, x, options, s, pred_x0); });
    }

    [[nodiscard]] std::size_t num_steps() const noexcept { return m_runner.steps(); }
    [[nodiscard]] std::int64_t batch() const noexcept { return m_runner.batch(); }
    [[nodiscard]] std::int64_t dim() const noexcept { return m_runner.dim(); }
    /// The timesteps the network is called with, in chain order.
    [[nodiscard]] std::span<const timestep_t> timesteps() const noexcept { return m_runner.timesteps(); }
    /// The per-step records on the device (num_steps() entries).
    [[nodiscard]] const record_type* device_records() const noexcept { return m_runner.device_records(); }
    /// The device buffer the network writes (B·D, or B·2D with a learned variance).
    [[nodiscard]] T* model_output() noexcept { return m_runner.model_output(); }

private:
    static std::vector<record_type> records_of(const ddpm_scheduler<compute_type>& s) {
        return kernels::grid::ddpm_chain_records(s);
    }

    detail::chain_runner<T, kernels::scalar::reverse_coefficients<compute_type>> m_runner;
};

/// DDIM sampling (Song et al. 2021) of a ddim_scheduler's chain on the device
/// (after set_timesteps: its timesteps, previous-timestep rule, η,
/// set_alpha_to_one, use_clipped_model_output, clipping). η = 0 is
/// deterministic after x_T.
template <storage_type T>
class ddim_sampler {
public:
    using compute_type = compute_t<T>;
    using record_type = ddim_record<T>;

    /// As ddpm_sampler's constructor (copies on `stream`, waited for).
    /// @throws ddpm::invalid_argument before set_timesteps, or on a bad shape.
    ddim_sampler(const ddim_scheduler<compute_type>& scheduler, std::int64_t batch, std::int64_t dim,
                 cudaStream_t stream = nullptr)
        : m_runner("ddpm::cuda::ddim_sampler", kernels::grid::ddim_chain_records(scheduler), scheduler.timesteps(),
                   scheduler.options(), sigma_mode::fixed, batch, dim, stream) {}

    /// As ddpm_sampler::sample.
    template <class Net>
    void sample(Net&& net, T* x, const sampling_options& options = {}, cudaStream_t stream = nullptr,
                T* pred_x0 = nullptr) {
        detail::check_net<Net, T>();
        if constexpr (device_denoiser<Net, T>)
            m_runner.enqueue("ddpm::cuda::ddim_sampler::sample", net, x, options, stream, pred_x0);
    }

    /// As ddpm_sampler::capture.
    template <class Net>
    [[nodiscard]] graph capture(Net&& net, T* x, const sampling_options& options, cudaStream_t stream,
                                T* pred_x0 = nullptr) {
        return graph::capture(stream, [&](cudaStream_t s) { sample(net, x, options, s, pred_x0); });
    }

    [[nodiscard]] std::size_t num_steps() const noexcept { return m_runner.steps(); }
    [[nodiscard]] std::int64_t batch() const noexcept { return m_runner.batch(); }
    [[nodiscard]] std::int64_t dim() const noexcept { return m_runner.dim(); }
    [[nodiscard]] std::span<const timestep_t> timesteps() const noexcept { return m_runner.timesteps(); }
    [[nodiscard]] const record_type* device_records() const noexcept { return m_runner.device_records(); }
    [[nodiscard]] T* model_output() noexcept { return m_runner.model_output(); }

private:
    detail::chain_runner<T, kernels::scalar::ddim_coefficients<compute_type>> m_runner;
};

} // namespace ddpm::cuda
