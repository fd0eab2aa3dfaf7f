// The fused steps for a batch at one timestep, as ddpm::sample runs them:
// kernels::ddpm_step_uniform / ddim_step_uniform (one coefficient set for the
// batch), against ddpm_step / ddim_step given B copies of it (what
// bench_small_d measures: those read B coefficient sets of 52 / 40 bytes,
// more than the samples themselves at D = 2). Cost per element against the
// sample size D at a fixed B·D = 196,608, and at 3,145,728 elements (D = 3072).
// Same settings as bench_small_d's per_element family: ε prediction,
// fixed_small, static clipping, counter noise; DDIM with η = 1.
//
//   ./build/benchmarks/bench_step_uniform_default --benchmark_filter=per_element
#include "bench_inputs.hpp"
#include <benchmark/benchmark.h>

#include <ddpm/core/coefficients.hpp>
#include <ddpm/ddpm.hpp>
#include <ddpm/kernels/fused.hpp>

#include <random>
#include <vector>

namespace {

using ddpm_bench::gaussian;

struct shape {
    std::size_t batch, dim, n;
};

/// range(0) = D, range(1) = B·D; one thread.
shape shape_of(const benchmark::State& state) {
    const auto dim = static_cast<std::size_t>(state.range(0));
    const auto n = static_cast<std::size_t>(state.range(1));
    return {n / dim, dim, n / dim * dim};
}

void finish(benchmark::State& state, const shape& sh) {
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(sh.n));
    state.counters["dispatch_isa"] =
        double(static_cast<int>(ddpm::dispatch::active<ddpm::kernels::detail::kernel_table<float>>()));
}

/// range(2): 1 = ddpm_step_uniform, 0 = ddpm_step with B copies.
void ddpm_step(benchmark::State& state) {
    const shape sh = shape_of(state);
    const bool uniform = state.range(2) != 0;
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const auto c = ddpm::reverse_step_coefficients<float>(s, 500, 499, ddpm::prediction_type::epsilon,
                                                          ddpm::variance_type::fixed_small);
    const std::vector<ddpm::reverse_coefficients<float>> coefs(uniform ? 0 : sh.batch, c);
    const std::vector<ddpm::kernels::x0_clip<float>> clips(uniform ? 1 : sh.batch, {true, 1.0f, 1.0f});
    const auto out = gaussian(sh.n, 2), xt = gaussian(sh.n, 3);
    std::vector<float> prev(sh.n);
    std::uint32_t step = 0;
    for (auto _ : state) {
        const auto z = ddpm::kernels::step_noise<float>::from(ddpm::kernels::noise_stream{42, step++, 0});
        if (uniform)
            ddpm::kernels::ddpm_step_uniform<float>(c, sh.batch, clips, ddpm::kernels::step_variance::fixed, out, xt, z,
                                                    prev, {});
        else
            ddpm::kernels::ddpm_step<float>(coefs, clips, ddpm::kernels::step_variance::fixed, out, xt, z, prev, {});
        benchmark::DoNotOptimize(prev.data());
        benchmark::ClobberMemory();
    }
    finish(state, sh);
}

void ddim_step(benchmark::State& state) {
    const shape sh = shape_of(state);
    const bool uniform = state.range(2) != 0;
    const ddpm::kernels::ddim_coefficients<float> c{ddpm::kernels::x0_form::multiply, 1.4f, 0.9f,
                                                   ddpm::kernels::eps_form::model_output, 0, 1, 0, 0.8f, 0.5f, 0.2f};
    const std::vector<ddpm::kernels::ddim_coefficients<float>> coefs(uniform ? 0 : sh.batch, c);
    const std::vector<ddpm::kernels::x0_clip<float>> clips(uniform ? 1 : sh.batch, {true, 1.0f, 1.0f});
    const auto out = gaussian(sh.n, 4), xt = gaussian(sh.n, 5);
    std::vector<float> prev(sh.n);
    std::uint32_t step = 0;
    for (auto _ : state) {
        const auto z = ddpm::kernels::step_noise<float>::from(ddpm::kernels::noise_stream{42, step++, 0});
        if (uniform) ddpm::kernels::ddim_step_uniform<float>(c, sh.batch, clips, out, xt, z, prev, {});
        else ddpm::kernels::ddim_step<float>(coefs, clips, out, xt, z, prev, {});
        benchmark::DoNotOptimize(prev.data());
        benchmark::ClobberMemory();
    }
    finish(state, sh);
}

void per_element(benchmark::internal::Benchmark* b) {
    for (const std::int64_t uniform : {1, 0}) {
        for (const std::int64_t d : {2, 16, 64, 256, 3072}) b->Args({d, 196'608, uniform});
        b->Args({3072, 3'145'728, uniform});
    }
    b->ArgNames({"D", "BxD", "uniform"})->Unit(benchmark::kMicrosecond)->UseRealTime();
}

} // namespace

BENCHMARK(ddpm_step)->Name("per_element/ddpm_step")->Apply(per_element);
BENCHMARK(ddim_step)->Name("per_element/ddim_step")->Apply(per_element);
