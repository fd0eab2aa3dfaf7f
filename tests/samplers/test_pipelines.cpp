// img2img, inpainting and the state-changing hook (ddpm/pipelines.hpp):
// the truncated chain as diffusers' get_timesteps computes it, img2img equal
// to diffusers' img2img loop written by hand with the schedulers' step()
// API, inpainting's known region, the hook, and the errors.
#include <catch2/catch.hpp>

#include <ddpm/pipelines.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

constexpr std::size_t B = 2, D = 12;

/// A smooth toy network for every timestep type.
struct toy_net {
    template <class T, class Tv>
    void operator()(std::span<const T> x, std::span<const Tv> t, std::span<T> out) const {
        const std::size_t dim = x.size() / t.size();
        for (std::size_t b = 0; b < t.size(); ++b)
            for (std::size_t k = b * dim; k < (b + 1) * dim; ++k)
                out[k] = std::tanh(T(0.7) * x[k]) * static_cast<T>(0.5 + static_cast<double>(t[b]) / 1000.0) +
                         T(0.05) * x[k];
    }
};

std::vector<double> image() {
    std::vector<double> v(B * D);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.37 * static_cast<double>(i)) * 0.8;
    return v;
}

ddpm::noise_schedule sched() { return ddpm::noise_schedule(ddpm::schedule_config{}); }

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
    double d = 0;
    for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
    return d;
}

} // namespace

TEST_CASE("img2img_first_step is diffusers' get_timesteps", "[pipelines][img2img]") {
    ddpm::ddim_scheduler<double> ddim(sched());
    ddim.set_timesteps(50);
    CHECK(ddpm::img2img_first_step(ddim, 0.6) == 20);  // init = 30 steps, t_start = 20
    CHECK(ddpm::img2img_first_step(ddim, 1.0) == 0);
    CHECK(ddpm::img2img_first_step(ddim, 0.02) == 49); // one step
    ddpm::heun_scheduler<double> heun(sched());
    heun.set_timesteps(10); // 19 calls, order 2
    CHECK(ddpm::img2img_first_step(heun, 0.5) == 10); // timesteps[t_start * order:]
    CHECK(ddpm::img2img_first_step(heun, 1.0) == 0);
    for (const double bad : {0.0, -0.1, 1.5, std::nan("")})
        CHECK_THROWS_AS(ddpm::img2img_first_step(ddim, bad), ddpm::invalid_argument);
    CHECK_THROWS_WITH(ddpm::img2img_first_step(ddim, 0.01), Catch::Contains("strength"));
    ddpm::ddim_scheduler<double> unset(sched());
    CHECK_THROWS_WITH(ddpm::img2img_first_step(unset, 0.5), Catch::Contains("set_timesteps"));
}

TEST_CASE("img2img equals diffusers' img2img loop written with step()", "[pipelines][img2img]") {
    const auto x0 = image();
    const ddpm::counter_noise noise(11, D);
    const double strength = 0.6;
    const ddpm::sampler_options opt{.batch = B};
    toy_net net;

    SECTION("DDIM: add_noise at timesteps[t_start], then step()") {
        ddpm::ddim_scheduler<double> s(sched());
        s.set_timesteps(20);
        const std::size_t first = ddpm::img2img_first_step(s, strength);
        std::vector<double> z(B * D), x(B * D), prev(B * D), pred(B * D), out(B * D);
        noise.fill_rows(std::span<double>(z), 0, D);
        const std::vector<ddpm::timestep_t> t0(B, s.timesteps()[first]);
        s.add_noise(x0, z, t0, x);
        for (std::size_t i = first; i < s.timesteps().size(); ++i) {
            const auto t = s.timesteps()[i];
            std::vector<double> eps(B * D);
            const std::vector<ddpm::timestep_t> ts(B, t);
            net(std::span<const double>(x), std::span<const ddpm::timestep_t>(ts), std::span<double>(eps));
            s.step(eps, t, x, std::vector<double>{}, prev, pred, B);
            x = prev;
        }
        CHECK(ddpm::img2img(s, strength, net, noise, x0, out, opt) == s.num_steps() - first);
        CHECK(max_abs_diff(out, x) <= 1e-12);
    }
    SECTION("Euler: x0 + sigma z, scale_model_input, step()") {
        ddpm::euler_scheduler<double> s(sched());
        s.set_timesteps(20);
        const std::size_t first = ddpm::img2img_first_step(s, strength);
        std::vector<double> z(B * D), x(B * D), in(B * D), prev(B * D), pred(B * D), out(B * D);
        noise.fill_rows(std::span<double>(z), 0, D);
        const double sigma = s.sigmas()[first];
        for (std::size_t k = 0; k < x.size(); ++k) x[k] = x0[k] + sigma * z[k];
        auto manual = s; // step() keeps a step index
        for (std::size_t i = first; i < s.num_steps(); ++i) {
            const double t = s.timesteps()[i];
            manual.scale_model_input(x, t, in);
            std::vector<double> eps(B * D);
            const std::vector<double> ts(B, t);
            net(std::span<const double>(in), std::span<const double>(ts), std::span<double>(eps));
            manual.step(eps, t, x, prev, pred, B);
            x = prev;
        }
        CHECK(ddpm::img2img(s, strength, net, noise, x0, out, opt) == s.num_steps() - first);
        CHECK(max_abs_diff(out, x) <= 1e-12);
    }
    SECTION("DPM-Solver++ 2M: alpha x0 + sigma z at sigmas[t_start], then step() (history starts empty)") {
        ddpm::dpm_solver_multistep_scheduler<double> s(sched());
        s.set_timesteps(20);
        const std::size_t first = ddpm::img2img_first_step(s, strength);
        std::vector<double> z(B * D), x(B * D), prev(B * D), out(B * D);
        noise.fill_rows(std::span<double>(z), 0, D);
        const auto ab = ddpm::sigmas::to_alpha_sigma<double>(s.sigmas()[first]);
        for (std::size_t k = 0; k < x.size(); ++k) x[k] = ab.alpha * x0[k] + ab.sigma * z[k];
        auto manual = s;
        for (std::size_t i = first; i < s.num_steps(); ++i) {
            const auto t = s.timesteps()[i];
            std::vector<double> eps(B * D);
            const std::vector<ddpm::timestep_t> ts(B, t);
            net(std::span<const double>(x), std::span<const ddpm::timestep_t>(ts), std::span<double>(eps));
            manual.step(eps, t, x, std::vector<double>{}, prev, B);
            x = prev;
        }
        CHECK(ddpm::img2img(s, strength, net, noise, x0, out, opt) == s.num_steps() - first);
        CHECK(max_abs_diff(out, x) <= 1e-12);
    }
}

TEST_CASE("img2img runs with every scheduler; a small strength stays near the image", "[pipelines][img2img]") {
    const auto x0 = image();
    const ddpm::counter_noise noise(5, D);
    const ddpm::sampler_options opt{.batch = B};
    auto check = [&](auto s) {
        s.set_timesteps(20);
        std::vector<double> near(B * D), far(B * D);
        ddpm::img2img(s, 0.1, toy_net{}, noise, x0, near, opt);
        ddpm::img2img(s, 1.0, toy_net{}, noise, x0, far, opt);
        for (const double v : near) REQUIRE(std::isfinite(v));
        CHECK(max_abs_diff(near, x0) < max_abs_diff(far, x0));
    };
    check(ddpm::ddpm_scheduler<double>(sched()));
    check(ddpm::ddim_scheduler<double>(sched()));
    check(ddpm::euler_scheduler<double>(sched()));
    check(ddpm::euler_ancestral_scheduler<double>(sched()));
    check(ddpm::heun_scheduler<double>(sched()));
    check(ddpm::dpm_solver_multistep_scheduler<double>(sched()));
    check(ddpm::unipc_scheduler<double>(sched()));
}

TEST_CASE("inpaint keeps the known region and generates the rest", "[pipelines][inpaint]") {
    const auto known = image();
    const ddpm::counter_noise noise(3, D);
    const ddpm::sampler_options opt{.batch = B};
    std::vector<double> mask(B * D, 0.0);
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t k = 0; k < D / 2; ++k) mask[b * D + k] = 1.0; // first half known
    auto check = [&](auto s) {
        s.set_timesteps(10);
        std::vector<double> out(B * D), free(B * D), none(B * D);
        ddpm::inpaint(s, toy_net{}, noise, known, mask, out, opt);
        // known region: exactly the known values after the last replacement
        for (std::size_t i = 0; i < out.size(); ++i)
            if (mask[i] == 1.0) CHECK(out[i] == Approx(known[i]).margin(1e-12));
        // mask 0 everywhere: the hook changes nothing, the plain run
        ddpm::inpaint(s, toy_net{}, noise, known, std::vector<double>(B * D, 0.0), none, opt);
        ddpm::sample_with_hook(s, toy_net{}, noise, free, opt, [](auto&&...) {});
        CHECK(max_abs_diff(none, free) == 0.0);
    };
    check(ddpm::ddpm_scheduler<double>(sched()));
    check(ddpm::ddim_scheduler<double>(sched()));
    check(ddpm::euler_scheduler<double>(sched()));
    check(ddpm::heun_scheduler<double>(sched()));
    check(ddpm::dpm_solver_multistep_scheduler<double>(sched()));
    check(ddpm::unipc_scheduler<double>(sched()));
}

TEST_CASE("sample_with_hook: the hook may change the state and stop the run", "[pipelines][hook]") {
    ddpm::ddim_scheduler<double> s(sched());
    s.set_timesteps(10);
    const ddpm::counter_noise noise(9, D);
    const ddpm::sampler_options opt{.batch = B};
    std::vector<double> zeroed(B * D, 1.0);
    std::size_t calls = 0;
    // zeroing the state after every step: the run ends at 0 (DDIM maps 0 to 0
    // only if the network's output is 0 there: toy(0) = 0)
    ddpm::sample_with_hook(s, toy_net{}, noise, zeroed, opt, [&](std::size_t, auto, std::span<double> x, auto) {
        std::fill(x.begin(), x.end(), 0.0);
        ++calls;
    });
    CHECK(calls == 10);
    CHECK(std::all_of(zeroed.begin(), zeroed.end(), [](double v) { return v == 0.0; }));
    std::vector<double> out(B * D);
    const auto n = ddpm::sample_with_hook(s, toy_net{}, noise, out, opt,
                                          [](std::size_t p, auto, std::span<double>, auto) { return p < 2; });
    CHECK(n == 3);
}

TEST_CASE("pipelines: bad input throws and leaves out untouched", "[pipelines][errors]") {
    ddpm::euler_scheduler<double> s(sched());
    s.set_timesteps(10);
    const ddpm::counter_noise noise(1, D);
    const ddpm::sampler_options opt{.batch = B};
    std::vector<double> out(B * D, 7.0);
    const auto untouched = [&] { return std::all_of(out.begin(), out.end(), [](double v) { return v == 7.0; }); };
    CHECK_THROWS_AS(ddpm::img2img(s, 0.5, toy_net{}, noise, std::vector<double>(B * D - 1), out, opt),
                    ddpm::invalid_argument);
    CHECK(untouched());
    CHECK_THROWS_AS(ddpm::img2img(s, 0.0, toy_net{}, noise, image(), out, opt), ddpm::invalid_argument);
    CHECK(untouched());
    std::vector<double> mask(B * D, 0.5);
    mask[3] = 1.5;
    CHECK_THROWS_WITH(ddpm::inpaint(s, toy_net{}, noise, image(), mask, out, opt), Catch::Contains("mask[3]"));
    CHECK(untouched());
    // a network that throws mid-run: out untouched
    int calls = 0;
    auto bad_net = [&](std::span<const double> x, std::span<const double> t, std::span<double> o) {
        if (++calls == 3) throw std::runtime_error("net failed");
        toy_net{}(x, t, o);
    };
    CHECK_THROWS_AS(ddpm::img2img(s, 0.9, bad_net, noise, image(), out, opt), std::runtime_error);
    CHECK(untouched());
}
