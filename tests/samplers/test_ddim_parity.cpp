// ddim_scheduler against diffusers' DDIMScheduler (tests/data/ddim_step.json):
// all 14 configurations, the set_timesteps(50) array, and at positions 0, 1,
// 25, 48, 49: prev_timestep, ᾱ_t, ᾱ_prev, variance, σ, prev_sample and x̂_0,
// for ε- and v-prediction × η ∈ {0, 1}, in float64 and float32, with the
// diffusers profile and the diffusers previous-timestep rule.
#include <catch2/catch.hpp>

#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>

#include "toy.hpp"

#include <cmath>
#include <iostream>
#include <string>

using ddpm_test::golden;
using ddpm_test::values;

namespace {

struct ddim_case {
    ddpm::timestep_spacing spacing;
    std::int64_t steps_offset;
    ddpm::model_options model;
    ddpm::ddim_options ddim;
};

ddim_case case_from(const nlohmann::json& c, const std::string& variant) {
    const auto& k = c.at("config");
    ddim_case d{};
    d.spacing = ddpm::timestep_spacing_from_string(k.at("timestep_spacing").get<std::string>());
    d.steps_offset = k.at("steps_offset").get<std::int64_t>();
    d.model.prediction = variant.rfind("epsilon", 0) == 0 ? ddpm::prediction_type::epsilon
                                                          : ddpm::prediction_type::v_prediction;
    if (k.at("clip_sample").get<bool>()) d.model.clip = ddpm::clip_options::clip(1.0);
    d.ddim.set_alpha_to_one = k.at("set_alpha_to_one").get<bool>();
    d.ddim.use_clipped_model_output = c.at("use_clipped_model_output").get<bool>();
    d.ddim.eta = variant.substr(variant.size() - 4) == "eta1" ? 1.0 : 0.0;
    d.ddim.previous = ddpm::ddim_previous_rule::diffusers;
    return d;
}

struct worst {
    ddpm_test::diff_stats prev, x0, scalars;
    int steps = 0;
};

template <class T>
worst check_mode(const std::string& mode, double tol) {
    const auto& g = golden("ddim_step.json");
    const ddpm::noise_schedule s(ddpm::schedule_config{}, ddpm::profile::diffusers);
    const auto x = values<T>(g.at("inputs").at("x"));
    const auto noise = values<T>(g.at("inputs").at("noise"));
    const std::size_t n = x.size();
    worst w;
    int configs = 0;
    for (const auto& c : g.at("configs")) {
        ++configs;
        for (const auto& [variant, modes] : c.at("steps").items()) {
            const auto dc = case_from(c, variant);
            ddpm::ddim_scheduler<T> sched(s, dc.model, dc.ddim);
            sched.set_timesteps(50, dc.spacing, dc.steps_offset);
            const auto expected_ts = c.at("timesteps").template get<std::vector<std::int64_t>>();
            REQUIRE(std::vector<std::int64_t>(sched.timesteps().begin(), sched.timesteps().end()) == expected_ts);
            for (const auto& ref : modes.at(mode)) {
                const std::int64_t t = ref.at("t").template get<std::int64_t>();
                INFO(mode << " " << c.at("config").dump() << " clipped_eps=" << dc.ddim.use_clipped_model_output
                          << " " << variant << " t=" << t);
                REQUIRE(sched.timesteps()[ref.at("index").template get<std::size_t>()] == t);
                CHECK(sched.previous_timestep(t) == ref.at("prev_timestep").template get<std::int64_t>());
                const auto p = sched.step_parameters(t);
                CHECK(p.prev_timestep == ref.at("prev_timestep").template get<std::int64_t>());
                for (const auto& [name, got] : {std::pair<const char*, T>{"alpha_prod_t", p.alpha_prod_t},
                                                {"alpha_prod_t_prev", p.alpha_prod_t_prev},
                                                {"variance", p.variance},
                                                {"std_dev_t", p.std_dev_t}}) {
                    const T r = static_cast<T>(ref.at(name).template get<double>());
                    INFO(name << ": got " << got << ", diffusers " << r);
                    const std::vector<double> rv{static_cast<double>(r)};
                    const std::vector<T> gv{got};
                    const auto d = ddpm_test::compare<T>(gv, rv);
                    CHECK(d.rel <= tol);
                    w.scalars.merge(d);
                }
                const auto out = ddpm_test::toy_model<T>(x, t);
                std::vector<T> prev(n), x0(n);
                sched.step(out, t, x, noise, prev, x0, 2);
                const auto dp = ddpm_test::compare<T>(prev, values(ref.at("prev_sample")));
                const auto dx = ddpm_test::compare<T>(x0, values(ref.at("pred_original_sample")));
                CHECK(dp.rel <= tol);
                CHECK(dx.rel <= tol);
                w.prev.merge(dp);
                w.x0.merge(dx);
                ++w.steps;
            }
        }
    }
    CHECK(configs == 14);
    return w;
}

void report(const char* what, const worst& w) {
    std::cout << "[ddim_step " << what << "] " << w.steps
              << " steps checked; worst rel (floor 1) / ulp: prev_sample " << w.prev.rel << " / " << w.prev.ulp
              << ", x0 " << w.x0.rel << " / " << w.x0.ulp << ", scalars " << w.scalars.rel << " / " << w.scalars.ulp
              << "\n";
}

} // namespace

TEST_CASE("ddim_scheduler matches DDIMScheduler.step in float64", "[samplers][parity][ddim]") {
    const auto w = check_mode<double>("f64", 1e-12);
    CHECK(w.steps == 14 * 4 * 5);
    report("f64", w);
}

TEST_CASE("ddim_scheduler matches DDIMScheduler.step in float32", "[samplers][parity][ddim]") {
    const auto w = check_mode<float>("f32", 1e-6);
    report("f32", w);
}

TEST_CASE("DDIM previous timestep: next entry by default, t - T/N in diffusers mode", "[samplers][ddim]") {
    const ddpm::noise_schedule s(ddpm::schedule_config{}, ddpm::profile::diffusers);
    for (const auto spacing :
         {ddpm::timestep_spacing::linspace, ddpm::timestep_spacing::leading, ddpm::timestep_spacing::trailing}) {
        for (const std::int64_t n : {50, 30, 7}) {
            ddpm::ddim_scheduler<double> next(s);
            ddpm::ddim_options o;
            o.previous = ddpm::ddim_previous_rule::diffusers;
            ddpm::ddim_scheduler<double> diff(s, {}, o);
            next.set_timesteps(n, spacing);
            diff.set_timesteps(n, spacing);
            const auto ts = next.timesteps();
            int differ = 0;
            for (std::size_t i = 0; i < ts.size(); ++i) {
                const auto expected_next = i + 1 < ts.size() ? ts[i + 1] : -1;
                CHECK(next.previous_timestep(ts[i]) == expected_next);
                CHECK(diff.previous_timestep(ts[i]) == ts[i] - 1000 / n);
                const auto d = diff.previous_timestep(ts[i]);
                if (!(d == expected_next || (d < 0 && expected_next < 0))) ++differ;
            }
            INFO(ddpm::to_string(spacing) << " N=" << n);
            if (spacing == ddpm::timestep_spacing::leading) CHECK(differ == 0); // always consistent
            if (spacing == ddpm::timestep_spacing::linspace) CHECK(differ > 0);  // 979 - 20 = 959 != 958
            if (spacing == ddpm::timestep_spacing::trailing && n == 50) CHECK(differ == 0);
            if (spacing == ddpm::timestep_spacing::trailing && n == 30) CHECK(differ > 0);
        }
    }
}

TEST_CASE("DDIM with eta = 1 is the DDPM fixed_small step on the strided chain", "[samplers][ddim][ddpm]") {
    const auto& g = golden("ddim_step.json");
    const auto x = values<double>(g.at("inputs").at("x"));
    const auto z = values<double>(g.at("inputs").at("noise"));
    for (const auto profile : {ddpm::profile::standard, ddpm::profile::diffusers}) {
        const ddpm::noise_schedule s(ddpm::schedule_config{}, profile);
        ddpm::ddim_options o;
        o.eta = 1.0;
        ddpm::ddim_scheduler<double> ddim(s, {}, o);
        ddpm::ddpm_scheduler<double> ddpm_s(s);
        ddim.set_timesteps(50, ddpm::timestep_spacing::linspace);
        ddpm_s.set_timesteps(50, ddpm::timestep_spacing::linspace);
        for (std::size_t i = 0; i + 1 < ddim.timesteps().size(); ++i) {
            const auto t = ddim.timesteps()[i];
            const auto out = ddpm_test::toy_model<double>(x, t);
            std::vector<double> a(x.size()), b(x.size()), a0(x.size()), b0(x.size());
            ddim.step(out, t, x, z, a, a0, 2);
            ddpm_s.step(out, t, x, z, b, b0, 2);
            INFO(ddpm::to_string(profile) << " t=" << t);
            CHECK(ddpm_test::max_rel_diff(a, b, 1.0) <= 1e-11);
            CHECK(ddpm_test::max_rel_diff(a0, b0, 1.0) <= 1e-12);
        }
    }
}
