// benchmarks/bench_inputs.hpp — seeded inputs shared by the benchmarks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace ddpm_bench {

/// n standard normal floats from std::mt19937_64(seed): realistic inputs for
/// the kernels (their values do not change the work done).
inline std::vector<float> gaussian(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 g(seed);
    std::normal_distribution<float> d;
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
}

} // namespace ddpm_bench
