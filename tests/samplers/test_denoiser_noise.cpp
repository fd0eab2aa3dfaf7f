// The denoiser concept and traits; the noise sources.
#include <catch2/catch.hpp>

#include <ddpm/denoiser.hpp>
#include <ddpm/samplers/noise.hpp>

#include <cmath>
#include <random>
#include <span>
#include <vector>

namespace {

struct eps_net {
    void operator()(std::span<const float>, std::span<const ddpm::timestep_t>, std::span<float>) const {}
};
struct v_net {
    static constexpr ddpm::prediction_type prediction = ddpm::prediction_type::v_prediction;
    static constexpr ddpm::variance_type variance = ddpm::variance_type::learned_range;
    void operator()(std::span<const double>, std::span<const ddpm::timestep_t>, std::span<double>) {}
};
struct returns_status {
    int operator()(std::span<const double>, std::span<const ddpm::timestep_t>, std::span<double>) { return 0; }
};
struct generic_net {
    template <class T>
    void operator()(std::span<const T>, std::span<const ddpm::timestep_t>, std::span<T>) {}
};
struct wrong_order {
    void operator()(std::span<const ddpm::timestep_t>, std::span<const float>, std::span<float>) {}
};

struct counting_noise {
    int calls = 0;
    template <class T>
    void fill(std::span<T> out, std::uint64_t step) {
        ++calls;
        for (auto& v : out) v = static_cast<T>(step);
    }
};

} // namespace

void ddpm_test_plain_fn(std::span<const float>, std::span<const ddpm::timestep_t>, std::span<float>);

// The concept, at compile time.
static_assert(ddpm::denoiser<eps_net, float>);
static_assert(!ddpm::denoiser<eps_net, double>);
static_assert(ddpm::denoiser<v_net, double>);
static_assert(ddpm::denoiser<returns_status, double>); // the return value is ignored
static_assert(ddpm::denoiser<generic_net, float> && ddpm::denoiser<generic_net, double>);
static_assert(ddpm::denoiser<decltype(&ddpm_test_plain_fn), float>);
static_assert(!ddpm::denoiser<wrong_order, float>);
static_assert(!ddpm::denoiser<int, float>);
static_assert(!ddpm::denoiser<eps_net, int>); // T must be floating point
static_assert(ddpm::is_denoiser_v<eps_net, float> && !ddpm::is_denoiser_v<int, float>);

// Traits: defaults, and what a type declares.
static_assert(ddpm::denoiser_traits<eps_net>::prediction == ddpm::prediction_type::epsilon);
static_assert(ddpm::denoiser_traits<eps_net>::variance == ddpm::variance_type::fixed_small);
static_assert(ddpm::denoiser_traits<eps_net>::output_channels == 1);
static_assert(ddpm::denoiser_traits<v_net>::prediction == ddpm::prediction_type::v_prediction);
static_assert(ddpm::denoiser_traits<v_net>::output_channels == 2);

static_assert(ddpm::noise_source<ddpm::urbg_normal_noise<std::mt19937>, float>);
static_assert(ddpm::noise_source<ddpm::buffer_noise<double>, double>);
static_assert(!ddpm::noise_source<ddpm::buffer_noise<double>, float>);
static_assert(ddpm::noise_source<ddpm::zero_noise, float>);
static_assert(ddpm::noise_source<counting_noise, double>);
static_assert(!ddpm::noise_source<int, double>);

TEST_CASE("denoiser_options reads the traits", "[samplers][denoiser]") {
    CHECK(ddpm::denoiser_options<v_net>().variance == ddpm::variance_type::learned_range);
    CHECK(ddpm::denoiser_options<v_net>().prediction == ddpm::prediction_type::v_prediction);
    CHECK(ddpm::denoiser_options<eps_net>().prediction == ddpm::prediction_type::epsilon);
    CHECK(ddpm::denoiser_options<eps_net>().clip.kind == ddpm::clip_options::mode::none);
}

TEMPLATE_TEST_CASE("urbg_normal_noise: deterministic standard normals from any URBG", "[samplers][noise]", std::mt19937,
                   std::mt19937_64, std::minstd_rand) {
    TestType g1(42), g2(42);
    ddpm::urbg_normal_noise<TestType> a(g1), b(g2);
    std::vector<double> x(100001), y(100001);
    a.fill(std::span<double>(x), 0);
    b.fill(std::span<double>(y), 7); // the step is ignored by a stream generator
    CHECK(x == y);
    const double n = static_cast<double>(x.size());
    double m = 0, m2 = 0, m4 = 0;
    for (const auto v : x) {
        REQUIRE(std::isfinite(v));
        m += v;
        m2 += v * v;
        m4 += v * v * v * v;
    }
    m /= n;
    m2 /= n;
    m4 /= n;
    // within 5 standard errors of N(0, 1): mean 1/√n, variance √(2/n), 4th moment √(96/n)
    CHECK(std::abs(m) < 5.0 / std::sqrt(n));
    CHECK(std::abs(m2 - 1.0) < 5.0 * std::sqrt(2.0 / n));
    CHECK(std::abs(m4 - 3.0) < 5.0 * std::sqrt(96.0 / n));
    // float gets the same draws, rounded
    TestType g3(42);
    ddpm::urbg_normal_noise<TestType> c(g3);
    std::vector<float> f(11);
    c.fill(std::span<float>(f), 0);
    for (std::size_t i = 0; i < f.size(); ++i) CHECK(f[i] == static_cast<float>(x[i]));
}

TEST_CASE("urbg_normal_noise: known first values for mt19937_64(1)", "[samplers][noise]") {
    // Pins the Box–Muller stream so that a change of the transform is noticed.
    std::mt19937_64 g(1);
    ddpm::urbg_normal_noise noise(g);
    std::vector<double> v(4);
    noise.fill(std::span<double>(v), 0);
    std::mt19937_64 h(1);
    const std::uint64_t a = h(), b = h();
    const double u1 = static_cast<double>((a >> 11) + 1) / 9007199254740992.0;
    const double u2 = static_cast<double>(b >> 11) / 9007199254740992.0;
    CHECK(v[0] == std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.141592653589793 * u2));
    CHECK(v[1] == std::sqrt(-2.0 * std::log(u1)) * std::sin(2.0 * 3.141592653589793 * u2));
}

TEST_CASE("buffer_noise replays slots and refuses to run past the buffer", "[samplers][noise]") {
    const std::vector<float> buf{0, 1, 2, 3, 4, 5};
    ddpm::buffer_noise<float> noise(buf);
    std::vector<float> out(2);
    noise.fill(std::span<float>(out), 2);
    CHECK(out == std::vector<float>{4, 5});
    noise.fill(std::span<float>(out), 0);
    CHECK(out == std::vector<float>{0, 1});
    CHECK_THROWS_AS(noise.fill(std::span<float>(out), 3), ddpm::invalid_argument);
    CHECK_THROWS_WITH(noise.fill(std::span<float>(out), 3), Catch::Contains("step"));
}
