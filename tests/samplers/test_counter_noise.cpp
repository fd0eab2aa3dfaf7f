// The samplers on counter-based noise: the fused kernels draw it themselves,
// and the result equals replaying the same noise from a buffer, for any
// thread count and any split of the batch.
#include <catch2/catch.hpp>

#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>

#include "mixture.hpp"

#include <cmath>
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

namespace {
/// A smooth toy ε-network for any D: out = tanh(0.7 x)(0.5 + t/1000).
template <class T>
struct any_dim_net {
    void operator()(std::span<const T> x, std::span<const ddpm::timestep_t> t, std::span<T> out) const {
        const std::size_t dim = x.size() / t.size();
        for (std::size_t i = 0; i < x.size(); ++i)
            out[i] = std::tanh(T(0.7) * x[i]) * static_cast<T>(0.5 + static_cast<double>(t[i / dim]) / 1000.0);
    }
};

/// The slots (0 = x_T, s + 1 = step s) of a stream written out element by
/// element with the per-element functions: normal_at_v2 for v2, normal_at for v1.
template <class T>
std::vector<T> per_element_slots(std::uint64_t seed, ddpm::random::noise_version v, std::size_t steps, std::size_t batch,
                                 std::size_t dim) {
    std::vector<T> all((steps + 1) * batch * dim);
    for (std::size_t s = 0; s <= steps; ++s)
        for (std::size_t b = 0; b < batch; ++b)
            for (std::size_t i = 0; i < dim; ++i) {
                const auto sample = static_cast<std::uint32_t>(b), step = static_cast<std::uint32_t>(s);
                all[(s * batch + b) * dim + i] = static_cast<T>(v == ddpm::random::noise_version::v1
                                                                    ? ddpm::random::normal_at(seed, sample, step, i)
                                                                    : ddpm::random::normal_at_v2(seed, sample, step, i, dim));
            }
    return all;
}
} // namespace

TEMPLATE_TEST_CASE("counter_noise in ddpm::sample / ddim_sample is stream v2 by default, v1 when asked, per element",
                   "[samplers][noise][v2]", float, double) {
    using T = TestType;
    using ddpm::random::noise_version;
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const any_dim_net<T> net;
    ddpm::ddpm_scheduler<T> sched(s, ddpm::model_options{});
    sched.set_timesteps(8, ddpm::timestep_spacing::trailing);
    ddpm::ddim_options o;
    o.eta = 1.0;
    ddpm::ddim_scheduler<T> ddim(s, ddpm::model_options{}, o);
    ddim.set_timesteps(6, ddpm::timestep_spacing::trailing);
    CHECK(ddpm::counter_noise(1).version() == noise_version::v2);
    for (const std::size_t D : {1u, 2u, 3u, 17u, 63u, 64u, 65u, 130u, 784u}) {
        for (const noise_version v : {noise_version::v1, noise_version::v2}) {
            INFO("D " << D << " version " << unsigned(v));
            const std::size_t B = 3;
            const ddpm::counter_noise noise = v == noise_version::v2 ? ddpm::counter_noise(99, D)
                                                                     : ddpm::counter_noise(99, D, 0, noise_version::v1);
            ddpm::sampler_options opt;
            opt.batch = B;
            std::vector<T> fused(B * D), replay(B * D);
            ddpm::sample(sched, net, noise, fused, opt);
            const auto slots = per_element_slots<T>(99, v, sched.num_steps(), B, D);
            ddpm::sample(sched, net, ddpm::buffer_noise<T>(slots), replay, opt);
            CHECK(fused == replay);
            // fill() draws the same values as the fused kernels.
            std::vector<T> x_t(B * D);
            noise.fill(std::span<T>(x_t), 0);
            CHECK(std::equal(x_t.begin(), x_t.end(), slots.begin()));

            ddpm::ddim_sample(ddim, net, noise, fused, opt);
            const auto dslots = per_element_slots<T>(99, v, ddim.num_steps(), B, D);
            ddpm::ddim_sample(ddim, net, ddpm::buffer_noise<T>(dslots), replay, opt);
            CHECK(fused == replay);
        }
    }
    // An unknown version is an error when the noise is drawn.
    std::vector<T> x(4, T(-7));
    const ddpm::counter_noise bad(1, 2, 0, static_cast<noise_version>(7));
    CHECK_THROWS_AS(bad.fill(std::span<T>(x), 0), ddpm::invalid_argument);
    CHECK_THROWS_AS(bad.stream(1), ddpm::invalid_argument);
    CHECK(x == std::vector<T>(4, T(-7)));
}
