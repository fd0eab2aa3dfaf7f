// The one-call loops ddpm::dpm_solver_sample / ddpm::unipc_sample against the
// stateful step() of their schedulers (bit for bit, counter noise drawn in
// the kernel vs filled into a buffer, one thread vs two), the "no allocation
// inside the loop" rule, and the cases where ddpm deliberately differs from
// diffusers (docs/solvers.md, "Fixed differences").
#include <catch2/catch.hpp>

#include <ddpm/samplers/dpm_solver.hpp>
#include <ddpm/samplers/unipc.hpp>

#include <support/count_allocations.hpp>

#include "toy.hpp"

#include <cmath>
#include <span>
#include <vector>

namespace {

constexpr std::size_t B = 3, D = 40; // D > one SIMD batch, not a multiple of it

/// The golden files' toy network as a ddpm denoiser (one timestep per sample).
template <class T>
struct toy_net {
    void operator()(std::span<const T> x, std::span<const ddpm::timestep_t> t, std::span<T> out) const {
        const auto y = ddpm_test::toy_model<T>(x.subspan(0, x.size()), t[0]);
        std::copy(y.begin(), y.end(), out.begin());
    }
};

/// Runs the scheduler's step() in diffusers' loop with the noise of `noise`
/// (x_T at step 0, step i's noise at i + 1).
template <class T, class S>
std::vector<T> manual_loop(S& s, std::size_t steps_n, const ddpm::counter_noise& noise, bool sde) {
    s.set_timesteps(static_cast<std::int64_t>(steps_n));
    std::vector<T> x(B * D), z(B * D), prev(B * D);
    noise.fill_rows(std::span<T>(x), 0, D);
    for (std::size_t i = 0; i < s.timesteps().size(); ++i) {
        const auto t = s.timesteps()[i];
        const auto out = ddpm_test::toy_model<T>(std::span<const T>(x), t);
        if constexpr (requires { s.dpm(); }) {
            if (sde) noise.fill_rows(std::span<T>(z), i + 1, D);
            s.step(out, t, x, sde ? z : std::vector<T>{}, prev, B);
        } else {
            s.step(out, t, x, prev, B);
        }
        x = prev;
    }
    return x;
}

template <class T>
void check_dpm(ddpm::dpm_solver_options o, ddpm::model_options mo = {}) {
    const ddpm::noise_schedule sched(ddpm::schedule_config{}, ddpm::profile::diffusers);
    ddpm::dpm_solver_multistep_scheduler<T> s(sched, mo, o);
    const ddpm::counter_noise noise(42);
    const bool sde = o.algorithm == ddpm::dpm_algorithm::sde_dpmsolver_pp;
    const auto ref = manual_loop<T>(s, 12, noise, sde);
    for (unsigned threads : {1u, 2u}) {
        std::vector<T> out(B * D);
        ddpm::sampler_options so;
        so.batch = B;
        so.exec.threads = threads;
        CHECK(ddpm::dpm_solver_sample(s, toy_net<T>{}, noise, out, so) == 12);
        CHECK(out == ref);
        std::vector<T> generic(B * D);
        CHECK(ddpm::sample(s, toy_net<T>{}, noise, generic, so) == 12); // the one loop, by its common name
        CHECK(generic == ref);
    }
}

template <class T>
void check_unipc(ddpm::unipc_options o, ddpm::model_options mo = {}) {
    const ddpm::noise_schedule sched(ddpm::schedule_config{}, ddpm::profile::diffusers);
    ddpm::unipc_scheduler<T> s(sched, mo, o);
    const ddpm::counter_noise noise(7);
    const auto ref = manual_loop<T>(s, 12, noise, false);
    std::vector<T> out(B * D);
    ddpm::sampler_options so;
    so.batch = B;
    so.exec.threads = 2;
    CHECK(ddpm::unipc_sample(s, toy_net<T>{}, noise, out, so) == 12);
    CHECK(out == ref);
}

} // namespace

TEST_CASE("dpm_solver_sample equals the stateful step() loop", "[samplers][solvers]") {
    ddpm::dpm_solver_options o;
    SECTION("2M") { check_dpm<float>(o); }
    SECTION("3M heun, double") {
        o.solver_order = 3;
        o.solver_type = ddpm::dpm_solver_type::heun;
        check_dpm<double>(o);
    }
    SECTION("SDE 2M (counter noise in the kernel vs a filled buffer)") {
        o.algorithm = ddpm::dpm_algorithm::sde_dpmsolver_pp;
        check_dpm<float>(o);
        o.solver_order = 3;
        check_dpm<double>(o);
    }
    SECTION("dpmsolver, v-prediction, Karras") {
        o.algorithm = ddpm::dpm_algorithm::dpmsolver;
        o.final_sigmas = ddpm::final_sigmas_type::sigma_min;
        o.sigmas = ddpm::sigma_schedule::karras;
        ddpm::model_options mo;
        mo.prediction = ddpm::prediction_type::v_prediction;
        check_dpm<float>(o, mo);
    }
    SECTION("dynamic thresholding") {
        ddpm::model_options mo;
        mo.clip = ddpm::clip_options::dynamic(0.9, 2.0);
        check_dpm<float>(o, mo);
        o.algorithm = ddpm::dpm_algorithm::dpmsolver;
        o.final_sigmas = ddpm::final_sigmas_type::sigma_min;
        check_dpm<double>(o, mo);
    }
}

TEST_CASE("unipc_sample equals the stateful step() loop", "[samplers][solvers]") {
    ddpm::unipc_options o;
    SECTION("bh2, order 2") { check_unipc<float>(o); }
    SECTION("bh1, order 3, exponential sigmas, a disabled corrector") {
        o.solver_type = ddpm::unipc_solver_type::bh1;
        o.solver_order = 3;
        o.sigmas = ddpm::sigma_schedule::exponential;
        o.disable_corrector = {2, 5};
        check_unipc<double>(o);
    }
    SECTION("epsilon form, sample prediction, thresholding ignored") {
        o.predict_x0 = false;
        o.final_sigmas = ddpm::final_sigmas_type::sigma_min;
        ddpm::model_options mo;
        mo.prediction = ddpm::prediction_type::sample;
        check_unipc<float>(o, mo);
    }
}

TEST_CASE("the multistep loops allocate nothing inside the loop", "[samplers][solvers][alloc]") {
    const ddpm::noise_schedule sched(ddpm::schedule_config{}, ddpm::profile::diffusers);
    ddpm::model_options mo;
    mo.clip = ddpm::clip_options::dynamic(0.9, 3.0);
    ddpm::dpm_solver_options o;
    o.algorithm = ddpm::dpm_algorithm::sde_dpmsolver_pp;
    o.solver_order = 3;
    ddpm::dpm_solver_multistep_scheduler<float> dpm(sched, mo, o);
    dpm.set_timesteps(10);
    ddpm::unipc_options u;
    u.solver_order = 3;
    ddpm::unipc_scheduler<double> uni(sched, mo, u);
    uni.set_timesteps(10);
    // The network writes in place (no allocation of its own); the observer
    // notes the allocation count after the first and the last step.
    auto net = []<class T>(std::span<const T> x, std::span<const ddpm::timestep_t>, std::span<T> out) {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = T(0.5) * x[i];
    };
    std::size_t first = 0, last = 0;
    auto observe = [&](std::size_t i, ddpm::timestep_t, auto, auto) {
        if (i == 0) first = ddpm_test::allocations();
        last = ddpm_test::allocations();
    };
    ddpm::sampler_options so;
    so.batch = 2;
    std::vector<float> out_f(2 * 64);
    CHECK(ddpm::dpm_solver_sample(dpm, net, ddpm::counter_noise(1), out_f, so, observe) == 10);
    CHECK(last == first);
    std::vector<double> out_d(2 * 64);
    CHECK(ddpm::unipc_sample(uni, net, ddpm::counter_noise(1), out_d, so, observe) == 10);
    CHECK(last == first);
}

TEST_CASE("multistep solvers: the fixed diffusers differences", "[samplers][solvers]") {
    const ddpm::noise_schedule sched(ddpm::schedule_config{}, ddpm::profile::diffusers);
    const ddpm::counter_noise noise(3);
    SECTION("3M with a repeated last sigma: the zero-length step is the identity") {
        ddpm::dpm_solver_options o;
        o.solver_order = 3;
        o.sigmas = ddpm::sigma_schedule::karras;
        o.final_sigmas = ddpm::final_sigmas_type::sigma_min;
        ddpm::dpm_solver_multistep_scheduler<float> s(sched, {}, o);
        s.set_timesteps(25); // >= 15 steps: full order at the end, where diffusers gives NaN
        REQUIRE(s.sigmas()[24] == s.sigmas()[25]);
        std::vector<float> before_last, final_x;
        std::vector<float> out(B * D);
        ddpm::sampler_options so;
        so.batch = B;
        ddpm::dpm_solver_sample(s, toy_net<float>{}, noise, out, so,
                                [&](std::size_t i, ddpm::timestep_t, std::span<const float> x, std::span<const float>) {
                                    if (i == 23) before_last.assign(x.begin(), x.end());
                                });
        CHECK(out == before_last);
    }
    SECTION("UniPC bh1 into sigma = 0 ends on the x0 prediction") {
        ddpm::unipc_options o;
        o.solver_type = ddpm::unipc_solver_type::bh1;
        ddpm::unipc_scheduler<double> s(sched, {}, o);
        std::vector<double> last_x0;
        std::vector<double> out(B * D);
        ddpm::sampler_options so;
        so.batch = B;
        s.set_timesteps(10);
        ddpm::unipc_sample(s, toy_net<double>{}, noise, out, so,
                           [&](std::size_t, ddpm::timestep_t, std::span<const double>, std::span<const double> x0) {
                               last_x0.assign(x0.begin(), x0.end());
                           });
        CHECK(out == last_x0);
        for (const double v : out) REQUIRE(std::isfinite(v));
    }
    SECTION("step() rejects a timestep outside the chain and steps past the end") {
        ddpm::dpm_solver_multistep_scheduler<double> s(sched);
        std::vector<double> x(D, 0.1), out(D, 0.2), prev(D);
        CHECK_THROWS_WITH(s.step(out, 5, x, std::vector<double>{}, prev, 1), Catch::Contains("before stepping"));
        s.set_timesteps(2);
        CHECK_THROWS_AS(s.step(out, 5, x, std::vector<double>{}, prev, 1), ddpm::invalid_argument);
        CHECK_THROWS_WITH(s.step(out, 5, x, std::vector<double>{}, prev, 1), Catch::Contains("timestep = 5"));
        CHECK(s.step(out, s.timesteps()[0], x, std::vector<double>{}, prev, 1) == 1);
        CHECK(s.step(out, s.timesteps()[1], x, std::vector<double>{}, prev, 1) == 1);
        CHECK_THROWS_WITH(s.step(out, s.timesteps()[1], x, std::vector<double>{}, prev, 1),
                          Catch::Contains("call set_timesteps again"));
        ddpm::dpm_solver_options sde;
        sde.algorithm = ddpm::dpm_algorithm::sde_dpmsolver_pp;
        ddpm::dpm_solver_multistep_scheduler<double> s2(sched, {}, sde);
        s2.set_timesteps(3);
        CHECK_THROWS_WITH(s2.step(out, s2.timesteps()[0], x, std::vector<double>{}, prev, 1),
                          Catch::Contains("noise.size()"));
    }
}
