// The diffusers scheduler_config.json loader (ddpm/schedule/scheduler_config_json.hpp):
// real configurations, the key policy (maths key / warning / error), JSON
// types, nulls, trained_betas and make_schedule().
#include <catch2/catch.hpp>

#include <ddpm/schedule/scheduler_config_json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using nlohmann::json;

namespace {

std::string fixture(const std::string& name) {
    // Appended piecewise: `std::string(dir) + "/" + name` trips GCC 12's
    // false -Warray-bounds (GCC bug 105329).
    std::string path = DDPM_INSPECT_DATA_DIR;
    path += '/';
    path += name;
    return path;
}

bool has_warning(const std::vector<std::string>& warnings, const std::string& needle) {
    return std::any_of(warnings.begin(), warnings.end(),
                       [&](const std::string& w) { return w.find(needle) != std::string::npos; });
}

/// The message of the ddpm::invalid_argument that `f` throws ("" if none).
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const ddpm::invalid_argument& e) {
        return e.what();
    }
    return "";
}

std::string config_error(const json& j) {
    return error_of([&] { (void)ddpm::scheduler_config_from_json(j); });
}

/// A scratch file that removes itself.
struct temp_file {
    std::filesystem::path path;
    explicit temp_file(const std::string& contents, const std::string& stem) {
        path = std::filesystem::temp_directory_path() /
               (stem + "_" + std::to_string(reinterpret_cast<std::uintptr_t>(this)) + ".json");
        std::ofstream(path) << contents;
    }
    ~temp_file() {
        std::error_code ec;
        std::filesystem::remove(path, ec);
    }
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;
};

} // namespace

TEST_CASE("Stable Diffusion v1.5 scheduler_config.json (PNDM) loads, with warnings for non-maths keys",
          "[inspect][scheduler_config]") {
    std::vector<std::string> warnings;
    // A pipeline folder: <model>/scheduler/scheduler_config.json.
    const auto c = ddpm::load_scheduler_config(fixture("sd_v1_5"), &warnings);
    CHECK(c.class_name == "PNDMScheduler");
    CHECK(c.diffusers_version == "0.6.0");
    CHECK(c.schedule.schedule == ddpm::beta_schedule::scaled_linear);
    CHECK(c.schedule.beta_start == 0.00085);
    CHECK(c.schedule.beta_end == 0.012);
    CHECK(c.schedule.num_train_timesteps == 1000);
    CHECK_FALSE(c.schedule.rescale_betas_zero_snr);
    CHECK_FALSE(c.trained_betas.has_value());
    CHECK(c.steps_offset == 1);
    CHECK_FALSE(c.set_alpha_to_one);
    CHECK_FALSE(c.clip_sample);
    // Keys absent from the file keep diffusers' defaults.
    CHECK(c.prediction_type == ddpm::prediction_type::epsilon);
    CHECK(c.variance_type == ddpm::variance_type::fixed_small);
    CHECK(c.timestep_spacing == ddpm::timestep_spacing::leading);
    CHECK_FALSE(c.thresholding);

    for (const auto& w : warnings) INFO(w);
    CHECK(warnings.size() == 3);
    CHECK(has_warning(warnings, "\"_class_name\" = \"PNDMScheduler\""));
    CHECK(has_warning(warnings, "\"_diffusers_version\""));
    CHECK(has_warning(warnings, "\"skip_prk_steps\" = true ignored"));
    CHECK_FALSE(has_warning(warnings, "unknown key"));

    // The file path itself works too, and without a warnings sink.
    const auto same = ddpm::load_scheduler_config(fixture("sd_v1_5/scheduler/scheduler_config.json"));
    CHECK(same.schedule.beta_start == c.schedule.beta_start);

    // make_schedule() builds the same schedule as the named one.
    const auto s = ddpm::make_schedule(c, ddpm::profile::diffusers);
    const ddpm::noise_schedule ref(c.schedule, ddpm::profile::diffusers);
    CHECK(s.f32().alphas_cumprod == ref.f32().alphas_cumprod);
    CHECK(s.f64().alphas_cumprod == ref.f64().alphas_cumprod);
}

TEST_CASE("DDIM (v-prediction) and DPM-Solver configurations load", "[inspect][scheduler_config]") {
    std::vector<std::string> warnings;
    const auto ddim = ddpm::load_scheduler_config(fixture("sd_v2_1_ddim.json"), &warnings);
    CHECK(ddim.class_name == "DDIMScheduler");
    CHECK(ddim.prediction_type == ddpm::prediction_type::v_prediction);
    CHECK_FALSE(ddim.set_alpha_to_one);
    CHECK(has_warning(warnings, "skip_prk_steps"));

    // diffusers saves DPMSolverMultistep's lambda_min_clipped as Python's
    // non-standard -Infinity; variance_type null means "no learned variance".
    warnings.clear();
    const auto dpm = ddpm::load_scheduler_config(fixture("dpmsolver_multistep.json"), &warnings);
    for (const auto& w : warnings) INFO(w);
    CHECK(dpm.schedule.schedule == ddpm::beta_schedule::scaled_linear);
    CHECK(dpm.steps_offset == 1);
    CHECK(dpm.variance_type == ddpm::variance_type::fixed_small);
    CHECK(has_warning(warnings, "\"lambda_min_clipped\" = \"-Infinity\" ignored"));
    CHECK(has_warning(warnings, "\"variance_type\" = null"));
    CHECK(has_warning(warnings, "\"solver_order\""));
    CHECK(has_warning(warnings, "\"algorithm_type\""));
    CHECK(has_warning(warnings, "\"use_karras_sigmas\""));
    CHECK(has_warning(warnings, "DPMSolverMultistepScheduler"));
    CHECK_FALSE(has_warning(warnings, "unknown key"));
}

TEST_CASE("every maths key is read, and missing and null keys take diffusers' defaults", "[inspect][scheduler_config]") {
    const json j = {{"num_train_timesteps", 500},
                    {"beta_start", 0.001},
                    {"beta_end", 0.03},
                    {"beta_schedule", "sigmoid"},
                    {"rescale_betas_zero_snr", true},
                    {"prediction_type", "sample"},
                    {"variance_type", "learned_range"},
                    {"clip_sample", false},
                    {"clip_sample_range", 2.5},
                    {"thresholding", true},
                    {"dynamic_thresholding_ratio", 0.9},
                    {"sample_max_value", 3},
                    {"timestep_spacing", "trailing"},
                    {"steps_offset", 2},
                    {"set_alpha_to_one", false}};
    std::vector<std::string> warnings;
    const auto c = ddpm::scheduler_config_from_json(j, &warnings);
    CHECK(warnings.empty());
    CHECK(c.schedule.num_train_timesteps == 500);
    CHECK(c.schedule.beta_start == 0.001);
    CHECK(c.schedule.beta_end == 0.03);
    CHECK(c.schedule.schedule == ddpm::beta_schedule::sigmoid);
    CHECK(c.schedule.rescale_betas_zero_snr);
    CHECK(c.prediction_type == ddpm::prediction_type::sample);
    CHECK(c.variance_type == ddpm::variance_type::learned_range);
    CHECK_FALSE(c.clip_sample);
    CHECK(c.clip_sample_range == 2.5);
    CHECK(c.thresholding);
    CHECK(c.dynamic_thresholding_ratio == 0.9);
    CHECK(c.sample_max_value == 3.0);
    CHECK(c.timestep_spacing == ddpm::timestep_spacing::trailing);
    CHECK(c.steps_offset == 2);
    CHECK_FALSE(c.set_alpha_to_one);

    // {} and all-null give the defaults, silently except for
    // "variance_type": null, which DPM-Solver configurations use to say that
    // the model predicts no variance.
    const ddpm::scheduler_config d{};
    json nulls = json::object();
    for (const auto& [key, value] : j.items()) nulls[key] = nullptr;
    nulls["trained_betas"] = nullptr;
    for (const json& empty : {json::object(), nulls}) {
        warnings.clear();
        const auto e = ddpm::scheduler_config_from_json(empty, &warnings);
        if (empty.empty()) {
            CHECK(warnings.empty());
        } else {
            REQUIRE(warnings.size() == 1);
            CHECK_THAT(warnings[0], Catch::Contains("\"variance_type\" = null"));
        }
        CHECK(e.schedule.num_train_timesteps == d.schedule.num_train_timesteps);
        CHECK(e.schedule.schedule == d.schedule.schedule);
        CHECK(e.schedule.beta_start == d.schedule.beta_start);
        CHECK(e.schedule.beta_end == d.schedule.beta_end);
        CHECK(e.clip_sample == d.clip_sample);
        CHECK(e.timestep_spacing == d.timestep_spacing);
        CHECK(e.set_alpha_to_one == d.set_alpha_to_one);
        CHECK(e.steps_offset == d.steps_offset);
        CHECK_FALSE(e.trained_betas.has_value());
    }
    CHECK(d.schedule.num_train_timesteps == 1000);
    CHECK(d.schedule.beta_start == 0.0001);
    CHECK(d.schedule.beta_end == 0.02);
    CHECK(d.clip_sample);
    CHECK(d.set_alpha_to_one);
    CHECK(d.timestep_spacing == ddpm::timestep_spacing::leading);

    // ddpm's aliases for the original code's schedules are accepted.
    CHECK(ddpm::scheduler_config_from_json({{"beta_schedule", "cosine"}}).schedule.schedule ==
          ddpm::beta_schedule::squaredcos_cap_v2);
    CHECK(ddpm::scheduler_config_from_json({{"beta_schedule", "jsd"}}).schedule.schedule == ddpm::beta_schedule::jsd);
}

TEST_CASE("unknown keys are warnings, not errors", "[inspect][scheduler_config]") {
    std::vector<std::string> warnings;
    const auto c = ddpm::scheduler_config_from_json({{"my_new_option", 42}, {"beta_schedule", "linear"}}, &warnings);
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0] == "unknown key \"my_new_option\" ignored");
    CHECK(c.schedule.schedule == ddpm::beta_schedule::linear);
    CHECK_NOTHROW(ddpm::scheduler_config_from_json({{"my_new_option", 42}})); // no sink
}

TEST_CASE("unsupported values of maths keys throw, naming key, value and what is accepted",
          "[inspect][scheduler_config]") {
    std::string m = config_error({{"beta_schedule", "foo"}});
    CHECK_THAT(m, Catch::Contains("beta_schedule") && Catch::Contains("\"foo\"") &&
                      Catch::Contains("\"scaled_linear\"") && Catch::Contains("\"squaredcos_cap_v2\""));
    m = config_error({{"prediction_type", "bar"}});
    CHECK_THAT(m, Catch::Contains("prediction_type") && Catch::Contains("\"bar\"") && Catch::Contains("v_prediction"));
    m = config_error({{"timestep_spacing", "weird"}});
    CHECK_THAT(m, Catch::Contains("timestep_spacing") && Catch::Contains("\"weird\"") && Catch::Contains("trailing"));
    m = config_error({{"variance_type", "tiny"}});
    CHECK_THAT(m, Catch::Contains("variance_type") && Catch::Contains("learned_range"));
    m = config_error({{"prediction_type", "flow_prediction"}});
    CHECK_THAT(m, Catch::Contains("prediction_type"));
    m = config_error({{"_class_name", "FlowMatchEulerDiscreteScheduler"}});
    CHECK_THAT(m, Catch::Contains("_class_name") && Catch::Contains("flow-matching"));
    // Out-of-range values.
    CHECK_THAT(config_error({{"num_train_timesteps", 0}}), Catch::Contains("num_train_timesteps"));
    CHECK_THAT(config_error({{"steps_offset", -1}}), Catch::Contains("steps_offset"));
    CHECK_THAT(config_error({{"clip_sample_range", 0.0}}), Catch::Contains("clip_sample_range"));
    CHECK_THAT(config_error({{"dynamic_thresholding_ratio", 1.5}}), Catch::Contains("dynamic_thresholding_ratio"));
    CHECK_THAT(config_error({{"sample_max_value", -1.0}}), Catch::Contains("sample_max_value"));
    // The exception is also a std::invalid_argument.
    CHECK_THROWS_AS(ddpm::scheduler_config_from_json({{"beta_schedule", "foo"}}), std::invalid_argument);
}

TEST_CASE("wrong JSON types throw, naming the key and the type", "[inspect][scheduler_config]") {
    std::string m = config_error({{"num_train_timesteps", "x"}});
    CHECK_THAT(m, Catch::Contains("num_train_timesteps") && Catch::Contains("\"x\"") && Catch::Contains("integer") &&
                      Catch::Contains("string"));
    CHECK_THAT(config_error({{"num_train_timesteps", 1000.5}}), Catch::Contains("num_train_timesteps"));
    CHECK_THAT(config_error({{"beta_start", "0.1"}}), Catch::Contains("beta_start") && Catch::Contains("number"));
    CHECK_THAT(config_error({{"beta_end", true}}), Catch::Contains("beta_end"));
    CHECK_THAT(config_error({{"clip_sample", "false"}}), Catch::Contains("clip_sample"));
    CHECK_THAT(config_error({{"beta_schedule", 3}}), Catch::Contains("beta_schedule"));
    CHECK_THAT(config_error({{"trained_betas", "abc"}}), Catch::Contains("trained_betas"));
    CHECK_THAT(config_error({{"trained_betas", {0.1, "x"}}}), Catch::Contains("trained_betas[1]"));
    CHECK_THAT(config_error({{"trained_betas", {0.1, 1.5}}}), Catch::Contains("trained_betas[1]"));
    CHECK_THAT(config_error({{"trained_betas", json::array()}}), Catch::Contains("trained_betas"));
    CHECK_THAT(config_error({{"beta_start", "NaN"}}), Catch::Contains("beta_start") && Catch::Contains("finite"));
    CHECK_THAT(config_error({{"_class_name", 7}}), Catch::Contains("_class_name"));
    CHECK_THAT(config_error(json::array({1, 2})), Catch::Contains("object"));
    // The values of ignored keys are not checked.
    CHECK_NOTHROW(ddpm::scheduler_config_from_json({{"skip_prk_steps", "whatever"}}));
}

TEST_CASE("trained_betas replace the named schedule", "[inspect][scheduler_config]") {
    const std::vector<double> betas = {0.0001, 0.001, 0.01, 0.05, 0.1, 0.2, 0.35, 0.5};
    std::vector<std::string> warnings;
    const auto c = ddpm::load_scheduler_config(fixture("trained_betas_T8.json"), &warnings);
    REQUIRE(c.trained_betas.has_value());
    CHECK(*c.trained_betas == betas);
    CHECK(c.variance_type == ddpm::variance_type::fixed_large);

    const auto s = ddpm::make_schedule(c);
    CHECK(s.size() == 8);
    CHECK(s.f64().betas == betas);
    double acp = 1.0;
    for (std::size_t i = 0; i < betas.size(); ++i) {
        acp *= 1.0 - betas[i];
        CHECK(s.f64().alphas_cumprod[i] == acp);
    }
    // diffusers: torch.tensor(trained_betas, dtype=float32).
    const auto d = ddpm::make_schedule(c, ddpm::profile::diffusers);
    for (std::size_t i = 0; i < betas.size(); ++i) CHECK(d.f32().betas[i] == static_cast<float>(betas[i]));

    // Without num_train_timesteps, T is the number of betas.
    const auto t = ddpm::scheduler_config_from_json({{"trained_betas", betas}});
    CHECK(t.schedule.num_train_timesteps == 8);
    // A different num_train_timesteps is an error.
    CHECK_THAT(config_error({{"trained_betas", betas}, {"num_train_timesteps", 1000}}),
               Catch::Contains("trained_betas.size()") && Catch::Contains("1000"));
    // diffusers ignores beta_schedule when trained_betas is given.
    warnings.clear();
    const auto f = ddpm::scheduler_config_from_json({{"trained_betas", betas}, {"beta_schedule", "foo"}}, &warnings);
    CHECK(f.trained_betas.has_value());
    CHECK(has_warning(warnings, "\"beta_schedule\" = \"foo\" ignored"));

    // Zero terminal SNR applies to trained betas too.
    auto z = c;
    z.schedule.rescale_betas_zero_snr = true;
    const auto zs = ddpm::make_schedule(z);
    CHECK(zs.f64().betas.back() == 1.0);
    CHECK(zs.f64().alphas_cumprod.back() == 0.0);
    CHECK_THAT(zs.f64().alphas_cumprod.front(), Catch::WithinRel(1.0 - betas.front(), 1e-12));

    // make_schedule() checks a hand-built struct.
    auto bad = c;
    bad.schedule.num_train_timesteps = 9;
    CHECK_THROWS_AS(ddpm::make_schedule(bad), ddpm::invalid_argument);
}

TEST_CASE("load_scheduler_config reports unreadable and invalid files", "[inspect][scheduler_config]") {
    std::string m = error_of([] { (void)ddpm::load_scheduler_config(fixture("does_not_exist.json")); });
    CHECK_THAT(m, Catch::Contains("does_not_exist.json"));
    m = error_of([] { (void)ddpm::load_scheduler_config(fixture(".")); }); // a folder without a config
    CHECK_THAT(m, Catch::Contains("scheduler_config.json"));
    {
        const temp_file f("{\"beta_schedule\": \"linear\",", "ddpm_truncated");
        m = error_of([&] { (void)ddpm::load_scheduler_config(f.path.string()); });
        CHECK_THAT(m, Catch::Contains("valid JSON") && Catch::Contains("ddpm_truncated"));
    }
    {
        // The message of a bad value names the file and the key.
        const temp_file f("{\"beta_schedule\": \"foo\"}", "ddpm_badvalue");
        m = error_of([&] { (void)ddpm::load_scheduler_config(f.path.string()); });
        CHECK_THAT(m, Catch::Contains("ddpm_badvalue") && Catch::Contains("beta_schedule"));
    }
    {
        // Python's NaN / Infinity tokens, but not inside strings.
        const temp_file f("{\"sigma_max\": Infinity, \"x\": [NaN, -Infinity], \"_class_name\": \"NaN Infinity\"}",
                          "ddpm_python_tokens");
        std::vector<std::string> warnings;
        const auto c = ddpm::load_scheduler_config(f.path.string(), &warnings);
        CHECK(c.class_name == "NaN Infinity");
        CHECK(has_warning(warnings, "\"sigma_max\" = \"Infinity\" ignored"));
        CHECK(has_warning(warnings, "unknown key \"x\" ignored"));
    }
}

TEST_CASE("timestep_spacing strings round-trip", "[inspect][scheduler_config]") {
    for (const auto s : {ddpm::timestep_spacing::linspace, ddpm::timestep_spacing::leading,
                         ddpm::timestep_spacing::trailing})
        CHECK(ddpm::timestep_spacing_from_string(ddpm::to_string(s)) == s);
    CHECK_THROWS_AS(ddpm::timestep_spacing_from_string("weird"), ddpm::invalid_argument);
}
