// ddpm_scheduler::step against diffusers' DDPMScheduler.step
// (tests/data/ddpm_step.json): all 28 configurations × 5 timesteps,
// prev_sample with the stored noise, the mean (prev_sample with no noise),
// x̂_0 and the noise scale, in float64 ("f64": diffusers with float64 tables)
// and float32 ("f32": diffusers as shipped), with the diffusers profile.
#include <catch2/catch.hpp>

#include <ddpm/samplers/ddpm.hpp>

#include "toy.hpp"

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <string>

using ddpm_test::golden;
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
    ddpm_test::diff_stats prev, mean, x0;
    double std = 0;
    int checked = 0;
};

/// The golden case with the same prediction / clipping but fixed_large.
const nlohmann::json& fixed_large_twin(const nlohmann::json& cases, const nlohmann::json& config) {
    for (const auto& c : cases) {
        const auto& k = c.at("config");
        if (k.at("variance_type") == "fixed_large" && k.at("prediction_type") == config.at("prediction_type") &&
            k.value("clip_sample", true) == config.value("clip_sample", true) && !k.value("thresholding", false))
            return c;
    }
    throw std::runtime_error("no fixed_large twin");
}

template <class T>
worst check_mode(const std::string& mode, double tol) {
    const auto& g = golden("ddpm_step.json");
    const ddpm::noise_schedule s(ddpm::schedule_config{}, ddpm::profile::diffusers);
    const auto x = values<T>(g.at("inputs").at("x"));
    const auto noise = values<T>(g.at("inputs").at("noise"));
    const std::size_t n = x.size();
    const std::size_t batch = 2;
    worst w;
    for (const auto& c : g.at("cases")) {
        const auto& config = c.at("config");
        const auto opt = options_from(config);
        const ddpm::ddpm_scheduler<T> sched(s, opt);
        const bool learned = ddpm::is_learned(opt.variance);
        for (const auto& [tkey, ref] : c.at("results").at(mode).items()) {
            const std::int64_t t = std::stoll(tkey);
            INFO(mode << " " << config.dump() << " t=" << t);
            const auto out = values<T>(g.at("model_outputs").at(learned ? mode + "_learned" : mode).at(tkey));
            std::vector<T> prev(n), mean(n), x0(n), x0b(n);
            sched.step(out, t, x, noise, prev, x0, batch);
            sched.step(out, t, x, std::vector<T>{}, mean, x0b, batch);

            const auto dx0 = ddpm_test::compare<T>(x0, values(ref.at("pred_original_sample")));
            CHECK(dx0.rel <= tol);
            w.x0.merge(dx0);

            const bool nan_ref = opt.variance == ddpm::variance_type::fixed_large_log && t > 0;
            if (nan_ref) {
                // diffusers: (log β) ** 0.5 = NaN, so its prev_sample and mean are
                // NaN. ddpm forms σ = exp(½ log β) and stays finite: it equals
                // the fixed_large result.
                CHECK(std::isnan(ddpm_test::number(ref.at("prev_sample").at("data").at(0))));
                for (std::size_t i = 0; i < n; ++i) REQUIRE(std::isfinite(prev[i]));
                const auto& twin = fixed_large_twin(g.at("cases"), config).at("results").at(mode).at(tkey);
                const auto dp = ddpm_test::compare<T>(prev, values(twin.at("prev_sample")));
                const auto dm = ddpm_test::compare<T>(mean, values(twin.at("mean")));
                CHECK(dp.rel <= tol);
                CHECK(dm.rel <= tol);
                continue;
            }
            const auto dprev = ddpm_test::compare<T>(prev, values(ref.at("prev_sample")));
            const auto dmean = ddpm_test::compare<T>(mean, values(ref.at("mean")));
            CHECK(dprev.rel <= tol);
            CHECK(dmean.rel <= tol);
            w.prev.merge(dprev);
            if (std::getenv("DDPM_PARITY_VERBOSE") && dprev.ulp > 0)
                std::cout << mode << " " << config.dump() << " t=" << t << " prev ulp " << dprev.ulp << " rel "
                          << dprev.rel << "\n";
            w.mean.merge(dmean);
            if (!learned) {
                const auto coef = sched.coefficients(t);
                const double d = ddpm_test::rel_diff(coef.noise_scale, ddpm_test::number(ref.at("std")), 1.0);
                CHECK(d <= tol);
                w.std = std::max(w.std, d);
            }
            ++w.checked;
        }
    }
    return w;
}

void report(const char* what, const worst& w) {
    std::cout << "[ddpm_step " << what << "] " << w.checked << " case x t checked; worst rel (floor 1) / ulp: prev_sample "
              << w.prev.rel << " / " << w.prev.ulp << ", mean " << w.mean.rel << " / " << w.mean.ulp << ", x0 "
              << w.x0.rel << " / " << w.x0.ulp << ", std " << w.std << "\n";
}

} // namespace

TEST_CASE("the toy model reproduces the stored model outputs", "[samplers][parity]") {
    const auto& g = golden("ddpm_step.json");
    for (const std::string key : {"999", "500", "10", "1", "0"}) {
        const auto t = std::stoll(key);
        const auto x64 = values<double>(g.at("inputs").at("x"));
        const auto x32 = values<float>(g.at("inputs").at("x"));
        const auto d64 = ddpm_test::compare<double>(ddpm_test::toy_model<double>(x64, t),
                                                    values(g.at("model_outputs").at("f64").at(key)));
        const auto d32 = ddpm_test::compare<float>(ddpm_test::toy_model<float>(x32, t),
                                                   values(g.at("model_outputs").at("f32").at(key)));
        CHECK(d64.ulp == 0);
        CHECK(d32.ulp == 0);
    }
}

TEST_CASE("ddpm_scheduler::step matches DDPMScheduler.step in float64", "[samplers][parity][ddpm]") {
    const auto w = check_mode<double>("f64", 1e-12);
    CHECK(w.checked == 28 * 5 - 4 * 6); // fixed_large_log t > 0 (6 cases x 4 t) checked against fixed_large
    report("f64", w);
}

TEST_CASE("ddpm_scheduler::step matches DDPMScheduler.step in float32", "[samplers][parity][ddpm]") {
    const auto w = check_mode<float>("f32", 1e-6);
    report("f32", w);
}

TEST_CASE("DDPM step with per-sample timesteps equals per-sample calls", "[samplers][ddpm]") {
    const auto& g = golden("ddpm_step.json");
    const ddpm::noise_schedule s(ddpm::schedule_config{}, ddpm::profile::diffusers);
    ddpm::model_options opt;
    opt.variance = ddpm::variance_type::learned_range;
    opt.clip = ddpm::clip_options::dynamic(0.995, 3.0);
    const ddpm::ddpm_scheduler<double> sched(s, opt);
    const auto x = values<double>(g.at("inputs").at("x"));
    const auto z = values<double>(g.at("inputs").at("noise"));
    const auto out500 = values<double>(g.at("model_outputs").at("f64_learned").at("500"));
    const auto out10 = values<double>(g.at("model_outputs").at("f64_learned").at("10"));
    const std::size_t D = 48;
    // sample 0 at t = 500 (its outputs from the t = 500 file), sample 1 at t = 10
    std::vector<double> out(out500.begin(), out500.begin() + 96);
    out.insert(out.end(), out10.begin() + 96, out10.end());
    std::vector<double> prev(96), x0(96);
    const std::vector<ddpm::timestep_t> ts{500, 10};
    sched.step(out, ts, x, z, prev, x0);
    for (std::size_t b = 0; b < 2; ++b) {
        const auto tb = ts[b];
        const std::vector<double> ob(out.begin() + static_cast<std::ptrdiff_t>(b * 2 * D),
                                     out.begin() + static_cast<std::ptrdiff_t>((b + 1) * 2 * D));
        const std::vector<double> xb(x.begin() + static_cast<std::ptrdiff_t>(b * D),
                                     x.begin() + static_cast<std::ptrdiff_t>((b + 1) * D));
        const std::vector<double> zb(z.begin() + static_cast<std::ptrdiff_t>(b * D),
                                     z.begin() + static_cast<std::ptrdiff_t>((b + 1) * D));
        std::vector<double> pb(D), x0b(D);
        sched.step(ob, tb, xb, zb, pb, x0b, 1);
        for (std::size_t i = 0; i < D; ++i) {
            CHECK(prev[b * D + i] == pb[i]);
            CHECK(x0[b * D + i] == x0b[i]);
        }
    }
}
