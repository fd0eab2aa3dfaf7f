// Issue 11 regressions for the scheduler_config.json loader: deep nesting
// (item 1), dynamic_thresholding_ratio 1.0 (item 9), the file-size cap (item
// 10), and the reproducer files of tests/data/reliability/ (items 4, 5, 6, 8):
// each either loads into a schedule whose tables are finite or throws a
// ddpm::invalid_argument, under every profile.
#include <catch2/catch.hpp>

#include <ddpm/ddpm.hpp>
#include <ddpm/schedule/scheduler_config_json.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

std::string reliability_data(const std::string& name) {
    std::string path = DDPM_TEST_DATA_DIR;
    path += "/reliability/";
    path += name;
    return path;
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

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

/// A scratch file that removes itself.
struct scratch_file {
    std::filesystem::path path;
    explicit scratch_file(const std::string& contents, const std::string& stem) {
        path = std::filesystem::temp_directory_path() /
               (stem + "_" + std::to_string(reinterpret_cast<std::uintptr_t>(this)) + ".json");
        std::ofstream(path, std::ios::binary) << contents;
    }
    ~scratch_file() {
        std::error_code ec;
        std::filesystem::remove(path, ec);
    }
    scratch_file(const scratch_file&) = delete;
    scratch_file& operator=(const scratch_file&) = delete;
};

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
        const scratch_file f(text, "ddpm_deep");
        std::vector<std::string> warnings;
        const auto msg = error_of([&] { (void)ddpm::load_scheduler_config(f.path.string(), &warnings); });
        INFO(msg.substr(0, 300));
        CHECK(contains(msg, "nesting depth"));
        CHECK(contains(msg, "32"));
        CHECK(msg.size() < 400);
    }
    // At the limit it still loads (an ignored key may hold anything).
    const scratch_file ok("{\"solver_order\": " + nested(31) + "}", "ddpm_deep_ok");
    std::vector<std::string> warnings;
    CHECK_NOTHROW(ddpm::load_scheduler_config(ok.path.string(), &warnings));
    const scratch_file over("{\"solver_order\": " + nested(32) + "}", "ddpm_deep_over");
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
    const scratch_file big(text, "ddpm_big");
    const auto msg = error_of([&] { (void)ddpm::load_scheduler_config(big.path.string()); });
    INFO(msg);
    CHECK(contains(msg, "at most 16777216 bytes"));
    // Exactly at the cap still loads.
    text.resize(ddpm::max_scheduler_config_bytes);
    const scratch_file at_cap(text, "ddpm_at_cap");
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
