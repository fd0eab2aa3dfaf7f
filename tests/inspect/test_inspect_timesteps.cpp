// `ddpm_inspect timesteps`: runs the built binary (path in DDPM_INSPECT_EXE)
// and checks its "timesteps" against diffusers' DDIMScheduler.set_timesteps(50)
// arrays in tests/data/ddim_step.json, against hand-derived small cases and
// against ddpm::make_timesteps, plus its exit codes and usage messages.
#include <catch2/catch.hpp>

#ifndef DDPM_INSPECT_EXE

TEST_CASE("ddpm_inspect timesteps CLI tests", "[inspect][cli][timesteps]") {
    WARN("ddpm_inspect is not built (examples off or nlohmann_json missing): timesteps CLI tests skipped");
}

#else

#include <ddpm/samplers/timesteps.hpp>
#include <support/golden.hpp>

#include "run_inspect.hpp"

#include <cerrno>
#include <cstdint>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <tuple>
#include <unistd.h>
#include <vector>

using ddpm_test::golden;
using nlohmann::json;
using ddpm_test::inspect_result;
using ddpm_test::run_inspect;

namespace {

/// `ddpm_inspect timesteps <args>`: expects success, returns the JSON.
json timesteps_json(std::vector<std::string> args) {
    args.insert(args.begin(), "timesteps");
    const auto r = run_inspect(args);
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    INFO("ddpm_inspect" << cmd << "\nstderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    json j = json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    REQUIRE(j.contains("timesteps"));
    return j;
}

std::vector<std::int64_t> timesteps_of(const std::vector<std::string>& args) {
    return timesteps_json(args).at("timesteps").get<std::vector<std::int64_t>>();
}

std::vector<std::string> flags(const std::string& T, const std::string& N, const std::string& spacing,
                               const std::string& offset = "0") {
    return {"--schedule", "linear", "--timesteps", T, "--steps", N, "--spacing", spacing, "--steps-offset", offset};
}

std::string fixture(const std::string& name) {
    std::string path = DDPM_INSPECT_DATA_DIR;
    path += '/';
    path += name;
    return path;
}

} // namespace

TEST_CASE("ddpm_inspect timesteps equals diffusers' DDIMScheduler.set_timesteps(50) for every ddim_step.json "
          "configuration",
          "[inspect][cli][timesteps][parity]") {
    const auto& configs = golden("ddim_step.json").at("configs");
    REQUIRE(configs.size() == 14);
    for (const auto& c : configs) {
        const auto& cfg = c.at("config");
        const auto spacing = cfg.at("timestep_spacing").get<std::string>();
        const auto offset = std::to_string(cfg.at("steps_offset").get<int>());
        const auto n = std::to_string(cfg.at("num_inference_steps").get<int>());
        INFO(spacing << " steps_offset " << offset);
        const auto expected = c.at("timesteps").get<std::vector<std::int64_t>>();
        REQUIRE(expected.size() == 50);
        auto args = flags("1000", n, spacing, offset);
        args.insert(args.end(), {"--scheduler", "ddim"});
        const json j = timesteps_json(args);
        CHECK(j.at("timesteps").get<std::vector<std::int64_t>>() == expected); // exact
        CHECK(j.at("meta").at("scheduler") == "ddim");
        CHECK(j.at("meta").at("timestep_spacing") == spacing);
        CHECK(j.at("meta").at("num_train_timesteps") == 1000);
        CHECK(j.at("meta").at("num_inference_steps") == 50);
        // DDPMScheduler.set_timesteps computes the same array.
        CHECK(timesteps_of(flags("1000", n, spacing, offset)) == expected);
    }
}

// Hand-derived from diffusers' set_timesteps, T = 10, N = 3:
//   linspace: np.linspace(0, 9, 3) = [0, 4.5, 9]; .round() is half to even, so
//             4.5 → 4; reversed: [9, 4, 0]. steps_offset is not applied.
//   leading:  step_ratio = 10 // 3 = 3; np.arange(0, 3) * 3 = [0, 3, 6];
//             reversed: [6, 3, 0]; + steps_offset 1: [7, 4, 1].
//   trailing: step_ratio = 10 / 3 = 3.3333333333333335;
//             np.arange(10, 0, -3.3333333333333335) = [10, 6.666666666666666,
//             3.333333333333332] (ceil(10 / 3.3333333333333335) = 3 elements);
//             np.round → [10, 7, 3]; − 1: [9, 6, 2]. steps_offset is not applied.
TEST_CASE("ddpm_inspect timesteps: small cases by hand (T = 10, N = 3)", "[inspect][cli][timesteps]") {
    using V = std::vector<std::int64_t>;
    CHECK(timesteps_of(flags("10", "3", "linspace")) == V{9, 4, 0});
    CHECK(timesteps_of(flags("10", "3", "leading")) == V{6, 3, 0});
    CHECK(timesteps_of(flags("10", "3", "leading", "1")) == V{7, 4, 1});
    CHECK(timesteps_of(flags("10", "3", "trailing")) == V{9, 6, 2});
    // linspace and trailing ignore the offset, as diffusers does.
    CHECK(timesteps_of(flags("10", "3", "linspace", "1")) == V{9, 4, 0});
    CHECK(timesteps_of(flags("10", "3", "trailing", "1")) == V{9, 6, 2});
    // Edge cases: one step, and N = T.
    CHECK(timesteps_of(flags("10", "1", "linspace")) == V{0});
    CHECK(timesteps_of(flags("10", "1", "leading")) == V{0});
    CHECK(timesteps_of(flags("10", "1", "trailing")) == V{9});
    CHECK(timesteps_of(flags("10", "10", "trailing")) == V{9, 8, 7, 6, 5, 4, 3, 2, 1, 0});
    // --steps-offset defaults to 0; --name=value works.
    CHECK(timesteps_of({"--schedule=cosine", "--timesteps=10", "--steps=3", "--spacing=leading"}) == V{6, 3, 0});
}

TEST_CASE("ddpm_inspect timesteps prints what ddpm::make_timesteps returns", "[inspect][cli][timesteps]") {
    for (const auto spacing : {ddpm::timestep_spacing::linspace, ddpm::timestep_spacing::leading,
                               ddpm::timestep_spacing::trailing})
        for (const auto& [T, N, K] : {std::tuple{1000, 30, 1}, std::tuple{4000, 250, 0}, std::tuple{7, 7, 0}}) {
            INFO(ddpm::to_string(spacing) << " T=" << T << " N=" << N << " K=" << K);
            CHECK(timesteps_of(flags(std::to_string(T), std::to_string(N), std::string(ddpm::to_string(spacing)),
                                     std::to_string(K))) == ddpm::make_timesteps(T, N, spacing, K));
        }
}

TEST_CASE("ddpm_inspect timesteps --config reads T, the spacing and steps_offset", "[inspect][cli][timesteps]") {
    // Stable Diffusion v1.5: T = 1000, leading (the default), steps_offset = 1.
    const json j = timesteps_json({"--config", fixture("sd_v1_5"), "--steps", "5"});
    CHECK(j.at("timesteps").get<std::vector<std::int64_t>>() == std::vector<std::int64_t>{801, 601, 401, 201, 1});
    CHECK(j.at("meta").at("source") == "config");
    CHECK(j.at("meta").at("steps_offset") == 1);
    CHECK(j.at("meta").at("timestep_spacing") == "leading");
    CHECK(j.at("meta").at("beta_schedule") == "scaled_linear");
}

TEST_CASE("ddpm_inspect timesteps: bad command lines exit 2 with the usage", "[inspect][cli][timesteps]") {
    const std::vector<std::vector<std::string>> bad = {
        flags("10", "11", "leading"),                  // N > T
        flags("10", "0", "leading"),                   // N < 1
        flags("10", "-3", "linspace"),                 // N < 1
        flags("10", "3", "uniform"),                   // unknown spacing
        flags("10", "3", "leading", "-1"),             // negative offset
        flags("10", "10", "leading", "1"),             // the offset pushes 9 + 1 to T
        flags("0", "1", "leading"),                    // T < 1
        flags("10", "three", "leading"),               // not an integer
        {"--schedule", "linear", "--timesteps", "10", "--spacing", "leading"},  // no --steps
        {"--schedule", "linear", "--timesteps", "10", "--steps", "3"},          // no --spacing
        {"--timesteps", "10", "--steps", "3", "--spacing", "leading"},          // no --schedule
        {"--schedule", "nope", "--timesteps", "10", "--steps", "3", "--spacing", "leading"},
        {"--schedule", "linear", "--timesteps", "10", "--steps", "3", "--spacing", "leading", "--scheduler", "pndm"},
        {"--config", fixture("sd_v1_5"), "--steps", "5", "--spacing", "leading"}, // conflicts with --config
        {"--schedule", "linear", "--timesteps", "10", "--steps", "3", "--spacing", "leading", "--eta", "1"},
    };
    for (const auto& args : bad) {
        std::vector<std::string> a = {"timesteps"};
        a.insert(a.end(), args.begin(), args.end());
        std::string cmd;
        for (const auto& s : a) cmd += " " + s;
        INFO("ddpm_inspect" << cmd);
        const auto r = run_inspect(a);
        CHECK(r.exit_code == 2);
        CHECK(r.out.empty());
        CHECK(r.err.find("ddpm_inspect timesteps: error:") != std::string::npos);
        CHECK(r.err.find("usage:\n  ddpm_inspect timesteps") != std::string::npos);
    }
    // An unusable --config file is exit 1.
    const auto r = run_inspect({"timesteps", "--config", fixture("no_such_file.json"), "--steps", "5"});
    CHECK(r.exit_code == 1);
    CHECK(r.out.empty());
}

TEST_CASE("ddpm_inspect timesteps --help and the command list", "[inspect][cli][timesteps]") {
    const auto help = run_inspect({"timesteps", "--help"});
    CHECK(help.exit_code == 0);
    CHECK(help.out.find("ddpm_inspect timesteps --schedule NAME --timesteps T --steps N") != std::string::npos);
    const auto top = run_inspect({"--help"});
    CHECK(top.exit_code == 0);
    CHECK(top.out.find("  timesteps ") != std::string::npos);
}

#endif
