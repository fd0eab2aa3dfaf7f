// Cost per element against the sample size D at a fixed B·D = 2^16·3 =
// 196,608 elements (D = 2, 16, 64, 256, 3072: 2-D points, small policies,
// 8×8 patches, 3×32×32 images), for forward noising, the DDPM step, the
// DDIM step (η = 1) and the bare generator, every sample at the same timestep
// (the sampler's case); generator_v2 is the generator in noise stream v2
// (random::noise_version). The kernels run in both streams (the argument
// `v`: 1 or 2, the default). items_per_second counts elements, so
// 1/items_per_second is the cost per element; the target is D = 2 within 3×
// of D = 3072.
//
// A second family sweeps the batch size at D = 3072 on 1 and 2 threads: where
// two threads start to pay for their fork-join (see parallel.hpp). A third
// runs the DDPM-1000 loop (as bench_sampler, zero denoiser) at 1 and 2
// threads for several pool spin times (set_pool_spin_time, in µs; -1 = the
// default), to be run idle and next to a competing process.
//
//   ./build/benchmarks/bench_small_d --benchmark_filter=per_element
//   ./build/benchmarks/bench_small_d --benchmark_filter=threads_sweep
//   ./build/benchmarks/bench_small_d --benchmark_filter=loop
#include "bench_inputs.hpp"
#include <benchmark/benchmark.h>

#include <ddpm/core/coefficients.hpp>
#include <ddpm/ddpm.hpp>
#include <ddpm/kernels/fused.hpp>
#include <ddpm/random/counter_noise.hpp>

#include <algorithm>
#include <chrono>

#include <random>
#include <string>
#include <vector>

namespace {

constexpr std::int64_t elements = 196'608; // 2^16 · 3

using ddpm_bench::gaussian;

struct shape {
    std::size_t batch, dim, n;
    ddpm::execution exec;
    ddpm::random::noise_version version;
};

/// range(0) = D, range(1) = threads, range(2) = B·D, range(3) = noise stream version.
shape shape_of(const benchmark::State& state) {
    const auto dim = static_cast<std::size_t>(state.range(0));
    const auto n = static_cast<std::size_t>(state.range(2));
    return {n / dim, dim, n / dim * dim, ddpm::execution{static_cast<unsigned>(state.range(1))},
            static_cast<ddpm::random::noise_version>(state.range(3))};
}

/// The kernels' noise stream at `step` in the shape's version.
ddpm::kernels::noise_stream stream_of(const shape& sh, std::uint32_t step) {
    return {42, step, 0, sh.version};
}

void finish(benchmark::State& state, const shape& sh) {
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(sh.n));
    state.counters["ns_per_element"] = benchmark::Counter(
        static_cast<double>(sh.n) * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
    state.counters["dispatch_isa"] =
        double(static_cast<int>(ddpm::dispatch::active<ddpm::kernels::detail::kernel_table<float>>()));
}

void generator(benchmark::State& state) {
    const shape sh = shape_of(state);
    std::vector<float> out(sh.n);
    std::uint32_t step = 0;
    for (auto _ : state) {
#ifndef DDPM_BENCH_NO_FILL_ROWS
        ddpm::random::fill_normal_rows(out, sh.dim, 42, 0, step++);
#else // the per-row loop (before fill_normal_rows existed)
        for (std::size_t r = 0; r < sh.batch; ++r)
            ddpm::random::fill_normal(std::span<float>(out.data() + r * sh.dim, sh.dim), 42,
                                      static_cast<std::uint32_t>(r), step);
        ++step;
#endif
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    finish(state, sh);
}

#ifndef DDPM_BENCH_NO_FILL_ROWS
/// The generator in stream v2 (random::noise_version): v1 for whole 64-element
/// groups, a compact last partial group (one Philox block per 4 elements).
void generator_v2(benchmark::State& state) {
    const shape sh = shape_of(state);
    std::vector<float> out(sh.n);
    std::uint32_t step = 0;
    for (auto _ : state) {
        ddpm::random::fill_normal_rows(out, sh.dim, 42, 0, step++, ddpm::random::noise_version::v2);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    finish(state, sh);
}
#endif

void forward_noise(benchmark::State& state) {
    const shape sh = shape_of(state);
    const auto x0 = gaussian(sh.n, 1);
    const std::vector<float> a(sh.batch, 0.7f), b(sh.batch, 0.71414284f);
    std::vector<float> xt(sh.n), eps(sh.n);
    std::uint32_t step = 0;
    for (auto _ : state) {
        ddpm::kernels::forward_noise<float>(x0, a, b, stream_of(sh, step++), xt, eps, sh.exec);
        benchmark::DoNotOptimize(xt.data());
        benchmark::ClobberMemory();
    }
    finish(state, sh);
}

void ddpm_step(benchmark::State& state) {
    const shape sh = shape_of(state);
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const std::vector<ddpm::reverse_coefficients<float>> coefs(
        sh.batch,
        ddpm::reverse_step_coefficients<float>(s, 500, 499, ddpm::prediction_type::epsilon, ddpm::variance_type::fixed_small));
    const std::vector<ddpm::kernels::x0_clip<float>> clips(sh.batch, {true, 1.0f, 1.0f});
    const auto out = gaussian(sh.n, 2), xt = gaussian(sh.n, 3);
    std::vector<float> prev(sh.n);
    std::uint32_t step = 0;
    for (auto _ : state) {
        ddpm::kernels::ddpm_step<float>(coefs, clips, ddpm::kernels::step_variance::fixed, out, xt,
                                        ddpm::kernels::step_noise<float>::from(stream_of(sh, step++)),
                                        prev, {}, sh.exec);
        benchmark::DoNotOptimize(prev.data());
        benchmark::ClobberMemory();
    }
    finish(state, sh);
}

void ddim_step(benchmark::State& state) {
    const shape sh = shape_of(state);
    const ddpm::kernels::ddim_coefficients<float> c{ddpm::kernels::x0_form::multiply, 1.4f, 0.9f,
                                                   ddpm::kernels::eps_form::model_output, 0, 1, 0, 0.8f, 0.5f, 0.2f};
    const std::vector<ddpm::kernels::ddim_coefficients<float>> coefs(sh.batch, c);
    const std::vector<ddpm::kernels::x0_clip<float>> clips(sh.batch, {true, 1.0f, 1.0f});
    const auto out = gaussian(sh.n, 4), xt = gaussian(sh.n, 5);
    std::vector<float> prev(sh.n);
    std::uint32_t step = 0;
    for (auto _ : state) {
        ddpm::kernels::ddim_step<float>(coefs, clips, out, xt,
                                        ddpm::kernels::step_noise<float>::from(stream_of(sh, step++)),
                                        prev, {}, sh.exec);
        benchmark::DoNotOptimize(prev.data());
        benchmark::ClobberMemory();
    }
    finish(state, sh);
}

struct zero_denoiser {
    template <class T>
    void operator()(std::span<const T>, std::span<const ddpm::timestep_t>, std::span<T> out) const noexcept {
        std::fill(out.begin(), out.end(), T(0));
    }
};

/// range(0) = B, range(1) = D, range(2) = threads, range(3) = spin in µs (-1: default).
void ddpm_loop(benchmark::State& state) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    const auto dim = static_cast<std::size_t>(state.range(1));
    const auto saved = ddpm::pool_spin_time();
    if (state.range(3) >= 0) ddpm::set_pool_spin_time(std::chrono::microseconds(state.range(3)));
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    ddpm::model_options mo;
    mo.clip = ddpm::clip_options::clip(1.0);
    ddpm::ddpm_sampler<float> sampler{ddpm::ddpm_scheduler<float>(s, mo)};
    std::vector<float> x(batch * dim);
    ddpm::sampler_options opt;
    opt.batch = batch;
    opt.exec.threads = static_cast<unsigned>(state.range(2));
    std::uint64_t seed = 0;
    for (auto _ : state) {
        sampler.sample(zero_denoiser{}, ddpm::counter_noise(seed++), x, opt);
        benchmark::DoNotOptimize(x.data());
    }
    ddpm::set_pool_spin_time(saved);
    const auto steps = static_cast<double>(s.size());
    state.counters["s_per_step"] =
        benchmark::Counter(steps, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(steps * double(batch * dim)));
}

void loops(benchmark::internal::Benchmark* b) {
    for (const std::int64_t spin : {-1, 0, 20, 50})
        for (const std::int64_t t : {1, 2}) b->Args({64, 3072, t, spin});
    b->Args({4096, 2, 1, -1})->Args({4096, 2, 2, -1});
    b->ArgNames({"B", "D", "threads", "spin_us"})->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
}

/// The generators: their version is in their name.
void per_element_generator(benchmark::internal::Benchmark* b) {
    for (const std::int64_t d : {2, 16, 64, 256, 3072}) b->Args({d, 1, elements, 0});
    b->ArgNames({"D", "threads", "BxD", "v"})->Unit(benchmark::kMicrosecond)->UseRealTime();
}

/// The kernels in noise stream v1 and v2.
void per_element(benchmark::internal::Benchmark* b) {
    for (const std::int64_t v : {1, 2})
        for (const std::int64_t d : {2, 16, 64, 256, 3072}) b->Args({d, 1, elements, v});
    b->ArgNames({"D", "threads", "BxD", "v"})->Unit(benchmark::kMicrosecond)->UseRealTime();
}

void threads_sweep(benchmark::internal::Benchmark* b) {
    for (std::int64_t n = 3072; n <= 64 * 3072; n *= 2)
        for (const std::int64_t t : {1, 2}) b->Args({3072, t, n, 2});
    b->ArgNames({"D", "threads", "BxD", "v"})->Unit(benchmark::kMicrosecond)->UseRealTime();
}

} // namespace

BENCHMARK(generator)->Name("per_element/generator")->Apply(per_element_generator);
#ifndef DDPM_BENCH_NO_FILL_ROWS
BENCHMARK(generator_v2)->Name("per_element/generator_v2")->Apply(per_element_generator);
#endif
BENCHMARK(forward_noise)->Name("per_element/forward_noise")->Apply(per_element);
BENCHMARK(ddpm_step)->Name("per_element/ddpm_step")->Apply(per_element);
BENCHMARK(ddim_step)->Name("per_element/ddim_step")->Apply(per_element);
BENCHMARK(forward_noise)->Name("threads_sweep/forward_noise")->Apply(threads_sweep);
BENCHMARK(ddpm_step)->Name("threads_sweep/ddpm_step")->Apply(threads_sweep);
BENCHMARK(ddpm_loop)->Name("loop/ddpm_1000")->Apply(loops);
