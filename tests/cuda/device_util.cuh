// tests/cuda/device_util.cuh — helpers shared by the .cu tests: storage
// conversions, host ↔ device copies, a CUDA version of the toy network, and
// rounding-aware comparisons.
#pragma once

#include <ddpm/cuda.cuh>

#include "cuda_harness.hpp"
#include "reference.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

namespace ddpm_cuda_test {

template <class T>
using compute = ddpm::kernels::grid::compute_t<T>;

/// Storage value of a compute value (round to nearest even for 16-bit types).
template <class T, class C>
T to_storage(C v) {
    return ddpm::kernels::grid::storage_traits<T>::store(static_cast<compute<T>>(v));
}
template <class T>
auto to_compute(T v) { // `auto`: no storage_traits<std::vector<…>> while overloads are compared
    return ddpm::kernels::grid::storage_traits<T>::load(v);
}

template <class T, class C>
std::vector<T> to_storage(const std::vector<C>& v) {
    std::vector<T> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) out[i] = to_storage<T>(v[i]);
    return out;
}
template <class T>
std::vector<compute<T>> to_compute(const std::vector<T>& v) {
    std::vector<compute<T>> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) out[i] = to_compute(v[i]);
    return out;
}

template <class T>
ddpm::cuda::device_buffer<T> to_device(const std::vector<T>& v) {
    ddpm::cuda::device_buffer<T> d(v.size());
    d.upload(v);
    return d;
}

template <class T>
std::vector<T> to_host(const ddpm::cuda::device_buffer<T>& d) {
    return d.to_host();
}

/// Fills a device buffer with NaN (0xFF bytes: a NaN in every storage type) so that unwritten elements show.
/// Waits for the fill (a plain cudaMemset on the legacy stream would race work on a non-blocking stream).
template <class T>
void poison(ddpm::cuda::device_buffer<T>& d, cudaStream_t stream = nullptr) {
    d.fill_bytes(0xFF, stream);
}

template <class T>
bool bitwise_equal(std::span<const T> a, std::span<const T> b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

/// Unit roundoff of the storage type.
template <class T>
constexpr double unit_roundoff() {
    if constexpr (std::is_same_v<T, double>) return 0x1p-53;
    else if constexpr (std::is_same_v<T, float>) return 0x1p-24;
    else if constexpr (std::is_same_v<T, __half>) return 0x1p-11;
    else return 0x1p-8; // __nv_bfloat16
}

/// max over i of |got − ref| / (scale_i·u), scale_i = max(|ref|, floor): how
/// many units of roundoff apart the results are.
template <class T>
double roundoffs(std::span<const T> got, std::span<const double> ref, double floor = 1.0) {
    double worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double g = static_cast<double>(to_compute(got[i]));
        const double r = ref[i];
        if (std::isnan(g) || std::isnan(r)) {
            if (!(std::isnan(g) && std::isnan(r))) return std::numeric_limits<double>::infinity();
            continue;
        }
        worst = std::max(worst, std::abs(g - r) / (std::max(std::abs(r), floor) * unit_roundoff<T>()));
    }
    return worst;
}

template <class V>
std::vector<double> widen(const std::vector<V>& v) {
    std::vector<double> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) out[i] = static_cast<double>(v[i]);
    return out;
}

// ---------------------------------------------------------------------------
// The toy network on the device (reference.hpp's toy_model, in the compute type).

template <class T>
__global__ void toy_model_kernel(const T* x, const ddpm::timestep_t* t, T* out, int B, int D, int variance_kind) {
    using C = compute<T>;
    using S = ddpm::kernels::grid::storage_traits<T>;
    const std::int64_t n = static_cast<std::int64_t>(B) * D;
    const std::int64_t stride = (variance_kind == 0 ? 1 : 2) * static_cast<std::int64_t>(D);
    for (std::int64_t k = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; k < n;
         k += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
        const std::int64_t b = k / D, i = k % D;
        const C v = S::load(x[k]);
        const C scale = C(0.5) + static_cast<C>(t[b]) / C(1000);
        out[b * stride + i] = S::store(tanh(C(0.7) * v) * scale + C(0.05) * v);
        if (variance_kind == 1) out[b * stride + D + i] = S::store(C(0.3) * sin(v));
        if (variance_kind == 2) out[b * stride + D + i] = S::store(C(0.02) * (C(1.5) + sin(v)));
    }
}

/// The device network callable: net(x, t, out, B, D, stream).
template <class T>
struct toy_net {
    ddpm::variance_type variance = ddpm::variance_type::fixed_small;
    void operator()(const T* x, const ddpm::timestep_t* t, T* out, int B, int D, cudaStream_t stream) const {
        const int kind = variance == ddpm::variance_type::learned_range ? 1
                         : variance == ddpm::variance_type::learned    ? 2
                                                                       : 0;
        const std::int64_t n = static_cast<std::int64_t>(B) * D;
        const int blocks = static_cast<int>(std::min<std::int64_t>((n + 255) / 256, 4096));
        toy_model_kernel<T><<<blocks, 256, 0, stream>>>(x, t, out, B, D, kind);
        DDPM_CUDA_CHECK(cudaGetLastError());
    }
};

} // namespace ddpm_cuda_test
