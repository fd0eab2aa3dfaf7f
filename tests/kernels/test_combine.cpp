// The solvers' fused kernels (kernels/combine.hpp) against plain scalar loops
// written here: combine, sigma_step and convert_output, on both backends, any
// thread count, with counter and buffer noise.
#include <catch2/catch.hpp>

#include <ddpm/kernels/combine.hpp>

#include <cmath>
#include <random>
#include <vector>

using namespace ddpm;
using kernels::backend;

namespace {

template <class T>
std::vector<T> normals(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> d(0.0, 1.0);
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(d(g));
    return v;
}

// Relative to the magnitude: the SIMD body and the reference may differ by a
// fused multiply-add when the compiler contracts (-march=native builds).
template <class T>
bool close(const std::vector<T>& a, const std::vector<T>& b) {
    const double tol = std::is_same_v<T, float> ? 4e-6 : 1e-14;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (!(std::abs(double(a[i]) - double(b[i])) <= tol * (1.0 + std::abs(double(b[i]))))) return false;
    return true;
}

/// The noise a counter stream (stream v2, the default) gives element i of row r.
template <class T>
std::vector<T> stream_noise(const kernels::noise_stream& ns, std::size_t B, std::size_t D) {
    std::vector<T> z(B * D);
    for (std::size_t r = 0; r < B; ++r)
        for (std::size_t i = 0; i < D; ++i)
            z[r * D + i] = static_cast<T>(random::normal_at_v2(ns.seed, ns.first_sample + std::uint32_t(r), ns.step, i, D));
    return z;
}

} // namespace

TEMPLATE_TEST_CASE("combine: sum of K scaled inputs plus sigma z, left to right", "[kernels][combine]", float, double) {
    using T = TestType;
    const std::size_t B = GENERATE(1, 3);
    const std::size_t D = GENERATE(1, 7, 16, 17, 65, 1000, 20000);
    INFO("B=" << B << " D=" << D);
    const auto a = normals<T>(B * D, 1), b = normals<T>(B * D, 2), c = normals<T>(B * D, 3);
    std::vector<kernels::combine_coefficients<T, 3>> coef(B);
    for (std::size_t r = 0; r < B; ++r) coef[r] = {{T(0.9) + T(r), -T(0.3) * T(r + 1), T(0.125)}, r == 1 ? T(0) : T(0.5)};
    const kernels::noise_stream ns{77, 4, 2};
    const auto z = stream_noise<T>(ns, B, D);
    std::vector<T> ref(B * D);
    for (std::size_t r = 0; r < B; ++r)
        for (std::size_t i = 0; i < D; ++i) {
            const std::size_t k = r * D + i;
            T acc = coef[r].c[0] * a[k];
            acc = acc + coef[r].c[1] * b[k];
            acc = acc + coef[r].c[2] * c[k];
            ref[k] = coef[r].sigma != T(0) ? acc + coef[r].sigma * z[k] : acc;
        }
    const std::array<std::span<const T>, 3> in{a, b, c};
    for (const auto bk : {backend::scalar, kernels::best_backend})
        for (const unsigned threads : {1u, 2u, 3u}) {
            INFO("threads " << threads << " simd " << (bk == backend::simd));
            std::vector<T> got(B * D), from_buffer(B * D);
            kernels::combine<T, 3>(coef, in, kernels::step_noise<T>::from(ns), got, {threads}, bk);
            kernels::combine<T, 3>(coef, in, kernels::step_noise<T>::from(std::span<const T>(z)), from_buffer,
                                   {threads}, bk);
            REQUIRE(close(got, ref));
            REQUIRE(got == from_buffer); // the stream and its values in a buffer give the same bits
            if (bk == backend::scalar) REQUIRE(got == ref); // the reference is the written order exactly
        }
    // Without noise; the output may alias an input.
    std::vector<T> alias = a;
    const std::array<std::span<const T>, 3> in2{std::span<const T>(alias), b, c};
    kernels::combine<T, 3>(coef, in2, kernels::step_noise<T>::none(), alias, {2}, backend::scalar);
    for (std::size_t r = 0; r < B; ++r)
        for (std::size_t i = 0; i < D; i += 13) {
            const std::size_t k = r * D + i;
            REQUIRE(alias[k] == (coef[r].c[0] * a[k] + coef[r].c[1] * b[k]) + coef[r].c[2] * c[k]);
        }
}

TEMPLATE_TEST_CASE("sigma_step: the Euler-family update in diffusers' order", "[kernels][combine]", float, double) {
    using T = TestType;
    const std::size_t B = 3;
    const std::size_t D = GENERATE(1, 15, 64, 257, 17000);
    const auto form = GENERATE(kernels::sigma_x0_form::epsilon, kernels::sigma_x0_form::v, kernels::sigma_x0_form::sample);
    const bool average = GENERATE(false, true);
    const bool clip = GENERATE(false, true);
    INFO("D=" << D << " form " << int(form) << " average " << average << " clip " << clip);
    const auto o = normals<T>(2 * B * D, 4); // two channels: the second is ignored
    const auto x = normals<T>(B * D, 5), base = normals<T>(B * D, 6), dprev = normals<T>(B * D, 7);
    std::vector<kernels::sigma_step_coefficients<T>> coef(B);
    for (std::size_t r = 0; r < B; ++r) {
        auto& c = coef[r];
        c.form = form;
        const T sigma = T(3) / T(r + 1);
        c.a = form == kernels::sigma_x0_form::v ? -sigma / std::sqrt(sigma * sigma + T(1)) : sigma;
        c.b = sigma * sigma + T(1);
        c.s = sigma;
        c.dt = T(0.5) - sigma;
        c.average = average;
        c.sigma_up = r == 0 ? T(0) : T(0.25);
        c.clip = clip;
        c.clip_range = T(1.5);
    }
    const kernels::noise_stream ns{5, 9, 0};
    const auto z = stream_noise<T>(ns, B, D);
    std::vector<T> ref(B * D), ref_x0(B * D), ref_d(B * D);
    for (std::size_t r = 0; r < B; ++r)
        for (std::size_t i = 0; i < D; ++i) {
            const auto& c = coef[r];
            const std::size_t k = r * D + i;
            const T ov = o[r * 2 * D + i];
            T x0 = form == kernels::sigma_x0_form::epsilon ? x[k] - c.a * ov
                   : form == kernels::sigma_x0_form::v     ? ov * c.a + x[k] / c.b
                                                           : ov;
            if (clip) x0 = std::min(std::max(x0, -c.clip_range), c.clip_range);
            T d = (x[k] - x0) / c.s;
            if (average) d = (dprev[k] + d) / T(2);
            T next = base[k] + d * c.dt;
            if (c.sigma_up != T(0)) next = next + z[k] * c.sigma_up;
            ref[k] = next;
            ref_x0[k] = x0;
            ref_d[k] = d;
        }
    for (const auto bk : {backend::scalar, kernels::best_backend})
        for (const unsigned threads : {1u, 3u}) {
            INFO("threads " << threads << " simd " << (bk == backend::simd));
            std::vector<T> next(B * D), x0(B * D), d(B * D);
            kernels::sigma_step<T>(coef, {o, x, base, dprev, next, x0, d}, kernels::step_noise<T>::from(ns), {threads},
                                   bk, 2);
            REQUIRE(close(next, ref));
            REQUIRE(close(x0, ref_x0));
            REQUIRE(close(d, ref_d));
            if (bk == backend::scalar) {
                REQUIRE(next == ref);
                REQUIRE(x0 == ref_x0);
            }
        }
}

TEMPLATE_TEST_CASE("convert_output: x0 or eps from the network output", "[kernels][combine]", float, double) {
    using T = TestType;
    const std::size_t B = 2;
    const std::size_t D = GENERATE(3, 16, 1031);
    const auto form = GENERATE(kernels::output_form::identity, kernels::output_form::x_minus_bo_c,
                               kernels::output_form::ax_minus_bo, kernels::output_form::ao_plus_bx);
    const auto o = normals<T>(B * D, 8), x = normals<T>(B * D, 9);
    const std::vector<kernels::output_coefficients<T>> coef{{form, T(0.8), T(0.6), T(0.7)},
                                                            {form, T(0.1), T(0.99), T(0.05)}};
    std::vector<T> ref(B * D);
    for (std::size_t r = 0; r < B; ++r)
        for (std::size_t i = 0; i < D; ++i) {
            const auto& c = coef[r];
            const std::size_t k = r * D + i;
            switch (form) {
            case kernels::output_form::identity: ref[k] = o[k]; break;
            case kernels::output_form::x_minus_bo_c: ref[k] = (x[k] - c.b * o[k]) / c.c; break;
            case kernels::output_form::ax_minus_bo: ref[k] = c.a * x[k] - c.b * o[k]; break;
            case kernels::output_form::ao_plus_bx: ref[k] = c.a * o[k] + c.b * x[k]; break;
            }
        }
    for (const auto bk : {backend::scalar, kernels::best_backend}) {
        std::vector<T> y(B * D);
        kernels::convert_output<T>(coef, o, x, y, {2}, bk);
        REQUIRE(close(y, ref));
    }
}

TEST_CASE("solver kernels check their sizes before writing", "[kernels][combine][errors]") {
    using C2 = kernels::combine_coefficients<float, 2>;
    using In2 = std::array<std::span<const float>, 2>;
    std::vector<float> a(12, 1.f), out(12, 7.f), small(11, 0.f);
    const std::vector<C2> coef(3), none;
    const auto nz = kernels::step_noise<float>::none();
    const In2 bad{std::span<const float>(a), std::span<const float>(small)};
    const In2 good{std::span<const float>(a), std::span<const float>(a)};
    auto run = [&](const std::vector<C2>& c, const In2& in, const kernels::step_noise<float>& z) {
        kernels::combine<float, 2>(std::span<const C2>(c), in, z, std::span<float>(out));
    };
    REQUIRE_THROWS_AS(run(coef, bad, nz), ddpm::invalid_argument);
    REQUIRE_THROWS_AS(run(coef, good, kernels::step_noise<float>::from(std::span<const float>(small))),
                      ddpm::invalid_argument);
    REQUIRE_THROWS_AS(run(none, good, nz), ddpm::invalid_argument);
    std::vector<kernels::sigma_step_coefficients<float>> sc(3);
    sc[1].average = true; // needs d_prev
    const kernels::sigma_step_buffers<float> no_dprev{a, a, {}, {}, out, {}, {}};
    const kernels::sigma_step_buffers<float> short_out{small, a, {}, a, out, {}, {}};
    REQUIRE_THROWS_AS(kernels::sigma_step<float>(sc, no_dprev, nz), ddpm::invalid_argument);
    REQUIRE_THROWS_AS(kernels::sigma_step<float>(sc, short_out, nz), ddpm::invalid_argument);
    const std::vector<kernels::output_coefficients<float>> oc(3);
    REQUIRE_THROWS_AS(kernels::convert_output<float>(oc, a, a, small), ddpm::invalid_argument);
    for (const float v : out) REQUIRE(v == 7.f);
}
