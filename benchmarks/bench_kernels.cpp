// Benchmarks of the fused CPU kernels and the normal generator:
// scalar reference vs SIMD vs SIMD on 2 threads, at 196,608 (a 3×256×256
// image) and 3,145,728 (a 3×1024×1024 image) float elements, and SIMD at
// 16,777,216 (64 MiB per buffer, far past the caches). Buffers are plain
// std::vector<float>, as users pass them (not aligned to 64 bytes).
//
//   ./build/benchmarks/bench_kernels --benchmark_counters_tabular=true
//
// items/s counts elements; bytes/s counts the bytes each kernel must read and
// write (noise drawn in registers counts as written when the kernel stores it):
// bench_roofline times plain loops with the same streams, and
// benchmarks/compare_pytorch.py divides the two.
#include <benchmark/benchmark.h>

#include <ddpm/core/coefficients.hpp>
#include <ddpm/kernels/fused.hpp>
#include <ddpm/random/counter_noise.hpp>

#include <cmath>
#include <initializer_list>
#include <string>
#include <vector>

namespace {

using ddpm::kernels::backend;

constexpr std::int64_t small_n = 196'608;
constexpr std::int64_t large_n = 3'145'728;
constexpr std::int64_t dram_n = 16'777'216;
constexpr std::int64_t cache_n = 16'384; // the generator alone, in cache: its ceiling

std::vector<float> gaussian(std::size_t n, std::uint64_t seed) {
    std::vector<float> v(n);
    ddpm::random::fill_normal(v, seed, 0, 0, 0); // fast: 2^24-element inputs would take seconds with <random>
    return v;
}

// diffusers' linear schedule (T = 1000) in float32, as compare_pytorch.py builds it.
float alpha_bar(int t) {
    float a = 1.0f;
    for (int s = 0; s <= t; ++s) a *= 1.0f - (1e-4f + (0.02f - 1e-4f) * float(s) / 999.0f);
    return a;
}

backend backend_of(std::int64_t v) { return v == 0 ? backend::scalar : backend::simd; }

void label(benchmark::State& state) {
    const auto bk = state.range(1) == 0 ? "scalar" : "simd";
    state.SetLabel(std::string(bk) + "/threads:" + std::to_string(state.range(2)));
#if DDPM_HAS_XSIMD
    state.counters["simd_width"] = double(xsimd::batch<float>::size); // compile-time width
#endif
    // The instruction set run-time dispatch picked (0 baseline = compile-time code, 1 AVX2, 2 AVX-512).
    state.counters["dispatch_isa"] =
        double(static_cast<int>(ddpm::dispatch::active<ddpm::kernels::detail::kernel_table<float>>()));
}

void normal_generator(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const backend bk = backend_of(state.range(1));
    const ddpm::execution exec{static_cast<unsigned>(state.range(2))};
    std::vector<float> out(n);
    std::uint32_t step = 0;
    const std::size_t half = (n / 2) / 64 * 64;
    for (auto _ : state) {
        // Split at a group boundary; each half is a fixed element range.
        ddpm::parallel_for(exec, 2, [&](std::size_t k) {
            const std::size_t first = k == 0 ? 0 : half, count = k == 0 ? half : n - half;
            const std::span<float> part(out.data() + first, count);
            if (bk == backend::scalar) ddpm::random::fill_normal_scalar(part, 42, 0, step, first);
            else ddpm::random::fill_normal(part, 42, 0, step, first);
        });
        ++step;
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
    state.SetBytesProcessed(state.iterations() * state.range(0) * 4);
    label(state);
}

void forward_noise(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const backend bk = backend_of(state.range(1));
    const ddpm::execution exec{static_cast<unsigned>(state.range(2))};
    const auto x0 = gaussian(n, 1);
    const std::vector<float> a{0.7f}, b{0.71414284f};
    std::vector<float> xt(n), eps(n);
    std::uint32_t step = 0;
    for (auto _ : state) {
        ddpm::kernels::forward_noise<float>(x0, a, b, ddpm::kernels::noise_stream{42, step++, 0}, xt, eps, exec, bk);
        benchmark::DoNotOptimize(xt.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
    state.SetBytesProcessed(state.iterations() * state.range(0) * 12); // read x0, write x_t and ε
    label(state);
}

void ddpm_step(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const backend bk = backend_of(state.range(1));
    const ddpm::execution exec{static_cast<unsigned>(state.range(2))};
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const std::vector<ddpm::reverse_coefficients<float>> coefs{ddpm::reverse_step_coefficients<float>(
        s, 500, 499, ddpm::prediction_type::epsilon, ddpm::variance_type::fixed_small)};
    const std::vector<ddpm::kernels::x0_clip<float>> clips{{true, 1.0f, 1.0f}};
    const auto out = gaussian(n, 2), xt = gaussian(n, 3);
    const bool with_x0 = state.range(3) != 0; // x̂_0 stored too (what ddpm::sample asks when x̂_0 is read)
    std::vector<float> prev(n), x0(with_x0 ? n : 0);
    std::uint32_t step = 0;
    for (auto _ : state) {
        ddpm::kernels::ddpm_step<float>(coefs, clips, ddpm::kernels::step_variance::fixed, out, xt,
                                        ddpm::kernels::step_noise<float>::from(ddpm::kernels::noise_stream{42, step++, 0}),
                                        prev, x0, exec, bk);
        benchmark::DoNotOptimize(prev.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
    // read output and x_t, write x_prev (and x̂_0)
    state.SetBytesProcessed(state.iterations() * state.range(0) * (with_x0 ? 16 : 12));
    label(state);
}

void ddim_step(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const backend bk = backend_of(state.range(1));
    const ddpm::execution exec{static_cast<unsigned>(state.range(2))};
    // DDIMScheduler.step, ε-prediction, t = 999 → 979 (50 steps), clip_sample, η = range(4).
    const float a = alpha_bar(999), a_prev = alpha_bar(979), eta = float(state.range(4));
    const float sigma = eta * std::sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev));
    const ddpm::kernels::ddim_coefficients<float> c{ddpm::kernels::x0_form::divide, std::sqrt(a), std::sqrt(1 - a),
                                                    ddpm::kernels::eps_form::model_output, 0, 1, 0, std::sqrt(a_prev),
                                                    std::sqrt(1 - a_prev - sigma * sigma), sigma};
    const std::vector<ddpm::kernels::ddim_coefficients<float>> coefs{c};
    const std::vector<ddpm::kernels::x0_clip<float>> clips{{true, 1.0f, 1.0f}};
    const auto out = gaussian(n, 4), xt = gaussian(n, 5);
    const bool with_x0 = state.range(3) != 0;
    std::vector<float> prev(n), x0(with_x0 ? n : 0);
    std::uint32_t step = 0;
    for (auto _ : state) {
        ddpm::kernels::ddim_step<float>(coefs, clips, out, xt,
                                        ddpm::kernels::step_noise<float>::from(ddpm::kernels::noise_stream{42, step++, 0}),
                                        prev, x0, exec, bk);
        benchmark::DoNotOptimize(prev.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
    state.SetBytesProcessed(state.iterations() * state.range(0) * (with_x0 ? 16 : 12));
    label(state);
}

void weighted_mse(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const backend bk = backend_of(state.range(1));
    const ddpm::execution exec{static_cast<unsigned>(state.range(2))};
    constexpr std::size_t batch = 8;
    const auto p = gaussian(n, 6), q = gaussian(n, 7);
    const std::vector<float> w(batch, 1.0f);
    std::vector<float> out(batch);
    for (auto _ : state) {
        ddpm::kernels::weighted_mse<float>(p, q, w, batch, out, exec, bk);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
    state.SetBytesProcessed(state.iterations() * state.range(0) * 8);
    label(state);
}

// Arguments: n, simd (0 = scalar reference), threads, then `extra` (e.g. x0, eta).
void args(benchmark::internal::Benchmark* b, std::initializer_list<std::int64_t> ns, bool dram,
          std::initializer_list<std::vector<std::int64_t>> extra, std::vector<std::string> names) {
    for (const auto& e : extra) {
        for (const std::int64_t n : ns) {
            std::vector<std::vector<std::int64_t>> rows{{n, 0, 1}, {n, 1, 1}, {n, 1, 2}}; // scalar, SIMD 1 and 2 threads
            for (auto& r : rows) {
                r.insert(r.end(), e.begin(), e.end());
                b->Args(r);
            }
        }
        if (dram) // SIMD only: the scalar reference takes seconds per call at 2^24
            for (const std::int64_t t : {1, 2}) {
                std::vector<std::int64_t> r{dram_n, 1, t};
                r.insert(r.end(), e.begin(), e.end());
                b->Args(r);
            }
    }
    names.insert(names.begin(), {"n", "simd", "threads"});
    b->ArgNames(names)->Unit(benchmark::kMicrosecond)->UseRealTime();
}

} // namespace

BENCHMARK(normal_generator)->Apply([](auto* b) { args(b, {cache_n, small_n, large_n}, true, {{}}, {}); });
BENCHMARK(forward_noise)->Apply([](auto* b) { args(b, {small_n, large_n}, true, {{}}, {}); });
BENCHMARK(ddpm_step)->Apply([](auto* b) { args(b, {small_n, large_n}, true, {{0}, {1}}, {"x0"}); });
BENCHMARK(ddim_step)->Apply([](auto* b) { args(b, {small_n, large_n}, true, {{0, 1}, {1, 1}, {0, 0}, {1, 0}}, {"x0", "eta"}); });
BENCHMARK(weighted_mse)->Apply([](auto* b) { args(b, {small_n, large_n}, false, {{}}, {}); });
