// `ddpm_inspect timesteps --scheduler dpm|unipc`: the integer timesteps and
// the sigmas of DPM-Solver (multistep) and UniPC against diffusers'
// set_timesteps arrays in tests/data/solvers.json (N <= 50, bit for bit in
// float32), and their refusal of N > T.
#include <catch2/catch.hpp>

#ifndef DDPM_INSPECT_EXE

TEST_CASE("ddpm_inspect timesteps --scheduler dpm|unipc CLI tests", "[inspect][cli][timesteps][solvers]") {
    WARN("ddpm_inspect is not built (examples off or nlohmann_json missing): dpm/unipc CLI tests skipped");
}

#else

#include <support/golden.hpp>

#include "run_inspect.hpp"

#include <map>
#include <string>
#include <vector>

using nlohmann::json;

TEST_CASE("ddpm_inspect timesteps --scheduler dpm|unipc equals diffusers", "[inspect][cli][timesteps][solvers]") {
    const std::map<std::string, std::string> names{{"DPMSolverMultistepScheduler", "dpm"},
                                                   {"UniPCMultistepScheduler", "unipc"}};
    std::size_t checked = 0;
    for (const json& e : ddpm_test::golden("solvers.json").at("set_timesteps_table").at("entries")) {
        const auto it = names.find(e.at("scheduler").get<std::string>());
        const auto N = e.at("N").get<std::int64_t>();
        if (it == names.end() || N > 50) continue;
        const json& c = e.at("config");
        std::vector<std::string> args{"timesteps", "--scheduler", it->second, "--schedule", "linear", "--timesteps",
                                      "1000", "--steps", std::to_string(N), "--spacing",
                                      c.at("timestep_spacing").get<std::string>()};
        if (c.value("use_karras_sigmas", false)) args.insert(args.end(), {"--sigmas", "karras"});
        std::string cmd;
        for (const auto& a : args) cmd += " " + a;
        INFO("ddpm_inspect" << cmd);
        const auto r = ddpm_test::run_inspect(args);
        REQUIRE(r.exit_code == 0);
        const json j = json::parse(r.out);
        CHECK(j.at("timesteps").get<std::vector<double>>() == ddpm_test::values(e.at("timesteps")));
        CHECK(j.at("sigmas").get<std::vector<double>>() == ddpm_test::values(e.at("sigmas")));
        CHECK(j.at("init_noise_sigma").get<double>() == 1.0);
        CHECK(j.at("meta").at("scheduler") == it->second);
        ++checked;
    }
    CHECK(checked == 2 * 3 * 2 * 5);
    // N > T: diffusers repeats timesteps, ddpm refuses (docs/solvers.md)
    const auto big = ddpm_test::run_inspect({"timesteps", "--scheduler", "dpm", "--schedule", "linear", "--timesteps",
                                             "1000", "--steps", "1001", "--spacing", "linspace"});
    CHECK(big.exit_code == 2);
}

#endif
