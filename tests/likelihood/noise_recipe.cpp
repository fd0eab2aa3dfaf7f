// The vlb.json noise recipe. This file must be compiled without floating-point
// contraction (tests/likelihood/CMakeLists.txt adds -ffp-contract=off); the
// pragma covers compilers that honour it.
#include "noise_recipe.hpp"

#include <cmath>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

namespace ddpm_test {

namespace {
double frac(double v) { return v - std::floor(v); }
} // namespace

std::vector<double> vlb_noise(std::int64_t t, std::size_t n) {
    std::vector<double> z(n);
    const double tp1 = static_cast<double>(t + 1);
    for (std::size_t i = 0; i < n; ++i) {
        const double ip1 = static_cast<double>(i + 1);
        // Each product is rounded before the sum (no FMA).
        const double p1 = 12.9898 * ip1;
        const double q1 = 78.233 * tp1;
        const double a1 = p1 + q1;
        const double p2 = 39.3468 * ip1;
        const double q2 = 11.135 * tp1;
        const double a2 = p2 + q2;
        const double s1 = std::sin(a1) * 43758.5453;
        const double s2 = std::sin(a2) * 43758.5453;
        const double h1 = frac(s1);
        const double h2 = frac(s2);
        const double u1 = 1.0 - h1;
        const double u2 = h2;
        const double r = std::sqrt(-2.0 * std::log(u1));
        const double c = std::cos(6.283185307179586 * u2);
        z[i] = r * c;
    }
    return z;
}

} // namespace ddpm_test
