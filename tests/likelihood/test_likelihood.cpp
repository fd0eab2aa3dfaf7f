// ddpm/core/likelihood.hpp: the element-wise losses against improved-diffusion
// (tests/data/vlb.json "losses"), the identities they must satisfy, and bad
// input.
#include <catch2/catch.hpp>

#include "vlb_support.hpp"

#include <ddpm/core/forward.hpp>
#include <ddpm/core/likelihood.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

using ddpm_test::golden;
using ddpm_test::max_rel_diff;
using ddpm_test::values;

namespace {

template <class T>
std::vector<T> gaussian(std::size_t n, std::uint64_t seed, double scale = 1.0) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> d(0.0, scale);
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(d(g));
    return v;
}

/// x_k = 2k/255 − 1, the 256 levels of an 8-bit image on [−1, 1].
template <class T>
std::vector<T> bin_centres() {
    std::vector<T> x(256);
    for (int k = 0; k < 256; ++k) x[static_cast<std::size_t>(k)] = static_cast<T>(2.0 * k / 255.0 - 1.0);
    return x;
}

/// Reference log P(bin) with the exact CDF in long double, tails taken on the
/// non-cancelling side.
long double reference_log_likelihood(long double x, long double mean, long double log_scale) {
    const long double inv = std::exp(-log_scale);
    const long double hi = inv * (x - mean + 1.0L / 255.0L);
    const long double lo = inv * (x - mean - 1.0L / 255.0L);
    const long double r = 0.70710678118654752440084436210484903928L;
    const auto cdf = [&](long double v) { return 0.5L * std::erfc(-v * r); };
    const auto sf = [&](long double v) { return 0.5L * std::erfc(v * r); };
    long double p;
    if (x < -0.999L) p = cdf(hi);
    else if (x > 0.999L) p = sf(lo);
    else p = lo > 0 ? sf(lo) - sf(hi) : cdf(hi) - cdf(lo);
    return std::log(std::max(p, 1e-12L));
}

} // namespace

// ---------------------------------------------------------------------------
// Parity with improved-diffusion's losses.py (vlb.json "losses", float64).

TEST_CASE("normal_kl matches improved-diffusion, including scalar broadcast", "[likelihood][parity][losses]") {
    const auto& cases = golden("vlb.json").at("losses").at("normal_kl");
    REQUIRE(cases.size() == 2);
    ddpm_test::worst_table w("losses.normal_kl");
    for (const auto& c : cases) {
        const auto m1 = values(c.at("mean1"));
        const auto l1 = values(c.at("logvar1"));
        const auto ref = values(c.at("result"));
        std::vector<double> out(ref.size());
        std::vector<float> out32(ref.size());
        const std::vector<float> m1f(m1.begin(), m1.end()), l1f(l1.begin(), l1.end());
        if (c.at("mean2").is_number()) {
            // normal_kl(mean1, logvar1, 0.0, 0.0): scalar operands are broadcast.
            const double m2 = c.at("mean2").get<double>();
            const double l2 = c.at("logvar2").get<double>();
            ddpm::normal_kl(m1, l1, m2, l2, out);
            CHECK(w.record("scalar broadcast (double)", max_rel_diff(out, ref)) <= 1e-15);
            // ... and so are one-element buffers.
            const std::vector<double> m2v{m2}, l2v{l2};
            std::vector<double> out1(ref.size());
            ddpm::normal_kl(m1, l1, m2v, l2v, out1);
            CHECK(out1 == out);
            ddpm::normal_kl(m1f, l1f, static_cast<float>(m2), static_cast<float>(l2), out32);
            CHECK(w.record("scalar broadcast (float vs float64 reference)", max_rel_diff(out32, ref)) <= 1e-5);
        } else {
            const auto m2 = values(c.at("mean2"));
            const auto l2 = values(c.at("logvar2"));
            ddpm::normal_kl(m1, l1, m2, l2, out);
            CHECK(w.record("tensors (double)", max_rel_diff(out, ref)) <= 1e-15);
            for (std::size_t i = 0; i < ref.size(); ++i)
                CHECK(ddpm::kernels::scalar::normal_kl(m1[i], l1[i], m2[i], l2[i]) == out[i]);
            const std::vector<float> m2f(m2.begin(), m2.end()), l2f(l2.begin(), l2.end());
            ddpm::normal_kl(m1f, l1f, m2f, l2f, out32);
            // float inputs and arithmetic against the float64 reference: the
            // terms of the KL cancel partly, so allow 1e-5 (measured: printed).
            CHECK(w.record("tensors (float vs float64 reference)", max_rel_diff(out32, ref)) <= 1e-5);
        }
    }
    w.print();
}

TEST_CASE("approx_standard_normal_cdf matches improved-diffusion", "[likelihood][parity][losses]") {
    const auto& c = golden("vlb.json").at("losses").at("approx_standard_normal_cdf");
    const auto x = values(c.at("x"));
    const auto ref = values(c.at("result"));
    std::vector<double> ours(x.size()), ours_kernel(x.size());
    std::vector<float> ours32(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        ours[i] = ddpm::standard_normal_cdf(x[i], ddpm::normal_cdf::tanh_approx);
        ours_kernel[i] = ddpm::kernels::scalar::approx_standard_normal_cdf(x[i]);
        ours32[i] = ddpm::standard_normal_cdf(static_cast<float>(x[i]), ddpm::normal_cdf::tanh_approx);
    }
    const double d = max_rel_diff(ours, ref);
    // ½(1 + tanh(u)) at x = −6 is 1.4e-11: 1 + tanh(u) cancels, so one ulp of
    // tanh (1.1e-16) would be a relative 4e-6 there. The comparison is therefore
    // relative to max(|a|, |b|, 1e-4), i.e. absolute (1e-16) below 1e-4.
    const double d_floor = max_rel_diff(ours, ref, 1e-4);
    // float: the same cancellation leaves an absolute error of ~ulp(1) = 1.2e-7.
    const double d32 = ddpm_test::max_abs_diff(ours32, ref);
    std::cout << "[losses.approx_standard_normal_cdf] worst relative diff " << d << " (pure), " << d_floor
              << " (floor 1e-4); float: " << d32 << " (absolute)\n";
    CHECK(ours_kernel == ours);
    CHECK(d_floor <= 1e-12);
    CHECK(d32 <= 2.4e-7);
}

TEST_CASE("discretized_gaussian_log_likelihood matches improved-diffusion", "[likelihood][parity][losses]") {
    const auto& g = golden("vlb.json");
    const auto x0 = values(g.at("x0"));
    // x0 = 2k/255 − 1 on the 8-bit grid, with both edge bins present.
    const auto k = values(g.at("x0_k"));
    REQUIRE(k.size() == x0.size());
    for (std::size_t i = 0; i < k.size(); ++i) CHECK(x0[i] == 2.0 * k[i] / 255.0 - 1.0);
    CHECK(x0[0] == -1.0);
    CHECK(x0[1] == 1.0);
    ddpm_test::worst_table w("losses.discretized_gaussian_log_likelihood (tanh CDF)");
    std::size_t seen = 0;
    for (const auto& c : g.at("losses").at("discretized_gaussian_log_likelihood")) {
        const std::string name = c.at("name").get<std::string>();
        INFO(name);
        REQUIRE(c.at("x").get<std::string>() == "x0");
        const auto means = values(c.at("means"));
        const auto log_scales = values(c.at("log_scales"));
        const auto ref = values(c.at("result"));
        std::vector<double> out(ref.size()), out_p(ref.size());
        ddpm::discretized_gaussian_log_likelihood(x0, means, log_scales, out, ddpm::normal_cdf::tanh_approx);
        ddpm::discretized_gaussian_log_likelihood(x0, means, log_scales, out_p, ddpm::profile::improved_diffusion);
        CHECK(out_p == out);
        CHECK(w.record(name + " (double)", max_rel_diff(out, ref)) <= 1e-12);
        // The exact CDF differs from tanh by < 2e-4 in probability: report it.
        std::vector<double> exact(ref.size());
        ddpm::discretized_gaussian_log_likelihood(x0, means, log_scales, exact);
        w.record(name + " exact CDF vs tanh reference (abs nats, info)", ddpm_test::max_abs_diff(exact, ref));
        // float: x on the 8-bit grid, mean and scale rounded; log-probabilities
        // of bins of mass ~1e-3 … 1 lose ~1e-5 relative to the rounding of
        // (x − mean)/σ. Compared absolutely (floor 1 nat).
        const std::vector<float> xf(x0.begin(), x0.end()), mf(means.begin(), means.end()),
            sf(log_scales.begin(), log_scales.end());
        std::vector<float> o32(ref.size());
        ddpm::discretized_gaussian_log_likelihood(xf, mf, sf, o32, ddpm::normal_cdf::tanh_approx);
        w.record(name + " (float vs float64 reference, floor 1, info)", max_rel_diff(o32, ref, 1.0));
        ++seen;
    }
    CHECK(seen == 3);
    w.print();
}

// ---------------------------------------------------------------------------
// Identities.

TEMPLATE_TEST_CASE("KL(p||p) = 0 and KL >= 0", "[likelihood][identities]", float, double) {
    using T = TestType;
    const std::size_t n = 4096;
    const auto m1 = gaussian<T>(n, 1);
    const auto l1 = gaussian<T>(n, 2, 2.0);
    const auto m2 = gaussian<T>(n, 3);
    const auto l2 = gaussian<T>(n, 4, 2.0);
    std::vector<T> self(n), kl(n);
    ddpm::normal_kl(m1, l1, m1, l1, self);
    for (const T v : self) REQUIRE(v == T(0));
    ddpm::normal_kl(m1, l1, m2, l2, kl);
    for (const T v : kl) REQUIRE(v >= T(0));
    // In place: out aliases mean1.
    auto alias = m1;
    ddpm::normal_kl(alias, l1, m2, l2, alias);
    CHECK(alias == kl);
}

TEST_CASE("exact and tanh normal CDFs: a bound on their difference", "[likelihood][identities]") {
    double worst = 0.0, at = 0.0;
    for (int i = -100000; i <= 100000; ++i) {
        const double x = i * 1e-4;
        const double d = std::abs(ddpm::standard_normal_cdf(x, ddpm::normal_cdf::tanh_approx) -
                                  ddpm::standard_normal_cdf(x, ddpm::normal_cdf::exact));
        if (d > worst) {
            worst = d;
            at = x;
        }
    }
    std::cout << "[normal CDF] max |tanh approx - exact| on [-10, 10] = " << worst << " at x = " << at << "\n";
    CHECK(worst < 2e-4);
    CHECK(worst > 1e-4); // it is an approximation: the bound is tight
    // Exact CDF: symmetric and correct at known points.
    CHECK(ddpm::standard_normal_cdf(0.0) == 0.5);
    CHECK(std::abs(ddpm::standard_normal_cdf(1.959963984540054) - 0.975) < 1e-15);
    CHECK(std::abs(ddpm::standard_normal_cdf(-1.0) + ddpm::standard_normal_cdf(1.0) - 1.0) < 1e-16);
    CHECK(ddpm::kernels::scalar::standard_normal_sf(10.0) > 0.0); // no cancellation to 0 in the tail
}

TEMPLATE_TEST_CASE("the 256 bin probabilities of the discretised decoder sum to 1", "[likelihood][identities]", float,
                   double) {
    using T = TestType;
    const auto x = bin_centres<T>();
    ddpm_test::worst_table w(std::string("sum over 256 bins - 1, ") + (std::is_same_v<T, float> ? "float" : "double"));
    for (const auto cdf : {ddpm::normal_cdf::exact, ddpm::normal_cdf::tanh_approx}) {
        for (const double mean : {-1.2, -0.3, 0.0, 0.41, 0.97}) {
            for (const double scale : {0.002, 0.01, 0.2, 1.0, 5.0}) {
                std::vector<T> lp(256);
                ddpm::discretized_gaussian_log_likelihood(x, static_cast<T>(mean), static_cast<T>(std::log(scale)), lp,
                                                          cdf);
                double sum = 0.0;
                std::size_t floored = 0;
                for (const T v : lp) {
                    sum += std::exp(static_cast<double>(v));
                    if (v <= static_cast<T>(std::log(1e-12)) * T(0.9999)) ++floored;
                }
                // Bins of mass below 1e-12 are floored to 1e-12: the sum lies in
                // [1, 1 + 1e-12 · (floored bins)], up to rounding.
                const double tol = std::is_same_v<T, float> ? 2e-5 : 1e-13;
                INFO("cdf " << int(cdf) << " mean " << mean << " scale " << scale << " floored " << floored);
                CHECK(sum >= 1.0 - tol);
                CHECK(sum <= 1.0 + 1e-12 * static_cast<double>(floored) + tol);
                const double err = sum < 1.0 ? 1.0 - sum : std::max(0.0, sum - 1.0 - 1e-12 * static_cast<double>(floored));
                w.record(cdf == ddpm::normal_cdf::exact ? "exact" : "tanh", err);
            }
        }
    }
    w.print();
}

TEST_CASE("exact-CDF decoder likelihood is accurate in the tails", "[likelihood][identities]") {
    // Against a long-double evaluation: ddpm takes the bin mass on the side of
    // the mean where nothing cancels, so even bins ~6σ out keep full precision.
    const auto x = bin_centres<double>();
    double worst = 0.0;
    for (const double mean : {-0.7, 0.0, 0.35}) {
        for (const double scale : {0.003, 0.05, 0.1, 0.5}) {
            std::vector<double> lp(256);
            ddpm::discretized_gaussian_log_likelihood(x, mean, std::log(scale), lp);
            for (std::size_t k = 0; k < 256; ++k) {
                const long double ref = reference_log_likelihood(x[k], mean, std::log(scale));
                if (ref <= std::log(1e-12L) + 1e-9L) continue; // floored
                worst = std::max(worst, static_cast<double>(std::abs((lp[k] - ref) / ref)));
            }
        }
    }
    std::cout << "[decoder, exact CDF] worst relative diff vs long double: " << worst << "\n";
    CHECK(worst <= 1e-12);
}

TEST_CASE("the profile chooses the decoder's CDF", "[likelihood][identities]") {
    // At t = 0 vb_terms_bpd is the decoder NLL with log σ = ½ log σ²: exact CDF
    // in the default profile, tanh in improved_diffusion and ho2020.
    const auto& g = golden("vlb.json");
    const auto x0 = values(g.at("x0"));
    const auto z = gaussian<double>(x0.size(), 9);
    const std::vector<std::int64_t> ts{0, 0};
    for (const auto p : {ddpm::profile::standard, ddpm::profile::ho2020, ddpm::profile::improved_diffusion}) {
        const auto s = ddpm_test::vlb_schedule(1000, p);
        std::vector<double> xt(x0.size());
        ddpm::q_sample(s, x0, z, ts, xt);
        const auto mo = ddpm_test::toy_model(xt, 0, false);
        ddpm::model_options opt;
        std::vector<double> bits(2), mean(x0.size()), var(x0.size()), lv(x0.size()), px0(x0.size());
        ddpm::vb_terms_bpd(s, opt, mo, x0, xt, ts, bits);
        ddpm::p_mean_variance(s, opt, mo, xt, ts, mean, var, lv, px0);
        std::vector<double> ls(x0.size()), ll(x0.size());
        for (std::size_t k = 0; k < ls.size(); ++k) ls[k] = 0.5 * lv[k];
        const auto cdf = p == ddpm::profile::standard ? ddpm::normal_cdf::exact : ddpm::normal_cdf::tanh_approx;
        CHECK(s.conventions().cdf == cdf);
        ddpm::discretized_gaussian_log_likelihood(x0, mean, ls, ll, cdf);
        for (std::size_t b = 0; b < 2; ++b) {
            double acc = 0.0;
            for (std::size_t i = 0; i < ddpm_test::vlb_dim; ++i) acc -= ll[b * ddpm_test::vlb_dim + i];
            CHECK(ddpm_test::rel_diff(bits[b], acc / ddpm_test::vlb_dim / std::log(2.0)) <= 1e-14);
        }
    }
}

TEMPLATE_TEST_CASE("vb_terms_bpd of the true noise is ~0; float agrees with double", "[likelihood][identities]", float,
                   double) {
    using T = TestType;
    const auto s = ddpm_test::vlb_schedule(1000);
    const auto& g = golden("vlb.json");
    const auto x0d = values(g.at("x0"));
    const std::vector<T> x0(x0d.begin(), x0d.end());
    const auto z = gaussian<T>(x0.size(), 17);
    for (const std::int64_t t : {1, 10, 500, 999}) {
        const std::vector<std::int64_t> ts{t, t};
        std::vector<T> xt(x0.size()), bits(2);
        ddpm::q_sample(s, x0, z, ts, xt);
        // ε̂ = ε: x̂_0 = x_0 up to rounding, μ_θ = μ̃ and σ² = β̃ (fixed_small).
        ddpm::vb_terms_bpd(s, ddpm::model_options{}, z, x0, xt, ts, bits);
        INFO("t=" << t);
        // Rounding of x̂_0 (~1e-16·|x_t|/√ᾱ_t in double) squared over β̃_t.
        const double tol = std::is_same_v<T, float> ? 1e-3 : 1e-12;
        for (const T v : bits) {
            CHECK(v >= T(0));
            CHECK(v <= T(tol));
        }
    }
    // Float against double on the toy model, every variance type, clip on.
    for (const auto vt : {ddpm::variance_type::fixed_small, ddpm::variance_type::fixed_large,
                          ddpm::variance_type::learned_range}) {
        for (const std::int64_t t : {0, 1, 10, 500, 999}) {
            const std::vector<std::int64_t> ts{t, t};
            ddpm::model_options opt;
            opt.variance = vt;
            opt.clip = ddpm::clip_options::clip();
            const auto zd = gaussian<double>(x0.size(), 23);
            std::vector<double> xtd(x0.size()), bitsd(2);
            ddpm::q_sample(s, x0d, zd, ts, xtd);
            const auto mod = ddpm_test::toy_model(xtd, t, ddpm::is_learned(vt));
            ddpm::vb_terms_bpd(s, opt, mod, x0d, xtd, ts, bitsd);
            const std::vector<T> xt(xtd.begin(), xtd.end()), mo(mod.begin(), mod.end());
            std::vector<T> bits(2);
            ddpm::vb_terms_bpd(s, opt, mo, x0, xt, ts, bits);
            INFO(ddpm::to_string(vt) << " t=" << t);
            const double tol = std::is_same_v<T, float> ? 2e-3 : 0.0;
            CHECK(max_rel_diff(bits, bitsd) <= tol);
        }
    }
    std::vector<T> prior(2);
    std::vector<double> priord(2);
    ddpm::prior_bpd(s, x0, prior);
    ddpm::prior_bpd(s, x0d, priord);
    // docs/math.md#noise-schedules check value: L_T ≈ 1e-5 bits/dim for linear 1e-4 → 0.02, T = 1000.
    for (const double v : priord) CHECK((v > 5e-6 && v < 2e-5));
    CHECK(max_rel_diff(prior, priord) <= (std::is_same_v<T, float> ? 1e-3 : 0.0));
}

// ---------------------------------------------------------------------------
// Bad input: ddpm::invalid_argument, and the outputs are untouched.

namespace {
constexpr double sentinel = -12345.0;
bool untouched(const std::vector<double>& v) {
    for (const double x : v)
        if (x != sentinel) return false;
    return true;
}
} // namespace

TEST_CASE("element-wise losses reject mismatched sizes without writing", "[likelihood][errors]") {
    const std::vector<double> a(8, 0.1), b(8, 0.2), short_(7, 0.3), one(1, 0.0);
    std::vector<double> out(8, sentinel);
    REQUIRE_THROWS_AS(ddpm::normal_kl(a, b, short_, b, out), ddpm::invalid_argument);
    REQUIRE_THROWS_AS(ddpm::normal_kl(a, b, a, short_, out), ddpm::invalid_argument);
    REQUIRE_THROWS_AS(ddpm::normal_kl(short_, 0.0, 0.0, 0.0, out), ddpm::invalid_argument);
    CHECK(untouched(out));
    REQUIRE_NOTHROW(ddpm::normal_kl(a, one, 0.0, b, out)); // 1-element buffers broadcast

    std::vector<double> out2(8, sentinel), out_short(7, sentinel);
    REQUIRE_THROWS_AS(ddpm::discretized_gaussian_log_likelihood(a, b, b, out_short), ddpm::invalid_argument);
    REQUIRE_THROWS_AS(ddpm::discretized_gaussian_log_likelihood(a, short_, b, out2), ddpm::invalid_argument);
    REQUIRE_THROWS_AS(ddpm::discretized_gaussian_log_likelihood(a, b, short_, out2), ddpm::invalid_argument);
    REQUIRE_THROWS_AS(ddpm::discretized_gaussian_log_likelihood(a, b, b, out2, static_cast<ddpm::normal_cdf>(7)),
                      ddpm::invalid_argument);
    CHECK(untouched(out2));
    CHECK(untouched(out_short));
    // The message names the function, the parameter and what was expected.
    try {
        ddpm::normal_kl(a, b, short_, b, out);
        FAIL("no throw");
    } catch (const ddpm::invalid_argument& e) {
        const std::string msg = e.what();
        CHECK(msg.find("ddpm::normal_kl") != std::string::npos);
        CHECK(msg.find("mean2.size()") != std::string::npos);
    }
}

TEST_CASE("prior_bpd rejects inconsistent sizes without writing", "[likelihood][errors]") {
    const auto s = ddpm_test::vlb_schedule(50);
    const std::vector<double> x0(96, 0.5), x0_odd(95, 0.5);
    std::vector<double> out(2, sentinel), empty;
    REQUIRE_THROWS_AS(ddpm::prior_bpd(s, x0_odd, out), ddpm::invalid_argument);
    REQUIRE_THROWS_AS(ddpm::prior_bpd(s, x0, empty), ddpm::invalid_argument);
    const std::vector<double> no_elements;
    REQUIRE_THROWS_AS(ddpm::prior_bpd(s, no_elements, out), ddpm::invalid_argument); // D = 0
    CHECK(untouched(out));
}

TEST_CASE("vb_terms_bpd rejects bad input without writing", "[likelihood][errors]") {
    const auto s = ddpm_test::vlb_schedule(50);
    const std::size_t n = 96;
    const std::vector<double> x0(n, 0.25), xt(n, 0.5), mo(n, 0.1), mo2(2 * n, 0.1), short_(n - 2, 0.0);
    const std::vector<std::int64_t> ts{3, 7};
    std::vector<double> out(2, sentinel), px0(n, sentinel);
    ddpm::model_options fixed;
    ddpm::model_options learned;
    learned.variance = ddpm::variance_type::learned_range;

    SECTION("mismatched sizes") {
        REQUIRE_THROWS_AS(ddpm::vb_terms_bpd(s, fixed, mo, x0, short_, ts, out, px0), ddpm::invalid_argument);
        REQUIRE_THROWS_AS(ddpm::vb_terms_bpd(s, fixed, short_, x0, xt, ts, out, px0), ddpm::invalid_argument);
        std::vector<double> out3(3, sentinel), px0_short(n - 1, sentinel);
        REQUIRE_THROWS_AS(ddpm::vb_terms_bpd(s, fixed, mo, x0, xt, ts, out3, px0), ddpm::invalid_argument);
        REQUIRE_THROWS_AS(ddpm::vb_terms_bpd(s, fixed, mo, x0, xt, ts, out, px0_short), ddpm::invalid_argument);
        CHECK(untouched(out3));
        CHECK(untouched(px0_short));
        const std::vector<std::int64_t> three{1, 2, 3}; // B = 3: out_per_sample (2) no longer fits
        const std::vector<double> x0_97(97, 0.0);
        REQUIRE_THROWS_AS(ddpm::vb_terms_bpd(s, fixed, mo, x0_97, xt, ts, out, px0), ddpm::invalid_argument);
        REQUIRE_THROWS_AS(ddpm::vb_terms_bpd(s, fixed, mo, x0, xt, three, out, px0), ddpm::invalid_argument);
        const std::vector<double> none;
        REQUIRE_THROWS_AS(ddpm::vb_terms_bpd(s, fixed, none, none, none, ts, out), ddpm::invalid_argument); // D = 0
    }
    SECTION("timestep outside [0, T)") {
        for (const std::int64_t bad : {std::int64_t{-1}, std::int64_t{50}, std::int64_t{1000}}) {
            const std::vector<std::int64_t> tb{0, bad};
            REQUIRE_THROWS_AS(ddpm::vb_terms_bpd(s, fixed, mo, x0, xt, tb, out, px0), ddpm::invalid_argument);
            REQUIRE_THROWS_AS(ddpm::vb_terms_bpd(s, fixed, mo, x0, xt, tb, out), ddpm::invalid_argument);
        }
    }
    SECTION("learned variance with the wrong channel count") {
        REQUIRE_THROWS_AS(ddpm::vb_terms_bpd(s, learned, mo, x0, xt, ts, out, px0), ddpm::invalid_argument);
        REQUIRE_THROWS_AS(ddpm::vb_terms_bpd(s, fixed, mo2, x0, xt, ts, out, px0), ddpm::invalid_argument);
        try {
            ddpm::vb_terms_bpd(s, learned, mo, x0, xt, ts, out);
            FAIL("no throw");
        } catch (const ddpm::invalid_argument& e) {
            CHECK(std::string(e.what()).find("model_output.size()") != std::string::npos);
        }
    }
    SECTION("bad clip options") {
        ddpm::model_options bad;
        bad.clip = ddpm::clip_options::clip(-1.0);
        REQUIRE_THROWS_AS(ddpm::vb_terms_bpd(s, bad, mo, x0, xt, ts, out, px0), ddpm::invalid_argument);
    }
    CHECK(untouched(out));
    CHECK(untouched(px0));
    // And the same call with correct arguments writes.
    REQUIRE_NOTHROW(ddpm::vb_terms_bpd(s, learned, mo2, x0, xt, ts, out, px0));
    CHECK(!untouched(out));
    CHECK(!untouched(px0));
}
