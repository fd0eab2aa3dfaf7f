// The one loop's workspace (issue 12): x̂_0 is stored only when something
// reads it, yet a run with and without an observer gives the same bits for
// every scheduler; noise sources that only fill buffers are drawn in the same
// order as ever; the workspace is 64-byte aligned; and a workspace that
// cannot be allocated is a ddpm::allocation_error naming the buffer.
#include <catch2/catch.hpp>

#include <ddpm/pipelines.hpp>
#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>
#include <ddpm/samplers/dpm_solver.hpp>
#include <ddpm/samplers/euler.hpp>
#include <ddpm/samplers/heun.hpp>
#include <ddpm/samplers/unipc.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace {

constexpr std::size_t B = 3, D = 70; // D not a multiple of any SIMD width

/// out = tanh(0.7 x)·(0.5 + t/1000) + 0.05 x, for integer or real timesteps.
struct any_t_net {
    template <class T, class Tv>
    void operator()(std::span<const T> x, std::span<const Tv> t, std::span<T> out) const {
        const std::size_t dim = x.size() / t.size();
        for (std::size_t k = 0; k < x.size(); ++k) {
            const T scale = static_cast<T>(0.5 + static_cast<double>(t[k / dim]) / 1000.0);
            out[k] = std::tanh(T(0.7) * x[k]) * scale + T(0.05) * x[k];
        }
    }
};

/// A learned-range variance model: D predictions, then D values in [−1, 1].
struct learned_net {
    template <class T>
    void operator()(std::span<const T> x, std::span<const ddpm::timestep_t> t, std::span<T> out) const {
        const std::size_t dim = x.size() / t.size();
        for (std::size_t b = 0; b < t.size(); ++b)
            for (std::size_t i = 0; i < dim; ++i) {
                const T v = x[b * dim + i];
                out[b * 2 * dim + i] = T(0.3) * v;
                out[b * 2 * dim + dim + i] = std::tanh(v);
            }
    }
};

/// Records x and x̂_0 after every call, and the alignment of x.
template <class T>
struct recorder {
    std::vector<T> xs, x0s;
    bool aligned = true;
    template <class Tv>
    void operator()(std::size_t, Tv, std::span<const T> x, std::span<const T> x0) {
        xs.insert(xs.end(), x.begin(), x.end());
        x0s.insert(x0s.end(), x0.begin(), x0.end());
        aligned = aligned && reinterpret_cast<std::uintptr_t>(x.data()) % 64 == 0 &&
                  reinterpret_cast<std::uintptr_t>(x0.data()) % 64 == 0;
    }
};

/// counter_noise without stream(): the loop fills its buffer.
struct fill_only {
    ddpm::counter_noise inner;
    template <class T>
    void fill(std::span<T> out, std::uint64_t step) const {
        inner.fill_rows(out, step, D);
    }
};

/// Runs `s` with no observer and with a recording one (counter noise, and a
/// fill-only source): the samples must be identical, the observer must have
/// seen x̂_0 on an aligned buffer, and its last x must be the result.
template <class T, class S, class Net = any_t_net>
void check_observer_free(const S& s, unsigned threads = 1, Net net = {}) {
    ddpm::sampler_options o;
    o.batch = B;
    o.exec.threads = threads;
    const auto run = [&](const auto& noise) {
        std::vector<T> plain(B * D), seen(B * D);
        ddpm::sample(s, net, noise, plain, o);
        recorder<T> rec;
        const std::size_t calls = ddpm::sample(s, net, noise, seen, o, rec);
        CHECK(plain == seen);
        CHECK(rec.aligned);
        REQUIRE(rec.x0s.size() == calls * B * D);
        CHECK(std::equal(seen.begin(), seen.end(), rec.xs.end() - static_cast<std::ptrdiff_t>(B * D)));
        for (const T v : rec.x0s) REQUIRE(std::isfinite(v));
    };
    SECTION("counter noise") { run(ddpm::counter_noise(5, D)); }
    SECTION("a fill-only source") { run(fill_only{ddpm::counter_noise(5, D)}); }
}

const ddpm::noise_schedule& schedule() {
    static const ddpm::noise_schedule s{ddpm::schedule_config{}, ddpm::profile::diffusers};
    return s;
}

} // namespace

TEST_CASE("DDPM and DDIM: the same samples with and without an observer", "[samplers][loop][x0]") {
    using clip = ddpm::clip_options;
    const auto c = GENERATE(clip::none(), clip::clip(1.0), clip::dynamic(0.9, 3.0));
    INFO("clip mode " << static_cast<int>(c.kind));
    ddpm::model_options mo;
    mo.clip = c;
    SECTION("DDPM, 60 steps, 2 threads") {
        ddpm::ddpm_scheduler<float> s(schedule(), mo);
        s.set_timesteps(60);
        check_observer_free<float>(s, 2);
    }
    SECTION("DDPM, learned range") {
        mo.variance = ddpm::variance_type::learned_range;
        ddpm::ddpm_scheduler<double> s(schedule(), mo);
        s.set_timesteps(20);
        check_observer_free<double>(s, 1, learned_net{});
    }
    SECTION("DDIM, eta 0.5") {
        ddpm::ddim_options o;
        o.eta = 0.5;
        ddpm::ddim_scheduler<double> s(schedule(), mo, o);
        s.set_timesteps(25);
        check_observer_free<double>(s);
    }
}

TEST_CASE("the sigma and multistep solvers: the same samples with and without an observer", "[samplers][loop][x0]") {
    SECTION("Euler ancestral") {
        ddpm::euler_ancestral_scheduler<float> s(schedule());
        s.set_timesteps(15);
        check_observer_free<float>(s);
    }
    SECTION("Heun") {
        ddpm::heun_scheduler<double> s(schedule());
        s.set_timesteps(8);
        check_observer_free<double>(s);
    }
    SECTION("SDE-DPM-Solver++ 2M") {
        ddpm::dpm_solver_options o;
        o.algorithm = ddpm::dpm_algorithm::sde_dpmsolver_pp;
        ddpm::dpm_solver_multistep_scheduler<float> s(schedule(), {}, o);
        s.set_timesteps(12);
        check_observer_free<float>(s);
    }
    SECTION("UniPC bh2") {
        ddpm::unipc_scheduler<double> s(schedule(), {}, {});
        s.set_timesteps(12);
        check_observer_free<double>(s);
    }
}

TEST_CASE("DDIM inversion: the same x_T with and without an observer", "[samplers][loop][x0]") {
    ddpm::ddim_scheduler<double> s(schedule());
    s.set_timesteps(20);
    std::vector<double> x0(B * D);
    for (std::size_t k = 0; k < x0.size(); ++k) x0[k] = 0.02 * static_cast<double>(k % 50) - 0.5;
    ddpm::inversion_options o;
    o.batch = B;
    o.fixed_point_iterations = 1;
    std::vector<double> plain = x0, seen = x0;
    ddpm::ddim_invert(s, any_t_net{}, plain, o);
    recorder<double> rec;
    ddpm::ddim_invert(s, any_t_net{}, seen, o, rec);
    CHECK(plain == seen);
    CHECK(plain != x0);
    CHECK(rec.x0s.size() == 20 * B * D);
}

TEST_CASE("a URBG source: drawn into the loop's buffer in call order, as before", "[samplers][loop][noise]") {
    // urbg_normal_noise ignores `step` and draws in call order; the loop asks
    // for x_T (step 0) and then each step's noise. Replaying the same draws,
    // one slot per step, through buffer_noise must give the same samples.
    ddpm::ddpm_scheduler<float> ddpm_s(schedule());
    ddpm_s.set_timesteps(30);
    ddpm::euler_ancestral_scheduler<float> ea(schedule());
    ea.set_timesteps(10);
    ddpm::dpm_solver_options so;
    so.algorithm = ddpm::dpm_algorithm::sde_dpmsolver_pp;
    ddpm::dpm_solver_multistep_scheduler<float> sde(schedule(), {}, so);
    sde.set_timesteps(10);
    ddpm::sampler_options o;
    o.batch = B;
    const auto check = [&](const auto& s, std::size_t noisy_steps) {
        std::mt19937_64 g(42);
        ddpm::urbg_normal_noise src(g);
        std::vector<float> a(B * D);
        ddpm::sample(s, any_t_net{}, src, a, o);

        std::mt19937_64 g2(42);
        ddpm::urbg_normal_noise replay(g2);
        std::vector<float> slots((noisy_steps + 1) * B * D);
        for (std::size_t k = 0; k <= noisy_steps; ++k)
            replay.fill(std::span<float>(slots).subspan(k * B * D, B * D), k);
        std::vector<float> b(B * D);
        ddpm::sample(s, any_t_net{}, ddpm::buffer_noise<float>(slots), b, o);
        CHECK(a == b);
        CHECK(g() == g2()); // the source drew exactly noisy_steps + 1 slots
    };
    SECTION("DDPM (the last step adds no noise)") { check(ddpm_s, 29); }
    SECTION("Euler ancestral") {
        std::size_t noisy = 0;
        for (std::size_t i = 0; i < ea.num_steps(); ++i) noisy += ea.adds_noise(i) ? 1 : 0;
        check(ea, noisy);
    }
    SECTION("SDE-DPM-Solver++") {
        std::size_t noisy = 0;
        for (std::size_t i = 0; i < sde.num_steps(); ++i) noisy += sde.adds_noise(i) ? 1 : 0;
        check(sde, noisy);
    }
}

TEST_CASE("a workspace too large to allocate is a ddpm::allocation_error", "[samplers][loop][errors]") {
    // B·D = 2^61 floats (2^63 bytes): the aligned allocator refuses before
    // asking the system. The span's storage is never touched: the workspace is
    // allocated before anything reads `out`.
    std::vector<float> small(64, 1.0f);
    const std::size_t huge = std::numeric_limits<std::size_t>::max() / 8 + 1;
    std::span<float> out(small.data(), huge);
    ddpm::ddpm_scheduler<float> s(schedule());
    s.set_timesteps(10);
    ddpm::sampler_options o;
    o.batch = 1;
    try {
        ddpm::sample(s, any_t_net{}, ddpm::counter_noise(1), out, o);
        FAIL("no exception");
    } catch (const ddpm::allocation_error& e) {
        const std::string m = e.what();
        INFO(m);
        CHECK(m.find("ddpm::sample") != std::string::npos);
        CHECK(m.find("sampler workspace") != std::string::npos);
        CHECK(m.find(std::to_string(huge)) != std::string::npos);
    }
    CHECK(small == std::vector<float>(64, 1.0f));
    // Also catchable as std::bad_alloc.
    CHECK_THROWS_AS(ddpm::sample(s, any_t_net{}, ddpm::counter_noise(1), out, o), std::bad_alloc);
}
