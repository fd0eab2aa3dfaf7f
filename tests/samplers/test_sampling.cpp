// Whole-chain tests with exact predictors (tests/samplers/mixture.hpp):
// DDPM-1000 and DDIM-50 recover a 2-D Gaussian mixture; DDIM inversion round
// trips; respaced chains; the observer; determinism.
#include <catch2/catch.hpp>

#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>

#include "mixture.hpp"

#include <support/golden.hpp>

#include <cmath>
#include <iostream>
#include <random>
#include <vector>

namespace {

using mixture3 = ddpm_test::gaussian_mixture<2, 3>;

const mixture3& test_mixture() {
    static const mixture3 m{{0.5, 0.3, 0.2}, {{{-2.0, -1.0}, {2.0, -1.0}, {0.0, 2.0}}}, {0.5, 0.4, 0.3}};
    return m;
}

/// Checks that xs (n samples) look like the mixture: weights within 5
/// standard errors √(π(1−π)/n), per-component means within 5 s/√n_k and
/// per-coordinate variances within 5 s²√(2/(n_k − 1)). Returns the largest
/// |z| seen (in standard errors).
template <class T>
double check_mixture(const mixture3& mix, std::span<const T> xs, const char* what) {
    constexpr double bound = 5.0;
    const auto st = ddpm_test::classify<2, 3>(mix, xs);
    const double n = static_cast<double>(xs.size() / 2);
    double worst = 0;
    for (std::size_t k = 0; k < 3; ++k) {
        const double pi = mix.weights[k];
        const double nk = static_cast<double>(st.count[k]);
        const double zw = (nk / n - pi) / std::sqrt(pi * (1 - pi) / n);
        INFO(what << " component " << k << ": weight " << nk / n << " vs " << pi << " (z = " << zw << ")");
        CHECK(std::abs(zw) <= bound);
        worst = std::max(worst, std::abs(zw));
        const double s = mix.stds[k];
        for (std::size_t j = 0; j < 2; ++j) {
            const double zm = (st.mean[k][j] - mix.means[k][j]) / (s / std::sqrt(nk));
            const double zv = (st.var[k][j] - s * s) / (s * s * std::sqrt(2.0 / (nk - 1)));
            INFO(what << " component " << k << " coord " << j << ": mean " << st.mean[k][j] << " vs "
                      << mix.means[k][j] << " (z = " << zm << "), var " << st.var[k][j] << " vs " << s * s
                      << " (z = " << zv << ")");
            CHECK(std::abs(zm) <= bound);
            CHECK(std::abs(zv) <= bound);
            worst = std::max({worst, std::abs(zm), std::abs(zv)});
        }
    }
    std::cout << "[mixture " << what << "] n = " << n << ", largest |z| = " << worst << " (bound " << bound << ")\n";
    return worst;
}

constexpr std::size_t n_samples = 2000;

} // namespace

TEMPLATE_TEST_CASE("DDPM-1000 with the exact predictor recovers a Gaussian mixture", "[samplers][stats][ddpm]", float,
                   double) {
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    const ddpm::ddpm_scheduler<TestType> sched(s); // ε-prediction, fixed_small, full chain
    ddpm_test::mixture_denoiser<TestType, 2, 3> net(test_mixture(), s);
    std::mt19937_64 gen(20240601);
    ddpm::urbg_normal_noise noise(gen);
    std::vector<TestType> x(2 * n_samples);
    ddpm::sampler_options opt;
    opt.batch = n_samples;
    opt.check_finite = true;
    REQUIRE(ddpm::sample(sched, net, noise, x, opt) == 1000);
    CHECK(net.calls() == 1000 * n_samples);
    check_mixture<TestType>(test_mixture(), x, sizeof(TestType) == 4 ? "ddpm1000 float" : "ddpm1000 double");
}

TEMPLATE_TEST_CASE("DDIM-50 (eta 0) and DDIM-250 (eta 1) with the exact predictor recover a Gaussian mixture",
                   "[samplers][stats][ddim]", float, double) {
    // Discretisation shrinks the components a little with few steps (measured
    // with 20000 samples: variance ratio ≈ 0.94 for η = 0 at 50 steps; ≈ 0.8
    // for η = 1 at 50 steps, 0.93 at 250, 0.98 at 1000 — fixed_small noise on
    // long strides is too small). At the step counts used here the bias is
    // below 2 standard errors of n = 2000, so the 5-SE bounds test the chain.
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    for (const auto& [eta, steps] : {std::pair{0.0, 50}, std::pair{1.0, 250}}) {
        ddpm::ddim_options o;
        o.eta = eta;
        ddpm::ddim_scheduler<TestType> sched(s, {}, o);
        sched.set_timesteps(steps, ddpm::timestep_spacing::trailing);
        ddpm_test::mixture_denoiser<TestType, 2, 3> net(test_mixture(), s);
        std::mt19937_64 gen(777);
        ddpm::urbg_normal_noise noise(gen);
        std::vector<TestType> x(2 * n_samples);
        ddpm::sampler_options opt;
        opt.batch = n_samples;
        REQUIRE(ddpm::ddim_sample(sched, net, noise, x, opt) == static_cast<std::size_t>(steps));
        check_mixture<TestType>(test_mixture(), x, eta == 0.0 ? "ddim50 eta=0" : "ddim250 eta=1");
    }
}

TEST_CASE("a respaced DDPM chain (ddim250) recovers the mixture", "[samplers][stats][respace]") {
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    const auto sched = ddpm::ddpm_scheduler<double>::respaced(s, "ddim250");
    ddpm_test::mixture_denoiser<double, 2, 3> net(test_mixture(), s);
    std::mt19937_64 gen(99);
    ddpm::urbg_normal_noise noise(gen);
    std::vector<double> x(2 * n_samples);
    ddpm::sampler_options opt;
    opt.batch = n_samples;
    REQUIRE(ddpm::sample(sched, net, noise, x, opt) == 250);
    check_mixture<double>(test_mixture(), x, "respaced ddim250");
}

TEMPLATE_TEST_CASE("DDIM inversion round-trips x_0 through x_T", "[samplers][ddim][inversion]", float, double) {
    // A single Gaussian: the exact predictor is linear and the η = 0 chain is
    // the discretised probability-flow ODE, which inversion runs backwards.
    const ddpm_test::gaussian_mixture<2, 1> gauss{{1.0}, {{{0.5, -0.3}}}, {0.4}};
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    const std::size_t n = 512;
    std::mt19937_64 gen(5);
    std::normal_distribution<double> nd;
    std::vector<TestType> x0(2 * n);
    for (std::size_t b = 0; b < n; ++b)
        for (std::size_t j = 0; j < 2; ++j)
            x0[2 * b + j] = static_cast<TestType>(gauss.means[0][j] + gauss.stds[0] * nd(gen));

    auto round_trip = [&](std::int64_t steps, std::size_t iterations) {
        ddpm::ddim_scheduler<TestType> sched(s);
        sched.set_timesteps(steps, ddpm::timestep_spacing::leading);
        ddpm_test::mixture_denoiser<TestType, 2, 1> net(gauss, s);
        std::vector<TestType> x = x0;
        ddpm::inversion_options io;
        io.batch = n;
        io.check_finite = true;
        io.fixed_point_iterations = iterations;
        REQUIRE(ddpm::ddim_invert(sched, net, x, io) == static_cast<std::size_t>(steps));
        CHECK(net.calls() == static_cast<std::size_t>(steps) * (1 + iterations) * n);
        // x_T should look like N(0, I): the flow maps N(m, s²) to ≈ N(√ᾱ_T m, 1).
        double mean = 0, sq = 0;
        for (const auto v : x) {
            mean += static_cast<double>(v);
            sq += static_cast<double>(v) * static_cast<double>(v);
        }
        mean /= static_cast<double>(x.size());
        const double var = sq / static_cast<double>(x.size()) - mean * mean;
        CHECK(std::abs(mean) < 5.0 / std::sqrt(static_cast<double>(x.size())));
        CHECK(std::abs(var - 1.0) < 5.0 * std::sqrt(2.0 / static_cast<double>(x.size())));
        // and back again
        ddpm::sampler_options opt;
        opt.batch = n;
        opt.start_from_input = true;
        ddpm::zero_noise none;
        REQUIRE(ddpm::ddim_sample(sched, net, none, x, opt) == static_cast<std::size_t>(steps));
        double worst = 0;
        for (std::size_t i = 0; i < x.size(); ++i)
            worst = std::max(worst, std::abs(static_cast<double>(x[i]) - static_cast<double>(x0[i])));
        std::cout << "[ddim inversion " << (sizeof(TestType) == 4 ? "float" : "double") << "] " << steps
                  << " steps, " << iterations << " fixed-point iterations: worst |x0' - x0| = " << worst << "\n";
        return worst;
    };
    // The explicit inversion is first order: the round-trip error halves when
    // the step count doubles (0.137 at 50 steps, 0.069 at 100 for this data).
    const double e50 = round_trip(50, 0);
    const double e100 = round_trip(100, 0);
    CHECK(e50 < 0.2);
    CHECK(e100 < 0.6 * e50);
    // Fixed-point iterations solve the implicit step: 4 of them at 50 steps
    // bring it to ~1e-5.
    CHECK(round_trip(50, 4) < (sizeof(TestType) == 4 ? 2e-4 : 5e-5));
}

TEST_CASE("respaced schedule: betas, timesteps and the network's timesteps", "[samplers][respace]") {
    const ddpm::noise_schedule base{ddpm::schedule_config{}};
    const auto kept = ddpm::space_timesteps(1000, "10,15,20");
    const auto rs = ddpm::respace_schedule(base, kept);
    REQUIRE(rs.size() == 45);
    const auto& acp = base.f64().alphas_cumprod;
    for (std::size_t i = 0; i < kept.size(); ++i) {
        const double prev = i == 0 ? 1.0 : acp[static_cast<std::size_t>(kept[i - 1])];
        const double expected = 1.0 - acp[static_cast<std::size_t>(kept[i])] / prev;
        INFO("i = " << i << ", tau = " << kept[i]);
        CHECK(ddpm_test::rel_diff(rs.f64().betas[i], expected) <= 1e-15);
        CHECK(ddpm_test::rel_diff(rs.f64().alphas_cumprod[i], acp[static_cast<std::size_t>(kept[i])]) <= 1e-13);
    }

    auto sched = ddpm::ddpm_scheduler<double>::respaced(base, "10,15,20");
    REQUIRE(sched.is_respaced());
    REQUIRE(sched.timesteps().size() == 45);
    CHECK(sched.timesteps().front() == 999);
    CHECK(sched.timesteps().back() == 0);
    CHECK(sched.previous_timestep(999) == 982);
    CHECK(sched.previous_timestep(667) == 666);
    CHECK(sched.previous_timestep(0) == -1);
    CHECK_THROWS_AS(sched.set_timesteps(10), ddpm::invalid_argument);

    std::vector<ddpm::timestep_t> seen;
    auto recorder = [&](std::span<const double> x, std::span<const ddpm::timestep_t> t, std::span<double> out) {
        seen.push_back(t[0]);
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = 0.1 * x[i];
    };
    ddpm::zero_noise zeros;
    std::vector<double> x(3, 0.5);
    ddpm::sampler_options opt;
    opt.batch = 1;
    opt.start_from_input = true;
    ddpm::sample(sched, recorder, zeros, x, opt);
    REQUIRE(seen.size() == 45);
    for (std::size_t i = 0; i < 45; ++i) CHECK(seen[i] == kept[44 - i]); // the original indices, descending
}

TEST_CASE("a respaced step equals the strided step on the training schedule", "[samplers][respace]") {
    // improved-diffusion's respacing and diffusers' strided chain are the same
    // maths: β'_i = 1 − ᾱ_τi/ᾱ_τ(i−1) is the strided step's β.
    const ddpm::noise_schedule base{ddpm::schedule_config{}};
    const auto kept = ddpm::space_timesteps(1000, "ddim25");
    const std::vector<ddpm::timestep_t> desc(kept.rbegin(), kept.rend());
    for (const auto var : {ddpm::variance_type::fixed_small, ddpm::variance_type::fixed_large}) {
        ddpm::model_options o;
        o.variance = var;
        const auto respaced = ddpm::ddpm_scheduler<double>::respaced(base, kept, o);
        ddpm::ddpm_scheduler<double> strided(base, o);
        strided.set_timesteps(desc);
        const std::vector<double> x{0.3, -1.2, 0.7, 2.0};
        const std::vector<double> z{1.0, -0.5, 0.25, 0.1};
        const std::vector<double> eps{0.2, 0.4, -0.6, 0.8};
        for (std::size_t i = 0; i + 1 < desc.size(); ++i) { // the last step differs: fixed_large's t = 0 rule
            std::vector<double> a(4), b(4), a0(4), b0(4);
            respaced.step(eps, desc[i], x, z, a, a0, 1);
            strided.step(eps, desc[i], x, z, b, b0, 1);
            INFO(ddpm::to_string(var) << " t = " << desc[i]);
            CHECK(ddpm_test::max_rel_diff(a, b, 1.0) <= 1e-12);
            CHECK(ddpm_test::max_rel_diff(a0, b0, 1.0) <= 1e-12);
        }
    }
}

TEST_CASE("the observer sees every step and can stop the run", "[samplers][observer]") {
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    ddpm::ddim_scheduler<double> sched(s);
    sched.set_timesteps(20);
    ddpm_test::mixture_denoiser<double, 2, 3> net(test_mixture(), s);
    ddpm::sampler_options opt;
    opt.batch = 4;

    std::vector<double> plain(8), watched(8);
    {
        std::mt19937_64 gen(1);
        ddpm::urbg_normal_noise noise(gen);
        ddpm::ddim_sample(sched, net, noise, plain, opt);
    }
    std::vector<std::size_t> steps;
    std::vector<ddpm::timestep_t> ts;
    std::vector<double> last_x, last_x0;
    {
        std::mt19937_64 gen(1);
        ddpm::urbg_normal_noise noise(gen);
        const auto n = ddpm::ddim_sample(sched, net, noise, watched, opt,
                                         [&](std::size_t i, ddpm::timestep_t t, std::span<const double> x,
                                             std::span<const double> x0) {
                                             steps.push_back(i);
                                             ts.push_back(t);
                                             last_x.assign(x.begin(), x.end());
                                             last_x0.assign(x0.begin(), x0.end());
                                         });
        CHECK(n == 20);
    }
    CHECK(plain == watched); // observing changes nothing
    REQUIRE(steps.size() == 20);
    for (std::size_t i = 0; i < 20; ++i) {
        CHECK(steps[i] == i);
        CHECK(ts[i] == sched.timesteps()[i]);
    }
    CHECK(last_x == watched);
    // at the last step (ᾱ_prev = 1, η = 0) x_0 = x̂_0
    for (std::size_t i = 0; i < 8; ++i) CHECK(last_x0[i] == Approx(watched[i]).epsilon(1e-12));

    // progressive decoding stopped after step 5: the output is the state then
    std::vector<double> stopped(8), state_at_5;
    {
        std::mt19937_64 gen(1);
        ddpm::urbg_normal_noise noise(gen);
        const auto n = ddpm::ddim_sample(sched, net, noise, stopped, opt,
                                         [&](std::size_t i, ddpm::timestep_t, std::span<const double> x,
                                             std::span<const double>) {
                                             if (i == 5) state_at_5.assign(x.begin(), x.end());
                                             return i < 5;
                                         });
        CHECK(n == 6);
    }
    CHECK(stopped == state_at_5);
}

TEST_CASE("sampling is deterministic given the generator", "[samplers][noise]") {
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    ddpm::ddpm_scheduler<float> sched(s);
    sched.set_timesteps(100, ddpm::timestep_spacing::trailing);
    ddpm_test::mixture_denoiser<float, 2, 3> net(test_mixture(), s);
    ddpm::sampler_options opt;
    opt.batch = 16;
    auto run = [&](std::uint64_t seed) {
        std::mt19937_64 gen(seed);
        ddpm::urbg_normal_noise noise(gen);
        std::vector<float> x(32);
        ddpm::sample(sched, net, noise, x, opt);
        return x;
    };
    CHECK(run(3) == run(3));
    CHECK(run(3) != run(4));
    // a sampler object reuses its scratch and gives the same numbers
    ddpm::ddpm_sampler<float> sampler(sched);
    for (int rep = 0; rep < 2; ++rep) {
        std::mt19937_64 gen(3);
        ddpm::urbg_normal_noise noise(gen);
        std::vector<float> x(32);
        sampler.sample(net, noise, x, opt);
        CHECK(x == run(3));
    }
}

TEST_CASE("caller noise buffers drive the chain step by step", "[samplers][noise]") {
    // The driver with buffer_noise equals a hand-written loop over step().
    const ddpm::noise_schedule s{ddpm::schedule_config{}, ddpm::profile::diffusers};
    ddpm::model_options mo;
    mo.clip = ddpm::clip_options::clip(1.0);
    ddpm::ddpm_scheduler<double> sched(s, mo);
    sched.set_timesteps(10, ddpm::timestep_spacing::leading, 1);
    const std::size_t B = 2, D = 3, N = sched.timesteps().size();
    std::vector<double> buf((N + 1) * B * D);
    std::mt19937_64 gen(11);
    std::normal_distribution<double> nd;
    for (auto& v : buf) v = nd(gen);
    auto net = [](std::span<const double> x, std::span<const ddpm::timestep_t> t, std::span<double> out) {
        for (std::size_t i = 0; i < x.size(); ++i)
            out[i] = std::tanh(0.7 * x[i]) * (0.5 + static_cast<double>(t[i / 3]) / 1000.0) + 0.05 * x[i];
    };
    ddpm::buffer_noise<double> noise(buf);
    std::vector<double> got(B * D);
    ddpm::sampler_options opt;
    opt.batch = B;
    ddpm::sample(sched, net, noise, got, opt);

    std::vector<double> x(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(B * D));
    std::vector<double> out(B * D), next(B * D), x0(B * D);
    for (std::size_t i = 0; i < N; ++i) {
        const auto t = sched.timesteps()[i];
        const std::vector<ddpm::timestep_t> ts(B, t);
        net(x, ts, out);
        const std::vector<double> z(buf.begin() + static_cast<std::ptrdiff_t>((i + 1) * B * D),
                                    buf.begin() + static_cast<std::ptrdiff_t>((i + 2) * B * D));
        sched.step(out, ts, x, z, next, x0);
        x = next;
    }
    CHECK(got == x);
}
