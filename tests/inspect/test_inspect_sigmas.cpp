// `ddpm_inspect timesteps --scheduler euler|euler_ancestral|heun|dpm|unipc`: the arrays
// of the σ-based schedulers against diffusers' set_timesteps arrays in
// tests/data/solvers.json (N <= 50, bit for bit in float32), and the options
// that only they take.
#include <catch2/catch.hpp>

#ifndef DDPM_INSPECT_EXE

TEST_CASE("ddpm_inspect timesteps --scheduler euler CLI tests", "[inspect][cli][timesteps][solvers]") {
    WARN("ddpm_inspect is not built (examples off or nlohmann_json missing): σ-scheduler CLI tests skipped");
}

#else

#include <support/golden.hpp>

#include "run_inspect.hpp"

#include <map>
#include <string>
#include <vector>

using nlohmann::json;

TEST_CASE("ddpm_inspect timesteps --scheduler euler|euler_ancestral|heun|dpm|unipc equals diffusers",
          "[inspect][cli][timesteps][solvers]") {
    const std::map<std::string, std::string> names{{"EulerDiscreteScheduler", "euler"},
                                                   {"EulerAncestralDiscreteScheduler", "euler_ancestral"},
                                                   {"HeunDiscreteScheduler", "heun"},
                                                   {"DPMSolverMultistepScheduler", "dpm"},
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
        // float32 values printed with 17 digits parse back to the same float
        const auto got = j.at("timesteps").get<std::vector<double>>();
        const auto want = ddpm_test::values(e.at("timesteps"));
        if (c.value("use_karras_sigmas", false) && it->second != "dpm" && it->second != "unipc") {
            // (dpm / unipc round their Karras timesteps: exact)
            // diffusers' log-σ table is numpy's SIMD float32 log, not correctly
            // rounded: Karras timesteps may differ by 2 float32 ulp (docs/solvers.md)
            CHECK(ddpm_test::max_rel_diff(got, want) <= 3e-7);
        } else {
            CHECK(got == want);
        }
        CHECK(j.at("sigmas").get<std::vector<double>>() == ddpm_test::values(e.at("sigmas")));
        CHECK(j.at("init_noise_sigma").get<double>() == e.at("init_noise_sigma").get<double>());
        CHECK(j.at("meta").at("scheduler") == it->second);
        ++checked;
    }
    CHECK(checked == 5 * (6 + 3 + 6 + 6 + 6));
}

TEST_CASE("ddpm_inspect timesteps: σ-scheduler options are checked", "[inspect][cli][timesteps][solvers]") {
    const std::vector<std::string> base{"timesteps", "--schedule", "linear", "--timesteps", "1000", "--spacing",
                                        "linspace"};
    auto with = [&](std::vector<std::string> more) {
        std::vector<std::string> a = base;
        a.insert(a.end(), more.begin(), more.end());
        return ddpm_test::run_inspect(a);
    };
    CHECK(with({"--steps", "10", "--scheduler", "euler", "--sigmas", "nope"}).exit_code == 2);
    CHECK(with({"--steps", "0", "--scheduler", "heun"}).exit_code == 2);
    CHECK(with({"--steps", "10", "--scheduler", "ddim", "--sigmas", "karras"}).exit_code == 2); // σ option, ddim
    CHECK(with({"--steps", "10", "--scheduler", "heun", "--final-sigmas", "sigma_min"}).exit_code == 2);
    CHECK(with({"--steps", "10", "--scheduler", "euler", "--precision", "half"}).exit_code == 2);
    // N > T: dpm and unipc refuse it (docs/solvers.md, "Fixed differences")
    CHECK(with({"--steps", "1001", "--scheduler", "dpm"}).exit_code == 2);
    CHECK(with({"--steps", "1001", "--scheduler", "unipc"}).exit_code == 2);
    // N > T is accepted for the Euler family, as diffusers does
    const auto big = with({"--steps", "1001", "--scheduler", "euler"});
    CHECK(big.exit_code == 0);
    const auto f64 = with({"--steps", "3", "--scheduler", "euler", "--precision", "float64", "--final-sigmas",
                           "sigma_min"});
    REQUIRE(f64.exit_code == 0);
    const json j = json::parse(f64.out);
    CHECK(j.at("sigmas").size() == 4);
    CHECK(j.at("sigmas").back().get<double>() > 0.0);
    CHECK(j.at("meta").at("precision") == "float64");
}

#endif
