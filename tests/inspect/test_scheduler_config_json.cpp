// The diffusers scheduler_config.json loader (ddpm/schedule/scheduler_config_json.hpp):
// real configurations, the key policy (maths key / warning / error), JSON
// types, nulls, trained_betas and make_schedule(); at the end, the issue 11
// regressions (hostile files and the reliability reproducers).
#include <catch2/catch.hpp>

#include <ddpm/ddpm.hpp>
#include <ddpm/schedule/scheduler_config_json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using nlohmann::json;

namespace {

/// `dir`/`name`. Appended piecewise: `std::string(dir) + "/" + name` trips
/// GCC 12's false -Warray-bounds (GCC bug 105329).
std::string data_file(const char* dir, const std::string& name) {
    std::string path = dir;
    path += '/';
    path += name;
    return path;
}

std::string fixture(const std::string& name) { return data_file(DDPM_INSPECT_DATA_DIR, name); }

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

// ---------------------------------------------------------------------------
// Issue 11 regressions: deep nesting (item 1), dynamic_thresholding_ratio 1.0
// (item 9), the file-size cap (item 10), and the reproducer files of
// tests/data/reliability/ (items 4, 5, 6, 8): each either loads into a schedule
// whose tables are finite or throws a ddpm::invalid_argument, under every
// profile.

namespace {

std::string reliability_data(const std::string& name) { return data_file(DDPM_TEST_DATA_DIR "/reliability", name); }

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

std::string nested(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

constexpr ddpm::profile all_profiles[] = {ddpm::profile::standard, ddpm::profile::ho2020,
                                          ddpm::profile::improved_diffusion, ddpm::profile::diffusers};

} // namespace

TEST_CASE("issue 11.1: deeply nested values are refused with a short message, not a stack overflow",
          "[inspect][scheduler_config][reliability]") {
    // The reproducer: 100,000 levels (200 KB) as a maths key, an ignored key,
    // an unknown key and the top-level value.
    const std::string deep = nested(100000);
    for (const std::string& text : {"{\"beta_start\": " + deep + "}", "{\"solver_order\": " + deep + "}",
                                   "{\"no_such_key\": " + deep + "}", deep}) {
        const temp_file f(text, "ddpm_deep");
        std::vector<std::string> warnings;
        const auto msg = error_of([&] { (void)ddpm::load_scheduler_config(f.path.string(), &warnings); });
        INFO(msg.substr(0, 300));
        CHECK(contains(msg, "nesting depth"));
        CHECK(contains(msg, "32"));
        CHECK(msg.size() < 400);
    }
    // At the limit it still loads (an ignored key may hold anything).
    const temp_file ok("{\"solver_order\": " + nested(31) + "}", "ddpm_deep_ok");
    std::vector<std::string> warnings;
    CHECK_NOTHROW(ddpm::load_scheduler_config(ok.path.string(), &warnings));
    const temp_file over("{\"solver_order\": " + nested(32) + "}", "ddpm_deep_over");
    CHECK(contains(error_of([&] { (void)ddpm::load_scheduler_config(over.path.string()); }), "nesting depth"));

    // scheduler_config_from_json on a value built by the caller: messages and
    // warnings quote a bounded prefix, whatever the size of the value.
    nlohmann::json big = nlohmann::json::array();
    for (int i = 0; i < 100000; ++i) big.push_back(i);
    const auto msg = error_of([&] { (void)ddpm::scheduler_config_from_json(nlohmann::json{{"beta_start", big}}); });
    INFO(msg);
    CHECK(contains(msg, "beta_start"));
    CHECK(contains(msg, "truncated"));
    CHECK(msg.size() < 400);
    warnings.clear();
    (void)ddpm::scheduler_config_from_json(nlohmann::json{{"solver_order", big}, {std::string(5000, 'k'), 1}},
                                           &warnings);
    REQUIRE(warnings.size() == 2);
    for (const auto& w : warnings) CHECK(w.size() < 400);
}

TEST_CASE("issue 11.9: dynamic_thresholding_ratio = 1.0 is refused at load, as the scheduler would",
          "[inspect][scheduler_config][reliability]") {
    const auto msg = error_of(
        [] { (void)ddpm::load_scheduler_config(reliability_data("ratio-1-loads-but-scheduler-throws.json")); });
    INFO(msg);
    CHECK(contains(msg, "dynamic_thresholding_ratio"));
    CHECK(contains(msg, "(0, 1)"));
    // Whatever loads constructs a scheduler with the same clip options.
    const auto c = ddpm::scheduler_config_from_json(
        nlohmann::json{{"thresholding", true}, {"dynamic_thresholding_ratio", 0.999}, {"sample_max_value", 2.0}});
    const ddpm::clip_options clip = ddpm::clip_options::dynamic(c.dynamic_thresholding_ratio, c.sample_max_value);
    CHECK_NOTHROW(ddpm::ddpm_scheduler<float>(ddpm::make_schedule(c), ddpm::model_options{c.prediction_type,
                                                                                          c.variance_type, clip}));
    CHECK(contains(error_of([] {
                       (void)ddpm::scheduler_config_from_json(nlohmann::json{{"sample_max_value", 0.0}});
                   }),
                   "sample_max_value"));
}

TEST_CASE("issue 11.10: files over 16 MiB are refused after reading at most 16 MiB + 1 byte",
          "[inspect][scheduler_config][reliability]") {
    // Valid JSON, just too big: whitespace after the object.
    std::string text = "{\"beta_start\": 0.0001}";
    text.resize(ddpm::max_scheduler_config_bytes + 1, ' ');
    const temp_file big(text, "ddpm_big");
    const auto msg = error_of([&] { (void)ddpm::load_scheduler_config(big.path.string()); });
    INFO(msg);
    CHECK(contains(msg, "at most 16777216 bytes"));
    // Exactly at the cap still loads.
    text.resize(ddpm::max_scheduler_config_bytes);
    const temp_file at_cap(text, "ddpm_at_cap");
    CHECK(ddpm::load_scheduler_config(at_cap.path.string()).schedule.beta_start == 0.0001);
#if defined(__unix__)
    // An endless stream (as /dev/stdin fed by `yes` would be): refused after
    // the cap instead of being read until memory runs out.
    CHECK(contains(error_of([] { (void)ddpm::load_scheduler_config("/dev/zero"); }), "at most 16777216 bytes"));
#endif
}

TEST_CASE("issue 11 reproducers: each loads into finite tables or throws ddpm::invalid_argument",
          "[inspect][scheduler_config][reliability]") {
    // The expected outcome of each reproducer under every profile.
    struct expectation {
        const char* file;
        const char* needle; // in the message of the load or make_schedule error
    };
    for (const expectation& e : {expectation{"nan-tables-tiny-first-beta.json", "betas[0]"},
                                 expectation{"inf-float32-view-underflow.json", "beta_start"},
                                 expectation{"inf-float32-view-underflow-const.json", "float32"},
                                 expectation{"bad-alloc-huge-T.json", "num_train_timesteps"}}) {
        for (const auto p : all_profiles) {
            INFO(e.file << " under " << ddpm::to_string(p));
            const auto msg = error_of([&] { (void)ddpm::make_schedule(ddpm::load_scheduler_config(reliability_data(e.file)), p); });
            INFO(msg);
            CHECK(contains(msg, e.needle));
        }
    }
    // 1e-8: fine in float64, 1 - beta = 1 in the diffusers profile's float32.
    const auto tiny = ddpm::load_scheduler_config(reliability_data("nan-tables-tiny-first-beta-diffusers-profile.json"));
    CHECK_NOTHROW(ddpm::make_schedule(tiny, ddpm::profile::standard));
    CHECK(contains(error_of([&] { (void)ddpm::make_schedule(tiny, ddpm::profile::diffusers); }), "float32"));
    // steps_offset = INT64_MAX loads (diffusers has no bound) and is refused,
    // naming it, when the timesteps are made.
    const auto off = ddpm::load_scheduler_config(reliability_data("ub-steps-offset-overflow.json"));
    const auto msg = error_of([&] {
        (void)ddpm::make_timesteps(off.schedule.num_train_timesteps, 50, off.timestep_spacing, off.steps_offset);
    });
    CHECK(contains(msg, "steps_offset = 9223372036854775807"));
}

TEST_CASE("issue 11: the 57 configurations that gave NaN/Inf tables now throw or give finite tables",
          "[inspect][scheduler_config][reliability]") {
    std::size_t files = 0, refused = 0;
    for (const auto& entry : std::filesystem::directory_iterator(reliability_data("nonfinite"))) {
        ++files;
        const auto config = ddpm::load_scheduler_config(entry.path().string());
        for (const auto p : all_profiles) {
            INFO(entry.path().filename().string() << " under " << ddpm::to_string(p));
            try {
                const auto s = ddpm::make_schedule(config, p);
                const auto last = static_cast<std::size_t>(s.size() - 1);
                const bool zero_snr = s.f64().alphas_cumprod[last] == 0.0;
                const auto check = [&](const char* name, const auto& table) {
                    for (std::size_t i = 0; i < table.size(); ++i) {
                        if (std::isfinite(table[i])) continue;
                        // Zero terminal SNR keeps 1/sqrt(alphas_cumprod) infinite at T - 1.
                        const bool intended = zero_snr && i == last &&
                                              (std::string(name) == "sqrt_recip_alphas_cumprod" ||
                                               std::string(name) == "sqrt_recipm1_alphas_cumprod");
                        INFO(name << "[" << i << "] = " << table[i]);
                        CHECK(intended);
                    }
                };
                s.f64().for_each(check);
                s.f32().for_each(check);
            } catch (const ddpm::invalid_argument&) {
                ++refused;
            }
        }
    }
    CHECK(files == 57);
    CHECK(refused > 0);
}
