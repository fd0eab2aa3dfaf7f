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
//   sliced_reference    the same distance to one fixed reference cloud, its
//                       projections sorted once (for many distances to it).
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

/// W1 between the empirical distributions of the sorted samples `a` and `b`.
inline double wasserstein1_1d_sorted(std::span<const double> a, std::span<const double> b) {
    if (a.empty() || b.empty()) throw std::invalid_argument("wasserstein1_1d: empty sample");
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

/// W1 between the empirical distributions of `a` and `b` (sorted in place).
inline double wasserstein1_1d(std::vector<double>& a, std::vector<double>& b) {
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    return wasserstein1_1d_sorted(a, b);
}

/// A reference cloud for repeated sliced-Wasserstein distances: its
/// projections onto the directions of sliced_wasserstein (in 2-D the angles
/// π (k + ½) / L, otherwise Gaussian directions drawn with `seed`) are sorted
/// once, so each distance() sorts only the other cloud's projections.
class sliced_reference {
public:
    template <class B>
    sliced_reference(std::span<const B> b, std::size_t dim, std::size_t num_directions = 64, std::uint64_t seed = 1)
        : m_dim(dim), m_dirs(num_directions * dim), m_proj(num_directions) {
        if (dim == 0 || b.size() % dim != 0 || b.empty() || num_directions == 0)
            throw std::invalid_argument("sliced_wasserstein: both clouds must hold a positive multiple of dim values");
        normal_rng rng(seed);
        for (std::size_t l = 0; l < num_directions; ++l) {
            double* dir = m_dirs.data() + l * dim;
            if (dim == 2) {
                const double th = std::numbers::pi * (static_cast<double>(l) + 0.5) / static_cast<double>(num_directions);
                dir[0] = std::cos(th), dir[1] = std::sin(th);
            } else {
                double n2 = 0;
                for (std::size_t j = 0; j < dim; ++j) dir[j] = rng.normal(), n2 += dir[j] * dir[j];
                for (std::size_t j = 0; j < dim; ++j) dir[j] /= std::sqrt(n2);
            }
            m_proj[l] = project(b, l);
            std::sort(m_proj[l].begin(), m_proj[l].end());
        }
    }

    /// The sliced 1-Wasserstein distance from the cloud `a` to the reference.
    template <class A>
    [[nodiscard]] double distance(std::span<const A> a) const {
        if (a.size() % m_dim != 0 || a.empty())
            throw std::invalid_argument("sliced_wasserstein: both clouds must hold a positive multiple of dim values");
        double total = 0;
        for (std::size_t l = 0; l < m_proj.size(); ++l) {
            auto pa = project(a, l);
            std::sort(pa.begin(), pa.end());
            total += wasserstein1_1d_sorted(pa, m_proj[l]);
        }
        return total / static_cast<double>(m_proj.size());
    }
    template <class A>
    [[nodiscard]] double distance(const std::vector<A>& a) const {
        return distance(std::span<const A>(a));
    }

private:
    template <class V>
    [[nodiscard]] std::vector<double> project(std::span<const V> v, std::size_t l) const {
        const double* dir = m_dirs.data() + l * m_dim;
        std::vector<double> p(v.size() / m_dim);
        for (std::size_t k = 0; k < p.size(); ++k) {
            double s = 0;
            for (std::size_t j = 0; j < m_dim; ++j) s += dir[j] * static_cast<double>(v[k * m_dim + j]);
            p[k] = s;
        }
        return p;
    }

    std::size_t m_dim;
    std::vector<double> m_dirs;              ///< num_directions × dim
    std::vector<std::vector<double>> m_proj; ///< the reference's sorted projections
};

/// The sliced 1-Wasserstein distance between point clouds `a` and `b` of
/// dimension `dim`, averaged over `num_directions` directions: in 2-D the
/// angles π (k + ½) / L, otherwise Gaussian directions drawn with `seed`
/// (the same directions for every call with that seed).
template <class A, class B>
[[nodiscard]] double sliced_wasserstein(std::span<const A> a, std::span<const B> b, std::size_t dim,
                                        std::size_t num_directions = 64, std::uint64_t seed = 1) {
    if (dim == 0 || a.size() % dim != 0 || a.empty())
        throw std::invalid_argument("sliced_wasserstein: both clouds must hold a positive multiple of dim values");
    return sliced_reference(b, dim, num_directions, seed).distance(a);
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
