// No allocation inside the sampling loop: this TU replaces the global
// operator new with a counting one, and the network and observer record the
// count at every step. Scratch is sized before the first network call; from
// then on to the last step the count must not move. Every non-aligned
// form is replaced, so that the pairs stay matched (also under ASan).
#include <catch2/catch.hpp>


#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>
#include <ddpm/samplers/euler.hpp>
#include <ddpm/samplers/heun.hpp>

#include "mixture.hpp"

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>
#include <vector>

#include <support/count_allocations.hpp>

using ddpm_test::g_allocations;

namespace {

/// Wraps a network: records the allocation count at its first call.
template <class Net>
struct first_call_probe {
    Net& net;
    std::size_t& at_first_call;
    bool seen = false;
    template <class T>
    void operator()(std::span<const T> x, std::span<const ddpm::timestep_t> t, std::span<T> out) {
        if (!seen) {
            at_first_call = g_allocations.load();
            seen = true;
        }
        net(x, t, out);
    }
};

using mixture3 = ddpm_test::gaussian_mixture<2, 3>;
const mixture3 mix{{0.5, 0.3, 0.2}, {{{-2.0, -1.0}, {2.0, -1.0}, {0.0, 2.0}}}, {0.5, 0.4, 0.3}};

} // namespace

TEST_CASE("the DDPM and DDIM loops allocate nothing", "[samplers][alloc]") {
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    ddpm::model_options mo;
    mo.clip = ddpm::clip_options::dynamic(0.9, 3.0); // exercises the thresholding scratch
    const ddpm::ddpm_scheduler<float> ddpm_s(s, mo);
    ddpm::ddim_options o;
    o.eta = 0.5;
    ddpm::ddim_scheduler<double> ddim_s(s, mo, o);
    ddim_s.set_timesteps(50, ddpm::timestep_spacing::trailing);

    SECTION("ddpm::sample") {
        ddpm_test::mixture_denoiser<float, 2, 3> net(mix, s);
        std::size_t first = 0, last = 0, steps = 0;
        first_call_probe<decltype(net)> probe{net, first};
        std::mt19937_64 gen(1);
        ddpm::urbg_normal_noise noise(gen);
        std::vector<float> x(2 * 64);
        ddpm::sampler_options opt;
        opt.batch = 64;
        opt.check_finite = true;
        const std::size_t before = g_allocations.load();
        ddpm::sample(ddpm_s, probe, noise, x, opt,
                     [&](std::size_t, ddpm::timestep_t, std::span<const float>, std::span<const float>) {
                         last = g_allocations.load();
                         ++steps;
                         return true;
                     });
        CHECK(steps == 1000);
        CHECK(first > before); // the scratch was allocated, before the loop
        CHECK(last == first);  // and nothing after
    }
    SECTION("ddpm_sampler reuses its scratch across runs") {
        ddpm_test::mixture_denoiser<float, 2, 3> net(mix, s);
        ddpm::ddpm_sampler<float> sampler(ddpm_s);
        std::mt19937_64 gen(1);
        ddpm::urbg_normal_noise noise(gen);
        std::vector<float> x(2 * 64);
        ddpm::sampler_options opt;
        opt.batch = 64;
        sampler.sample(net, noise, x, opt);
        const std::size_t before = g_allocations.load();
        sampler.sample(net, noise, x, opt);
        CHECK(g_allocations.load() == before); // the second run allocates nothing at all
    }
    SECTION("ddpm::ddim_sample and ddim_invert") {
        ddpm_test::mixture_denoiser<double, 2, 3> net(mix, s);
        std::size_t first = 0, last = 0;
        first_call_probe<decltype(net)> probe{net, first};
        std::mt19937_64 gen(1);
        ddpm::urbg_normal_noise noise(gen);
        std::vector<double> x(2 * 64);
        ddpm::sampler_options opt;
        opt.batch = 64;
        auto obs = [&](std::size_t, ddpm::timestep_t, std::span<const double>, std::span<const double>) {
            last = g_allocations.load();
        };
        ddpm::ddim_sample(ddim_s, probe, noise, x, opt, obs);
        CHECK(last == first);
        probe.seen = false;
        ddpm::inversion_options io;
        io.batch = 64;
        io.fixed_point_iterations = 2;
        ddpm::ddim_invert(ddim_s, probe, x, io, obs);
        CHECK(last == first);
    }
}

namespace {

/// A network with real timesteps that allocates nothing and records the
/// allocation count at its first call.
template <class T>
struct continuous_probe {
    std::size_t& at_first_call;
    bool seen = false;
    void operator()(std::span<const T> x, std::span<const T> t, std::span<T> out) {
        if (!seen) {
            at_first_call = g_allocations.load();
            seen = true;
        }
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = T(0.3) * x[i] + t[i % t.size()] / T(1000);
    }
};

template <class T, class Scheduler, class Noise>
void check_no_allocation_in_loop(const Scheduler& sched, Noise& noise, std::size_t expected_calls) {
    std::size_t first = 0, last = 0, calls = 0;
    continuous_probe<T> net{first};
    std::vector<T> x(3 * 32);
    ddpm::sampler_options opt;
    opt.batch = 32;
    opt.check_finite = true;
    const std::size_t before = g_allocations.load();
    ddpm::sample(sched, net, noise, x, opt, [&](std::size_t, T, std::span<const T>, std::span<const T>) {
        last = g_allocations.load();
        ++calls;
    });
    CHECK(calls == expected_calls);
    CHECK(first > before); // scratch and per-run state were allocated before the loop
    CHECK(last == first);  // and nothing after
}

} // namespace

TEST_CASE("the Euler, Euler ancestral and Heun loops allocate nothing", "[samplers][alloc][solvers]") {
    const ddpm::noise_schedule s{ddpm::schedule_config{}, ddpm::profile::diffusers};
    ddpm::euler_options karras;
    karras.sigmas = ddpm::sigma_schedule::karras;
    ddpm::euler_scheduler<float> euler(s, {}, karras);
    euler.set_timesteps(12);
    ddpm::euler_ancestral_scheduler<double> ancestral(s);
    ancestral.set_timesteps(12);
    ddpm::heun_scheduler<float> heun(s);
    heun.set_timesteps(6);
    ddpm::counter_noise counter(3);
    std::mt19937_64 gen(1);
    ddpm::urbg_normal_noise buffered(gen);
    check_no_allocation_in_loop<float>(euler, counter, 12);
    check_no_allocation_in_loop<double>(ancestral, counter, 12);  // noise drawn in the fused kernel
    check_no_allocation_in_loop<double>(ancestral, buffered, 12); // noise filled into the workspace
    check_no_allocation_in_loop<float>(heun, buffered, 11);       // 2N − 1 calls, state sized before the loop
}
