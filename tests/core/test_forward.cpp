// Forward process, posterior and parameterisations: golden parity with
// diffusers' add_noise / get_velocity, and the identities docs/math.md states.
#include <catch2/catch.hpp>

#include <ddpm/core/forward.hpp>
#include <ddpm/core/p_mean_variance.hpp>
#include <ddpm/core/parameterization.hpp>
#include <ddpm/core/posterior.hpp>
#include <ddpm/random/counter_noise.hpp>
#include <ddpm/samplers/noise.hpp>
#include <support/golden.hpp>
#include <support/gaussian.hpp>

#include <cmath>
#include <random>
#include <vector>

using ddpm_test::gaussian;
using ddpm_test::golden;
using ddpm_test::max_rel_diff;
using ddpm_test::values;

TEMPLATE_TEST_CASE("add_noise and get_velocity match diffusers", "[core][forward][parity]", float, double) {
    using T = TestType;
    const bool f32 = std::is_same_v<T, float>;
    const ddpm::noise_schedule s(ddpm::schedule_config{}, ddpm::profile::diffusers);
    const auto& g = golden("ddpm_step.json");
    const auto x0 = values<T>(g.at("inputs").at("x0"));
    const auto noise = values<T>(g.at("inputs").at("noise"));
    const double tol = f32 ? 2e-7 : 1e-15;
    for (const char* op : {"add_noise", "get_velocity"}) {
        std::size_t cases = 0;
        for (const auto& c : g.at(op)) {
            if (c.at("mode").get<std::string>() != (f32 ? "f32" : "f64")) continue;
            const auto ts = c.at("timesteps").get<std::vector<std::int64_t>>();
            std::vector<T> out(x0.size());
            if (std::string(op) == "add_noise") ddpm::add_noise(s, x0, noise, ts, out);
            else ddpm::get_velocity(s, x0, noise, ts, out);
            INFO(op << " t=" << ts[0] << "," << ts[1]);
            CHECK(max_rel_diff(out, values(c.at("result")), 1.0) <= tol);
            ++cases;
        }
        CHECK(cases == 5);
    }
}

TEMPLATE_TEST_CASE("identities of the forward process and posterior", "[core][identities]", float, double) {
    using T = TestType;
    const double tol = std::is_same_v<T, float> ? 2e-5 : 1e-12;
    for (const auto p : {ddpm::profile::standard, ddpm::profile::improved_diffusion, ddpm::profile::diffusers}) {
        for (const auto sched : {ddpm::beta_schedule::linear, ddpm::beta_schedule::squaredcos_cap_v2}) {
            ddpm::schedule_config cfg;
            cfg.schedule = sched;
            const ddpm::noise_schedule s(cfg, p);
            const auto& d = s.f64();
            INFO(ddpm::to_string(p) << " " << ddpm::to_string(sched));

            SECTION("alpha-bar strictly decreasing, posterior variance below beta") {
                for (std::size_t i = 1; i < d.alphas_cumprod.size(); ++i) REQUIRE(d.alphas_cumprod[i] < d.alphas_cumprod[i - 1]);
                for (std::size_t i = 0; i < d.betas.size(); ++i) REQUIRE(d.posterior_variance[i] <= d.betas[i]);
            }

            const std::size_t B = 4, D = 37;
            const auto x0 = gaussian<T>(B * D, 1);
            const auto eps = gaussian<T>(B * D, 2);
            const std::vector<std::int64_t> ts{1, 10, 500, 999};
            std::vector<T> xt(B * D);
            ddpm::q_sample(s, x0, eps, ts, xt);

            SECTION("epsilon-form mean equals the posterior mean of x0-hat (paper eq. 11)") {
                const ddpm::model_options opt{}; // epsilon, fixed_small, no clipping
                std::vector<T> mean(B * D), var(B * D), logvar(B * D), x0_hat(B * D);
                ddpm::p_mean_variance(s, opt, eps, xt, ts, mean, var, logvar, x0_hat);
                for (std::size_t b = 0; b < B; ++b) {
                    const auto t = static_cast<std::size_t>(ts[b]);
                    const double beta = d.betas[t], alpha = d.alphas[t];
                    for (std::size_t i = 0; i < D; ++i) {
                        const std::size_t k = b * D + i;
                        const double eps_form = (double(xt[k]) - beta / d.sqrt_one_minus_alphas_cumprod[t] * double(eps[k])) /
                                                std::sqrt(alpha);
                        REQUIRE(ddpm_test::rel_diff(double(mean[k]), eps_form, 1.0) <= 20 * tol);
                        REQUIRE(ddpm_test::rel_diff(double(x0_hat[k]), double(x0[k]), 1.0) <= 20 * tol * (1.0 / d.sqrt_alphas_cumprod[t]));
                    }
                }
            }

            SECTION("q_posterior_mean_variance agrees with the tables") {
                std::vector<T> mean(B * D), var(B), logvar(B);
                ddpm::q_posterior_mean_variance(s, x0, xt, ts, mean, var, logvar);
                for (std::size_t b = 0; b < B; ++b) {
                    const auto t = static_cast<std::size_t>(ts[b]);
                    CHECK(ddpm_test::rel_diff(double(var[b]), d.posterior_variance[t]) <= tol);
                    CHECK(ddpm_test::rel_diff(double(logvar[b]), d.posterior_log_variance_clipped[t]) <= tol);
                }
            }

            SECTION("conversions between epsilon, x0 and v round-trip") {
                using P = ddpm::prediction_type;
                const P kinds[] = {P::epsilon, P::sample, P::v_prediction};
                std::vector<T> truth_v(B * D);
                ddpm::get_velocity(s, x0, eps, ts, truth_v);
                auto truth = [&](P p) -> const std::vector<T>& { return p == P::epsilon ? eps : p == P::sample ? x0 : truth_v; };
                for (const P from : kinds)
                    for (const P to : kinds) {
                        std::vector<T> out(B * D);
                        ddpm::convert_prediction(s, from, to, truth(from), xt, ts, out);
                        INFO(ddpm::to_string(from) << " -> " << ddpm::to_string(to));
                        // x0 from epsilon at t=999 divides by sqrt(alpha-bar) ~ 0.006: scale the tolerance.
                        CHECK(max_rel_diff(out, truth(to), 1.0) <= 400 * tol);
                    }
            }
        }
    }
}

TEST_CASE("paper check values (Ho et al. 2020, section 4)", "[core][schedule]") {
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const auto& d = s.f64();
    CHECK(d.sqrt_alphas_cumprod.back() == Approx(0.0063528).margin(5e-8));
    CHECK(1.0 - d.alphas_cumprod.back() == Approx(0.99995964).margin(5e-9));
}

TEMPLATE_TEST_CASE("q_sample with counter noise draws the addressed normals and matches caller noise",
                   "[core][forward][noise]", float, double) {
    using T = TestType;
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const std::size_t B = 3, D = 130;
    const auto x0 = gaussian<T>(B * D, 3);
    const std::vector<int> ts{0, 499, 999};
    std::vector<T> xt(B * D), eps(B * D), ref(B * D);
    ddpm::q_sample(s, x0, ts, ddpm::counter_noise(77, 0, 10), 5, xt, eps, ddpm::execution{2});
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t i = 0; i < D; ++i)
            REQUIRE(eps[b * D + i] == T(ddpm::random::normal_at_v2(77, 10 + std::uint32_t(b), 5, i, D)));
    ddpm::q_sample(s, x0, eps, ts, ref);
    CHECK(max_rel_diff(xt, ref, 1.0) <= 1e-6);

    // The kernel-level spelling (kept for existing code) draws the same noise.
    std::vector<T> xt2(B * D), eps2(B * D);
    ddpm::q_sample(s, x0, ts, ddpm::kernels::noise_stream{77, 5, 10}, xt2, eps2);
    CHECK(xt2 == xt);
    CHECK(eps2 == eps);

    // A step beyond the 32-bit counter word is an error, and nothing is written.
    std::vector<T> xt3(B * D, T(-7)), eps3(B * D, T(-7));
    CHECK_THROWS_AS(ddpm::q_sample(s, x0, ts, ddpm::counter_noise(77), std::uint64_t{1} << 32, xt3, eps3),
                    ddpm::invalid_argument);
    CHECK(xt3 == std::vector<T>(B * D, T(-7)));
    CHECK(eps3 == std::vector<T>(B * D, T(-7)));
}
