// Benchmarks of the solvers' fused kernels (kernels/combine.hpp): the
// multistep update `combine` (2 and 3 inputs, as DPM-Solver++ 2M / UniPC
// use it), the Euler-family `sigma_step` (Euler, and Euler ancestral with
// counter noise) and `convert_output` (network output to x̂_0), SIMD on 1 and 2
// threads at 196,608 and 3,145,728 float elements, std::vector buffers.
// scripts/run-benchmarks.sh compares this binary's default and native builds.
//
//   ./build/benchmarks/bench_solvers
#include <benchmark/benchmark.h>

#include <ddpm/kernels/combine.hpp>
#include <ddpm/random/counter_noise.hpp>

#include <vector>

namespace {

using ddpm::kernels::step_noise;

std::vector<float> normals(std::size_t n, std::uint64_t seed) {
    std::vector<float> v(n);
    ddpm::random::fill_normal(v, seed, 0, 0, 0);
    return v;
}

ddpm::execution exec_of(const benchmark::State& state) { return {static_cast<unsigned>(state.range(1))}; }

void finish(benchmark::State& state, std::int64_t bytes_per_element) {
    state.SetItemsProcessed(state.iterations() * state.range(0));
    state.SetBytesProcessed(state.iterations() * state.range(0) * bytes_per_element);
    state.counters["dispatch_isa"] =
        double(static_cast<int>(ddpm::dispatch::active<ddpm::kernels::detail::solver_table<float>>()));
}

template <std::size_t K>
void combine(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    std::array<std::vector<float>, K> in;
    std::array<std::span<const float>, K> spans;
    ddpm::kernels::combine_coefficients<float, K> c;
    for (std::size_t k = 0; k < K; ++k) {
        in[k] = normals(n, k + 1);
        spans[k] = in[k];
        c.c[k] = 0.5f / float(k + 1);
    }
    const std::vector<ddpm::kernels::combine_coefficients<float, K>> coefs{c};
    std::vector<float> next(n);
    for (auto _ : state) {
        ddpm::kernels::combine<float, K>(coefs, spans, step_noise<float>{}, next, exec_of(state));
        benchmark::DoNotOptimize(next.data());
        benchmark::ClobberMemory();
    }
    finish(state, 4 * (K + 1));
}

void sigma_step(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const bool ancestral = state.range(2) != 0;
    const auto o = normals(n, 1), x = normals(n, 2);
    std::vector<float> next(n);
    ddpm::kernels::sigma_step_coefficients<float> c;
    c.a = 0.8f;
    c.s = 0.8f;
    c.dt = -0.05f;
    c.sigma_up = ancestral ? 0.1f : 0.0f;
    const std::vector<ddpm::kernels::sigma_step_coefficients<float>> coefs{c};
    ddpm::kernels::sigma_step_buffers<float> buf;
    buf.model_output = o;
    buf.x = x;
    buf.x_next = next;
    std::uint32_t step = 0;
    for (auto _ : state) {
        ddpm::kernels::sigma_step<float>(coefs, buf,
                                         step_noise<float>::from(ddpm::kernels::noise_stream{42, step++, 0}),
                                         exec_of(state));
        benchmark::DoNotOptimize(next.data());
        benchmark::ClobberMemory();
    }
    finish(state, 12);
}

void convert_output(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const auto o = normals(n, 1), x = normals(n, 2);
    std::vector<float> y(n);
    const std::vector<ddpm::kernels::output_coefficients<float>> coefs{
        {ddpm::kernels::output_form::x_minus_bo_c, 0.0f, 0.6f, 0.8f}};
    for (auto _ : state) {
        ddpm::kernels::convert_output<float>(coefs, o, x, y, exec_of(state));
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
    }
    finish(state, 12);
}

void sizes(benchmark::internal::Benchmark* b) {
    b->ArgsProduct({{196'608, 3'145'728}, {1, 2}})->ArgNames({"n", "threads"})->Unit(benchmark::kMicrosecond)->UseRealTime();
}

} // namespace

BENCHMARK(combine<2>)->Name("combine_2")->Apply(sizes);
BENCHMARK(combine<3>)->Name("combine_3")->Apply(sizes);
BENCHMARK(sigma_step)
    ->ArgsProduct({{196'608, 3'145'728}, {1, 2}, {0, 1}})
    ->ArgNames({"n", "threads", "ancestral"})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(convert_output)->Apply(sizes);
