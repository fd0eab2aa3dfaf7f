// Statistical quality of the counter-based normals and uniforms: moments,
// Kolmogorov–Smirnov against the exact CDFs, and correlations between
// neighbouring samples, steps, elements and seeds. Everything is seeded, so the
// outcome is deterministic; the bounds are what an ideal generator meets with
// overwhelming probability (KS at α = 10^-3, the others at 5 standard errors).
#include <catch2/catch.hpp>

#include <ddpm/random/counter_noise.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <span>
#include <vector>

namespace rnd = ddpm::random;

namespace {

constexpr std::uint64_t seed = 0x5eed5eed12345678ull;

/// n normals from many (sample, step) streams: rows of `row` elements.
std::vector<float> normals(std::size_t n, std::size_t row, std::uint32_t step, std::uint64_t k = seed) {
    std::vector<float> v(n);
    for (std::size_t at = 0, b = 0; at < n; at += row, ++b)
        rnd::fill_normal(std::span<float>(v).subspan(at, std::min(row, n - at)), k, static_cast<std::uint32_t>(b), step);
    return v;
}

struct moments {
    double mean, var, skew, kurt_excess;
};

moments moments_of(const std::vector<float>& v) {
    const double n = static_cast<double>(v.size());
    double s1 = 0;
    for (float x : v) s1 += x;
    const double m = s1 / n;
    double s2 = 0, s3 = 0, s4 = 0;
    for (float x : v) {
        const double d = x - m;
        s2 += d * d;
        s3 += d * d * d;
        s4 += d * d * d * d;
    }
    const double var = s2 / n;
    return {m, var, (s3 / n) / std::pow(var, 1.5), (s4 / n) / (var * var) - 3.0};
}

/// The one-sample Kolmogorov–Smirnov statistic D_n of v against the CDF F.
template <class Cdf>
double ks_statistic(std::vector<double> v, Cdf cdf) {
    std::sort(v.begin(), v.end());
    const double n = static_cast<double>(v.size());
    double d = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
        const double f = cdf(v[i]);
        d = std::max({d, (static_cast<double>(i) + 1) / n - f, f - static_cast<double>(i) / n});
    }
    return d;
}

/// Critical value of D_n at level α (asymptotic Kolmogorov distribution with
/// Stephens' finite-n correction): P(D_n > c) ≈ α for a correct CDF.
double ks_critical(std::size_t n, double alpha) {
    const double c = std::sqrt(-0.5 * std::log(alpha / 2));
    const double sn = std::sqrt(static_cast<double>(n));
    return c / (sn + 0.12 + 0.11 / sn);
}

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::numbers::sqrt2); }

/// Pearson correlation of two equal-length sequences.
template <class A, class B>
double correlation(const A& x, const B& y) {
    const std::size_t n = x.size();
    double mx = 0, my = 0;
    for (std::size_t i = 0; i < n; ++i) {
        mx += x[i];
        my += y[i];
    }
    mx /= static_cast<double>(n);
    my /= static_cast<double>(n);
    double sxy = 0, sxx = 0, syy = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double dx = x[i] - mx, dy = y[i] - my;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    return sxy / std::sqrt(sxx * syy);
}

std::vector<double> squares(std::span<const float> v) {
    std::vector<double> s(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) s[i] = static_cast<double>(v[i]) * v[i];
    return s;
}

} // namespace

TEST_CASE("normals have the moments of the standard normal", "[random][quality]") {
    const std::size_t n = std::size_t{1} << 23;
    const moments m = moments_of(normals(n, 4096, 3));
    const double sn = std::sqrt(static_cast<double>(n));
    INFO("mean " << m.mean << ", var " << m.var << ", skew " << m.skew << ", excess kurtosis " << m.kurt_excess);
    CHECK(std::fabs(m.mean) < 5.0 / sn);
    CHECK(std::fabs(m.var - 1.0) < 5.0 * std::sqrt(2.0) / sn);
    CHECK(std::fabs(m.skew) < 5.0 * std::sqrt(6.0) / sn);
    CHECK(std::fabs(m.kurt_excess) < 5.0 * std::sqrt(24.0) / sn);
}

TEST_CASE("normals pass Kolmogorov-Smirnov against the exact normal CDF", "[random][quality]") {
    const std::size_t n = std::size_t{1} << 21;
    const std::vector<float> f = normals(n, 1000, 77);
    const double d = ks_statistic(std::vector<double>(f.begin(), f.end()), normal_cdf);
    const double crit = ks_critical(n, 1e-3);
    INFO("D_n = " << d << ", critical value (alpha = 1e-3) = " << crit);
    CHECK(d < crit);
    // Tails: the fraction beyond 3σ matches 2(1 − Φ(3)) = 0.0026998 within 5 standard errors.
    const double p3 = 2 * (1 - normal_cdf(3.0));
    const double beyond = static_cast<double>(std::count_if(f.begin(), f.end(), [](float x) { return std::fabs(x) > 3.0f; })) /
                          static_cast<double>(n);
    CHECK(std::fabs(beyond - p3) < 5 * std::sqrt(p3 * (1 - p3) / static_cast<double>(n)));
}

TEST_CASE("uniforms pass Kolmogorov-Smirnov against the uniform CDF", "[random][quality]") {
    const std::size_t n = std::size_t{1} << 21;
    std::vector<float> u(n);
    for (std::size_t at = 0, b = 0; at < n; at += 4096, ++b)
        rnd::fill_uniform(std::span<float>(u).subspan(at, 4096), seed, static_cast<std::uint32_t>(b), 5);
    const double d = ks_statistic(std::vector<double>(u.begin(), u.end()), [](double x) { return x; });
    INFO("D_n = " << d);
    CHECK(d < ks_critical(n, 1e-3));
    CHECK(*std::min_element(u.begin(), u.end()) >= 0.0f);
    CHECK(*std::max_element(u.begin(), u.end()) < 1.0f);
}

TEST_CASE("Box-Muller angles are uniform on the circle", "[random][quality]") {
    // Partners (i, i + 16) are one (r cos θ, r sin θ) pair.
    const std::size_t groups = std::size_t{1} << 15;
    std::vector<float> v(groups * 64);
    rnd::fill_normal(v, seed, 1, 2);
    std::vector<double> theta;
    theta.reserve(groups * 32);
    for (std::size_t g = 0; g < groups; ++g)
        for (std::size_t j : {0u, 32u})
            for (std::size_t l = 0; l < 16; ++l) {
                const float c = v[64 * g + j + l], s = v[64 * g + j + 16 + l];
                if (c != 0.0f || s != 0.0f) theta.push_back(std::atan2(static_cast<double>(s), static_cast<double>(c)));
            }
    const double pi = std::numbers::pi;
    const double d = ks_statistic(theta, [pi](double t) { return (t + pi) / (2 * pi); });
    INFO("D_n = " << d);
    CHECK(d < ks_critical(theta.size(), 1e-3));
}

TEST_CASE("neighbouring samples steps elements and seeds are uncorrelated", "[random][quality]") {
    const std::size_t n = std::size_t{1} << 20;
    const double bound = 5.0 / std::sqrt(static_cast<double>(n));
    const std::size_t row = 1 << 16;
    const std::uint32_t step = 41;

    SECTION("samples b and b + 1, steps s and s + 1, seeds k and k + 1") {
        std::vector<float> a(n), b(n), c(n), d(n);
        for (std::size_t r = 0; r < n / row; ++r) {
            const auto bi = static_cast<std::uint32_t>(2 * r);
            rnd::fill_normal(std::span<float>(a).subspan(r * row, row), seed, bi, step);
            rnd::fill_normal(std::span<float>(b).subspan(r * row, row), seed, bi + 1, step);
            rnd::fill_normal(std::span<float>(c).subspan(r * row, row), seed, bi, step + 1);
            rnd::fill_normal(std::span<float>(d).subspan(r * row, row), seed + 1, bi, step);
        }
        const double rho_sample = correlation(a, b), rho_step = correlation(a, c), rho_seed = correlation(a, d);
        INFO("rho(b, b+1) = " << rho_sample << ", rho(s, s+1) = " << rho_step << ", rho(k, k+1) = " << rho_seed
                              << ", bound " << bound);
        CHECK(std::fabs(rho_sample) < bound);
        CHECK(std::fabs(rho_step) < bound);
        CHECK(std::fabs(rho_seed) < bound);
        CHECK(std::fabs(correlation(squares(a), squares(b))) < bound);
        CHECK(std::fabs(correlation(squares(a), squares(c))) < bound);
    }

    SECTION("elements i and i + d: next element, Box-Muller partner, other pair of the block, next group") {
        const std::vector<float> v = normals(n + 64, n + 64, step);
        const std::span<const float> all(v);
        for (std::size_t lag : {1u, 16u, 32u, 48u, 64u}) {
            const auto x = all.first(n);
            const auto y = all.subspan(lag, n);
            const double rho = correlation(x, y);
            const double rho2 = correlation(squares(x), squares(y));
            INFO("lag " << lag << ": rho = " << rho << ", rho of squares = " << rho2 << ", bound " << bound);
            CHECK(std::fabs(rho) < bound);
            // Squares catch a dependent radius or angle that plain correlation cannot.
            CHECK(std::fabs(rho2) < bound);
        }
    }
}
