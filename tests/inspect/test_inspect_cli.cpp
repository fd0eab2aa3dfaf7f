// Runs the built ddpm_inspect binary (path in DDPM_INSPECT_EXE) and checks
// its JSON against the peers' tables in tests/data/schedules.json and against
// the library itself, plus its exit codes and usage messages.
#include <catch2/catch.hpp>

#ifndef DDPM_INSPECT_EXE

TEST_CASE("ddpm_inspect CLI tests", "[inspect][cli]") {
    WARN("ddpm_inspect is not built (examples off or nlohmann_json missing): CLI tests skipped");
}

#else

#include <ddpm/schedule/noise_schedule.hpp>
#include <support/golden.hpp>

#include "run_inspect.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using ddpm_test::golden;
using ddpm_test::max_rel_diff;
using ddpm_test::values;
using nlohmann::json;
using ddpm_test::inspect_result;
using ddpm_test::run_inspect;

namespace {

/// Runs ddpm_inspect, expects success and returns the parsed JSON.
json run_json(const std::vector<std::string>& args) {
    const auto r = run_inspect(args);
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    INFO("ddpm_inspect" << cmd << "\nstderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    json j = json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    REQUIRE(j.is_object());
    return j;
}

std::string fixture(const std::string& name) {
    // Appended piecewise: `std::string(dir) + "/" + name` trips GCC 12's
    // false -Warray-bounds (GCC bug 105329).
    std::string path = DDPM_INSPECT_DATA_DIR;
    path += '/';
    path += name;
    return path;
}

std::string number_arg(double v) {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

/// The command-line flags of a golden diffusers configuration.
std::vector<std::string> flags_of(const json& c) {
    std::vector<std::string> a = {"schedule", "--schedule", c.at("beta_schedule").get<std::string>(), "--timesteps",
                                  std::to_string(c.at("num_train_timesteps").get<int>())};
    if (c.contains("beta_start")) a.insert(a.end(), {"--beta-start", number_arg(c.at("beta_start").get<double>())});
    if (c.contains("beta_end")) a.insert(a.end(), {"--beta-end", number_arg(c.at("beta_end").get<double>())});
    if (c.value("rescale_betas_zero_snr", false)) a.emplace_back("--rescale-zero-snr");
    return a;
}

/// The fixture file for each golden diffusers schedule.
std::string config_fixture_of(const std::string& key) {
    if (key == "scaled_linear") return fixture("sd_v1_5/scheduler/scheduler_config.json");
    return fixture("diffusers_" + key + ".json");
}

const char* const improved_diffusion_keys[] = {"betas",
                                               "alphas_cumprod",
                                               "alphas_cumprod_prev",
                                               "sqrt_alphas_cumprod",
                                               "sqrt_one_minus_alphas_cumprod",
                                               "log_one_minus_alphas_cumprod",
                                               "sqrt_recip_alphas_cumprod",
                                               "sqrt_recipm1_alphas_cumprod",
                                               "posterior_variance",
                                               "posterior_log_variance_clipped",
                                               "posterior_mean_coef1",
                                               "posterior_mean_coef2"};

/// Number of entries of a printed float32 table equal, bit for bit, to the
/// golden float32 values; also checks that every printed number is a float32
/// widened exactly to double.
std::size_t bit_exact_f32(const json& printed, const json& golden_tensor) {
    const auto got = values<double>(printed);
    const auto expected = values<float>(golden_tensor);
    REQUIRE(got.size() == expected.size());
    std::size_t exact = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const auto f = static_cast<float>(got[i]);
        CHECK(static_cast<double>(f) == got[i]); // a widened float32
        exact += std::memcmp(&f, &expected[i], sizeof f) == 0;
    }
    return exact;
}

} // namespace

TEST_CASE("ddpm_inspect --profile improved_diffusion reproduces improved-diffusion's 12 tables to 1e-12",
          "[inspect][cli][parity]") {
    const auto& all = golden("schedules.json").at("improved_diffusion");
    const struct {
        const char* key;
        std::vector<std::string> flags;
        const char* config;
    } cases[] = {
        {"linear_T1000", {"--schedule", "linear", "--timesteps", "1000"}, "improved_diffusion_linear_T1000.json"},
        {"cosine_T4000", {"--schedule", "cosine", "--timesteps", "4000"}, "improved_diffusion_cosine_T4000.json"},
    };
    for (const auto& c : cases) {
        const json& ref = all.at(c.key);
        std::vector<std::string> flags = {"schedule"};
        flags.insert(flags.end(), c.flags.begin(), c.flags.end());
        flags.insert(flags.end(), {"--profile", "improved_diffusion"});
        const std::vector<std::string> config = {"schedule", "--config", fixture(c.config), "--profile",
                                                 "improved_diffusion"};
        for (const auto& args : {flags, config}) {
            const json out = run_json(args);
            CHECK(out.at("meta").at("profile") == "improved_diffusion");
            CHECK(out.at("meta").at("precision") == "float64");
            CHECK(out.at("meta").at("num_train_timesteps") == ref.at("T"));
            double worst = 0.0;
            for (const char* table : improved_diffusion_keys) {
                INFO(c.key << "." << table << " via " << args[1]);
                REQUIRE(out.contains(table));
                const double d = max_rel_diff(values(out.at(table)), values(ref.at(table)));
                worst = std::max(worst, d);
                CHECK(d <= 1e-12);
            }
            std::cout << "[ddpm_inspect improved_diffusion] " << c.key << " via " << args[1]
                      << ": 12 tables, worst relative difference " << worst << "\n";
        }
    }
}

TEST_CASE("ddpm_inspect --profile diffusers prints diffusers' float32 tensors bit for bit", "[inspect][cli][parity]") {
    const auto& all = golden("schedules.json").at("diffusers");
    REQUIRE(all.size() == 5);
    for (const auto& [key, ref] : all.items()) {
        auto flags = flags_of(ref.at("config"));
        flags.insert(flags.end(), {"--profile", "diffusers"});
        const std::vector<std::string> config = {"schedule", "--config", config_fixture_of(key), "--profile",
                                                 "diffusers"};
        for (const auto& args : {flags, config}) {
            const json out = run_json(args);
            CHECK(out.at("meta").at("precision") == "float32");
            for (const char* table : {"betas", "alphas_cumprod"}) {
                const auto& expected = ref.at("diffusers_f32").at(table);
                const std::size_t exact = bit_exact_f32(out.at(table), expected);
                std::cout << "[ddpm_inspect diffusers f32] " << key << "." << table << " via " << args[1] << ": "
                          << exact << "/" << values(expected).size() << " bit-exact\n";
                INFO(key << "." << table << " via " << args[1]);
                CHECK(exact == values(expected).size());
            }
        }
    }
}

TEST_CASE("ddpm_inspect (default profile) reproduces diffusers' float64 formula to 1e-12", "[inspect][cli][parity]") {
    const auto& all = golden("schedules.json").at("diffusers");
    for (const auto& [key, ref] : all.items()) {
        const auto flags = flags_of(ref.at("config"));
        const std::vector<std::string> config = {"schedule", "--config", config_fixture_of(key)};
        for (const auto& args : {flags, config}) {
            const json out = run_json(args);
            CHECK(out.at("meta").at("profile") == "default");
            CHECK(out.at("meta").at("precision") == "float64");
            for (const char* table : {"betas", "alphas_cumprod"}) {
                INFO(key << "." << table << " via " << args[1]);
                const double d = max_rel_diff(values(out.at(table)), values(ref.at("formula_f64").at(table)));
                CHECK(d <= 1e-12);
                std::cout << "[ddpm_inspect formula_f64] " << key << "." << table << " via " << args[1]
                          << ": worst relative difference " << d << "\n";
            }
        }
    }
}

TEST_CASE("ddpm_inspect prints every table so that it parses back to the identical number", "[inspect][cli]") {
    // Zero terminal SNR makes 1/ᾱ_T infinite: the "Infinity" string convention.
    ddpm::schedule_config c;
    c.num_train_timesteps = 50;
    c.rescale_betas_zero_snr = true;
    for (const auto profile : {ddpm::profile::standard, ddpm::profile::diffusers}) {
        const ddpm::noise_schedule s(c, profile);
        const json out = run_json({"schedule", "--schedule", "linear", "--timesteps", "50", "--rescale-zero-snr",
                                   "--profile", std::string(ddpm::to_string(profile))});
        std::size_t tables = 0;
        const auto compare = [&](std::string_view name, const auto& table) {
            INFO(ddpm::to_string(profile) << "." << name);
            REQUIRE(out.contains(std::string(name)));
            const auto printed = values<double>(out.at(std::string(name)));
            REQUIRE(printed.size() == table.size());
            for (std::size_t i = 0; i < table.size(); ++i) {
                const auto v = static_cast<double>(table[i]);
                if (std::isnan(v)) CHECK(std::isnan(printed[i]));
                else CHECK(printed[i] == v);
            }
            ++tables;
        };
        if (profile == ddpm::profile::diffusers) s.f32().for_each(compare);
        else s.f64().for_each(compare);
        CHECK(tables == 15);
        CHECK(out.at("sqrt_recip_alphas_cumprod").back() == "Infinity");
    }
    // --precision overrides the profile's default.
    const json f64 = run_json({"schedule", "--schedule", "linear", "--timesteps", "10", "--profile", "diffusers",
                               "--precision", "float64"});
    CHECK(f64.at("meta").at("precision") == "float64");
    const json f32 =
        run_json({"schedule", "--schedule=scaled_linear", "--timesteps=10", "--precision=float32", "--beta-end=0.012"});
    CHECK(f32.at("meta").at("precision") == "float32");
    CHECK(f32.at("meta").at("beta_end") == 0.012);
}

TEST_CASE("ddpm_inspect --config with trained_betas prints those betas", "[inspect][cli]") {
    const auto r = run_inspect({"schedule", "--config", fixture("trained_betas_T8.json")});
    REQUIRE(r.exit_code == 0);
    const json out = json::parse(r.out);
    CHECK(out.at("meta").at("beta_schedule") == "trained_betas");
    // meta.scheduler_config shows how the rest of the file was read.
    CHECK(out.at("meta").at("scheduler_config").at("variance_type") == "fixed_large");
    CHECK(out.at("meta").at("scheduler_config").at("timestep_spacing") == "leading");
    CHECK(values(out.at("betas")) == std::vector<double>{0.0001, 0.001, 0.01, 0.05, 0.1, 0.2, 0.35, 0.5});
    // Warnings about non-maths keys go to stderr, never into the JSON.
    CHECK_THAT(r.err, Catch::Contains("warning") && Catch::Contains("_class_name"));
}

TEST_CASE("ddpm_inspect: bad command lines exit 2 with usage on stderr", "[inspect][cli]") {
    const std::vector<std::vector<std::string>> bad = {
        {},                                                                       // no command
        {"frobnicate"},                                                           // unknown subcommand
        {"schedule", "--schedule", "linear", "--timesteps"},                      // missing value
        {"schedule", "--schedule", "linear"},                                     // missing --timesteps
        {"schedule", "--timesteps", "10"},                                        // missing --schedule
        {"schedule", "--schedule", "linear", "--timesteps", "10", "--bogus"},     // unknown flag
        {"schedule", "--schedule", "foo", "--timesteps", "10"},                   // unknown schedule
        {"schedule", "--schedule", "linear", "--timesteps", "0"},                 // T < 1
        {"schedule", "--schedule", "linear", "--timesteps", "-5"},                // T < 1
        {"schedule", "--schedule", "linear", "--timesteps", "ten"},               // not a number
        {"schedule", "--schedule", "linear", "--timesteps", "10", "--profile", "x"},
        {"schedule", "--schedule", "linear", "--timesteps", "10", "--beta-start", "abc"},
        {"schedule", "--schedule", "linear", "--timesteps", "10", "--beta-end", "2"}, // invalid schedule
        {"schedule", "--schedule", "linear", "--timesteps", "10", "--precision", "half"},
        {"schedule", "--schedule", "linear", "--timesteps", "10", "--timesteps", "20"}, // repeated
        {"schedule", "--schedule", "linear", "--timesteps", "10", "extra"},           // positional
        {"schedule", "--config", fixture("diffusers_linear.json"), "--timesteps", "10"}, // conflicting
    };
    for (const auto& args : bad) {
        std::string cmd;
        for (const auto& a : args) cmd += " " + a;
        INFO("ddpm_inspect" << cmd);
        const auto r = run_inspect(args);
        INFO("stderr: " << r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains("usage:"));
        CHECK_THAT(r.err, Catch::Contains("error"));
        CHECK(r.out.empty());
    }
}

TEST_CASE("ddpm_inspect: --help prints usage on stdout and exits 0, an unusable --config exits 1", "[inspect][cli]") {
    for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
             {"--help"}, {"-h"}, {"schedule", "--help"}, {"schedule", "--schedule", "linear", "-h"}}) {
        const auto r = run_inspect(args);
        CHECK(r.exit_code == 0);
        CHECK_THAT(r.out, Catch::Contains("usage:"));
        CHECK(r.err.empty());
    }
    const auto help = run_inspect({"schedule", "--help"});
    CHECK_THAT(help.out, Catch::Contains("--config") && Catch::Contains("float32") && Catch::Contains("Infinity"));

    auto r = run_inspect({"schedule", "--config", fixture("does_not_exist.json")});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("does_not_exist.json"));
    CHECK(r.out.empty());
}

#endif // DDPM_INSPECT_EXE
