// Easy mistakes become errors (issue 10 §4): a network that writes only part
// of its output, a learned-variance model that writes D instead of 2D values
// per sample (both caught by check_finite, which poisons the buffer), and the
// reusable DDIM sampler object. Each error leaves `out` untouched.
#include <catch2/catch.hpp>

#include <ddpm/ddpm.hpp>

#include <algorithm>
#include <vector>

namespace {

constexpr std::size_t B = 3, D = 8;

bool all_equal(const std::vector<float>& v, float x) {
    return std::all_of(v.begin(), v.end(), [x](float a) { return a == x; });
}

} // namespace

TEST_CASE("check_finite catches a network that writes only part of out", "[samplers][errors]") {
    ddpm::ddim_scheduler<float> s(ddpm::noise_schedule(ddpm::schedule_config{}));
    s.set_timesteps(10);
    const auto half = [](std::span<const float>, std::span<const ddpm::timestep_t>, std::span<float> out) {
        std::fill(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(out.size() / 2), 0.1f);
    };
    std::vector<float> out(B * D, 7.0f);
    ddpm::sampler_options opt{.batch = B, .check_finite = true};
    CHECK_THROWS_AS(ddpm::sample(s, half, ddpm::counter_noise(1), out, opt), ddpm::numerical_error);
    CHECK_THROWS_WITH(ddpm::sample(s, half, ddpm::counter_noise(1), out, opt),
                      Catch::Contains("model_output[12] = nan") && Catch::Contains("did not write"));
    CHECK(all_equal(out, 7.0f));
    // the same network with a buffer that happens to hold stale values was
    // silent before; it still is without check_finite (documented)
}

TEST_CASE("check_finite catches a learned-variance model writing D instead of 2D values", "[samplers][errors]") {
    ddpm::model_options mo;
    mo.variance = ddpm::variance_type::learned_range;
    ddpm::ddpm_scheduler<float> s(ddpm::noise_schedule(ddpm::schedule_config{}), mo);
    s.set_timesteps(10);
    // writes D values per sample: the predictions, no variance channel
    const auto d_only = [](std::span<const float> x, std::span<const ddpm::timestep_t> t, std::span<float> out) {
        const std::size_t dim = x.size() / t.size();
        for (std::size_t b = 0; b < t.size(); ++b)
            std::fill_n(out.begin() + static_cast<std::ptrdiff_t>(2 * b * dim), dim, 0.0f);
    };
    std::vector<float> out(B * D, 7.0f);
    ddpm::sampler_options opt{.batch = B, .check_finite = true};
    CHECK_THROWS_AS(ddpm::sample(s, d_only, ddpm::counter_noise(2), out, opt), ddpm::numerical_error);
    CHECK_THROWS_WITH(ddpm::sample(s, d_only, ddpm::counter_noise(2), out, opt),
                      Catch::Contains("learned / learned_range model writes its D predictions, then D variance"));
    CHECK(all_equal(out, 7.0f));
    // a model that writes everything passes
    const auto full = [](std::span<const float>, std::span<const ddpm::timestep_t>, std::span<float> o) {
        std::fill(o.begin(), o.end(), 0.0f);
    };
    CHECK(ddpm::sample(s, full, ddpm::counter_noise(2), out, opt) == 10);
}

TEST_CASE("ddim_sampler: a reusable DDIM sampler equal to ddim_sample", "[samplers][ddim]") {
    ddpm::ddim_options o;
    o.eta = 0.5;
    ddpm::ddim_sampler<double> sampler(ddpm::ddim_scheduler<double>(ddpm::noise_schedule(ddpm::schedule_config{}), {}, o));
    sampler.scheduler().set_timesteps(20);
    const auto net = [](std::span<const double> x, std::span<const ddpm::timestep_t>, std::span<double> out) {
        for (std::size_t k = 0; k < x.size(); ++k) out[k] = 0.3 * x[k];
    };
    std::vector<double> a(B * D), b(B * D), c(B * D);
    const ddpm::sampler_options opt{.batch = B};
    CHECK(sampler.sample(net, ddpm::counter_noise(4), a, opt) == 20);
    CHECK(sampler.sample(net, ddpm::counter_noise(4), b, opt) == 20); // reused scratch, same result
    ddpm::ddim_sample(sampler.scheduler(), net, ddpm::counter_noise(4), c, opt);
    CHECK(a == c);
    CHECK(b == c);
    ddpm::ddim_sampler<double> unset(ddpm::ddim_scheduler<double>(ddpm::noise_schedule(ddpm::schedule_config{})));
    std::vector<double> out(B * D, 7.0);
    CHECK_THROWS_WITH(unset.sample(net, ddpm::counter_noise(4), out, opt), Catch::Contains("set_timesteps"));
    CHECK(std::all_of(out.begin(), out.end(), [](double v) { return v == 7.0; }));
}

TEST_CASE("sampler_options::batch has no default: forgetting it throws", "[samplers][errors]") {
    ddpm::ddim_scheduler<float> s(ddpm::noise_schedule(ddpm::schedule_config{}));
    s.set_timesteps(5);
    const auto net = [](std::span<const float>, std::span<const ddpm::timestep_t>, std::span<float> out) {
        std::fill(out.begin(), out.end(), 0.0f);
    };
    std::vector<float> out(B * D, 7.0f); // B samples, but the options do not say so
    CHECK_THROWS_AS(ddpm::sample(s, net, ddpm::counter_noise(1), out), ddpm::invalid_argument);
    CHECK_THROWS_WITH(ddpm::sample(s, net, ddpm::counter_noise(1), out, ddpm::sampler_options{.check_finite = true}),
                      Catch::Contains("options.batch = 0 (not set)") && Catch::Contains("{.batch = B}"));
    ddpm::ddim_sampler<float> sampler(s);
    CHECK_THROWS_AS(sampler.sample(net, ddpm::counter_noise(1), out), ddpm::invalid_argument);
    CHECK(all_equal(out, 7.0f));
    CHECK(ddpm::sample(s, net, ddpm::counter_noise(1), out, ddpm::sampler_options{.batch = B}) == 5);
}

TEST_CASE("step: pred_original_sample is optional", "[samplers][step]") {
    const ddpm::noise_schedule sched(ddpm::schedule_config{});
    std::vector<float> out(B * D), x(B * D), z(B * D);
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = 0.1f * static_cast<float>(i % 7) - 0.3f;
        x[i] = 0.05f * static_cast<float>(i % 11) - 0.2f;
        z[i] = 0.02f * static_cast<float>(i % 5) - 0.04f;
    }
    std::vector<float> with(B * D, 9.0f), x0(B * D, 9.0f), without(B * D, 9.0f);
    SECTION("DDPM") {
        ddpm::ddpm_scheduler<float> s(sched);
        s.step(out, 500, x, z, with, x0, B);
        s.step(out, 500, x, z, without, B);
        CHECK(without == with);
        CHECK_FALSE(all_equal(without, 9.0f));
        std::vector<float> short_prev(B * D - 1, 9.0f);
        CHECK_THROWS_AS(s.step(out, 500, x, z, short_prev, B), ddpm::invalid_argument);
        CHECK(all_equal(short_prev, 9.0f));
    }
    SECTION("DDIM") {
        ddpm::ddim_scheduler<float> s(sched, {}, ddpm::ddim_options{.eta = 1.0});
        s.set_timesteps(10);
        const ddpm::timestep_t t = s.timesteps()[3];
        s.step(out, t, x, z, with, x0, B);
        s.step(out, t, x, z, without, B);
        CHECK(without == with);
        CHECK_FALSE(all_equal(without, 9.0f));
    }
}
