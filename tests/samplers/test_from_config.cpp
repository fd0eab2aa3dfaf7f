// Schedulers from a scheduler_config.json with no hand mapping
// (ddpm/samplers/from_config.hpp): diffusers' DDPM, DDIM, Euler-family,
// DPM-Solver(++) and UniPC pipelines' scheduler use, checked against the
// golden data (tests/data/ddpm_step.json, ddim_step.json, solvers.json) with
// the scheduler built from the config alone; the real configs of
// tests/inspect/data; the key policy (silent metadata, one warning per
// unknown key, errors for settings ddpm does not implement).
#include <catch2/catch.hpp>

#include <ddpm/samplers/from_config.hpp>

#include "likelihood/noise_recipe.hpp"
#include "toy.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

using ddpm_test::golden;
using ddpm_test::values;

namespace {

std::string inspect_data(const std::string& file) {
    return std::string(DDPM_TEST_DATA_DIR) + "/../inspect/data/" + file;
}

/// The golden toy network for every timestep type (the Euler family hands
/// it float timesteps, the others integers), per sample.
struct toy_net {
    template <class Tv>
    void operator()(std::span<const float> x, std::span<const Tv> t, std::span<float> out) const {
        const std::size_t dim = x.size() / t.size();
        for (std::size_t b = 0; b < t.size(); ++b) {
            const float scale = static_cast<float>(0.5 + static_cast<double>(t[b]) / 1000.0);
            for (std::size_t k = b * dim; k < (b + 1) * dim; ++k) {
                const float th = static_cast<float>(std::tanh(static_cast<double>(0.7f * x[k])));
                out[k] = th * scale + 0.05f * x[k];
            }
        }
    }
};

/// Step 0: the golden x_T; step k: the recipe noise with t := k − 1 (the
/// draw of the (k−1)-th step, as solvers.json patches diffusers' randn).
struct golden_noise {
    std::vector<float> x_T;
    void fill(std::span<float> out, std::uint64_t step) const {
        if (step == 0) {
            std::copy(x_T.begin(), x_T.end(), out.begin());
            return;
        }
        const auto z = ddpm_test::vlb_noise(static_cast<std::int64_t>(step) - 1, out.size());
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(z[i]);
    }
};

template <class S>
std::vector<double> timesteps_of(const S& s) {
    std::vector<double> out;
    for (const auto t : s.timesteps()) out.push_back(static_cast<double>(t));
    return out;
}

} // namespace

TEST_CASE("from_config: every solvers.json run from its config alone", "[samplers][from_config][parity]") {
    const auto& data = golden("solvers.json");
    const auto x_T = values<float>(data.at("x_T"));
    std::size_t runs = 0, finals = 0;
    double worst = 0;
    std::string worst_at;
    for (const auto& [name, run] : data.at("runs").items()) {
        // The configuration a diffusers pipeline would have saved.
        nlohmann::json cfg = run.at("config");
        cfg["_class_name"] = run.at("scheduler");
        cfg["_diffusers_version"] = "0.40.0.dev0";
        std::vector<std::string> warnings;
        auto s = ddpm::scheduler_from_config<float>(cfg, &warnings);
        CHECK(s.name() == run.at("scheduler").get<std::string>());
        INFO(name << ": " << cfg.dump());
        CHECK(warnings.empty());
        for (const auto& [n_key, modes] : run.at("N").items()) {
            const auto& rec = modes.at("f32");
            s.set_timesteps(std::stoll(n_key));
            // the timesteps diffusers hands the network, exactly
            const auto ts = values<double>(rec.at("timesteps"));
            const auto got = s.visit([](const auto& x) { return timesteps_of(x); });
            REQUIRE(got.size() == ts.size());
            // Karras timesteps come from an interpolation in log σ that is not
            // bit-exact (test_solver_parity_euler allows 64 ulp): 1e-5 relative.
            const bool karras = cfg.value("use_karras_sigmas", false) && s.kind() != ddpm::scheduler_kind::dpm_solver_multistep &&
                                s.kind() != ddpm::scheduler_kind::unipc;
            for (std::size_t i = 0; i < ts.size(); ++i) {
                if (karras) CHECK(std::abs(got[i] - ts[i]) <= 1e-5 * std::max(1.0, std::abs(ts[i])));
                else CHECK(got[i] == ts[i]);
            }
            CHECK(s.num_steps() == rec.at("num_model_calls").get<std::size_t>());
            // the whole loop through ddpm::sample
            std::vector<float> out(x_T.size());
            golden_noise noise{x_T};
            ddpm::sample(s, toy_net{}, noise, out, ddpm::sampler_options{.batch = 2});
            const auto ref = values<double>(rec.at("final"));
            if (std::all_of(ref.begin(), ref.end(), [](double v) { return std::isnan(v); })) {
                // diffusers ends in NaN (docs/solvers.md); ddpm stays finite
                CHECK(std::all_of(out.begin(), out.end(), [](float v) { return std::isfinite(v); }));
                continue;
            }
            double scale = 0;
            for (const double v : ref) scale = std::max(scale, std::abs(v));
            double d = 0;
            for (std::size_t i = 0; i < ref.size(); ++i) d = std::max(d, std::abs(out[i] - ref[i]) / scale);
            // float32 rounding: the parity tests allow 1-2 ulp of the scale per step
            const double allowed = 2.0 * 1.2e-7 * static_cast<double>(s.num_steps());
            CHECK(d <= allowed);
            if (d > worst) {
                worst = d;
                worst_at = name + " N=" + n_key;
            }
            ++finals;
        }
        ++runs;
    }
    CHECK(runs == 44);
    std::printf("from_config: %zu solvers.json runs, %zu finals compared in float32; worst |diff| / max|ref| = %.3g "
                "(%s)\n",
                runs, finals, worst, worst_at.c_str());
}

TEST_CASE("from_config: DDPMScheduler of ddpm_step.json", "[samplers][from_config][parity]") {
    const auto& g = golden("ddpm_step.json");
    const auto x = values<float>(g.at("inputs").at("x"));
    const auto noise = values<float>(g.at("inputs").at("noise"));
    std::size_t checked = 0;
    for (const auto& c : g.at("cases")) {
        nlohmann::json cfg = c.at("config");
        cfg["_class_name"] = "DDPMScheduler";
        std::vector<std::string> warnings;
        const auto sched = ddpm::scheduler_from_config<float, ddpm::ddpm_scheduler>(cfg, &warnings);
        CHECK(warnings.empty());
        const bool learned = ddpm::is_learned(sched.options().variance);
        for (const auto& [tkey, ref] : c.at("results").at("f32").items()) {
            const std::int64_t t = std::stoll(tkey);
            INFO(cfg.dump() << " t=" << t);
            if (sched.options().variance == ddpm::variance_type::fixed_large_log && t > 0) continue; // NaN there
            const auto out = values<float>(g.at("model_outputs").at(learned ? "f32_learned" : "f32").at(tkey));
            std::vector<float> prev(x.size()), x0(x.size());
            sched.step(out, t, x, noise, prev, x0, 2);
            CHECK(ddpm_test::compare<float>(x0, values(ref.at("pred_original_sample"))).rel <= 1e-6);
            CHECK(ddpm_test::compare<float>(prev, values(ref.at("prev_sample"))).rel <= 1e-6);
            ++checked;
        }
    }
    CHECK(checked == 28 * 5 - 6 * 4);
}

TEST_CASE("from_config: DDIMScheduler of ddim_step.json (spacing, offset, set_alpha_to_one from the config)",
          "[samplers][from_config][parity]") {
    const auto& g = golden("ddim_step.json");
    const auto x = values<float>(g.at("inputs").at("x"));
    const auto noise = values<float>(g.at("inputs").at("noise"));
    std::size_t steps = 0;
    for (const auto& c : g.at("configs")) {
        for (const auto& [variant, modes] : c.at("steps").items()) {
            nlohmann::json cfg = c.at("config");
            const auto n = cfg.at("num_inference_steps").get<std::int64_t>();
            cfg.erase("num_inference_steps"); // a pipeline argument, not a config key
            cfg["_class_name"] = "DDIMScheduler";
            cfg["prediction_type"] = variant.rfind("epsilon", 0) == 0 ? "epsilon" : "v_prediction";
            std::vector<std::string> warnings;
            // the pipeline's call arguments (eta, use_clipped_model_output) go to the options
            auto settings = ddpm::scheduler_settings_from_json(cfg, std::nullopt, &warnings);
            CHECK(warnings.empty());
            settings.ddim.eta = variant.substr(variant.size() - 4) == "eta1" ? 1.0 : 0.0;
            settings.ddim.use_clipped_model_output = c.at("use_clipped_model_output").get<bool>();
            ddpm::any_scheduler<float> any(settings);
            any.set_timesteps(n);
            const auto& sched = any.get<ddpm::ddim_scheduler<float>>();
            INFO(cfg.dump() << " " << variant);
            CHECK(timesteps_of(sched) == values<double>(c.at("timesteps")));
            for (const auto& ref : modes.at("f32")) {
                const std::int64_t t = ref.at("t").get<std::int64_t>();
                CHECK(sched.step_parameters(t).alpha_prod_t_prev ==
                      static_cast<float>(ref.at("alpha_prod_t_prev").get<double>()));
                const auto out = ddpm_test::toy_model<float>(x, t);
                std::vector<float> prev(x.size()), x0(x.size());
                sched.step(out, t, x, noise, prev, x0, 2);
                CHECK(ddpm_test::compare<float>(prev, values(ref.at("prev_sample"))).rel <= 1e-6);
                ++steps;
            }
        }
    }
    CHECK(steps > 0);
}

TEST_CASE("from_config: real scheduler_config.json files", "[samplers][from_config]") {
    SECTION("DPM-Solver++ (SD 2.x style): the dpmpp_2m_sd run of solvers.json") {
        std::vector<std::string> warnings;
        auto s = ddpm::load_scheduler<float>(inspect_data("dpmsolver_multistep.json"), &warnings);
        CHECK(warnings.empty()); // lambda_min_clipped: -Infinity and variance_type: null are its defaults
        REQUIRE(s.kind() == ddpm::scheduler_kind::dpm_solver_multistep);
        const auto& rec = golden("solvers.json").at("runs").at("dpmpp_2m_sd").at("N").at("10").at("f32");
        s.set_timesteps(10);
        CHECK(s.visit([](const auto& x) { return timesteps_of(x); }) == values<double>(rec.at("timesteps")));
        std::vector<float> out(96);
        ddpm::sample(s, toy_net{}, golden_noise{values<float>(golden("solvers.json").at("x_T"))}, out,
                     ddpm::sampler_options{.batch = 2});
        CHECK(ddpm_test::compare<float>(out, values(rec.at("final"))).rel <= 1e-5);
    }
    SECTION("DDIM (SD 2.1): v-prediction, set_alpha_to_one false, PNDM's skip_prk_steps warned once") {
        std::vector<std::string> warnings;
        auto s = ddpm::load_scheduler<float>(inspect_data("sd_v2_1_ddim.json"), &warnings);
        REQUIRE(s.kind() == ddpm::scheduler_kind::ddim);
        REQUIRE(warnings.size() == 1);
        CHECK_THAT(warnings[0], Catch::Contains("skip_prk_steps"));
        const auto& d = s.get<ddpm::ddim_scheduler<float>>();
        CHECK(d.options().prediction == ddpm::prediction_type::v_prediction);
        CHECK(d.options().clip.kind == ddpm::clip_options::mode::none);
        s.set_timesteps(10);
        CHECK(d.timesteps()[0] == 901); // leading, steps_offset 1
    }
    SECTION("DDPM (google/ddpm-cifar10-256): clip_sample, fixed_small") {
        std::vector<std::string> warnings;
        auto s = ddpm::load_scheduler<double>(std::string(DDPM_TEST_DATA_DIR) + "/../fuzz/corpus/ddpm_google.json",
                                              &warnings);
        CHECK(warnings.empty());
        REQUIRE(s.holds<ddpm::ddpm_scheduler<double>>());
        CHECK(s.get<ddpm::ddpm_scheduler<double>>().options().clip.kind == ddpm::clip_options::mode::clip);
    }
}

TEST_CASE("from_config: key policy and errors", "[samplers][from_config][errors]") {
    const nlohmann::json base = {{"_class_name", "EulerDiscreteScheduler"},
                                 {"_diffusers_version", "0.30.0"},
                                 {"_use_default_values", {"sigma_min"}},
                                 {"beta_schedule", "scaled_linear"},
                                 {"beta_start", 0.00085},
                                 {"beta_end", 0.012}};
    std::vector<std::string> warnings;
    (void)ddpm::scheduler_from_config<float>(base, &warnings);
    CHECK(warnings.empty());

    auto unknown = base;
    unknown["my_new_key"] = 3;
    warnings.clear();
    (void)ddpm::scheduler_from_config<float>(unknown, &warnings);
    REQUIRE(warnings.size() == 1);
    CHECK_THAT(warnings[0], Catch::Contains("my_new_key"));

    // Euler has no clip_sample: diffusers ignores it, so does ddpm (one warning)
    auto clip = base;
    clip["clip_sample"] = true;
    warnings.clear();
    const auto e = ddpm::scheduler_from_config<float>(clip, &warnings);
    REQUIRE(warnings.size() == 1);
    CHECK_THAT(warnings[0], Catch::Contains("clip_sample"));
    CHECK(e.get<ddpm::euler_scheduler<float>>().options().clip.kind == ddpm::clip_options::mode::none);

    auto beta = base;
    beta["use_beta_sigmas"] = true;
    CHECK_THROWS_AS(ddpm::scheduler_from_config<float>(beta), ddpm::invalid_argument);
    CHECK_THROWS_WITH(ddpm::scheduler_from_config<float>(beta), Catch::Contains("use_beta_sigmas"));

    auto pndm = base;
    pndm["_class_name"] = "PNDMScheduler";
    CHECK_THROWS_WITH(ddpm::scheduler_from_config<float>(pndm), Catch::Contains("PNDMScheduler"));
    // ... but its training schedule serves any class named explicitly
    const auto ddim = ddpm::scheduler_from_config<float>(pndm, nullptr, ddpm::scheduler_kind::ddim);
    CHECK(ddim.kind() == ddpm::scheduler_kind::ddim);

    nlohmann::json no_class = {{"beta_schedule", "linear"}};
    CHECK_THROWS_WITH(ddpm::scheduler_from_config<float>(no_class), Catch::Contains("_class_name"));

    auto dpm = base;
    dpm["_class_name"] = "DPMSolverMultistepScheduler";
    dpm["lambda_min_clipped"] = -5.1;
    CHECK_THROWS_WITH(ddpm::scheduler_from_config<float>(dpm), Catch::Contains("lambda_min_clipped"));
    dpm["lambda_min_clipped"] = "-Infinity";
    dpm["solver_order"] = 4;
    CHECK_THROWS_WITH(ddpm::scheduler_from_config<float>(dpm), Catch::Contains("solver_order = 4"));

    // class defaults: clip_sample = true for DDPM and DDIM, no clipping for the others
    for (const char* cls : {"DDPMScheduler", "DDIMScheduler"}) {
        const auto st = ddpm::scheduler_settings_from_json({{"_class_name", cls}});
        CHECK(st.model.clip.kind == ddpm::clip_options::mode::clip);
        CHECK(st.config.timestep_spacing == ddpm::timestep_spacing::leading);
    }
    for (const char* cls : {"EulerDiscreteScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler"}) {
        const auto st = ddpm::scheduler_settings_from_json({{"_class_name", cls}});
        CHECK(st.model.clip.kind == ddpm::clip_options::mode::none);
        CHECK(st.config.timestep_spacing == ddpm::timestep_spacing::linspace);
    }
    // Heun's class defaults: β from 0.00085 to 0.012
    const auto heun = ddpm::scheduler_settings_from_json({{"_class_name", "HeunDiscreteScheduler"}});
    CHECK(heun.config.schedule.beta_start == 0.00085);
    CHECK(heun.config.schedule.beta_end == 0.012);
    CHECK(heun.config.timestep_spacing == ddpm::timestep_spacing::linspace);
}

TEST_CASE("from_config: the network must suit the class the config names", "[samplers][from_config][errors]") {
    auto s = ddpm::scheduler_from_config<float>({{"_class_name", "EulerDiscreteScheduler"}});
    s.set_timesteps(4);
    const auto int_net = [](std::span<const float>, std::span<const ddpm::timestep_t>, std::span<float> out) {
        std::fill(out.begin(), out.end(), 0.0f);
    };
    std::vector<float> out(8, 7.0f);
    golden_noise noise{std::vector<float>(8, 0.5f)};
    CHECK_THROWS_AS(ddpm::sample(s, int_net, noise, out, ddpm::sampler_options{.batch = 2}), ddpm::invalid_argument);
    CHECK(std::all_of(out.begin(), out.end(), [](float v) { return v == 7.0f; }));
    // the explicit opt-in runs
    auto int_net_copy = int_net;
    CHECK(ddpm::sample(s, ddpm::round_timesteps(int_net_copy), noise, out, ddpm::sampler_options{.batch = 2}) == 4);
}

TEST_CASE("from_config: img2img and inpaint with the scheduler a config names", "[samplers][from_config][pipelines]") {
    for (const char* cls : {"DDIMScheduler", "EulerDiscreteScheduler", "DPMSolverMultistepScheduler"}) {
        INFO(cls);
        auto s = ddpm::scheduler_from_config<float>({{"_class_name", cls}});
        s.set_timesteps(10);
        const ddpm::counter_noise noise(4, 48);
        const auto x0 = values<float>(golden("solvers.json").at("x_T"));
        std::vector<float> out(96), held(96), mask(96, 1.0f);
        CHECK(ddpm::img2img(s, 0.5, toy_net{}, noise, x0, out, ddpm::sampler_options{.batch = 2}) == 5);
        // the same run on the held scheduler directly
        s.visit([&](const auto& h) { ddpm::img2img(h, 0.5, toy_net{}, noise, x0, held, ddpm::sampler_options{.batch = 2}); });
        CHECK(out == held);
        ddpm::inpaint(s, toy_net{}, noise, x0, mask, out, ddpm::sampler_options{.batch = 2});
        for (std::size_t i = 0; i < out.size(); ++i) CHECK(out[i] == Approx(x0[i]).margin(1e-6));
    }
}
