// Bad input: every check throws the documented exception, names the
// parameter, and leaves the caller's buffers untouched.
#include <catch2/catch.hpp>

#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace {

constexpr double sentinel = 12345.0;

bool untouched(const std::vector<double>& v) {
    for (const auto x : v)
        if (x != sentinel) return false;
    return true;
}

auto identity_net = [](std::span<const double> x, std::span<const ddpm::timestep_t>, std::span<double> out) {
    for (std::size_t i = 0; i < x.size(); ++i) out[i] = 0.5 * x[i];
};

} // namespace

TEST_CASE("DDPM step: sizes and timesteps are checked before any write", "[samplers][errors]") {
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    ddpm::ddpm_scheduler<double> sched(s);
    const std::vector<double> x(8, 0.1), out(8, 0.2), z(8, 0.3);
    std::vector<double> prev(8, sentinel), x0(8, sentinel);

    CHECK_THROWS_WITH(sched.step(std::vector<double>(7), 10, x, z, prev, x0, 2), Catch::Contains("model_output.size()"));
    CHECK_THROWS_WITH(sched.step(out, 10, x, std::vector<double>(5), prev, x0, 2), Catch::Contains("noise.size()"));
    std::vector<double> short_prev(7, sentinel);
    CHECK_THROWS_WITH(sched.step(out, 10, x, z, short_prev, x0, 2), Catch::Contains("prev_sample.size()"));
    CHECK_THROWS_WITH(sched.step(out, 10, x, z, prev, x0, 3), Catch::Contains("sample.size()"));
    CHECK_THROWS_WITH(sched.step(out, 10, x, z, prev, x0, 0), Catch::Contains("batch"));
    CHECK_THROWS_WITH(sched.step(out, 1000, x, z, prev, x0, 2), Catch::Contains("t = 1000"));
    CHECK_THROWS_WITH(sched.step(out, std::vector<ddpm::timestep_t>{3, -1}, x, z, prev, x0), Catch::Contains("t[1]"));
    CHECK_THROWS_AS(sched.step(out, -1, x, z, prev, x0, 2), ddpm::invalid_argument);
    CHECK(untouched(prev));
    CHECK(untouched(x0));

    // learned variance: the output must carry 2·D per sample
    ddpm::model_options lo;
    lo.variance = ddpm::variance_type::learned_range;
    ddpm::ddpm_scheduler<double> learned(s, lo);
    CHECK_THROWS_WITH(learned.step(out, 10, x, z, prev, x0, 2), Catch::Contains("learned variance"));
    CHECK(untouched(prev));

    // after set_timesteps only the chain's timesteps are accepted
    sched.set_timesteps(10);
    CHECK_THROWS_WITH(sched.step(out, 901, x, z, prev, x0, 2), Catch::Contains("timesteps()"));
    CHECK_THROWS_AS(sched.previous_timestep(5), ddpm::invalid_argument);
    CHECK(sched.previous_timestep(900) == 800);
    CHECK(sched.previous_timestep(0) == -1);
    CHECK(untouched(prev));
}

TEST_CASE("DDPM set_timesteps validation", "[samplers][errors]") {
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    ddpm::ddpm_scheduler<float> sched(s);
    CHECK_THROWS_WITH(sched.set_timesteps(1001), Catch::Contains("num_inference_steps"));
    CHECK_THROWS_WITH(sched.set_timesteps(0), Catch::Contains("num_inference_steps"));
    const std::vector<ddpm::timestep_t> ascending{10, 20, 30};
    CHECK_THROWS_WITH(sched.set_timesteps(ascending), Catch::Contains("descending"));
    const std::vector<ddpm::timestep_t> too_big{1000, 20};
    CHECK_THROWS_AS(sched.set_timesteps(too_big), ddpm::invalid_argument);
    // a failed call leaves the chain as it was (the full chain)
    CHECK(sched.timesteps().size() == 1000);
    const std::vector<ddpm::timestep_t> custom{900, 450, 7};
    sched.set_timesteps(custom);
    CHECK(sched.previous_timestep(450) == 7);
    CHECK(sched.previous_timestep(7) == -1);
}

TEST_CASE("DDIM: eta outside [0, 1], stepping before set_timesteps", "[samplers][errors]") {
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    for (const double eta : {-0.1, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
        ddpm::ddim_options o;
        o.eta = eta;
        CHECK_THROWS_AS(ddpm::ddim_scheduler<double>(s, {}, o), ddpm::invalid_argument);
        CHECK_THROWS_WITH(ddpm::ddim_scheduler<double>(s, {}, o), Catch::Contains("eta"));
    }
    ddpm::ddim_scheduler<double> sched(s);
    CHECK_THROWS_WITH(sched.set_eta(2.0), Catch::Contains("eta"));
    CHECK(sched.eta() == 0.0);
    sched.set_eta(1.0);
    CHECK(sched.eta() == 1.0);

    const std::vector<double> x(4, 0.1), out(4, 0.2), z(4, 0.3);
    std::vector<double> prev(4, sentinel), x0(4, sentinel);
    CHECK_THROWS_WITH(sched.step(out, 10, x, z, prev, x0, 1), Catch::Contains("set_timesteps"));
    CHECK_THROWS_AS(sched.previous_timestep(10), ddpm::invalid_argument);
    std::vector<double> buf(4, sentinel);
    ddpm::zero_noise none;
    CHECK_THROWS_AS(ddpm::ddim_sample(sched, identity_net, none, buf, ddpm::sampler_options{.batch = 1}),
                    ddpm::invalid_argument);
    CHECK_THROWS_AS(ddpm::ddim_invert(sched, identity_net, buf), ddpm::invalid_argument);
    CHECK(untouched(buf));

    sched.set_timesteps(20);
    CHECK_THROWS_WITH(sched.step(out, 11, x, z, prev, x0, 1), Catch::Contains("timesteps()"));
    CHECK_THROWS_WITH(sched.step(std::vector<double>(3), 950, x, z, prev, x0, 1), Catch::Contains("model_output"));
    CHECK(untouched(prev));
    CHECK(untouched(x0));
    CHECK_THROWS_AS(sched.set_timesteps(2000), ddpm::invalid_argument);
}

TEST_CASE("sample: bad sizes and a network that writes NaN", "[samplers][errors]") {
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    ddpm::ddpm_scheduler<double> sched(s);
    std::mt19937_64 gen(0);
    ddpm::urbg_normal_noise noise(gen);

    std::vector<double> out(7, sentinel);
    ddpm::sampler_options opt;
    opt.batch = 2;
    CHECK_THROWS_WITH(ddpm::sample(sched, identity_net, noise, out, opt), Catch::Contains("out.size()"));
    opt.batch = 0;
    CHECK_THROWS_WITH(ddpm::sample(sched, identity_net, noise, out, opt), Catch::Contains("options.batch"));
    std::vector<double> empty;
    opt.batch = 1;
    CHECK_THROWS_AS(ddpm::sample(sched, identity_net, noise, empty, opt), ddpm::invalid_argument);
    CHECK(untouched(out));

    // NaN at the 4th call (step 3, t = 996)
    int calls = 0;
    auto bad_net = [&](std::span<const double> x, std::span<const ddpm::timestep_t>, std::span<double> o) {
        for (std::size_t i = 0; i < x.size(); ++i) o[i] = 0.1 * x[i];
        if (++calls == 4) o[5] = std::numeric_limits<double>::quiet_NaN();
    };
    std::vector<double> buf(8, sentinel);
    opt.batch = 2;
    opt.check_finite = true;
    CHECK_THROWS_AS(ddpm::sample(sched, bad_net, noise, buf, opt), ddpm::numerical_error);
    CHECK(untouched(buf));
    calls = 0;
    try {
        ddpm::sample(sched, bad_net, noise, buf, opt);
        FAIL("no exception");
    } catch (const ddpm::numerical_error& e) {
        const std::string what = e.what();
        CHECK_THAT(what, Catch::Contains("step 3") && Catch::Contains("t = 996") &&
                             Catch::Contains("model_output[5]") && Catch::Contains("nan"));
    }
    // catchable as ddpm::error and std::runtime_error
    calls = 0;
    CHECK_THROWS_AS(ddpm::sample(sched, bad_net, noise, buf, opt), std::runtime_error);
    calls = 0;
    CHECK_THROWS_AS(ddpm::sample(sched, bad_net, noise, buf, opt), ddpm::error);
    CHECK(untouched(buf));

    // the same for DDIM, with an infinity
    ddpm::ddim_scheduler<double> ddim(s);
    ddim.set_timesteps(10);
    auto inf_net = [](std::span<const double> x, std::span<const ddpm::timestep_t> t, std::span<double> o) {
        for (std::size_t i = 0; i < x.size(); ++i) o[i] = t[0] < 500 ? -std::numeric_limits<double>::infinity() : x[i];
    };
    try {
        ddpm::ddim_sample(ddim, inf_net, noise, buf, opt);
        FAIL("no exception");
    } catch (const ddpm::numerical_error& e) {
        CHECK_THAT(std::string(e.what()), Catch::Contains("step 5") && Catch::Contains("t = 400") &&
                                              Catch::Contains("-inf"));
    }
    CHECK(untouched(buf));

    // without the check the NaN flows through (and nothing throws)
    calls = 0;
    opt.check_finite = false;
    CHECK_NOTHROW(ddpm::sample(sched, bad_net, noise, buf, opt));
}
