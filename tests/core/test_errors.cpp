// Bad input: every case throws a ddpm::invalid_argument (also catchable as
// ddpm::error and std::invalid_argument) whose message names the parameter,
// and leaves the caller's output buffers untouched.
#include <catch2/catch.hpp>

#include <ddpm/core/clipping.hpp>
#include <ddpm/core/forward.hpp>
#include <ddpm/core/p_mean_variance.hpp>
#include <ddpm/core/parameterization.hpp>
#include <ddpm/core/posterior.hpp>

#include <algorithm>
#include <functional>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace {

constexpr double sentinel = -12345.0;
const double a_nan = std::numeric_limits<double>::quiet_NaN();
const double an_inf = std::numeric_limits<double>::infinity();

bool untouched(const std::vector<double>& v) {
    return std::all_of(v.begin(), v.end(), [](double x) { return x == sentinel; });
}

/// Runs f, requires ddpm::invalid_argument whose message contains `needle`.
template <class F>
void require_invalid(F&& f, const std::string& needle) {
    try {
        f();
        FAIL("no exception thrown; expected one mentioning '" << needle << "'");
    } catch (const ddpm::invalid_argument& e) {
        const std::string msg = e.what();
        INFO("message: " << msg);
        CHECK(msg.find(needle) != std::string::npos);
        CHECK(msg.find("expected") != std::string::npos);
    }
}

ddpm::schedule_config with(std::function<void(ddpm::schedule_config&)> f) {
    ddpm::schedule_config c;
    f(c);
    return c;
}

} // namespace

TEST_CASE("exceptions derive from ddpm::error and the matching std exception", "[core][errors]") {
    REQUIRE_THROWS_AS(ddpm::beta_schedule_from_string("nope"), ddpm::error);
    REQUIRE_THROWS_AS(ddpm::beta_schedule_from_string("nope"), std::invalid_argument);
    REQUIRE_THROWS_AS(ddpm::beta_schedule_from_string("nope"), std::exception);
}

TEST_CASE("bad schedule configuration", "[core][errors][schedule]") {
    using ddpm::noise_schedule;
    require_invalid([] { noise_schedule(with([](auto& c) { c.num_train_timesteps = 0; })); }, "num_train_timesteps = 0");
    require_invalid([] { noise_schedule(with([](auto& c) { c.num_train_timesteps = -5; })); }, "num_train_timesteps");
    require_invalid([] { noise_schedule(with([](auto& c) { c.beta_start = a_nan; })); }, "beta_start = nan");
    require_invalid([] { noise_schedule(with([](auto& c) { c.beta_end = an_inf; })); }, "beta_end = inf");
    require_invalid([] { noise_schedule(with([](auto& c) { c.beta_end = 1.5; })); }, "beta_end = 1.5");
    require_invalid([] { noise_schedule(with([](auto& c) { c.beta_start = 0.0; })); }, "beta_start = 0");
    require_invalid([] { noise_schedule(with([](auto& c) { c.beta_start = -0.1; })); }, "beta_start = -0.1");
    require_invalid(
        [] {
            noise_schedule(with([](auto& c) {
                c.schedule = ddpm::beta_schedule::squaredcos_cap_v2;
                c.cosine_s = a_nan;
            }));
        },
        "cosine_s");
    require_invalid(
        [] {
            noise_schedule(with([](auto& c) {
                c.schedule = ddpm::beta_schedule::squaredcos_cap_v2;
                c.max_beta = 1.5;
            }));
        },
        "max_beta");
    require_invalid([] { (void)ddpm::beta_schedule_from_string("linearr"); }, "beta_schedule = linearr");
    require_invalid([] { (void)ddpm::profile_from_string("torch"); }, "profile = torch");
    require_invalid([] { (void)ddpm::prediction_type_from_string("eps"); }, "prediction_type = eps");
    require_invalid([] { (void)ddpm::variance_type_from_string("small"); }, "variance_type = small");
}

TEST_CASE("bad user betas and alphas_cumprod", "[core][errors][schedule]") {
    using ddpm::noise_schedule;
    require_invalid([] { (void)noise_schedule::from_betas(std::vector<double>{}); }, "betas.size()");
    require_invalid([] { (void)noise_schedule::from_betas(std::vector<double>{0.1, 0.0, 0.2}); }, "betas[1] = 0");
    require_invalid([] { (void)noise_schedule::from_betas(std::vector<double>{0.1, 1.2}); }, "betas[1] = 1.2");
    require_invalid([] { (void)noise_schedule::from_betas(std::vector<double>{0.1, a_nan}); }, "betas[1] = nan");
    require_invalid([] { (void)noise_schedule::from_betas(std::vector<double>{1.0, 0.5}); }, "betas[0]");
    // A final beta of exactly 1 (zero terminal SNR) is allowed.
    CHECK_NOTHROW(noise_schedule::from_betas(std::vector<double>{0.1, 0.2, 1.0}));
    require_invalid([] { (void)noise_schedule::from_alphas_cumprod(std::vector<double>{0.9, 0.95}); },
                    "alphas_cumprod[1] = 0.9499");
    require_invalid([] { (void)noise_schedule::from_alphas_cumprod(std::vector<double>{0.9, 0.9}); },
                    "strictly decreasing");
    require_invalid([] { (void)noise_schedule::from_alphas_cumprod(std::vector<double>{1.0, 0.5}); },
                    "alphas_cumprod[0] = 1");
    require_invalid([] { (void)noise_schedule::from_alphas_cumprod(std::vector<double>{0.5, a_nan}); },
                    "alphas_cumprod[1] = nan");
}

TEST_CASE("bad batch arguments leave outputs untouched", "[core][errors]") {
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const std::size_t B = 2, D = 6;
    const std::vector<double> x(B * D, 0.5), eps(B * D, 0.1);
    const std::vector<std::int64_t> ts{3, 7};
    std::vector<double> out(B * D, sentinel), out_b(B, sentinel), out_c(B, sentinel);

    SECTION("mismatched sizes") {
        require_invalid([&] { ddpm::q_sample(s, x, std::vector<double>(B * D - 1), ts, out); }, "noise.size() = 11");
        require_invalid([&] { ddpm::q_sample(s, std::vector<double>(B * D + 1), eps, ts, out); }, "x0.size() = 13");
        require_invalid([&] { ddpm::q_sample(s, x, eps, ts, std::vector<double>(3)); }, "out.size() = 3");
        require_invalid([&] { ddpm::q_sample(s, x, eps, std::vector<std::int64_t>{}, out); }, "timesteps.size() = 0");
        require_invalid([&] { ddpm::q_posterior_mean_variance(s, x, eps, ts, out, std::vector<double>(3), out_c); },
                        "variance.size() = 3");
        require_invalid([&] { ddpm::q_mean_variance(s, x, ts, out, out_b, std::vector<double>(1)); },
                        "log_variance.size() = 1");
        CHECK(untouched(out));
        CHECK(untouched(out_b));
        CHECK(untouched(out_c));
    }
    SECTION("timestep outside [0, T)") {
        require_invalid([&] { ddpm::q_sample(s, x, eps, std::vector<std::int64_t>{3, 1000}, out); },
                        "timesteps[1] = 1000");
        require_invalid([&] { ddpm::add_noise(s, x, eps, std::vector<int>{-1, 0}, out); }, "timesteps[0] = -1");
        require_invalid([&] { ddpm::get_velocity(s, x, eps, std::vector<int>{0, 5000}, out); }, "timesteps[1] = 5000");
        require_invalid([&] { ddpm::predict_x0_from_eps(s, x, eps, std::vector<int>{0, 1000}, out); }, "timesteps[1]");
        require_invalid([&] { ddpm::q_posterior_mean_variance(s, x, eps, std::vector<int>{1000, 0}, out, out_b, out_c); },
                        "timesteps[0] = 1000");
        CHECK(untouched(out));
        CHECK(untouched(out_b));
        CHECK(untouched(out_c));
    }
    SECTION("p_mean_variance: learned variance needs twice the channels, valid clip options") {
        std::vector<double> mean(B * D, sentinel), var(B * D, sentinel), lv(B * D, sentinel), x0(B * D, sentinel);
        auto all_untouched = [&] { return untouched(mean) && untouched(var) && untouched(lv) && untouched(x0); };
        ddpm::model_options learned{ddpm::prediction_type::epsilon, ddpm::variance_type::learned_range, {}};
        require_invalid([&] { ddpm::p_mean_variance(s, learned, eps, x, ts, mean, var, lv, x0); },
                        "model_output.size() = 12");
        ddpm::model_options fixed{};
        require_invalid([&] { ddpm::p_mean_variance(s, fixed, std::vector<double>(2 * B * D), x, ts, mean, var, lv, x0); },
                        "model_output.size() = 24");
        ddpm::model_options clip0{};
        clip0.clip = ddpm::clip_options::clip(0.0);
        require_invalid([&] { ddpm::p_mean_variance(s, clip0, eps, x, ts, mean, var, lv, x0); }, "clip_range = 0");
        clip0.clip = ddpm::clip_options::clip(-1.0);
        require_invalid([&] { ddpm::p_mean_variance(s, clip0, eps, x, ts, mean, var, lv, x0); }, "clip_range = -1");
        for (const double ratio : {0.0, 1.0, 1.5, a_nan}) {
            ddpm::model_options th{};
            th.clip = ddpm::clip_options::dynamic(ratio, 1.0);
            require_invalid([&] { ddpm::p_mean_variance(s, th, eps, x, ts, mean, var, lv, x0); },
                            "dynamic_thresholding_ratio");
        }
        CHECK(all_untouched());
        std::vector<double> y(B * D, sentinel);
        require_invalid([&] { ddpm::clip_x0(ddpm::clip_options::dynamic(0.995, 0.0), B, y); }, "sample_max_value = 0");
        CHECK(untouched(y));
    }
}
