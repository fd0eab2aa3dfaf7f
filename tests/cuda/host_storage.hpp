// tests/cuda/host_storage.hpp — IEEE binary16 and bfloat16 storage on the
// host, so that the 16-bit instantiations of the kernels' per-thread code
// (kernels/grid_threads.hpp) run in the CPU suite without nvcc.
//
// host_half and host_bfloat16 are 16 bits each; their storage_traits read
// into float exactly and round to nearest even on store — what
// __half2float / __float2half_rn and __bfloat162float / __float2bfloat16_rn
// do on the device (test_cuda_host_storage compares them with the CUDA
// headers' host implementations when nvcc is available). NaN stays NaN.
#pragma once

#include <ddpm/config.hpp>
#include <ddpm/kernels/grid_threads.hpp>

#include <bit>
#include <cstdint>

namespace ddpm_cuda_test {

struct host_half {
    std::uint16_t bits = 0;
};
struct host_bfloat16 {
    std::uint16_t bits = 0;
};

/// binary16 → float (exact).
[[nodiscard]] inline float half_to_float(std::uint16_t h) noexcept {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t e = (h >> 10) & 0x1fu;
    const std::uint32_t m = h & 0x3ffu;
    if (e == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13)); // inf, NaN
    if (e == 0) {                                                                // zero, subnormal: m·2^-24
        const float v = static_cast<float>(m) * 0x1p-24f;
        return sign != 0 ? -v : v;
    }
    return std::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
}

/// float → binary16, round to nearest even (overflow to ±inf, NaN stays NaN).
[[nodiscard]] inline std::uint16_t float_to_half(float f) noexcept {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
    const std::uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u); // NaN
    if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u); // ≥ 65520 rounds to inf
    if (a >= 0x38800000u) {                                                  // normal: ≥ 2^-14
        std::uint32_t r = (a >> 13) - (112u << 10);
        const std::uint32_t rest = a & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (r & 1u) != 0)) ++r;
        return static_cast<std::uint16_t>(sign | r);
    }
    // Subnormal result: round(|f|·2^24) with |f| = m·2^(e − 150).
    const std::uint32_t e = a >> 23;
    const std::uint32_t shift = 126u - e; // ≥ 14
    if (e == 0 || shift > 24) return sign; // below 2^-25: rounds to ±0
    const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;
    std::uint32_t r = m >> shift;
    const std::uint32_t rest = m & ((1u << shift) - 1u);
    const std::uint32_t halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (r & 1u) != 0)) ++r;
    return static_cast<std::uint16_t>(sign | r);
}

/// bfloat16 → float (exact).
[[nodiscard]] inline float bfloat16_to_float(std::uint16_t b) noexcept {
    return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

/// float → bfloat16, round to nearest even (NaN stays NaN).
[[nodiscard]] inline std::uint16_t float_to_bfloat16(float f) noexcept {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
    return static_cast<std::uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

} // namespace ddpm_cuda_test

namespace ddpm::kernels::grid {

template <>
struct storage_traits<ddpm_cuda_test::host_half> {
    using compute_type = float;
    static float load(ddpm_cuda_test::host_half v) noexcept { return ddpm_cuda_test::half_to_float(v.bits); }
    static ddpm_cuda_test::host_half store(float v) noexcept { return {ddpm_cuda_test::float_to_half(v)}; }
};

template <>
struct storage_traits<ddpm_cuda_test::host_bfloat16> {
    using compute_type = float;
    static float load(ddpm_cuda_test::host_bfloat16 v) noexcept { return ddpm_cuda_test::bfloat16_to_float(v.bits); }
    static ddpm_cuda_test::host_bfloat16 store(float v) noexcept { return {ddpm_cuda_test::float_to_bfloat16(v)}; }
};

} // namespace ddpm::kernels::grid
