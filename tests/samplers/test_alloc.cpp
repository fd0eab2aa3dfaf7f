// No allocation inside the sampling loop: this TU replaces the global
// operator new with a counting one, and the network and observer record the
// count at every step. Scratch is sized before the first network call; from
// then on to the last step the count must not move. Every non-aligned
// form is replaced, so that the pairs stay matched (also under ASan).
#include <catch2/catch.hpp>


#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>

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
