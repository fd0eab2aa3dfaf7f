// One loop for every scheduler: ddpm::sample(scheduler, …) runs the
// DPM-Solver and UniPC schedulers bit for bit as their named drivers
// ddpm::dpm_solver_sample / ddpm::unipc_sample (samples, observer traces and
// call counts), with an observer (recording, and one that stops the run),
// start_from_input, check_finite, two threads, and the noise drawn inside the
// kernel (counter_noise) or filled into a buffer (a fill-only source).
#include <catch2/catch.hpp>

#include <ddpm/samplers/dpm_solver.hpp>
#include <ddpm/samplers/unipc.hpp>

#include "toy.hpp"

#include <cstdint>
#include <span>
#include <vector>

namespace {

constexpr std::size_t B = 3, D = 40;

template <class T>
struct toy_net {
    void operator()(std::span<const T> x, std::span<const ddpm::timestep_t> t, std::span<T> out) const {
        const auto y = ddpm_test::toy_model<T>(x, t[0]);
        std::copy(y.begin(), y.end(), out.begin());
    }
};

/// counter_noise without stream(): the loop fills a buffer instead of
/// drawing inside the fused kernel.
struct buffer_noise {
    ddpm::counter_noise inner;
    template <class T>
    void fill(std::span<T> out, std::uint64_t step) const {
        inner.fill_rows(out, step, D);
    }
};

/// Everything an observer sees, and where it stops the run (never when 0).
template <class T>
struct trace {
    std::size_t stop_after = 0;
    std::vector<std::size_t> steps;
    std::vector<ddpm::timestep_t> ts;
    std::vector<T> xs, x0s;
    bool operator()(std::size_t i, ddpm::timestep_t t, std::span<const T> x, std::span<const T> x0) {
        steps.push_back(i);
        ts.push_back(t);
        xs.insert(xs.end(), x.begin(), x.end());
        x0s.insert(x0s.end(), x0.begin(), x0.end());
        return stop_after == 0 || steps.size() < stop_after;
    }
};

/// Runs `s` through ddpm::sample and through `named` with the same inputs
/// and checks that everything they produce is identical.
template <class T, class S, class Noise, class Named>
void check_same(const S& s, const Noise& noise, Named named, bool from_input, std::size_t stop_after) {
    ddpm::sampler_options o;
    o.batch = B;
    o.check_finite = true;
    o.exec.threads = 2;
    o.start_from_input = from_input;
    std::vector<T> start(B * D);
    for (std::size_t k = 0; k < start.size(); ++k) start[k] = T(0.01) * static_cast<T>(k % 97) - T(0.4);
    std::vector<T> a = start, b = start;
    trace<T> ta, tb;
    ta.stop_after = tb.stop_after = stop_after;
    const std::size_t na = ddpm::sample(s, toy_net<T>{}, noise, a, o, ta);
    const std::size_t nb = named(s, toy_net<T>{}, noise, b, o, tb);
    const std::size_t expected = stop_after == 0 ? s.num_steps() : stop_after;
    CHECK(na == expected);
    CHECK(nb == na);
    CHECK(a == b);
    CHECK(ta.steps == tb.steps);
    CHECK(ta.ts == tb.ts);
    CHECK(ta.xs == tb.xs);
    CHECK(ta.x0s == tb.x0s);
    CHECK(a != start); // the run did something
}

template <class T, class S, class Named>
void check_all(const S& s, Named named) {
    for (bool from_input : {false, true}) {
        for (std::size_t stop_after : {std::size_t{0}, std::size_t{5}}) {
            INFO("start_from_input " << from_input << ", stop after " << stop_after);
            check_same<T>(s, ddpm::counter_noise(11, D), named, from_input, stop_after);
            check_same<T>(s, buffer_noise{ddpm::counter_noise(11, D)}, named, from_input, stop_after);
        }
    }
}

const auto dpm_named = [](const auto& s, auto&& net, const auto& noise, auto& out, const ddpm::sampler_options& o,
                          auto& obs) { return ddpm::dpm_solver_sample(s, net, noise, out, o, obs); };
const auto unipc_named = [](const auto& s, auto&& net, const auto& noise, auto& out, const ddpm::sampler_options& o,
                            auto& obs) { return ddpm::unipc_sample(s, net, noise, out, o, obs); };

} // namespace

TEST_CASE("ddpm::sample runs DPM-Solver as dpm_solver_sample", "[samplers][solvers]") {
    const ddpm::noise_schedule sched(ddpm::schedule_config{}, ddpm::profile::diffusers);
    ddpm::dpm_solver_options o;
    SECTION("2M, float") {
        ddpm::dpm_solver_multistep_scheduler<float> s(sched, {}, o);
        s.set_timesteps(12);
        check_all<float>(s, dpm_named);
    }
    SECTION("SDE 3M (noise every step), double") {
        o.algorithm = ddpm::dpm_algorithm::sde_dpmsolver_pp;
        o.solver_order = 3;
        ddpm::dpm_solver_multistep_scheduler<double> s(sched, {}, o);
        s.set_timesteps(12);
        check_all<double>(s, dpm_named);
    }
}

TEST_CASE("ddpm::sample runs UniPC as unipc_sample", "[samplers][solvers]") {
    const ddpm::noise_schedule sched(ddpm::schedule_config{}, ddpm::profile::diffusers);
    ddpm::unipc_options o;
    SECTION("bh2, order 2, float") {
        ddpm::unipc_scheduler<float> s(sched, {}, o);
        s.set_timesteps(12);
        check_all<float>(s, unipc_named);
    }
    SECTION("bh1, order 3, double") {
        o.solver_type = ddpm::unipc_solver_type::bh1;
        o.solver_order = 3;
        ddpm::unipc_scheduler<double> s(sched, {}, o);
        s.set_timesteps(12);
        check_all<double>(s, unipc_named);
    }
}
