// The one loop (ddpm::sample) at a large size, one thread: what a step costs
// with and without an observer (an observer makes the loop store x̂_0), and
// with noise drawn inside the fused kernel (counter_noise), filled into the
// loop's buffer by a source without stream() (the same counter noise), or by
// urbg_normal_noise(mt19937_64). The denoiser writes zeros, so the time is
// the library's: the network's output pass, the fused step and the noise.
// Reported as elements per second of the step (B·D per network call).
//
//   ./build/benchmarks/bench_loop
#include <benchmark/benchmark.h>

#include <ddpm/ddpm.hpp>

#include <algorithm>
#include <random>
#include <span>
#include <vector>

namespace {

constexpr std::size_t steps = 10;

struct zero_denoiser {
    template <class T>
    void operator()(std::span<const T>, std::span<const ddpm::timestep_t>, std::span<T> out) const noexcept {
        std::fill(out.begin(), out.end(), T(0));
    }
};

/// An observer that reads nothing (its presence is what costs).
struct idle_observer {
    void operator()(std::size_t, ddpm::timestep_t, std::span<const float> x, std::span<const float> x0) const noexcept {
        benchmark::DoNotOptimize(x.data());
        benchmark::DoNotOptimize(x0.data());
    }
};

/// counter_noise without stream(): the loop fills its buffer, then fuses from it.
struct fill_only {
    ddpm::counter_noise inner;
    std::size_t dim;
    void fill(std::span<float> out, std::uint64_t step) const { inner.fill_rows(out, step, dim); }
};

enum class source { counter, fill_only, urbg };

template <class Scheduler>
void run(benchmark::State& state, const Scheduler& s, bool observe, source src) {
    const auto dim = static_cast<std::size_t>(state.range(0));
    std::vector<float> x(dim);
    ddpm::sampler_options opt;
    opt.batch = 1;
    opt.exec.threads = 1;
    std::mt19937_64 gen(1);
    std::uint64_t seed = 0;
    for (auto _ : state) {
        const auto go = [&](auto&& noise) {
            if (observe) ddpm::sample(s, zero_denoiser{}, noise, x, opt, idle_observer{});
            else ddpm::sample(s, zero_denoiser{}, noise, x, opt);
        };
        switch (src) {
        case source::counter: go(ddpm::counter_noise(seed++)); break;
        case source::fill_only: go(fill_only{ddpm::counter_noise(seed++), dim}); break;
        case source::urbg: go(ddpm::urbg_normal_noise(gen)); break;
        }
        benchmark::DoNotOptimize(x.data());
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(steps * dim));
}

ddpm::model_options clipped() {
    ddpm::model_options mo;
    mo.clip = ddpm::clip_options::clip(1.0);
    return mo;
}

void ddpm_sample(benchmark::State& state) {
    ddpm::ddpm_scheduler<float> s(ddpm::noise_schedule(ddpm::schedule_config{}), clipped());
    s.set_timesteps(steps);
    run(state, s, state.range(1) != 0, static_cast<source>(state.range(2)));
}

void ddim_sample(benchmark::State& state) {
    ddpm::ddim_scheduler<float> s(ddpm::noise_schedule(ddpm::schedule_config{}), clipped());
    s.set_timesteps(steps);
    run(state, s, state.range(1) != 0, source::counter);
}

} // namespace

// 3,145,728 = 3×1024×1024 elements; observer 0/1; noise 0 counter, 1 fill-only, 2 urbg.
BENCHMARK(ddpm_sample)
    ->Args({3145728, 0, 0})
    ->Args({3145728, 1, 0})
    ->Args({3145728, 0, 1})
    ->Args({3145728, 0, 2})
    ->ArgNames({"D", "observer", "noise"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(ddim_sample)
    ->Args({3145728, 0, 0})
    ->Args({3145728, 1, 0})
    ->ArgNames({"D", "observer", "noise"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
