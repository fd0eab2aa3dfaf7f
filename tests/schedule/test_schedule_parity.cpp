// Parity of the schedule tables with the peers (tests/data/schedules.json):
// improved-diffusion float64 tables, diffusers' float32 tensors and the
// float64 formula behind them.
#include <catch2/catch.hpp>

#include <ddpm/schedule/noise_schedule.hpp>
#include <support/golden.hpp>

#include <cmath>
#include <cstring>
#include <iostream>

using ddpm_test::golden;
using ddpm_test::max_rel_diff;
using ddpm_test::values;

namespace {

/// Distance in float32 ulps (0 = bit-identical).
std::int64_t ulp_distance(float a, float b) {
    std::int32_t ia = 0, ib = 0;
    std::memcpy(&ia, &a, 4);
    std::memcpy(&ib, &b, 4);
    if (ia < 0) ia = std::numeric_limits<std::int32_t>::min() - ia;
    if (ib < 0) ib = std::numeric_limits<std::int32_t>::min() - ib;
    return std::abs(static_cast<std::int64_t>(ia) - static_cast<std::int64_t>(ib));
}

ddpm::schedule_config config_from(const nlohmann::json& c) {
    ddpm::schedule_config cfg;
    cfg.num_train_timesteps = c.at("num_train_timesteps").get<std::int64_t>();
    cfg.schedule = ddpm::beta_schedule_from_string(c.at("beta_schedule").get<std::string>());
    if (c.contains("beta_start")) cfg.beta_start = c.at("beta_start").get<double>();
    if (c.contains("beta_end")) cfg.beta_end = c.at("beta_end").get<double>();
    if (c.contains("rescale_betas_zero_snr")) cfg.rescale_betas_zero_snr = c.at("rescale_betas_zero_snr").get<bool>();
    return cfg;
}

} // namespace

TEST_CASE("improved_diffusion profile reproduces every improved-diffusion table to 1e-12", "[schedule][parity]") {
    const auto& all = golden("schedules.json").at("improved_diffusion");
    for (const auto& [key, ref] : all.items()) {
        ddpm::schedule_config cfg;
        cfg.num_train_timesteps = ref.at("T").get<std::int64_t>();
        cfg.schedule = ddpm::beta_schedule_from_string(ref.at("name").get<std::string>());
        const ddpm::noise_schedule s(cfg, ddpm::profile::improved_diffusion);
        std::size_t checked = 0;
        s.f64().for_each([&](std::string_view name, const std::vector<double>& table) {
            const std::string n(name);
            if (!ref.contains(n)) return;
            INFO(key << "." << n);
            CHECK(max_rel_diff(table, values(ref.at(n))) <= 1e-12);
            ++checked;
        });
        CHECK(checked == 12);
    }
}

TEST_CASE("default profile reproduces diffusers' float64 formula to 1e-12", "[schedule][parity]") {
    const auto& all = golden("schedules.json").at("diffusers");
    for (const auto& [key, ref] : all.items()) {
        INFO(key);
        const ddpm::noise_schedule s(config_from(ref.at("config")), ddpm::profile::standard);
        // alphas_cumprod = 0 at the last zero-SNR step: compare absolutely there.
        CHECK(max_rel_diff(s.f64().betas, values(ref.at("formula_f64").at("betas")), 1e-300) <= 1e-12);
        CHECK(max_rel_diff(s.f64().alphas_cumprod, values(ref.at("formula_f64").at("alphas_cumprod")), 1e-300) <=
              1e-12);
    }
}

TEST_CASE("diffusers profile reproduces diffusers' float32 tensors within one ulp", "[schedule][parity]") {
    const auto& all = golden("schedules.json").at("diffusers");
    for (const auto& [key, ref] : all.items()) {
        INFO(key);
        const ddpm::noise_schedule s(config_from(ref.at("config")), ddpm::profile::diffusers);
        for (const char* table : {"betas", "alphas_cumprod"}) {
            const auto expected = values<float>(ref.at("diffusers_f32").at(table));
            const auto& got = std::string(table) == "betas" ? s.f32().betas : s.f32().alphas_cumprod;
            REQUIRE(got.size() == expected.size());
            std::int64_t worst = 0;
            std::size_t exact = 0;
            for (std::size_t i = 0; i < got.size(); ++i) {
                const auto d = ulp_distance(got[i], expected[i]);
                worst = std::max(worst, d);
                exact += (d == 0);
            }
            std::cout << "[diffusers f32] " << key << "." << table << ": " << exact << "/" << got.size()
                      << " bit-exact, worst " << worst << " ulp\n";
            INFO(table << ": worst " << worst << " ulp, " << exact << " bit-exact");
            CHECK(worst <= 1);
        }
    }
}
