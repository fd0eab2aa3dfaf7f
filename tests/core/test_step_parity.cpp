// p_mean_variance against diffusers' DDPMScheduler.step (tests/data/ddpm_step.json):
// all 28 configurations × 5 timesteps, x̂_0, mean (prev_sample with zero
// noise) and the noise scale, in float64 and float32.
#include <catch2/catch.hpp>

#include <ddpm/core/p_mean_variance.hpp>
#include <support/golden.hpp>

#include <cmath>
#include <iostream>
#include <string>

using ddpm_test::golden;
using ddpm_test::max_rel_diff;
using ddpm_test::values;

namespace {

ddpm::model_options options_from(const nlohmann::json& c) {
    ddpm::model_options o;
    o.prediction = ddpm::prediction_type_from_string(c.at("prediction_type").get<std::string>());
    o.variance = ddpm::variance_type_from_string(c.at("variance_type").get<std::string>());
    const bool clip = c.value("clip_sample", true);
    if (c.value("thresholding", false))
        o.clip = ddpm::clip_options::dynamic(0.995, c.value("sample_max_value", 1.0));
    else if (clip)
        o.clip = ddpm::clip_options::clip(1.0);
    return o;
}

struct worst {
    double x0 = 0, mean = 0, std = 0;
};

template <class T>
worst check_mode(const ddpm::noise_schedule& s, const std::string& mode, double tol) {
    const auto& g = golden("ddpm_step.json");
    const auto x = values<T>(g.at("inputs").at("x"));
    const std::size_t n = x.size();
    const std::string mode_learned = mode == "f32" ? "f32_learned" : "f64_learned";
    worst w;
    for (const auto& c : g.at("cases")) {
        const auto opt = options_from(c.at("config"));
        const bool learned = ddpm::is_learned(opt.variance);
        for (const auto& [tkey, ref] : c.at("results").at(mode).items()) {
            const std::int64_t t = std::stoll(tkey);
            INFO(mode << " " << c.at("config").dump() << " t=" << t);
            const auto& outputs = g.at("model_outputs").at(learned ? mode_learned : mode);
            const auto out = values<T>(outputs.at(tkey));
            std::vector<T> mean(n), var(n), logvar(n), x0(n);
            const std::vector<std::int64_t> ts{t, t};
            ddpm::p_mean_variance(s, opt, out, x, ts, mean, var, logvar, x0);
            const double dx0 = max_rel_diff(x0, values(ref.at("pred_original_sample")), 1.0);
            // diffusers' fixed_large_log mean is NaN ((log β)**0.5 · 0); ddpm's is
            // the fixed_large mean, which the fixed_large cases check.
            const bool nan_mean = opt.variance == ddpm::variance_type::fixed_large_log && t > 0;
            const double dmean = nan_mean ? 0.0 : max_rel_diff(mean, values(ref.at("mean")), 1.0);
            CHECK(dx0 <= tol);
            CHECK(dmean <= tol);
            w.x0 = std::max(w.x0, dx0);
            w.mean = std::max(w.mean, dmean);

            // The factor that multiplies the unit noise.
            const auto c0 = ddpm::reverse_step_coefficients<T>(s, t, t - 1, opt.prediction, opt.variance);
            if (opt.variance == ddpm::variance_type::learned_range) {
                std::vector<double> std_dev(n);
                for (std::size_t i = 0; i < n; ++i)
                    std_dev[i] = t > 0 ? std::exp(T(0.5) * logvar[i]) : 0.0;
                const auto& gs = ref.at("std"); // a tensor, or the scalar 0 at t = 0
                const double d = gs.is_object() ? max_rel_diff(std_dev, values(gs), 1.0)
                                                : max_rel_diff(std_dev, std::vector<double>(n, ddpm_test::number(gs)), 1.0);
                CHECK(d <= tol);
                w.std = std::max(w.std, d);
            } else if (opt.variance == ddpm::variance_type::fixed_large_log && t > 0) {
                // diffusers takes (log β) ** 0.5 = NaN here; ddpm gives exp(½ log β).
                CHECK(std::isnan(ddpm_test::number(ref.at("std"))));
                CHECK(std::isfinite(c0.noise_scale));
                CHECK(ddpm_test::rel_diff(c0.noise_scale, std::sqrt(double(c0.variance)), 1.0) <= tol);
            } else {
                const double d = ddpm_test::rel_diff(c0.noise_scale, ddpm_test::number(ref.at("std")), 1.0);
                CHECK(d <= tol);
                w.std = std::max(w.std, d);
            }
        }
    }
    return w;
}

} // namespace

TEST_CASE("diffusers profile matches DDPMScheduler.step in float64", "[core][parity][step]") {
    // The double tables of the diffusers profile are the float64 formula, as
    // in the golden "f64" mode (diffusers run with numpy float64 tables).
    const ddpm::noise_schedule s(ddpm::schedule_config{}, ddpm::profile::diffusers);
    const auto w = check_mode<double>(s, "f64", 1e-12);
    std::cout << "[ddpm_step f64, diffusers profile] worst relative diff: x0 " << w.x0 << ", mean " << w.mean
              << ", std " << w.std << "\n";
}

TEST_CASE("diffusers profile matches DDPMScheduler.step in float32", "[core][parity][step]") {
    const ddpm::noise_schedule s(ddpm::schedule_config{}, ddpm::profile::diffusers);
    const auto w = check_mode<float>(s, "f32", 4e-6);
    std::cout << "[ddpm_step f32, diffusers profile] worst relative diff: x0 " << w.x0 << ", mean " << w.mean
              << ", std " << w.std << "\n";
}
