// ddpm/cuda/schedule.cuh — a noise schedule's tables resident on the device.
//
// device_schedule uploads, once, every table of the float64 and float32 views
// of a ddpm::noise_schedule (schedule_tables' 15 tables, in its for_each
// order) plus the two coefficients the forward process uses in each precision,
// and owns a device error word that kernels raise when they meet a timestep
// outside [0, T). Kernels receive device_tables<C>, a plain struct of device
// pointers, by value.
#pragma once

#if !defined(__CUDACC__)
#error "ddpm/cuda/*.cuh must be compiled by nvcc (a .cu file). Host-only code uses the .hpp headers."
#endif

#include "ddpm/cuda/error.cuh"
#include "ddpm/cuda/memory.cuh"
#include "ddpm/cuda/host_records.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace ddpm::cuda {

/// Device pointers to every table of one precision (each `size` entries,
/// indexed by the 0-based timestep). Names as in ddpm::schedule_tables.
template <class C>
struct device_tables {
    const C* betas = nullptr;
    const C* alphas = nullptr;
    const C* alphas_cumprod = nullptr;
    const C* alphas_cumprod_prev = nullptr;
    const C* alphas_cumprod_next = nullptr;
    const C* sqrt_alphas_cumprod = nullptr;
    const C* sqrt_one_minus_alphas_cumprod = nullptr;
    const C* log_one_minus_alphas_cumprod = nullptr;
    const C* sqrt_recip_alphas_cumprod = nullptr;
    const C* sqrt_recipm1_alphas_cumprod = nullptr;
    const C* posterior_variance = nullptr;
    const C* posterior_log_variance_clipped = nullptr;
    const C* posterior_mean_coef1 = nullptr;
    const C* posterior_mean_coef2 = nullptr;
    const C* snr = nullptr;
    /// The forward process's coefficients as ddpm::q_sample forms them in C:
    /// x_t = forward_a[t]·x_0 + forward_b[t]·ε (the √ᾱ tables; in the diffusers
    /// profile √ᾱ and √(1 − ᾱ) computed in C from ᾱ, as torch does).
    const C* forward_a = nullptr;
    const C* forward_b = nullptr;
    std::int64_t size = 0;
};

/// The tables of a noise_schedule on the device (RAII). Construction copies
/// on `stream` and waits for it, so the tables are on the device, for work on
/// any stream, when the constructor returns; it may throw ddpm::cuda_error.
/// Afterwards nothing here synchronises except check_errors().
class device_schedule {
public:
    static constexpr std::size_t table_count = 17; // schedule_tables' 15, then forward_a, forward_b

    explicit device_schedule(const noise_schedule& s, cudaStream_t stream = nullptr)
        : m_size(s.size()), m_profile(s.profile()), m_f32(pack<float>(s, stream)), m_f64(pack<double>(s, stream)),
          m_error(1) {
        m_error.fill_bytes(0, stream);
    }

    /// Number of training timesteps T.
    [[nodiscard]] std::int64_t size() const noexcept { return m_size; }
    [[nodiscard]] ddpm::profile profile() const noexcept { return m_profile; }

    /// The tables of precision C (float or double) as device pointers.
    template <class C>
    [[nodiscard]] device_tables<C> tables() const noexcept {
        static_assert(std::is_same_v<C, float> || std::is_same_v<C, double>,
                      "ddpm::cuda::device_schedule::tables<C>: C must be float or double");
        const C* base = nullptr;
        if constexpr (std::is_same_v<C, float>) base = m_f32.data();
        else base = m_f64.data();
        const auto n = static_cast<std::size_t>(m_size);
        device_tables<C> t;
        const C** fields[table_count] = {&t.betas,
                                         &t.alphas,
                                         &t.alphas_cumprod,
                                         &t.alphas_cumprod_prev,
                                         &t.alphas_cumprod_next,
                                         &t.sqrt_alphas_cumprod,
                                         &t.sqrt_one_minus_alphas_cumprod,
                                         &t.log_one_minus_alphas_cumprod,
                                         &t.sqrt_recip_alphas_cumprod,
                                         &t.sqrt_recipm1_alphas_cumprod,
                                         &t.posterior_variance,
                                         &t.posterior_log_variance_clipped,
                                         &t.posterior_mean_coef1,
                                         &t.posterior_mean_coef2,
                                         &t.snr,
                                         &t.forward_a,
                                         &t.forward_b};
        for (std::size_t k = 0; k < table_count; ++k) *fields[k] = base + k * n;
        t.size = m_size;
        return t;
    }

    /// The device error word kernels raise (kernels::grid::error_bad_timestep).
    [[nodiscard]] int* error_flag() const noexcept { return m_error.data(); }

    /// Reads and clears the error word on `stream` (after the work already
    /// there) and waits for it; throws ddpm::invalid_argument if a kernel saw a
    /// timestep outside [0, T) since the last check. (The kernels write NaN for
    /// such a sample's outputs.) Pass the stream the kernels ran on.
    void check_errors(cudaStream_t stream = nullptr) const {
        int flag = 0;
        DDPM_CUDA_CHECK(cudaMemcpyAsync(&flag, m_error.data(), sizeof(int), cudaMemcpyDeviceToHost, stream));
        DDPM_CUDA_CHECK(cudaMemsetAsync(m_error.data(), 0, sizeof(int), stream));
        DDPM_CUDA_CHECK(cudaStreamSynchronize(stream));
        if (flag != 0)
            ddpm::detail::throw_invalid("ddpm::cuda::device_schedule::check_errors", "timesteps", "(device)",
                                        "every timestep in [0, " + std::to_string(m_size) +
                                            ") (a kernel met one outside; its sample's outputs are NaN)");
    }

private:
    template <class C>
    static device_buffer<C> pack(const noise_schedule& s, cudaStream_t stream) {
        const auto n = static_cast<std::size_t>(s.size());
        std::vector<C> host;
        host.reserve(table_count * n);
        s.tables<C>().for_each([&](const char*, const std::vector<C>& v) { host.insert(host.end(), v.begin(), v.end()); });
        const auto f = kernels::grid::make_forward_tables<C>(s);
        host.insert(host.end(), f.a.begin(), f.a.end());
        host.insert(host.end(), f.b.begin(), f.b.end());
        return device_buffer<C>(std::span<const C>(host), stream);
    }

    std::int64_t m_size = 0;
    ddpm::profile m_profile = ddpm::profile::standard;
    device_buffer<float> m_f32;
    device_buffer<double> m_f64;
    mutable device_buffer<int> m_error;
};

} // namespace ddpm::cuda
