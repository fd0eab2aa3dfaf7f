// The fused kernels draw the noise stream their noise_stream names: stream v2
// (the default) gives element i of row b random::normal_at_v2(seed,
// first_sample + b, step, i, D), stream v1 random::normal_at(seed,
// first_sample + b, step, i), bit for bit, on every backend (the scalar
// reference, and the compile-time or dispatched SIMD code of the binary this
// file is built into), at every thread count, for short rows (tiles drawn
// across samples), rows of one partial group, and long rows with a partial
// last group (D = 784 = 12·64 + 16: the one-pass forward kernel's whole groups
// in registers, its tail in the v2 layout).
#include <catch2/catch.hpp>

#include <ddpm/core/coefficients.hpp>
#include <ddpm/kernels/combine.hpp>
#include <ddpm/kernels/fused.hpp>

#include <support/gaussian.hpp>

#include <cstring>
#include <vector>

using namespace ddpm;
using kernels::backend;
using random::noise_version;

namespace {

constexpr std::size_t v2_dims[] = {1, 2, 3, 17, 63, 64, 65, 130, 784};

using ddpm_test::gaussian;

/// The noise stream `ns` names for a B × D batch, element by element.
template <class T>
std::vector<T> expected_noise(const kernels::noise_stream& ns, std::size_t B, std::size_t D) {
    std::vector<T> z(B * D);
    for (std::size_t r = 0; r < B; ++r)
        for (std::size_t i = 0; i < D; ++i) {
            const auto sample = ns.first_sample + static_cast<std::uint32_t>(r);
            z[r * D + i] = static_cast<T>(ns.version == noise_version::v1
                                              ? random::normal_at(ns.seed, sample, ns.step, i)
                                              : random::normal_at_v2(ns.seed, sample, ns.step, i, D));
        }
    return z;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

/// Calls f(B, D, ns, bk, exec) for every case: both versions, the dims above,
/// B = 1, 3, 40, both backends, 1 and 2 threads.
template <class F>
void for_each_case(F&& f) {
    for (const noise_version v : {noise_version::v1, noise_version::v2})
        for (const std::size_t D : v2_dims)
            for (const std::size_t B : {std::size_t{1}, std::size_t{3}, std::size_t{40}})
                for (const backend bk : {backend::scalar, kernels::best_backend})
                    for (const unsigned threads : {1u, 2u}) {
                        const kernels::noise_stream ns{0x5eed0000cafeULL + D, 13, 7, v};
                        INFO("version " << unsigned(v) << " D " << D << " B " << B << " backend "
                                        << (bk == backend::scalar ? "scalar" : "simd") << " threads " << threads);
                        f(B, D, ns, bk, execution{threads});
                    }
}

} // namespace

TEST_CASE("noise_stream defaults to stream v2", "[kernels][noise][v2]") {
    const kernels::noise_stream ns{1, 2, 3};
    CHECK(ns.version == noise_version::v2);
}

TEMPLATE_TEST_CASE("forward_noise draws stream v2 (default) or v1 bit for bit", "[kernels][forward][v2]", float,
                   double) {
    using T = TestType;
    for_each_case([](std::size_t B, std::size_t D, const kernels::noise_stream& ns, backend bk, const execution& ex) {
        const auto x0 = gaussian<T>(B * D, D);
        std::vector<T> a(B), b(B);
        for (std::size_t r = 0; r < B; ++r) {
            a[r] = r % 4 == 1 ? T(0.3) : T(0.8);
            b[r] = r % 4 == 1 ? T(0.95) : T(0.6);
        }
        std::vector<T> xt(B * D), eps(B * D), xt2(B * D);
        kernels::forward_noise<T>(x0, a, b, ns, xt, eps, ex, bk);
        const auto z = expected_noise<T>(ns, B, D);
        REQUIRE(same_bits(eps, z));
        // x_t is that of the same noise from a buffer.
        kernels::forward_noise<T>(x0, a, b, std::span<const T>(z), xt2, ex, bk);
        REQUIRE(same_bits(xt, xt2));
    });
}

TEMPLATE_TEST_CASE("ddpm_step and ddim_step draw stream v2 (default) or v1 bit for bit", "[kernels][steps][v2]", float,
                   double) {
    using T = TestType;
    const noise_schedule s(schedule_config{});
    const auto rc = reverse_step_coefficients<T>(s, 400, 399, prediction_type::epsilon, variance_type::fixed_small);
    const kernels::ddim_coefficients<T> dc{kernels::x0_form::multiply, T(1.4), T(0.9), kernels::eps_form::model_output,
                                           0, 1, 0, T(0.8), T(0.5), T(0.2)};
    for_each_case([&](std::size_t B, std::size_t D, const kernels::noise_stream& ns, backend bk, const execution& ex) {
        const auto out = gaussian<T>(B * D, 2 * D), xt = gaussian<T>(B * D, 3 * D);
        const auto z = expected_noise<T>(ns, B, D);
        const auto stream = kernels::step_noise<T>::from(ns);
        const auto buffer = kernels::step_noise<T>::from(std::span<const T>(z));
        const std::vector<reverse_coefficients<T>> rcs(B, rc);
        const std::vector<kernels::ddim_coefficients<T>> dcs(B, dc);
        std::vector<T> got(B * D), want(B * D), x0(B * D);
        kernels::ddpm_step<T>(rcs, {}, kernels::step_variance::fixed, out, xt, stream, got, x0, ex, bk);
        kernels::ddpm_step<T>(rcs, {}, kernels::step_variance::fixed, out, xt, buffer, want, x0, ex, bk);
        REQUIRE(same_bits(got, want));
        kernels::ddim_step<T>(dcs, {}, out, xt, stream, got, x0, ex, bk);
        kernels::ddim_step<T>(dcs, {}, out, xt, buffer, want, x0, ex, bk);
        REQUIRE(same_bits(got, want));
        // The combine kernel of the solvers.
        const std::vector<kernels::combine_coefficients<T, 2>> cc(B, {{T(0.9), T(0.25)}, T(0.5)});
        const auto in0 = gaussian<T>(B * D, 4 * D), in1 = gaussian<T>(B * D, 5 * D);
        const std::array<std::span<const T>, 2> ins{std::span<const T>(in0), std::span<const T>(in1)};
        kernels::combine<T, 2>(cc, ins, stream, got, ex, bk);
        kernels::combine<T, 2>(cc, ins, buffer, want, ex, bk);
        REQUIRE(same_bits(got, want));
    });
}

TEMPLATE_TEST_CASE("stream v1 and v2 agree exactly when D mod 64 is 0 or 1", "[kernels][forward][v2]", float, double) {
    using T = TestType;
    for (const std::size_t D : {1u, 64u, 65u, 128u, 129u, 3072u}) {
        INFO("D " << D);
        const std::size_t B = 3;
        const auto x0 = gaussian<T>(B * D, 1);
        const std::vector<T> a(B, T(0.7)), b(B, T(0.7));
        std::vector<T> xt1(B * D), e1(B * D), xt2(B * D), e2(B * D);
        kernels::forward_noise<T>(x0, a, b, kernels::noise_stream{9, 1, 0, noise_version::v1}, xt1, e1);
        kernels::forward_noise<T>(x0, a, b, kernels::noise_stream{9, 1, 0, noise_version::v2}, xt2, e2);
        CHECK(same_bits(e1, e2));
    }
    // ... and differ elsewhere (the compact last group).
    const std::size_t D = 2;
    const std::vector<T> x0(D, T(0)), a(1, T(1)), b(1, T(1));
    std::vector<T> xt(D), e1(D), e2(D);
    kernels::forward_noise<T>(x0, a, b, kernels::noise_stream{9, 1, 0, noise_version::v1}, xt, e1);
    kernels::forward_noise<T>(x0, a, b, kernels::noise_stream{9, 1, 0, noise_version::v2}, xt, e2);
    CHECK(e1[0] == e2[0]); // element 0 is word 0 of block 0 in both
    CHECK(e1[1] != e2[1]); // v1: word 0 of block 1; v2: word 1 of block 0
}

TEST_CASE("a noise_stream with an unknown version is rejected, buffers untouched", "[kernels][v2][errors]") {
    const std::size_t D = 5;
    const std::vector<float> x0(D, 1.0f), a(1, 0.5f), b(1, 0.5f);
    std::vector<float> xt(D, -7.0f), eps(D, -7.0f);
    const kernels::noise_stream bad{1, 2, 3, static_cast<noise_version>(3)};
    CHECK_THROWS_AS(kernels::forward_noise<float>(x0, a, b, bad, xt, eps), ddpm::invalid_argument);
    CHECK_THROWS_WITH(kernels::forward_noise<float>(x0, a, b, bad, xt, eps), Catch::Contains("version"));
    const std::vector<reverse_coefficients<float>> rc(1);
    CHECK_THROWS_AS(kernels::ddpm_step<float>(rc, {}, kernels::step_variance::fixed, x0, x0,
                                              kernels::step_noise<float>::from(bad), xt, {}),
                    ddpm::invalid_argument);
    CHECK(xt == std::vector<float>(D, -7.0f));
    CHECK(eps == std::vector<float>(D, -7.0f));
}
