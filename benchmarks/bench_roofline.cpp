// A STREAM-like roofline for the fused kernels: plain loops that move the
// same streams as each kernel, over the same std::vector<float> buffers and
// sizes as bench_kernels, on one thread or split in two through ddpm's pool.
// Patterns are numbered 0–4 in the table order below.
// benchmarks/compare_pytorch.py runs it in the same rounds as bench_kernels
// and reports each kernel's bytes/s as a fraction of its pattern's bytes/s.
//
//   pattern  loop                          bytes/element  kernel with these streams
//   fill     y = s                         4  (1 write)   normal generator
//   copy     y = s·x                       8  (1R 1W)     (reference)
//   fork     y = s·x, z = u·x              12 (1R 2W)     forward noising (x_0 → x_t, ε)
//   triad    y = x + s·w                   12 (2R 1W)     DDPM / DDIM step (ε̂, x_t → x_prev)
//   triad2   y = x + s·w, z = x − s·w      16 (2R 2W)     step that also stores x̂_0
//
// Bytes are counted as STREAM counts them: what the loop reads and writes,
// not the write-allocate reads a cache adds. The scalars are read at run time
// so that `copy` stays a loop (no memcpy with its non-temporal stores).
//
//   ./build/benchmarks/bench_roofline
#include <benchmark/benchmark.h>

#include <ddpm/parallel.hpp>

#include <cstdint>
#include <vector>

namespace {

enum pattern : std::int64_t { fill_p, copy_p, fork_p, triad_p, triad2_p };
constexpr std::int64_t bytes_per_element[] = {4, 8, 12, 12, 16};

volatile float scalar_source = 1.0f; // opaque to the optimiser

void run(pattern p, float* __restrict y, float* __restrict z, const float* __restrict x,
         const float* __restrict w, std::size_t n, float s) noexcept {
    switch (p) {
    case fill_p: for (std::size_t i = 0; i < n; ++i) y[i] = s; break;
    case copy_p: for (std::size_t i = 0; i < n; ++i) y[i] = s * x[i]; break;
    case fork_p:
        for (std::size_t i = 0; i < n; ++i) {
            y[i] = s * x[i];
            z[i] = (1.0f - s) * x[i];
        }
        break;
    case triad_p: for (std::size_t i = 0; i < n; ++i) y[i] = x[i] + s * w[i]; break;
    case triad2_p:
        for (std::size_t i = 0; i < n; ++i) {
            y[i] = x[i] + s * w[i];
            z[i] = x[i] - s * w[i];
        }
        break;
    }
}

void roofline(benchmark::State& state) {
    const auto p = static_cast<pattern>(state.range(0));
    const auto n = static_cast<std::size_t>(state.range(1));
    const ddpm::execution exec{static_cast<unsigned>(state.range(2))};
    std::vector<float> x(n, 1.0f), w(n, 0.5f), y(n), z(n);
    const float s = scalar_source;
    const std::size_t tasks = exec.threads, part = (n / tasks + 15) / 16 * 16;
    for (auto _ : state) {
        ddpm::parallel_for(exec, tasks, [&](std::size_t k) {
            const std::size_t first = k * part, count = k + 1 == tasks ? n - first : part;
            run(p, y.data() + first, z.data() + first, x.data() + first, w.data() + first, count, s);
        });
        benchmark::DoNotOptimize(y.data());
        benchmark::DoNotOptimize(z.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations() * state.range(1));
    state.SetBytesProcessed(state.iterations() * state.range(1) * bytes_per_element[p]);
}

} // namespace

// 196,608 (in cache: the reference), 3,145,728 and 16,777,216 floats, as bench_kernels.
BENCHMARK(roofline)
    ->ArgsProduct({{fill_p, copy_p, fork_p, triad_p, triad2_p}, {196'608, 3'145'728, 16'777'216}, {1, 2}})
    ->ArgNames({"pattern", "n", "threads"})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
