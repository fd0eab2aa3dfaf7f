// ddpm/core/training.hpp: targets, loss weights (checked against closed forms
// and against the KL of the ELBO), the weighted MSE, and the timestep samplers
// (frequencies within binomial bounds, determinism, pinned sequences).
#include <catch2/catch.hpp>

#include <ddpm/core/forward.hpp>
#include <ddpm/core/p_mean_variance.hpp>
#include <ddpm/core/parameterization.hpp>
#include <ddpm/core/posterior.hpp>
#include <ddpm/core/training.hpp>
#include <support/golden.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

using ddpm_test::max_abs_diff;
using ddpm_test::rel_diff;

namespace {

template <class T>
std::vector<T> gaussian(std::size_t n, std::uint64_t seed, double scale = 1.0) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> d;
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(scale * d(g));
    return v;
}

constexpr ddpm::prediction_type all_predictions[] = {ddpm::prediction_type::epsilon, ddpm::prediction_type::sample,
                                                     ddpm::prediction_type::v_prediction};

/// The linear schedule 1e-4 → 0.02, T = 1000, recomputed here from scratch.
struct reference_schedule {
    std::vector<double> beta, alpha, abar;
    reference_schedule() {
        const int T = 1000;
        double acc = 1.0;
        for (int i = 0; i < T; ++i) {
            const double b = 1e-4 + (0.02 - 1e-4) * i / (T - 1);
            beta.push_back(b);
            alpha.push_back(1.0 - b);
            acc *= 1.0 - b;
            abar.push_back(acc);
        }
    }
    double abar_prev(std::size_t t) const { return t == 0 ? 1.0 : abar[t - 1]; }
    double tilde(std::size_t t) const { return beta[t] * (1.0 - abar_prev(t)) / (1.0 - abar[t]); }
    double snr(std::size_t t) const { return abar[t] / (1.0 - abar[t]); }
};

/// Σ_d KL(N(μ1, e^{lv1}) ‖ N(μ2, e^{lv2})) per sample, divided by D (mean_flat), in nats.
std::vector<double> mean_flat_kl(const std::vector<double>& mu1, const std::vector<double>& lv1,
                                 const std::vector<double>& mu2, const std::vector<double>& lv2, std::size_t B) {
    const std::size_t D = mu1.size() / B;
    std::vector<double> out(B, 0.0);
    for (std::size_t b = 0; b < B; ++b) {
        for (std::size_t i = b * D; i < (b + 1) * D; ++i) {
            const double dm = mu1[i] - mu2[i];
            out[b] += 0.5 * (-1.0 + lv2[i] - lv1[b] + std::exp(lv1[b] - lv2[i]) + dm * dm * std::exp(-lv2[i]));
        }
        out[b] /= static_cast<double>(D);
    }
    return out;
}

} // namespace

// ---------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------

TEMPLATE_TEST_CASE("training_target: epsilon and sample copy, v equals get_velocity", "[training][target]", float,
                   double) {
    using T = TestType;
    for (const auto p : {ddpm::profile::standard, ddpm::profile::diffusers}) {
        const ddpm::noise_schedule s(ddpm::schedule_config{}, p);
        const std::size_t B = 5, D = GENERATE(1, 7, 64);
        const auto x0 = gaussian<T>(B * D, 11);
        const auto eps = gaussian<T>(B * D, 12);
        const std::vector<std::int64_t> ts{0, 1, 250, 998, 999};
        std::vector<T> out(B * D);

        ddpm::training_target(s, ddpm::prediction_type::epsilon, x0, eps, ts, out);
        CHECK(out == eps);
        ddpm::training_target(s, ddpm::prediction_type::sample, x0, eps, ts, out);
        CHECK(out == x0);
        std::vector<T> v(B * D);
        ddpm::get_velocity(s, x0, eps, ts, v);
        ddpm::training_target(s, ddpm::prediction_type::v_prediction, x0, eps, ts, out);
        CHECK(out == v);

        // out may alias noise or x0.
        auto alias = eps;
        ddpm::training_target(s, ddpm::prediction_type::epsilon, x0, alias, ts, alias);
        CHECK(alias == eps);
        alias = x0;
        ddpm::training_target(s, ddpm::prediction_type::v_prediction, alias, eps, ts, alias);
        CHECK(alias == v);
    }
}

TEMPLATE_TEST_CASE("training_target round-trips to x0 and eps through convert_prediction", "[training][target]",
                   float, double) {
    using T = TestType;
    // x̂_0 = ra·x_t − rm1·ε̂ amplifies rounding by ra = 1/√ᾱ_t (157 at the
    // linear schedule's last step, ~10^4 at the cosine one's): the bound scales with it.
    const double ulp = std::numeric_limits<T>::epsilon();
    for (const auto sched : {ddpm::beta_schedule::linear, ddpm::beta_schedule::squaredcos_cap_v2}) {
        ddpm::schedule_config cfg;
        cfg.schedule = sched;
        const ddpm::noise_schedule s(cfg);
        const std::size_t B = 6, D = 33;
        const auto x0 = gaussian<T>(B * D, 21);
        const auto eps = gaussian<T>(B * D, 22);
        const std::vector<std::int64_t> ts{0, 1, 17, 500, 900, 999};
        std::vector<T> xt(B * D), target(B * D), back(B * D);
        ddpm::q_sample(s, x0, eps, ts, xt);
        for (const auto p : all_predictions) {
            INFO(ddpm::to_string(sched) << " " << ddpm::to_string(p));
            ddpm::training_target(s, p, x0, eps, ts, target);
            ddpm::convert_prediction(s, p, ddpm::prediction_type::sample, target, xt, ts, back);
            for (std::size_t b = 0; b < B; ++b) {
                const double ra = s.f64().sqrt_recip_alphas_cumprod[static_cast<std::size_t>(ts[b])];
                const double tol = 64.0 * ulp * (1.0 + ra);
                for (std::size_t i = b * D; i < (b + 1) * D; ++i) {
                    INFO("t=" << ts[b] << " i=" << i);
                    CHECK(std::abs(double(back[i]) - double(x0[i])) <= tol);
                }
            }
            if (p != ddpm::prediction_type::sample) { // ε from x_0 divides by √(1 − ᾱ_0) ≈ 0.01
                ddpm::convert_prediction(s, p, ddpm::prediction_type::epsilon, target, xt, ts, back);
                CHECK(max_abs_diff(back, eps) <= 64.0 * ulp);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Loss weights
// ---------------------------------------------------------------------------

TEST_CASE("loss_weights: closed forms against independently computed values", "[training][weights]") {
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const reference_schedule r;
    const std::vector<std::int64_t> ts{0, 1, 2, 10, 123, 500, 998, 999};
    std::vector<double> w(ts.size());
    const double gamma = 5.0;

    SECTION("none") {
        for (const auto p : all_predictions) {
            ddpm::loss_weights(s, ddpm::loss_weighting::none, p, ts, w);
            for (const double x : w) CHECK(x == 1.0);
        }
    }
    SECTION("vlb, fixed_small and fixed_large") {
        for (const auto var : {ddpm::variance_type::fixed_small, ddpm::variance_type::fixed_large,
                               ddpm::variance_type::fixed_small_log, ddpm::variance_type::fixed_large_log}) {
            const bool small = var == ddpm::variance_type::fixed_small || var == ddpm::variance_type::fixed_small_log;
            for (const auto p : all_predictions) {
                ddpm::loss_weights(s, ddpm::loss_weighting::vlb, p, ts, w, gamma, var);
                for (std::size_t i = 0; i < ts.size(); ++i) {
                    const auto t = static_cast<std::size_t>(ts[i]);
                    // t = 0: β̃_0 = 0, so fixed_small takes β̃ at index 1 (the clipped value).
                    const double sigma2 = small ? (t == 0 ? r.tilde(1) : r.tilde(t)) : r.beta[t];
                    const double w_eps = r.beta[t] * r.beta[t] / (2.0 * sigma2 * r.alpha[t] * (1.0 - r.abar[t]));
                    const double c1 = std::sqrt(r.abar_prev(t)) * r.beta[t] / (1.0 - r.abar[t]);
                    double expected = w_eps;
                    if (p == ddpm::prediction_type::sample) expected = c1 * c1 / (2.0 * sigma2);
                    if (p == ddpm::prediction_type::v_prediction) expected = c1 * c1 * (1.0 - r.abar[t]) / (2.0 * sigma2);
                    INFO(ddpm::to_string(var) << " " << ddpm::to_string(p) << " t=" << t);
                    CHECK(rel_diff(w[i], expected) <= 1e-11);
                    // One weighting, three targets: w_x0 = w_eps·SNR, w_v = w_eps·ᾱ.
                    if (p == ddpm::prediction_type::sample) CHECK(rel_diff(w[i], w_eps * r.snr(t)) <= 1e-11);
                    if (p == ddpm::prediction_type::v_prediction) CHECK(rel_diff(w[i], w_eps * r.abar[t]) <= 1e-11);
                }
            }
        }
        // Paper §3.4: L_simple drops the true weight, which is small at large t
        // (≈ β_t / (2 α_t) ≈ 0.01 where β̃ ≈ β) — it down-weights the easy terms.
        ddpm::loss_weights(s, ddpm::loss_weighting::vlb, ddpm::prediction_type::epsilon, ts, w);
        CHECK(w.back() < 0.011);
        CHECK(w.front() > 50.0 * w.back());
        // fixed_large at t = 0: β_0 in the standard profile, β̃ at index 1 in
        // improved_diffusion (whose KL uses that log-variance): the ε weight is
        // 1/(2α_0) or β_0/(2 β̃_1 α_0).
        const std::vector<std::int64_t> t0{0};
        std::vector<double> w0(1);
        ddpm::loss_weights(s, ddpm::loss_weighting::vlb, ddpm::prediction_type::epsilon, t0, w0, gamma,
                           ddpm::variance_type::fixed_large);
        CHECK(rel_diff(w0[0], 1.0 / (2.0 * r.alpha[0])) <= 1e-12);
        const ddpm::noise_schedule sid(ddpm::schedule_config{}, ddpm::profile::improved_diffusion);
        ddpm::loss_weights(sid, ddpm::loss_weighting::vlb, ddpm::prediction_type::epsilon, t0, w0, gamma,
                           ddpm::variance_type::fixed_large);
        const auto& d = sid.f64();
        CHECK(rel_diff(w0[0], d.betas[0] / (2.0 * d.posterior_variance[1] * d.alphas[0])) <= 1e-12);
    }
    SECTION("min_snr") {
        for (const double g : {0.5, 1.0, 5.0, 20.0}) {
            for (const auto p : all_predictions) {
                ddpm::loss_weights(s, ddpm::loss_weighting::min_snr, p, ts, w, g);
                for (std::size_t i = 0; i < ts.size(); ++i) {
                    const double snr = r.snr(static_cast<std::size_t>(ts[i]));
                    const double m = std::min(snr, g);
                    const double expected = p == ddpm::prediction_type::epsilon ? m / snr
                                            : p == ddpm::prediction_type::sample ? m
                                                                                  : m / (snr + 1.0);
                    INFO("gamma=" << g << " " << ddpm::to_string(p) << " t=" << ts[i]);
                    CHECK(rel_diff(w[i], expected) <= 1e-11);
                }
            }
        }
    }
    SECTION("float output is the double weight rounded") {
        std::vector<float> wf(ts.size());
        for (const auto k : {ddpm::loss_weighting::vlb, ddpm::loss_weighting::min_snr}) {
            for (const auto p : all_predictions) {
                ddpm::loss_weights(s, k, p, ts, w);
                ddpm::loss_weights(s, k, p, ts, wf);
                for (std::size_t i = 0; i < ts.size(); ++i) CHECK(wf[i] == static_cast<float>(w[i]));
            }
        }
    }
}

TEST_CASE("loss_weights: min-SNR limits and zero terminal SNR", "[training][weights]") {
    const double gamma = 5.0;
    SECTION("SNR -> infinity and SNR -> 0") {
        // ᾱ from 1 − 1e-12 (SNR ≈ 1e12) down to 1e-12 (SNR ≈ 1e-12).
        const std::vector<double> abar{1.0 - 1e-12, 1.0 - 1e-6, 0.9, 5.0 / 6.0, 0.5, 1e-6, 1e-12};
        const auto s = ddpm::noise_schedule::from_alphas_cumprod(abar);
        const std::vector<std::int64_t> ts{0, 1, 2, 3, 4, 5, 6};
        std::vector<double> we(7), wx(7), wv(7);
        ddpm::loss_weights(s, ddpm::loss_weighting::min_snr, ddpm::prediction_type::epsilon, ts, we, gamma);
        ddpm::loss_weights(s, ddpm::loss_weighting::min_snr, ddpm::prediction_type::sample, ts, wx, gamma);
        ddpm::loss_weights(s, ddpm::loss_weighting::min_snr, ddpm::prediction_type::v_prediction, ts, wv, gamma);
        // SNR → ∞: ε → γ/SNR → 0, x_0 → γ, v → γ/(SNR + 1) → 0.
        CHECK(we[0] < 1e-11);
        CHECK(wx[0] == gamma);
        CHECK(wv[0] < 1e-11);
        CHECK_THAT(we[0] * s.f64().snr[0], Catch::Matchers::WithinRel(gamma, 1e-12));
        // SNR = γ exactly at ᾱ = 5/6: every branch agrees.
        CHECK_THAT(we[3], Catch::Matchers::WithinRel(1.0, 1e-12));
        CHECK_THAT(wx[3], Catch::Matchers::WithinRel(gamma, 1e-12));
        CHECK_THAT(wv[3], Catch::Matchers::WithinRel(gamma / (gamma + 1.0), 1e-12));
        // SNR → 0: ε → 1, x_0 → SNR → 0, v → SNR → 0.
        CHECK(we[6] == 1.0);
        CHECK(wx[6] < 1.1e-12);
        CHECK(wv[6] < 1.1e-12);
        // Monotone: ε and v weights grow as SNR falls.
        for (std::size_t i = 1; i < 7; ++i) CHECK(we[i] >= we[i - 1]);
    }
    SECTION("zero terminal SNR: min-SNR stays finite, vlb for epsilon throws") {
        ddpm::schedule_config cfg;
        cfg.rescale_betas_zero_snr = true;
        const ddpm::noise_schedule s(cfg);
        REQUIRE(s.f64().alphas_cumprod.back() == 0.0);
        const std::vector<std::int64_t> ts{999};
        std::vector<double> w(1);
        ddpm::loss_weights(s, ddpm::loss_weighting::min_snr, ddpm::prediction_type::epsilon, ts, w);
        CHECK(w[0] == 1.0);
        ddpm::loss_weights(s, ddpm::loss_weighting::min_snr, ddpm::prediction_type::sample, ts, w);
        CHECK(w[0] == 0.0);
        ddpm::loss_weights(s, ddpm::loss_weighting::min_snr, ddpm::prediction_type::v_prediction, ts, w);
        CHECK(w[0] == 0.0);
        for (const auto p : {ddpm::prediction_type::sample, ddpm::prediction_type::v_prediction}) {
            ddpm::loss_weights(s, ddpm::loss_weighting::vlb, p, ts, w);
            CHECK(std::isfinite(w[0]));
            CHECK(w[0] > 0.0);
        }
        w[0] = -7.0;
        CHECK_THROWS_AS(ddpm::loss_weights(s, ddpm::loss_weighting::vlb, ddpm::prediction_type::epsilon, ts, w),
                        ddpm::invalid_argument);
        CHECK(w[0] == -7.0);
    }
}

TEST_CASE("vlb weight is the KL coefficient of the ELBO term", "[training][weights][kl]") {
    // KL(q(x_{t−1}|x_t,x_0) ‖ p_θ(x_{t−1}|x_t)) per element, computed from the
    // posterior and the reverse-process functions, minus the same KL for a
    // perfect prediction, equals weight · (target − prediction)² per element —
    // i.e. mean_flat(KL) = weighted_mse(prediction, target, vlb weights). With
    // σ² = β̃ the subtracted KL is 0 (up to rounding); with σ² = β it is the
    // network-independent constant. t = 0 uses the clipped variance, where the
    // same identity is that of a Gaussian decoder −log N(x_0; μ_θ, σ²).
    const std::size_t B = 7, D = 40;
    const std::vector<std::int64_t> ts{0, 1, 2, 30, 400, 800, 999};
    for (const auto prof : {ddpm::profile::standard, ddpm::profile::ho2020, ddpm::profile::improved_diffusion}) {
        for (const auto sched : {ddpm::beta_schedule::linear, ddpm::beta_schedule::squaredcos_cap_v2}) {
            ddpm::schedule_config cfg;
            cfg.schedule = sched;
            const ddpm::noise_schedule s(cfg, prof);
            const auto x0 = gaussian<double>(B * D, 31);
            const auto eps = gaussian<double>(B * D, 32);
            std::vector<double> xt(B * D);
            ddpm::q_sample(s, x0, eps, ts, xt);
            std::vector<double> post_mean(B * D), post_var(B), post_lv(B);
            ddpm::q_posterior_mean_variance(s, x0, xt, ts, post_mean, post_var, post_lv);

            for (const auto var : {ddpm::variance_type::fixed_small, ddpm::variance_type::fixed_large}) {
                for (const auto p : all_predictions) {
                    INFO(ddpm::to_string(prof) << " " << ddpm::to_string(sched) << " " << ddpm::to_string(var) << " "
                                               << ddpm::to_string(p));
                    std::vector<double> target(B * D);
                    ddpm::training_target(s, p, x0, eps, ts, target);
                    // A prediction off by O(0.3) per element.
                    auto pred = target;
                    const auto noise = gaussian<double>(B * D, 33, 0.3);
                    for (std::size_t i = 0; i < pred.size(); ++i) pred[i] += noise[i];

                    const ddpm::model_options opt{p, var, ddpm::clip_options::none()};
                    std::vector<double> m(B * D), v(B * D), lv(B * D), px0(B * D);
                    ddpm::p_mean_variance(s, opt, pred, xt, ts, m, v, lv, px0);
                    const auto kl = mean_flat_kl(post_mean, post_lv, m, lv, B);
                    ddpm::p_mean_variance(s, opt, target, xt, ts, m, v, lv, px0);
                    const auto kl_perfect = mean_flat_kl(post_mean, post_lv, m, lv, B);

                    std::vector<double> w(B), per_sample(B);
                    ddpm::loss_weights(s, ddpm::loss_weighting::vlb, p, ts, w, 5.0, var);
                    ddpm::weighted_mse(pred, target, w, B, per_sample);
                    for (std::size_t b = 0; b < B; ++b) {
                        INFO("t=" << ts[b] << " kl=" << kl[b] << " kl_perfect=" << kl_perfect[b]
                                  << " weighted_mse=" << per_sample[b]);
                        CHECK(rel_diff(kl[b] - kl_perfect[b], per_sample[b]) <= 1e-7);
                        if (var == ddpm::variance_type::fixed_small && ts[b] > 0)
                            CHECK(std::abs(kl_perfect[b]) <= 1e-14);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Weighted MSE
// ---------------------------------------------------------------------------

TEMPLATE_TEST_CASE("weighted_mse: per-sample weighted means and the batch mean", "[training][mse]", float, double) {
    using T = TestType;
    const std::size_t B = 4, D = GENERATE(1, 3, 17);
    const auto pred = gaussian<T>(B * D, 41);
    const auto target = gaussian<T>(B * D, 42);
    const std::vector<T> w{T(1), T(0.5), T(0), T(3.25)};
    std::vector<double> expected(B, 0.0);
    for (std::size_t b = 0; b < B; ++b) {
        for (std::size_t i = 0; i < D; ++i) {
            const double e = double(pred[b * D + i]) - double(target[b * D + i]);
            expected[b] += e * e;
        }
        expected[b] = double(w[b]) * expected[b] / double(D);
    }
    const double expected_mean = std::accumulate(expected.begin(), expected.end(), 0.0) / double(B);

    std::vector<T> out(B);
    const double mean = ddpm::weighted_mse(pred, target, w, B, out);
    const double tol = 1e-13;
    const double tol_out = std::is_same_v<T, float> ? 1e-7 : tol; // out[b] is rounded to T
    for (std::size_t b = 0; b < B; ++b) CHECK(rel_diff(out[b], expected[b]) <= tol_out);
    CHECK(out[2] == T(0));
    CHECK(rel_diff(mean, expected_mean) <= tol);
    CHECK(ddpm::weighted_mse(pred, target, w, B) == mean);

    // Double weights with float data, and out aliasing the weights.
    std::vector<double> wd(w.begin(), w.end());
    const double mean2 = ddpm::weighted_mse(pred, target, wd, B, wd);
    CHECK(mean2 == mean);
    for (std::size_t b = 0; b < B; ++b) CHECK(rel_diff(wd[b], expected[b]) <= tol);
    // Identical inputs give zero loss.
    CHECK(ddpm::weighted_mse(pred, pred, w, B) == 0.0);
}

// ---------------------------------------------------------------------------
// Random words
// ---------------------------------------------------------------------------

TEST_CASE("splitmix64 and the bounded-integer / uniform-double helpers are reproducible", "[training][rng]") {
    static_assert(std::uniform_random_bit_generator<ddpm::detail::splitmix64>);
    static_assert(ddpm::detail::word_generator<ddpm::detail::splitmix64>);
    static_assert(ddpm::detail::word_generator<std::mt19937_64>);
    static_assert(ddpm::detail::word_generator<std::mt19937>);
    static_assert(!ddpm::detail::word_generator<std::minstd_rand>); // [1, 2^31 − 2]: not full words

    // Vigna's splitmix64.c with seed 0 (also Java's SplittableRandom mixer).
    ddpm::detail::splitmix64 g0(0);
    CHECK(g0() == 0xE220A8397B1DCDAFull);
    CHECK(g0() == 0x6E789E6AA1B965F4ull);
    CHECK(g0() == 0x06C45D188009454Full);
    CHECK(g0() == 0xF88BB8A8724C81ECull);
    CHECK(g0.state() == 4 * 0x9E3779B97F4A7C15ull);

    // Pinned against an independent Python big-integer implementation of
    // splitmix64 + "reject below 2^64 mod n, then mod n" + (word >> 11)·2^−53.
    ddpm::detail::splitmix64 g42(42);
    const std::vector<std::uint64_t> first42{413, 291, 858, 764, 250, 62, 925, 908, 5, 974, 207, 646};
    for (const auto x : first42) CHECK(ddpm::detail::uniform_below(g42, 1000) == x);
    ddpm::detail::splitmix64 g2024(2024);
    const std::vector<std::uint64_t> first2024{3, 0, 3, 5, 4, 0, 4, 4, 0, 3, 6, 4};
    for (const auto x : first2024) CHECK(ddpm::detail::uniform_below(g2024, 7) == x);
    ddpm::detail::splitmix64 g7(7);
    CHECK(ddpm::detail::uniform01(g7) == 0.3898297483912715);
    CHECK(ddpm::detail::uniform01(g7) == 0.01678829452815611);
    CHECK(ddpm::detail::uniform01(g7) == 0.9007606806068834);

    // n = 1 consumes a word and returns 0; n = 2^63 never rejects.
    ddpm::detail::splitmix64 a(5), b(5);
    CHECK(ddpm::detail::uniform_below(a, 1) == 0);
    (void)b();
    CHECK(a.state() == b.state());
    CHECK(ddpm::detail::uniform_below(a, std::uint64_t{1} << 63) == (b() & ((std::uint64_t{1} << 63) - 1)));

    // 32-bit generators: two outputs per word, high half first.
    std::mt19937 m1(9), m2(9);
    const std::uint64_t hi = m2(), lo = m2();
    CHECK(ddpm::detail::next_word(m1) == ((hi << 32) | lo));
}

// ---------------------------------------------------------------------------
// Samplers
// ---------------------------------------------------------------------------

namespace {

/// |count − n p| <= 5 σ + 1 for a Binomial(n, p) count (two-sided, per bin).
bool within_binomial(std::size_t count, std::size_t n, double p) {
    const double mean = double(n) * p;
    const double sd = std::sqrt(double(n) * p * (1.0 - p));
    return std::abs(double(count) - mean) <= 5.0 * sd + 1.0;
}

} // namespace

TEST_CASE("uniform_timestep_sampler covers every t with binomial frequencies", "[training][sampler]") {
    const std::int64_t T = 50;
    const ddpm::uniform_timestep_sampler sampler(T);
    CHECK(sampler.num_timesteps() == T);
    ddpm::detail::splitmix64 rng(123);
    const std::size_t n = 400000, batch = 1000;
    std::vector<std::size_t> counts(T, 0);
    std::vector<std::int64_t> t(batch);
    std::vector<double> w(batch);
    for (std::size_t k = 0; k < n / batch; ++k) {
        sampler.sample(rng, t, w);
        for (std::size_t i = 0; i < batch; ++i) {
            REQUIRE(t[i] >= 0);
            REQUIRE(t[i] < T);
            REQUIRE(w[i] == 1.0);
            ++counts[static_cast<std::size_t>(t[i])];
        }
    }
    for (std::int64_t k = 0; k < T; ++k) {
        INFO("t=" << k << " count=" << counts[k]);
        CHECK(within_binomial(counts[k], n, 1.0 / double(T)));
    }

    SECTION("deterministic for a seed, and pinned") {
        const ddpm::uniform_timestep_sampler s1000(1000);
        ddpm::detail::splitmix64 a(42), b(42), c(43);
        std::vector<std::int64_t> ta(12), tb(12), tc(12);
        std::vector<double> wa(12), wb(12), wc(12);
        s1000.sample(a, ta, wa);
        s1000.sample(b, tb, wb);
        s1000.sample(c, tc, wc);
        CHECK(ta == tb);
        CHECK(ta != tc);
        CHECK(ta == std::vector<std::int64_t>{413, 291, 858, 764, 250, 62, 925, 908, 5, 974, 207, 646});
        // Any full-word generator works, e.g. std::mt19937_64 (fully specified by the standard).
        std::mt19937_64 m1(1), m2(1);
        s1000.sample(m1, ta, wa);
        s1000.sample(m2, tb, wb);
        CHECK(ta == tb);
    }
    SECTION("T = 1 always gives 0") {
        const ddpm::uniform_timestep_sampler one(1);
        sampler.sample(rng, t, w); // keep rng moving
        one.sample(rng, t, w);
        for (const auto x : t) CHECK(x == 0);
    }
    SECTION("from a schedule") {
        const ddpm::noise_schedule s(ddpm::schedule_config{});
        CHECK(ddpm::uniform_timestep_sampler(s).num_timesteps() == 1000);
    }
}

TEST_CASE("loss_second_moment_sampler", "[training][sampler]") {
    const std::int64_t T = 20;
    const std::size_t H = 10;

    SECTION("before warm-up it is the uniform sampler") {
        ddpm::loss_second_moment_sampler s(T);
        CHECK(s.history_per_term() == 10);
        CHECK(s.uniform_prob() == 0.001);
        // Every t but the last gets a full history: still not warmed up.
        for (std::int64_t t = 0; t + 1 < T; ++t)
            for (std::size_t k = 0; k < H; ++k) s.update(std::vector<std::int64_t>{t}, std::vector<double>{double(t)});
        for (std::size_t k = 0; k + 1 < H; ++k)
            s.update(std::vector<std::int64_t>{T - 1}, std::vector<double>{1.0});
        CHECK_FALSE(s.warmed_up());
        for (const double p : s.probabilities()) CHECK(p == 1.0 / double(T));
        const ddpm::uniform_timestep_sampler u(T);
        ddpm::detail::splitmix64 a(77), b(77);
        std::vector<std::int64_t> ta(500), tb(500);
        std::vector<double> wa(500), wb(500);
        s.sample(a, ta, wa);
        u.sample(b, tb, wb);
        CHECK(ta == tb);
        CHECK(wa == wb);
        s.update(std::vector<std::int64_t>{T - 1}, std::vector<double>{1.0});
        CHECK(s.warmed_up());
    }

    SECTION("history keeps the last history_per_term losses, oldest first") {
        ddpm::loss_second_moment_sampler s(3, 4);
        const std::vector<std::int64_t> ts{1, 1, 2, 1, 1, 1, 1};
        const std::vector<float> ls{1, 2, 9, 3, 4, 5, 6};
        s.update(ts, ls);
        const auto h1 = s.history(1);
        CHECK(std::vector<double>(h1.begin(), h1.end()) == std::vector<double>{3, 4, 5, 6});
        CHECK(s.history(2).size() == 1);
        CHECK(s.history(0).empty());
    }

    SECTION("after warm-up: p_t ∝ sqrt(E[L_t^2]) mixed with uniform, sampled within binomial bounds") {
        for (const double uniform_prob : {0.001, 0.1}) {
            INFO("uniform_prob=" << uniform_prob);
            ddpm::loss_second_moment_sampler s(T, H, uniform_prob);
            // Loss of t_k ∝ k, fed in batches (every t once per batch), with a
            // spread so that √E[L²] is not just the mean: k·(1 ± 0.5).
            std::vector<std::int64_t> ts(T);
            std::iota(ts.begin(), ts.end(), 0);
            std::vector<double> ls(T);
            for (std::size_t round = 0; round < H + 3; ++round) {
                const double f = (round % 2 == 0) ? 1.5 : 0.5;
                for (std::int64_t k = 0; k < T; ++k) ls[k] = f * double(k);
                s.update(ts, ls);
            }
            REQUIRE(s.warmed_up());
            // The last 10 rounds are 5 × 1.5 and 5 × 0.5: √E[L²] = k √((2.25 + 0.25)/2).
            const double rms_unit = std::sqrt((2.25 + 0.25) / 2.0);
            double sum_rms = 0.0;
            for (std::int64_t k = 0; k < T; ++k) sum_rms += rms_unit * double(k);
            std::vector<double> p(T);
            for (std::int64_t k = 0; k < T; ++k)
                p[k] = rms_unit * double(k) / sum_rms * (1.0 - uniform_prob) + uniform_prob / double(T);
            const auto got = s.probabilities();
            for (std::int64_t k = 0; k < T; ++k) CHECK(rel_diff(got[k], p[k]) <= 1e-12);
            CHECK(std::abs(std::accumulate(got.begin(), got.end(), 0.0) - 1.0) <= 1e-12);

            ddpm::detail::splitmix64 rng(2718);
            const std::size_t n = 400000, batch = 2000;
            std::vector<std::size_t> counts(T, 0);
            std::vector<std::int64_t> t(batch);
            std::vector<double> w(batch);
            double wsum = 0.0;
            for (std::size_t r = 0; r < n / batch; ++r) {
                s.sample(rng, t, w);
                for (std::size_t i = 0; i < batch; ++i) {
                    const auto k = static_cast<std::size_t>(t[i]);
                    REQUIRE(k < std::size_t(T));
                    REQUIRE(w[i] == 1.0 / (double(T) * got[k]));
                    ++counts[k];
                    wsum += w[i];
                }
            }
            for (std::int64_t k = 0; k < T; ++k) {
                INFO("t=" << k << " count=" << counts[k] << " expected=" << double(n) * p[k]);
                CHECK(within_binomial(counts[k], n, p[k]));
            }
            // E[w] = Σ p_t / (T p_t) = 1; Var[w] = Σ 1/(T² p_t) − 1.
            double var = -1.0;
            for (std::int64_t k = 0; k < T; ++k) var += 1.0 / (double(T) * double(T) * p[k]);
            const double mean_w = wsum / double(n);
            INFO("mean weight " << mean_w << ", sd of the mean " << std::sqrt(var / double(n)));
            CHECK(std::abs(mean_w - 1.0) <= 5.0 * std::sqrt(var / double(n)));

            // Same seed, same sequence.
            ddpm::detail::splitmix64 a(99), b(99);
            std::vector<std::int64_t> ta(300), tb(300);
            std::vector<double> wa(300), wb(300);
            s.sample(a, ta, wa);
            s.sample(b, tb, wb);
            CHECK(ta == tb);
            CHECK(wa == wb);
        }
    }

    SECTION("degenerate histories") {
        // All losses 0: uniform (improved-diffusion would divide by zero).
        ddpm::loss_second_moment_sampler zero(4, 2);
        zero.update(std::vector<std::int64_t>{0, 1, 2, 3, 0, 1, 2, 3}, std::vector<double>(8, 0.0));
        REQUIRE(zero.warmed_up());
        for (const double p : zero.probabilities()) CHECK(p == 0.25);
        // uniform_prob = 0 and one timestep with zero loss: it is never drawn.
        ddpm::loss_second_moment_sampler s(4, 1, 0.0);
        s.update(std::vector<std::int64_t>{0, 1, 2, 3}, std::vector<double>{1.0, 0.0, 2.0, 1e300});
        ddpm::detail::splitmix64 rng(5);
        std::vector<std::int64_t> t(2000);
        std::vector<double> w(2000);
        s.sample(rng, t, w);
        for (std::size_t i = 0; i < t.size(); ++i) {
            CHECK(t[i] != 1);
            CHECK(std::isfinite(w[i]));
        }
        // Huge losses do not overflow the second moment.
        CHECK(s.probabilities()[3] > 0.99);
    }
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

TEST_CASE("bad input throws ddpm::invalid_argument and leaves outputs untouched", "[training][errors]") {
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const double sentinel = -12345.0;
    const std::vector<double> x0(6, 1.0), noise(6, 2.0);
    const std::vector<std::int64_t> ts{0, 5, 999};

    SECTION("training_target") {
        std::vector<double> out(6, sentinel), short_out(5, sentinel);
        CHECK_THROWS_AS(ddpm::training_target(s, ddpm::prediction_type::epsilon, x0, noise,
                                              std::vector<std::int64_t>{0, 5, 1000}, out),
                        ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::training_target(s, ddpm::prediction_type::v_prediction, x0, noise,
                                              std::vector<std::int64_t>{-1, 5, 9}, out),
                        ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::training_target(s, ddpm::prediction_type::sample, x0, noise, ts, short_out),
                        ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::training_target(s, ddpm::prediction_type::sample, x0, std::vector<double>(5), ts, out),
                        ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::training_target(s, ddpm::prediction_type::sample, x0, noise,
                                              std::vector<std::int64_t>{0, 1, 2, 3}, out),
                        ddpm::invalid_argument);
        for (const double v : out) CHECK(v == sentinel);
        for (const double v : short_out) CHECK(v == sentinel);
    }
    SECTION("loss_weights") {
        std::vector<double> w(3, sentinel);
        const auto mn = ddpm::loss_weighting::min_snr;
        const auto eps = ddpm::prediction_type::epsilon;
        for (const double g : {0.0, -1.0, std::numeric_limits<double>::infinity(),
                               std::numeric_limits<double>::quiet_NaN()})
            CHECK_THROWS_AS(ddpm::loss_weights(s, mn, eps, ts, w, g), ddpm::invalid_argument);
        for (const auto v : {ddpm::variance_type::learned, ddpm::variance_type::learned_range})
            CHECK_THROWS_AS(ddpm::loss_weights(s, ddpm::loss_weighting::vlb, eps, ts, w, 5.0, v),
                            ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::loss_weights(s, mn, eps, std::vector<std::int64_t>{0, 1000, 3}, w),
                        ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::loss_weights(s, mn, eps, std::vector<std::int64_t>{0, 1}, w), ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::loss_weights(s, mn, eps, std::vector<std::int64_t>{}, w), ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::loss_weights(s, static_cast<ddpm::loss_weighting>(42), eps, ts, w),
                        ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::loss_weights(s, mn, static_cast<ddpm::prediction_type>(42), ts, w),
                        ddpm::invalid_argument);
        for (const double v : w) CHECK(v == sentinel);
    }
    SECTION("weighted_mse") {
        const std::vector<double> pred(6, 1.0), target(6, 0.0), w{1.0, 1.0, 1.0};
        std::vector<double> out(3, sentinel), out2(2, sentinel);
        CHECK_THROWS_AS(ddpm::weighted_mse(pred, target, w, 0, out), ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::weighted_mse(pred, target, w, 4, out), ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::weighted_mse(pred, std::vector<double>(5), w, 3, out), ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::weighted_mse(pred, target, std::vector<double>{1.0, 1.0}, 3, out),
                        ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::weighted_mse(pred, target, w, 3, out2), ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::weighted_mse(pred, target, std::vector<double>{1.0, -1.0, 1.0}, 3, out),
                        ddpm::invalid_argument);
        CHECK_THROWS_AS(
            ddpm::weighted_mse(pred, target, std::vector<double>{1.0, std::numeric_limits<double>::quiet_NaN(), 1.0}, 3,
                               out),
            ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::weighted_mse(std::vector<double>{}, std::vector<double>{}, w, 3, out),
                        ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::weighted_mse(pred, target, w, 0), ddpm::invalid_argument);
        for (const double v : out) CHECK(v == sentinel);
        for (const double v : out2) CHECK(v == sentinel);
    }
    SECTION("samplers") {
        CHECK_THROWS_AS(ddpm::uniform_timestep_sampler(0), ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::loss_second_moment_sampler(0), ddpm::invalid_argument);
        CHECK_THROWS_AS(ddpm::loss_second_moment_sampler(10, 0), ddpm::invalid_argument);
        for (const double u : {-0.1, 1.5, std::numeric_limits<double>::quiet_NaN()})
            CHECK_THROWS_AS(ddpm::loss_second_moment_sampler(10, 10, u), ddpm::invalid_argument);
        CHECK_NOTHROW(ddpm::loss_second_moment_sampler(10, 1, 0.0));
        CHECK_NOTHROW(ddpm::loss_second_moment_sampler(10, 1, 1.0));

        // sample: sizes must agree; nothing drawn, nothing written.
        ddpm::detail::splitmix64 rng(1);
        const auto state = rng.state();
        std::vector<std::int64_t> t(4, -9);
        std::vector<double> w(3, sentinel);
        CHECK_THROWS_AS(ddpm::uniform_timestep_sampler(10).sample(rng, t, w), ddpm::invalid_argument);
        ddpm::loss_second_moment_sampler lsm(2, 1);
        CHECK_THROWS_AS(lsm.sample(rng, t, w), ddpm::invalid_argument);
        CHECK(rng.state() == state);
        for (const auto x : t) CHECK(x == -9);
        for (const double x : w) CHECK(x == sentinel);

        // update: sizes, range, finiteness; nothing recorded.
        CHECK_THROWS_AS(lsm.update(std::vector<std::int64_t>{0, 1}, std::vector<double>{1.0}),
                        ddpm::invalid_argument);
        CHECK_THROWS_AS(lsm.update(std::vector<std::int64_t>{0, 2}, std::vector<double>{1.0, 1.0}),
                        ddpm::invalid_argument);
        CHECK_THROWS_AS(lsm.update(std::vector<std::int64_t>{0, -1}, std::vector<double>{1.0, 1.0}),
                        ddpm::invalid_argument);
        CHECK_THROWS_AS(lsm.update(std::vector<std::int64_t>{0, 1},
                                   std::vector<double>{1.0, std::numeric_limits<double>::infinity()}),
                        ddpm::invalid_argument);
        CHECK_THROWS_AS(lsm.update(std::vector<std::int64_t>{0, 1},
                                   std::vector<float>{std::numeric_limits<float>::quiet_NaN(), 1.0f}),
                        ddpm::invalid_argument);
        CHECK(lsm.history(0).empty());
        CHECK(lsm.history(1).empty());
        CHECK_FALSE(lsm.warmed_up());
        CHECK_THROWS_AS((void)lsm.history(2), ddpm::invalid_argument);
    }
    SECTION("enum strings") {
        for (const auto k : {ddpm::loss_weighting::none, ddpm::loss_weighting::vlb, ddpm::loss_weighting::min_snr})
            CHECK(ddpm::loss_weighting_from_string(ddpm::to_string(k)) == k);
        CHECK_THROWS_AS(ddpm::loss_weighting_from_string("snr"), ddpm::invalid_argument);
    }
}
