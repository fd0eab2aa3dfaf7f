// The samplers on counter-based noise: the fused kernels draw it themselves,
// and the result equals replaying the same noise from a buffer, for any
// thread count and any split of the batch.
#include <catch2/catch.hpp>

#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>

#include "mixture.hpp"

#include <vector>

namespace {
using mixture2 = ddpm_test::gaussian_mixture<2, 2>;
const mixture2 mix{{0.6, 0.4}, {{{-1.5, 0.0}, {1.5, 0.5}}}, {0.4, 0.3}};

/// Replays exactly what counter_noise draws, through the buffer path.
template <class T>
std::vector<T> counter_slots(const ddpm::counter_noise& n, std::size_t steps, std::size_t batch, std::size_t dim) {
    std::vector<T> all((steps + 1) * batch * dim);
    for (std::size_t s = 0; s <= steps; ++s)
        n.fill_rows(std::span<T>(all).subspan(s * batch * dim, batch * dim), s, dim);
    return all;
}
} // namespace

TEMPLATE_TEST_CASE("counter_noise: fused draws equal buffered replay, any thread count", "[samplers][noise]", float,
                   double) {
    using T = TestType;
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    ddpm_test::mixture_denoiser<T, 2, 2> net(mix, s);
    constexpr std::size_t B = 96, D = 2;
    const ddpm::counter_noise noise(2024);

    ddpm::model_options mo;
    mo.clip = ddpm::clip_options::clip(3.0);
    ddpm::ddpm_scheduler<T> sched(s, mo);
    sched.set_timesteps(100, ddpm::timestep_spacing::trailing);

    ddpm::sampler_options opt;
    opt.batch = B;
    std::vector<T> fused(B * D);
    ddpm::sample(sched, net, noise, fused, opt);

    const auto slots = counter_slots<T>(noise, sched.num_steps(), B, D);
    std::vector<T> replay(B * D);
    ddpm::sample(sched, net, ddpm::buffer_noise<T>(slots), replay, opt);
    CHECK(fused == replay);

    opt.exec.threads = 2;
    std::vector<T> two(B * D);
    ddpm::sample(sched, net, noise, two, opt);
    CHECK(two == fused);

    // The second half of the batch alone, as samples 48.. of the same stream.
    ddpm::sampler_options half = opt;
    half.batch = B / 2;
    std::vector<T> tail(B / 2 * D);
    ddpm::sample(sched, net, ddpm::counter_noise(2024, 0, B / 2), tail, half);
    CHECK(std::equal(tail.begin(), tail.end(), fused.begin() + B / 2 * D));

    SECTION("DDIM with eta = 1") {
        ddpm::ddim_options o;
        o.eta = 1.0;
        ddpm::ddim_scheduler<T> ddim(s, mo, o);
        ddim.set_timesteps(20, ddpm::timestep_spacing::trailing);
        std::vector<T> a(B * D), b(B * D);
        ddpm::ddim_sample(ddim, net, noise, a, opt);
        const auto ddim_slots = counter_slots<T>(noise, ddim.num_steps(), B, D);
        ddpm::ddim_sample(ddim, net, ddpm::buffer_noise<T>(ddim_slots), b, opt);
        CHECK(a == b);
    }
}
