// A batch at one timestep: every sample has the same coefficients (what
// ddpm::sample does at every step). ddpm_step_uniform / ddim_step_uniform take
// one coefficient set for the batch, and ddpm_step / ddim_step / forward_noise
// notice B equal coefficient sets themselves; either way a tile of short rows
// is one range call with nothing looked up per row. The result must be the
// same bits as one call per row (the row-by-row path), for short and long
// rows, every clipping mode (none, one for every sample, one per sample),
// both noise sources and none, a learned variance, 1 and 2 threads, and both
// backends. Built in the same three builds as test_small_rows.cpp (default,
// -march=native, -ffp-contract=off).
#include <catch2/catch.hpp>

#include <ddpm/core/coefficients.hpp>
#include <ddpm/kernels/fused.hpp>
#include <support/gaussian.hpp>

#include <algorithm>
#include <cstring>
#include <vector>

using namespace ddpm;
using kernels::backend;

namespace {

template <class T>
std::vector<T> values(std::size_t n, std::uint64_t seed) {
    return ddpm_test::gaussian<T>(n, seed);
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// (B, D): short rows in tiles (D ≤ 256), one-row chunks (D > 256), rows longer
// than a task (D > 4096), B not a multiple of a tile's rows.
constexpr std::size_t shapes[][2] = {{1, 1}, {300, 1}, {257, 2}, {1000, 2}, {129, 3}, {77, 17}, {33, 64},
                                     {9, 255}, {5, 300}, {3, 1000}, {2, 5000}};

enum class clipping { none, one, per_sample };

} // namespace

TEMPLATE_TEST_CASE("ddpm_step_uniform and ddpm_step on equal rows equal row-by-row calls bit for bit",
                   "[kernels][ddpm][uniform]", float, double) {
    using T = TestType;
    const noise_schedule s(schedule_config{});
    for (const bool learned : {false, true})
        for (const bool final_step : {false, true}) {
            const auto var = learned ? variance_type::learned_range : variance_type::fixed_small;
            const auto sv = learned ? kernels::step_variance::learned_range : kernels::step_variance::fixed;
            const std::size_t ch = learned ? 2 : 1;
            auto c = reverse_step_coefficients<T>(s, final_step ? 0 : 400, final_step ? -1 : 399,
                                                  prediction_type::epsilon, var);
            c.final_step = final_step;
            for (const auto& shape : shapes) {
                const std::size_t B = shape[0], D = shape[1], n = B * D;
                const auto out = values<T>(n * ch, 3), xt = values<T>(n, 4), zb = values<T>(n, 5);
                std::vector<kernels::x0_clip<T>> per_sample(B);
                for (std::size_t r = 0; r < B; ++r) per_sample[r] = {true, T(0.5) + T(r % 5) / 4, T(1) + T(r % 3)};
                for (const clipping cl : {clipping::none, clipping::one, clipping::per_sample})
                    for (const int source : {0, 1, 2}) // none, counter stream, caller buffer
                        for (const backend bk : {backend::scalar, kernels::best_backend}) {
                            INFO("learned " << learned << " final " << final_step << " B " << B << " D " << D
                                            << " clipping " << int(cl) << " noise " << source << " backend "
                                            << int(bk));
                            const auto noise_of = [&](std::size_t row, std::size_t rows) {
                                if (source == 1)
                                    return kernels::step_noise<T>::from(kernels::noise_stream{9, 77, std::uint32_t(row)});
                                if (source == 2)
                                    return kernels::step_noise<T>::from(std::span<const T>(zb.data() + row * D, rows * D));
                                return kernels::step_noise<T>::none();
                            };
                            const kernels::x0_clip<T> one{true, T(1), T(1)};
                            const auto clip_of = [&](std::size_t r) {
                                return cl == clipping::none ? kernels::x0_clip<T>{}
                                                            : cl == clipping::one ? one : per_sample[r];
                            };
                            // Reference: one call per row.
                            std::vector<T> ref_prev(n), ref_x0(n);
                            for (std::size_t r = 0; r < B; ++r) {
                                const auto k = clip_of(r);
                                kernels::ddpm_step<T>(std::span<const reverse_coefficients<T>>(&c, 1),
                                                      std::span<const kernels::x0_clip<T>>(&k, 1), sv,
                                                      std::span<const T>(out.data() + r * D * ch, D * ch),
                                                      std::span<const T>(xt.data() + r * D, D), noise_of(r, 1),
                                                      std::span<T>(ref_prev.data() + r * D, D),
                                                      std::span<T>(ref_x0.data() + r * D, D), {1}, bk);
                            }
                            std::vector<kernels::x0_clip<T>> clips;
                            if (cl == clipping::one) clips.assign(1, one);
                            if (cl == clipping::per_sample) clips = per_sample;
                            std::vector<kernels::x0_clip<T>> all_clips(B);
                            for (std::size_t r = 0; r < B; ++r) all_clips[r] = clip_of(r);
                            const std::vector<reverse_coefficients<T>> copies(B, c);
                            for (const unsigned threads : {1u, 2u}) {
                                std::vector<T> prev(n, T(-7)), x0(n, T(-7));
                                kernels::ddpm_step_uniform<T>(c, B, clips, sv, out, xt, noise_of(0, B), prev, x0,
                                                              {threads}, bk);
                                CHECK(same_bits(prev, ref_prev));
                                CHECK(same_bits(x0, ref_x0));
                                // x̂_0 not wanted: x_prev unchanged.
                                std::fill(prev.begin(), prev.end(), T(-7));
                                kernels::ddpm_step_uniform<T>(c, B, clips, sv, out, xt, noise_of(0, B), prev, {},
                                                              {threads}, bk);
                                CHECK(same_bits(prev, ref_prev));
                                // B equal coefficient sets through the per-sample entry point.
                                std::fill(prev.begin(), prev.end(), T(-7));
                                std::fill(x0.begin(), x0.end(), T(-7));
                                kernels::ddpm_step<T>(copies, cl == clipping::none ? clips : all_clips, sv, out, xt,
                                                      noise_of(0, B), prev, x0, {threads}, bk);
                                CHECK(same_bits(prev, ref_prev));
                                CHECK(same_bits(x0, ref_x0));
                            }
                        }
            }
        }
}

TEMPLATE_TEST_CASE("ddim_step_uniform and ddim_step on equal rows equal row-by-row calls bit for bit",
                   "[kernels][ddim][uniform]", float, double) {
    using T = TestType;
    for (const T sigma : {T(0), T(0.2)}) {
        const kernels::ddim_coefficients<T> c{kernels::x0_form::multiply, T(1.4), T(0.9), kernels::eps_form::from_x0,
                                              T(1.1), T(0.7), T(0.3), T(0.8), T(0.5), sigma};
        for (const std::size_t ch : {1u, 2u})
            for (const auto& shape : shapes) {
                const std::size_t B = shape[0], D = shape[1], n = B * D;
                const auto out = values<T>(n * ch, 6), xt = values<T>(n, 7);
                std::vector<kernels::x0_clip<T>> per_sample(B);
                for (std::size_t r = 0; r < B; ++r) per_sample[r] = {r % 4 != 1, T(0.7), T(1) + T(r % 3)};
                for (const clipping cl : {clipping::none, clipping::one, clipping::per_sample})
                    for (const backend bk : {backend::scalar, kernels::best_backend}) {
                        INFO("sigma " << sigma << " channels " << ch << " B " << B << " D " << D << " clipping "
                                      << int(cl) << " backend " << int(bk));
                        const kernels::x0_clip<T> one{true, T(1), T(1)};
                        const auto clip_of = [&](std::size_t r) {
                            return cl == clipping::none ? kernels::x0_clip<T>{} : cl == clipping::one ? one : per_sample[r];
                        };
                        std::vector<T> ref_prev(n), ref_x0(n);
                        for (std::size_t r = 0; r < B; ++r) {
                            const auto k = clip_of(r);
                            kernels::ddim_step<T>(std::span<const kernels::ddim_coefficients<T>>(&c, 1),
                                                  std::span<const kernels::x0_clip<T>>(&k, 1),
                                                  std::span<const T>(out.data() + r * D * ch, D * ch),
                                                  std::span<const T>(xt.data() + r * D, D),
                                                  kernels::step_noise<T>::from(kernels::noise_stream{10, 5, std::uint32_t(r)}),
                                                  std::span<T>(ref_prev.data() + r * D, D),
                                                  std::span<T>(ref_x0.data() + r * D, D), {1}, bk, ch);
                        }
                        std::vector<kernels::x0_clip<T>> clips;
                        if (cl == clipping::one) clips.assign(1, one);
                        if (cl == clipping::per_sample) clips = per_sample;
                        std::vector<kernels::x0_clip<T>> all_clips(B);
                        for (std::size_t r = 0; r < B; ++r) all_clips[r] = clip_of(r);
                        const std::vector<kernels::ddim_coefficients<T>> copies(B, c);
                        const auto z = kernels::step_noise<T>::from(kernels::noise_stream{10, 5, 0});
                        for (const unsigned threads : {1u, 2u}) {
                            std::vector<T> prev(n, T(-7)), x0(n, T(-7));
                            kernels::ddim_step_uniform<T>(c, B, clips, out, xt, z, prev, x0, {threads}, bk, ch);
                            CHECK(same_bits(prev, ref_prev));
                            CHECK(same_bits(x0, ref_x0));
                            std::fill(prev.begin(), prev.end(), T(-7));
                            std::fill(x0.begin(), x0.end(), T(-7));
                            kernels::ddim_step<T>(copies, cl == clipping::none ? clips : all_clips, out, xt, z, prev, x0,
                                                  {threads}, bk, ch);
                            CHECK(same_bits(prev, ref_prev));
                            CHECK(same_bits(x0, ref_x0));
                        }
                    }
            }
    }
}

TEMPLATE_TEST_CASE("forward_noise with equal a and b equals row-by-row calls bit for bit", "[kernels][forward][uniform]",
                   float, double) {
    using T = TestType;
    for (const auto& shape : shapes) {
        const std::size_t B = shape[0], D = shape[1], n = B * D;
        const auto x0 = values<T>(n, 1), z = values<T>(n, 2);
        const std::vector<T> a(B, T(0.8)), b(B, T(0.6));
        const kernels::noise_stream ns{555, 12, 3};
        for (const backend bk : {backend::scalar, kernels::best_backend}) {
            INFO("B " << B << " D " << D << " backend " << int(bk));
            std::vector<T> ref_xt(n), ref_eps(n), ref_caller(n);
            for (std::size_t r = 0; r < B; ++r) {
                const auto row = [&](std::vector<T>& v) { return std::span<T>(v.data() + r * D, D); };
                kernels::forward_noise<T>(std::span<const T>(x0.data() + r * D, D), std::span<const T>(&a[r], 1),
                                          std::span<const T>(&b[r], 1),
                                          kernels::noise_stream{ns.seed, ns.step, ns.first_sample + std::uint32_t(r)},
                                          row(ref_xt), row(ref_eps), {1}, bk);
                kernels::forward_noise<T>(std::span<const T>(x0.data() + r * D, D), std::span<const T>(&a[r], 1),
                                          std::span<const T>(&b[r], 1), std::span<const T>(z.data() + r * D, D),
                                          row(ref_caller), {1}, bk);
            }
            for (const unsigned threads : {1u, 2u}) {
                std::vector<T> xt(n, T(-7)), eps(n, T(-7)), caller(n, T(-7));
                kernels::forward_noise<T>(x0, a, b, ns, xt, eps, {threads}, bk);
                kernels::forward_noise<T>(x0, a, b, z, caller, {threads}, bk);
                CHECK(same_bits(xt, ref_xt));
                CHECK(same_bits(eps, ref_eps));
                CHECK(same_bits(caller, ref_caller));
            }
        }
    }
}

TEST_CASE("ddpm_step_uniform / ddim_step_uniform reject bad sizes and write nothing", "[kernels][uniform][errors]") {
    const reverse_coefficients<float> c{};
    const kernels::ddim_coefficients<float> d{};
    const std::vector<float> out(12, 0.5f), x(12, 0.25f);
    std::vector<float> prev(12, -1.0f), x0(12, -1.0f);
    const auto none = kernels::step_noise<float>::none();
    const auto fixed = kernels::step_variance::fixed;
    const std::vector<kernels::x0_clip<float>> two(2), four(4);
    const auto untouched = [&] {
        return std::all_of(prev.begin(), prev.end(), [](float v) { return v == -1.0f; }) &&
               std::all_of(x0.begin(), x0.end(), [](float v) { return v == -1.0f; });
    };
    REQUIRE_THROWS_WITH(kernels::ddpm_step_uniform<float>(c, 0, {}, fixed, out, x, none, prev, x0),
                        Catch::Contains("ddpm_step_uniform") && Catch::Contains("batch"));
    REQUIRE_THROWS_WITH(kernels::ddpm_step_uniform<float>(c, 5, {}, fixed, out, x, none, prev, x0),
                        Catch::Contains("xt.size()") && Catch::Contains("12"));
    REQUIRE_THROWS_WITH(kernels::ddpm_step_uniform<float>(c, 3, two, fixed, out, x, none, prev, x0),
                        Catch::Contains("clips.size()") && Catch::Contains("one for every sample"));
    REQUIRE_THROWS_AS(kernels::ddpm_step_uniform<float>(c, 3, {}, kernels::step_variance::learned_range, out, x, none,
                                                        prev, x0),
                      ddpm::invalid_argument);
    REQUIRE_THROWS_AS(kernels::ddpm_step_uniform<float>(c, 3, {}, fixed, out, x,
                                                        kernels::step_noise<float>::from(std::span<const float>(out.data(), 4)),
                                                        prev, x0),
                      ddpm::invalid_argument);
    REQUIRE_THROWS_AS(kernels::ddpm_step_uniform<float>(c, 3, {}, fixed, out, x, none, std::span<float>(prev.data(), 6), x0),
                      ddpm::invalid_argument);
    REQUIRE_THROWS_WITH(kernels::ddim_step_uniform<float>(d, 0, {}, out, x, none, prev, x0),
                        Catch::Contains("ddim_step_uniform") && Catch::Contains("batch"));
    REQUIRE_THROWS_WITH(kernels::ddim_step_uniform<float>(d, 3, two, out, x, none, prev, x0),
                        Catch::Contains("clips.size()"));
    REQUIRE_THROWS_WITH(kernels::ddim_step_uniform<float>(d, 3, {}, out, x, none, prev, x0, {}, kernels::best_backend, 3),
                        Catch::Contains("channels"));
    REQUIRE_THROWS_AS(kernels::ddim_step_uniform<float>(d, 3, {}, out, x, none, prev, std::span<float>(x0.data(), 4)),
                      ddpm::invalid_argument);
    CHECK(untouched());
    // B clips, or one for every sample, are accepted.
    kernels::ddpm_step_uniform<float>(c, 4, four, fixed, out, x, none, prev, x0);
    kernels::ddim_step_uniform<float>(d, 4, std::span<const kernels::x0_clip<float>>(four.data(), 1), out, x, none, prev, x0);
    CHECK_FALSE(untouched());
}
