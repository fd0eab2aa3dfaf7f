// examples/common/metrics.hpp — how close two point clouds are.
//
//   wasserstein1_1d     the exact 1-Wasserstein distance between two 1-D
//                       empirical distributions (any sizes): ∫ |F_a(x) − F_b(x)| dx.
//   sliced_wasserstein  its average over projections onto unit directions
//                       (Rabin et al. 2011): evenly spaced angles in 2-D, seeded
//                       Gaussian directions in higher dimension. In the data's
//                       units; 0 only for equal distributions (in the limit of
//                       many directions). A finite sample of the *same*
//                       distribution gives a positive value that shrinks like
//                       1/√n: always print that noise floor next to it.
//   nearest_neighbour_distance  the mean distance from each point of one cloud
//                       to its nearest neighbour in another: how far samples
//                       fall from the data (a precision-like number; it does
//                       not see missing modes, the sliced distance does).
//   coordinate_moments  mean and standard deviation of each coordinate.
//
// Point clouds are batch-first: n points × dim coordinates, interleaved.
#pragma once

#include "common/random.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <span>
#include <stdexcept>
#include <vector>

namespace examples {

/// W1 between the empirical distributions of `a` and `b` (sorted in place).
inline double wasserstein1_1d(std::vector<double>& a, std::vector<double>& b) {
    if (a.empty() || b.empty()) throw std::invalid_argument("wasserstein1_1d: empty sample");
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    const double na = static_cast<double>(a.size()), nb = static_cast<double>(b.size());
    // Sweep the merged sorted values; between consecutive ones the two CDFs
    // are constant, and the area |F_a − F_b| · width accumulates.
    std::size_t i = 0, j = 0;
    double x = std::min(a[0], b[0]), total = 0;
    while (i < a.size() || j < b.size()) {
        const double next = (j == b.size() || (i < a.size() && a[i] <= b[j])) ? a[i] : b[j];
        total += std::abs(static_cast<double>(i) / na - static_cast<double>(j) / nb) * (next - x);
        x = next;
        while (i < a.size() && a[i] == x) ++i;
        while (j < b.size() && b[j] == x) ++j;
    }
    return total;
}

/// The sliced 1-Wasserstein distance between point clouds `a` and `b` of
/// dimension `dim`, averaged over `num_directions` directions: in 2-D the
/// angles π (k + ½) / L, otherwise Gaussian directions drawn with `seed`
/// (the same directions for every call with that seed).
template <class A, class B>
[[nodiscard]] double sliced_wasserstein(std::span<const A> a, std::span<const B> b, std::size_t dim,
                                        std::size_t num_directions = 64, std::uint64_t seed = 1) {
    if (dim == 0 || a.size() % dim != 0 || b.size() % dim != 0 || a.empty() || b.empty())
        throw std::invalid_argument("sliced_wasserstein: both clouds must hold a positive multiple of dim values");
    const std::size_t na = a.size() / dim, nb = b.size() / dim;
    normal_rng rng(seed);
    std::vector<double> dir(dim), pa(na), pb(nb);
    double total = 0;
    for (std::size_t l = 0; l < num_directions; ++l) {
        if (dim == 2) {
            const double th = std::numbers::pi * (static_cast<double>(l) + 0.5) / static_cast<double>(num_directions);
            dir[0] = std::cos(th), dir[1] = std::sin(th);
        } else {
            double n2 = 0;
            for (auto& v : dir) v = rng.normal(), n2 += v * v;
            for (auto& v : dir) v /= std::sqrt(n2);
        }
        for (std::size_t k = 0; k < na; ++k) {
            double s = 0;
            for (std::size_t j = 0; j < dim; ++j) s += dir[j] * static_cast<double>(a[k * dim + j]);
            pa[k] = s;
        }
        for (std::size_t k = 0; k < nb; ++k) {
            double s = 0;
            for (std::size_t j = 0; j < dim; ++j) s += dir[j] * static_cast<double>(b[k * dim + j]);
            pb[k] = s;
        }
        total += wasserstein1_1d(pa, pb);
    }
    return total / static_cast<double>(num_directions);
}

template <class A, class B>
[[nodiscard]] double sliced_wasserstein(const std::vector<A>& a, const std::vector<B>& b, std::size_t dim,
                                        std::size_t num_directions = 64, std::uint64_t seed = 1) {
    return sliced_wasserstein(std::span<const A>(a), std::span<const B>(b), dim, num_directions, seed);
}

/// Mean over the points of `a` of the Euclidean distance to the nearest
/// point of `b` (brute force, O(|a|·|b|)).
template <class A, class B>
[[nodiscard]] double nearest_neighbour_distance(std::span<const A> a, std::span<const B> b, std::size_t dim) {
    if (dim == 0 || a.size() % dim != 0 || b.size() % dim != 0 || a.empty() || b.empty())
        throw std::invalid_argument("nearest_neighbour_distance: both clouds must hold a positive multiple of dim values");
    const std::size_t na = a.size() / dim, nb = b.size() / dim;
    double total = 0;
    for (std::size_t i = 0; i < na; ++i) {
        double best = std::numeric_limits<double>::infinity();
        for (std::size_t k = 0; k < nb; ++k) {
            double d2 = 0;
            for (std::size_t j = 0; j < dim; ++j) {
                const double e = static_cast<double>(a[i * dim + j]) - static_cast<double>(b[k * dim + j]);
                d2 += e * e;
            }
            best = std::min(best, d2);
        }
        total += std::sqrt(best);
    }
    return total / static_cast<double>(na);
}

struct moments {
    std::vector<double> mean, std;
};

/// Mean and (population) standard deviation of each of the `dim` coordinates.
template <class T>
[[nodiscard]] moments coordinate_moments(std::span<const T> xs, std::size_t dim) {
    moments m{std::vector<double>(dim, 0.0), std::vector<double>(dim, 0.0)};
    const std::size_t n = xs.size() / dim;
    if (n == 0) return m;
    for (std::size_t k = 0; k < n; ++k)
        for (std::size_t j = 0; j < dim; ++j) m.mean[j] += static_cast<double>(xs[k * dim + j]);
    for (auto& v : m.mean) v /= static_cast<double>(n);
    for (std::size_t k = 0; k < n; ++k)
        for (std::size_t j = 0; j < dim; ++j) {
            const double r = static_cast<double>(xs[k * dim + j]) - m.mean[j];
            m.std[j] += r * r;
        }
    for (auto& v : m.std) v = std::sqrt(v / static_cast<double>(n));
    return m;
}

} // namespace examples
