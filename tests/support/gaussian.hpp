// tests/support/gaussian.hpp — seeded standard normal test inputs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace ddpm_test {

/// n standard normal values from std::mt19937_64(seed), rounded to T. The
/// values depend on the standard library's normal_distribution: use them as
/// inputs, never as expected results.
template <class T>
std::vector<T> gaussian(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> d;
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(d(g));
    return v;
}

} // namespace ddpm_test
