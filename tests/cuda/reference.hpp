// tests/cuda/reference.hpp — CPU references and a host "grid" for the CUDA
// tests. Plain C++ (no CUDA): test_cuda_host.cpp compiles it with g++, the
// .cu tests with nvcc's host compiler.
//
//   * run_*_grid: every thread of a CUDA kernel's grid, run sequentially on
//     the host with the very per-thread bodies the kernels call
//     (kernels/grid_threads.hpp) — the kernels' logic minus the launch.
//   * counter_noise: a CPU noise source (samplers/noise.hpp's NoiseSource)
//     drawing the per-element normals of stream v2 (random::normal_at_v2,
//     the default) or v1 (random::normal_at) per sample, step = the chain
//     step — the numbering the CUDA samplers use — so a CPU ddpm::sample
//     with it draws what the GPU draws.
//   * reference_row: one row of a noise fill, element by element.
//   * toy_model: the element-wise network of tests/data/*_step.json.
#pragma once

#include <ddpm/core/clipping.hpp>
#include <ddpm/core/p_mean_variance.hpp>
#include <ddpm/cuda/host_records.hpp>
#include <ddpm/kernels/grid_threads.hpp>
#include <ddpm/kernels/quantile_scalar.hpp>
#include <ddpm/random/counter_noise.hpp>
#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <vector>

namespace ddpm_cuda_test {

namespace grid = ddpm::kernels::grid;
namespace ks = ddpm::kernels::scalar;

// ---------------------------------------------------------------------------
// The host grid.

template <class T>
void run_fill_grid(const grid::fill_args<T>& a) {
    const std::int64_t chunks = grid::fill_chunks(a.element_offset, a.dim);
    for (std::int64_t b = 0; b < a.batch; ++b)
        for (std::int64_t q = 0; q < chunks; ++q) grid::fill_thread(a, b, q);
}

/// The launcher's choice: the vector path when D % 64 == 0 (host vectors are aligned enough
/// only by luck, so the host grid takes `vector_path` from the caller).
template <class T>
void run_forward_grid(const grid::forward_args<T>& a, bool vector_path) {
    if (vector_path) {
        const std::int64_t chunks = grid::thread_chunks<4>(a.dim);
        for (std::int64_t b = 0; b < a.batch; ++b)
            for (std::int64_t q = 0; q < chunks; ++q) grid::forward_thread<4, true>(a, b, q);
    } else {
        const std::int64_t chunks = grid::thread_chunks<1>(a.dim);
        for (std::int64_t b = 0; b < a.batch; ++b)
            for (std::int64_t q = 0; q < chunks; ++q) grid::forward_thread<1, false>(a, b, q);
    }
}

template <class T, class Coef>
void run_reverse_grid(const grid::reverse_args<T, Coef>& a, bool vector_path) {
    if (vector_path) {
        const std::int64_t chunks = grid::thread_chunks<4>(a.dim);
        for (std::int64_t b = 0; b < a.batch; ++b)
            for (std::int64_t q = 0; q < chunks; ++q) grid::reverse_thread<4, true>(a, b, q);
    } else {
        const std::int64_t chunks = grid::thread_chunks<1>(a.dim);
        for (std::int64_t b = 0; b < a.batch; ++b)
            for (std::int64_t q = 0; q < chunks; ++q) grid::reverse_thread<1, false>(a, b, q);
    }
}

/// The threshold kernel's result, by the sequential radix selection.
template <class T, class Coef>
void run_threshold_reference(const grid::threshold_args<T, Coef>& a) {
    using C = grid::compute_t<T>;
    for (std::int64_t b = 0; b < a.batch; ++b) {
        const Coef c = a.records[b * a.record_stride].coef;
        const C q = ks::radix_quantile_reference<C>(
            static_cast<std::uint64_t>(a.dim), [&](std::uint64_t i) { return grid::x0_at(a, c, b, static_cast<std::int64_t>(i)); },
            a.position);
        a.thresholds[b] = ks::threshold_scale(q, a.max_value);
    }
}

// ---------------------------------------------------------------------------
// CPU references.

/// samplers/noise.hpp NoiseSource over the counter stream: sample b of a fill
/// is row b (first_sample + b), the step is the chain step — what
/// ddpm::counter_noise draws, but through a buffer (the CPU samplers' generic
/// path rather than their fused one), as an independent reference.
/// Elements [offset, offset + dim) of sample `sample` (of offset + dim
/// elements) of a fill, element by element: uniform_at, normal_at (stream v1)
/// or normal_at_v2 (stream v2).
inline std::vector<float> reference_row(std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                                        std::uint64_t offset, std::size_t dim, bool uniform,
                                        ddpm::random::noise_version version) {
    std::vector<float> row(dim);
    for (std::size_t k = 0; k < dim; ++k) {
        const std::uint64_t e = offset + k;
        row[k] = uniform ? ddpm::random::uniform_at(seed, sample, step, e)
                 : version == ddpm::random::noise_version::v1
                     ? ddpm::random::normal_at(seed, sample, step, e)
                     : ddpm::random::normal_at_v2(seed, sample, step, e, offset + dim);
    }
    return row;
}

/// One row of a fill (see grid::fill_args): the scalar fills for uniforms
/// and stream v1, reference_row for stream v2.
inline std::vector<float> fill_reference(std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                                         std::uint64_t offset, std::size_t dim, bool uniform,
                                         ddpm::random::noise_version version) {
    std::vector<float> ref(dim);
    if (uniform) ddpm::random::fill_uniform_scalar(ref, seed, sample, step, offset);
    else if (version == ddpm::random::noise_version::v1) ddpm::random::fill_normal_scalar(ref, seed, sample, step, offset);
    else ref = reference_row(seed, sample, step, offset, dim, false, version);
    return ref;
}

template <class T>
struct counter_noise {
    std::uint64_t seed = 0;
    std::size_t dim = 1;
    std::uint32_t first_sample = 0;
    ddpm::random::noise_version version = ddpm::random::noise_version::v2;

    void fill(std::span<T> out, std::uint64_t step) const {
        const std::size_t rows = out.size() / dim;
        for (std::size_t b = 0; b < rows; ++b) {
            const auto row = reference_row(seed, static_cast<std::uint32_t>(first_sample + b),
                                           static_cast<std::uint32_t>(step), 0, dim, false, version);
            for (std::size_t k = 0; k < dim; ++k) out[b * dim + k] = static_cast<T>(row[k]);
        }
    }
};

/// B·D normals of one step: row b = normal_at_v2(seed, first_sample + b, step, ·, dim)
/// (normal_at in stream v1).
template <class T>
std::vector<T> normals(std::uint64_t seed, std::uint32_t first_sample, std::uint32_t step, std::size_t batch,
                       std::size_t dim, ddpm::random::noise_version version = ddpm::random::noise_version::v2) {
    std::vector<T> z(batch * dim);
    counter_noise<T>{seed, dim, first_sample, version}.fill(std::span<T>(z), step);
    return z;
}

/// The toy network of tests/data/*_step.json: tanh(0.7x)(0.5 + t/1000) + 0.05x,
/// plus (learned variance) a variance channel: 0.3 sin(x) for learned_range, a
/// positive 0.02(1.5 + sin x) for learned (σ² or log σ²).
template <class T>
struct toy_model {
    ddpm::variance_type variance = ddpm::variance_type::fixed_small;
    void operator()(std::span<const T> x, std::span<const ddpm::timestep_t> t, std::span<T> out) const {
        const std::size_t batch = t.size();
        const std::size_t dim = x.size() / batch;
        const bool learned = ddpm::is_learned(variance);
        const std::size_t stride = (learned ? 2 : 1) * dim;
        for (std::size_t b = 0; b < batch; ++b) {
            const T scale = T(0.5) + static_cast<T>(t[b]) / T(1000);
            for (std::size_t i = 0; i < dim; ++i) {
                const T v = x[b * dim + i];
                out[b * stride + i] = std::tanh(T(0.7) * v) * scale + T(0.05) * v;
                if (learned)
                    out[b * stride + dim + i] = variance == ddpm::variance_type::learned_range
                                                    ? T(0.3) * std::sin(v)
                                                    : T(0.02) * (T(1.5) + std::sin(v));
            }
        }
    }
};

/// One DDIM step on the CPU from the element functions and core's clipping:
/// x̂_0, apply_clipping (torch.quantile thresholding), ε̂, x_prev.
template <class T>
void cpu_ddim_step(std::span<const ks::ddim_coefficients<T>> coef, const ddpm::clip_options& clip,
                   std::span<const T> out, std::size_t out_stride, std::span<const T> xt, std::span<const T> z,
                   std::span<T> x_prev, std::span<T> x0) {
    const std::size_t batch = coef.size();
    const std::size_t dim = xt.size() / batch;
    for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t i = 0; i < dim; ++i)
            x0[b * dim + i] = ks::ddim_x0(coef[b], xt[b * dim + i], out[b * out_stride + i]);
    std::vector<T> scratch(2 * dim);
    ddpm::apply_clipping<T>(clip, x0, dim, scratch);
    for (std::size_t b = 0; b < batch; ++b) {
        const bool noisy = !z.empty() && coef[b].sigma != T(0);
        for (std::size_t i = 0; i < dim; ++i) {
            const std::size_t k = b * dim + i;
            const T eps = ks::ddim_eps(coef[b], xt[k], out[b * out_stride + i], x0[k]);
            x_prev[k] = ks::ddim_prev(coef[b], x0[k], eps, noisy ? z[k] : T(0));
        }
    }
}

/// A whole chain as the CUDA samplers run it, on the host grid: x_T drawn with
/// step 0, then per record i: the network on the batch at timesteps[i], the
/// thresholds (dynamic thresholding), the reverse threads in place with one
/// record for the batch. `x` (B·D) receives x_0.
template <class T, class Coef, class Model>
void simulate_chain(const std::vector<grid::step_record<Coef>>& records, std::span<const ddpm::timestep_t> timesteps,
                    const ddpm::model_options& opt, grid::sigma_mode sigma, std::size_t batch, std::size_t dim,
                    std::uint64_t seed, std::uint32_t first_sample, Model&& model, bool vector_path,
                    std::vector<T>& x) {
    x.assign(batch * dim, T(0));
    grid::fill_args<T> f;
    f.out = x.data();
    f.batch = static_cast<std::int64_t>(batch);
    f.dim = static_cast<std::int64_t>(dim);
    f.seed = seed;
    f.step = 0;
    f.first_sample = first_sample;
    run_fill_grid(f);
    const std::size_t stride = (ddpm::is_learned(opt.variance) ? 2 : 1) * dim;
    std::vector<T> out(batch * stride), th(batch);
    for (std::size_t i = 0; i < records.size(); ++i) {
        const std::vector<ddpm::timestep_t> ts(batch, timesteps[i]);
        model(std::span<const T>(x), std::span<const ddpm::timestep_t>(ts), std::span<T>(out));
        if (opt.clip.kind == ddpm::clip_options::mode::dynamic_threshold) {
            grid::threshold_args<T, Coef> ta;
            ta.model_output = out.data();
            ta.xt = x.data();
            ta.records = records.data() + i;
            ta.record_stride = 0;
            ta.batch = static_cast<std::int64_t>(batch);
            ta.dim = static_cast<std::int64_t>(dim);
            ta.out_stride = static_cast<std::int64_t>(stride);
            ta.position = ks::quantile_rank<T>(static_cast<T>(opt.clip.dynamic_thresholding_ratio), dim);
            ta.max_value = static_cast<T>(opt.clip.sample_max_value);
            ta.thresholds = th.data();
            run_threshold_reference(ta);
        }
        grid::reverse_args<T, Coef> a;
        a.model_output = out.data();
        a.xt = x.data();
        a.x_prev = x.data();
        a.records = records.data() + i;
        a.record_stride = 0;
        a.clip = opt.clip.kind == ddpm::clip_options::mode::none
                     ? grid::clip_mode::none
                     : (opt.clip.kind == ddpm::clip_options::mode::clip ? grid::clip_mode::clip : grid::clip_mode::dynamic);
        a.clip_range = static_cast<T>(opt.clip.clip_range);
        a.thresholds = th.data();
        a.sigma = sigma;
        a.batch = static_cast<std::int64_t>(batch);
        a.dim = static_cast<std::int64_t>(dim);
        a.out_stride = static_cast<std::int64_t>(stride);
        a.seed = seed;
        a.first_sample = first_sample;
        run_reverse_grid(a, vector_path);
    }
}

// ---------------------------------------------------------------------------
// Comparisons.

/// Distance in units in the last place (0 for equal values, both NaN, or ±0).
template <class T>
std::uint64_t ulp_distance(T a, T b) {
    if (a == b || (std::isnan(a) && std::isnan(b))) return 0;
    if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<std::uint64_t>::max();
    using U = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
    auto ordered = [](T v) {
        const U i = std::bit_cast<U>(v);
        return i < 0 ? static_cast<std::int64_t>(std::numeric_limits<U>::min()) - static_cast<std::int64_t>(i)
                     : static_cast<std::int64_t>(i);
    };
    const std::int64_t d = ordered(a) - ordered(b);
    return static_cast<std::uint64_t>(d < 0 ? -d : d);
}

template <class T>
std::uint64_t max_ulp(std::span<const T> a, std::span<const T> b) {
    std::uint64_t m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, ulp_distance(a[i], b[i]));
    return m;
}

/// max |a − b| / max(|b|, floor).
template <class A, class B>
double max_rel(std::span<const A> a, std::span<const B> b, double floor = 1.0) {
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double x = static_cast<double>(a[i]);
        const double y = static_cast<double>(b[i]);
        if (std::isnan(x) || std::isnan(y)) {
            if (!(std::isnan(x) && std::isnan(y))) return std::numeric_limits<double>::infinity();
            continue;
        }
        m = std::max(m, std::abs(x - y) / std::max(std::abs(y), floor));
    }
    return m;
}

} // namespace ddpm_cuda_test
