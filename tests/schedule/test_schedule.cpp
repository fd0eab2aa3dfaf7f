// Schedule construction: names, shapes of the original code's schedules,
// float views, user tables and the zero-terminal-SNR rescale.
#include <catch2/catch.hpp>

#include <ddpm/schedule/noise_schedule.hpp>

#include <cmath>

using ddpm::beta_schedule;
using ddpm::noise_schedule;
using ddpm::schedule_config;

TEST_CASE("schedule names round-trip and accept the aliases", "[schedule]") {
    for (const auto s : {beta_schedule::linear, beta_schedule::scaled_linear, beta_schedule::squaredcos_cap_v2,
                         beta_schedule::sigmoid, beta_schedule::constant, beta_schedule::jsd, beta_schedule::warmup10,
                         beta_schedule::warmup50})
        CHECK(ddpm::beta_schedule_from_string(ddpm::to_string(s)) == s);
    CHECK(ddpm::beta_schedule_from_string("quad") == beta_schedule::scaled_linear);
    CHECK(ddpm::beta_schedule_from_string("cosine") == beta_schedule::squaredcos_cap_v2);
    for (const auto p : {ddpm::profile::standard, ddpm::profile::ho2020, ddpm::profile::improved_diffusion,
                         ddpm::profile::diffusers})
        CHECK(ddpm::profile_from_string(ddpm::to_string(p)) == p);
}

TEST_CASE("the original code's schedules", "[schedule]") {
    schedule_config c;
    c.num_train_timesteps = 100;
    c.beta_start = 1e-4;
    c.beta_end = 0.02;
    SECTION("const") {
        c.schedule = beta_schedule::constant;
        const noise_schedule s(c);
        for (const double b : s.f64().betas) CHECK(b == 0.02);
    }
    SECTION("jsd: 1/T, 1/(T-1), ..., 1") {
        c.schedule = beta_schedule::jsd;
        const noise_schedule s(c);
        CHECK(s.f64().betas.front() == Approx(1.0 / 100));
        CHECK(s.f64().betas[98] == Approx(0.5));
        CHECK(s.f64().betas.back() == 1.0);
        CHECK(s.f64().alphas_cumprod.back() == 0.0);
    }
    SECTION("warmup10 and warmup50 ramp then hold") {
        for (const auto& [sched, n] : {std::pair{beta_schedule::warmup10, 10}, std::pair{beta_schedule::warmup50, 50}}) {
            c.schedule = sched;
            const noise_schedule s(c);
            const auto& b = s.f64().betas;
            CHECK(b[0] == 1e-4);
            CHECK(b[static_cast<std::size_t>(n) - 1] == 0.02);
            for (std::size_t i = 1; i < static_cast<std::size_t>(n); ++i) CHECK(b[i] > b[i - 1]);
            for (std::size_t i = static_cast<std::size_t>(n); i < b.size(); ++i) CHECK(b[i] == 0.02);
        }
    }
    SECTION("scaled_linear is a linspace of square roots, squared") {
        c.schedule = beta_schedule::scaled_linear;
        const noise_schedule s(c);
        CHECK(s.f64().betas.front() == Approx(1e-4));
        CHECK(s.f64().betas.back() == Approx(0.02));
        CHECK(std::sqrt(s.f64().betas[50]) == Approx(0.01 + 50 * (std::sqrt(0.02) - 0.01) / 99));
    }
    SECTION("cosine respects max_beta") {
        c.schedule = beta_schedule::squaredcos_cap_v2;
        c.max_beta = 0.5;
        const noise_schedule s(c);
        for (const double b : s.f64().betas) CHECK(b <= 0.5);
        CHECK(s.f64().betas.back() == 0.5);
    }
}

TEST_CASE("improved_diffusion scales the linear schedule by 1000/T", "[schedule][profile]") {
    schedule_config c;
    c.num_train_timesteps = 4000;
    const noise_schedule s(c, ddpm::profile::improved_diffusion);
    CHECK(s.f64().betas.front() == Approx(0.25e-4));
    CHECK(s.f64().betas.back() == Approx(0.005));
    const noise_schedule plain(c, ddpm::profile::standard);
    CHECK(plain.f64().betas.back() == Approx(0.02));
}

TEST_CASE("float views round the float64 tables (non-diffusers profiles)", "[schedule]") {
    const noise_schedule s(schedule_config{});
    std::size_t tables = 0;
    s.f64().for_each([&](std::string_view, const std::vector<double>& d) { tables += d.size() == 1000; });
    CHECK(tables == 15);
    for (std::size_t i = 0; i < 1000; ++i) {
        CHECK(s.f32().alphas_cumprod[i] == static_cast<float>(s.f64().alphas_cumprod[i]));
        CHECK(s.f32().posterior_log_variance_clipped[i] == static_cast<float>(s.f64().posterior_log_variance_clipped[i]));
    }
}

TEST_CASE("user tables: from_betas and from_alphas_cumprod agree", "[schedule]") {
    const noise_schedule ref(schedule_config{});
    const auto a = noise_schedule::from_alphas_cumprod(ref.f64().alphas_cumprod);
    const auto b = noise_schedule::from_betas(ref.f64().betas);
    REQUIRE(a.size() == 1000);
    for (std::size_t i = 0; i < 1000; ++i) {
        CHECK(b.f64().alphas_cumprod[i] == ref.f64().alphas_cumprod[i]);
        CHECK(a.f64().alphas_cumprod[i] == Approx(ref.f64().alphas_cumprod[i]).epsilon(1e-12));
    }
}

TEST_CASE("zero terminal SNR rescale", "[schedule]") {
    schedule_config c;
    c.rescale_betas_zero_snr = true;
    for (const auto p : {ddpm::profile::standard, ddpm::profile::diffusers}) {
        const noise_schedule s(c, p);
        const noise_schedule plain(schedule_config{}, p);
        CHECK(s.f64().alphas_cumprod.back() == 0.0);
        CHECK(s.f32().alphas_cumprod.back() == 0.0f);
        CHECK(s.f64().betas.back() == 1.0);
        CHECK(s.f64().snr.back() == 0.0);
        // √ᾱ_1 is unchanged by the rescale.
        CHECK(s.f64().sqrt_alphas_cumprod[0] == Approx(plain.f64().sqrt_alphas_cumprod[0]).epsilon(1e-12));
    }
}

TEST_CASE("a single-step schedule is valid", "[schedule]") {
    const auto s = noise_schedule::from_betas(std::vector<double>{0.5});
    CHECK(s.size() == 1);
    CHECK(s.f64().posterior_variance[0] == 0.0);
    CHECK(std::isfinite(s.f64().posterior_log_variance_clipped[0]));
}
