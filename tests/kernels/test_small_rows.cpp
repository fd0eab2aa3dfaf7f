// Short rows in tiles: a batch of B short samples (D = 1, 2, 3, 17, 63) is
// drawn across samples and runs of rows with equal coefficients share one
// range call. The result must be the same bits as calling the kernel once per
// row (one sample per call, first_sample + r: the row-by-row path), for every
// B = 1..300, every thread count and both backends, with coefficients that
// change every few rows (runs of several lengths), rows without noise, both
// noise sources, and a learned variance (rows one by one). This file is built
// at the default flags, with -march=native (where the compile-time SIMD code
// may have fused multiply-adds and then runs one call per row) and with
// -ffp-contract=off: every build must give the row-by-row bits.
#include <catch2/catch.hpp>

#include <ddpm/core/coefficients.hpp>
#include <ddpm/kernels/combine.hpp>
#include <ddpm/kernels/fused.hpp>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

using namespace ddpm;
using kernels::backend;

namespace {

constexpr std::size_t max_rows = 300;
constexpr std::size_t short_dims[] = {1, 2, 3, 17, 63};

template <class T>
std::vector<T> values(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> d(0.0, 1.5);
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(d(g));
    return v;
}

/// Row r uses the alternative coefficients on runs of irregular length.
bool alternative(std::size_t r) { return (r / 7) % 3 == 2 || r % 29 == 5; }

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b, std::size_t n) {
    return std::memcmp(a.data(), b.data(), n * sizeof(T)) == 0;
}

/// For every B in 1..max_rows, batch(B, exec, bk, out) on the first B rows must
/// equal row_by_row's first B·D values bit for bit.
template <class T, class Batch, class RowByRow>
void check_against_rows(std::size_t D, std::size_t outputs, Batch&& batch, RowByRow&& row_by_row) {
    for (const backend bk : {backend::scalar, kernels::best_backend}) {
        std::vector<std::vector<T>> ref(outputs, std::vector<T>(max_rows * D));
        row_by_row(bk, ref);
        for (std::size_t B = 1; B <= max_rows; ++B) {
            for (const unsigned threads : {1u, 2u, 3u}) {
                if (threads > 1 && B % 37 != 0 && B != max_rows) continue; // thread counts on a few sizes
                std::vector<std::vector<T>> got(outputs, std::vector<T>(B * D, T(-777)));
                batch(B, execution{threads}, bk, got);
                for (std::size_t o = 0; o < outputs; ++o)
                    if (!same_bits(got[o], ref[o], B * D))
                        FAIL("D " << D << " B " << B << " threads " << threads << " backend "
                                  << (bk == backend::scalar ? "scalar" : "simd") << " output " << o);
            }
        }
    }
}

} // namespace

TEMPLATE_TEST_CASE("forward_noise on short rows equals row-by-row calls bit for bit", "[kernels][forward][rows]", float,
                   double) {
    using T = TestType;
    for (const std::size_t D : short_dims) {
        const auto x0 = values<T>(max_rows * D, 1);
        std::vector<T> a(max_rows), b(max_rows);
        for (std::size_t r = 0; r < max_rows; ++r) {
            a[r] = alternative(r) ? T(0.3) : T(0.8);
            b[r] = alternative(r) ? T(0.95) : T(0.6);
        }
        const kernels::noise_stream ns{555, 12, 3};
        check_against_rows<T>(
            D, 2,
            [&](std::size_t B, const execution& ex, backend bk, std::vector<std::vector<T>>& o) {
                kernels::forward_noise<T>(std::span<const T>(x0.data(), B * D), std::span<const T>(a.data(), B),
                                          std::span<const T>(b.data(), B), ns, o[0], o[1], ex, bk);
            },
            [&](backend bk, std::vector<std::vector<T>>& o) {
                for (std::size_t r = 0; r < max_rows; ++r)
                    kernels::forward_noise<T>(std::span<const T>(x0.data() + r * D, D), std::span<const T>(&a[r], 1),
                                              std::span<const T>(&b[r], 1),
                                              kernels::noise_stream{ns.seed, ns.step, ns.first_sample + std::uint32_t(r)},
                                              std::span<T>(o[0].data() + r * D, D), std::span<T>(o[1].data() + r * D, D),
                                              {1}, bk);
            });
        // Caller noise.
        const auto z = values<T>(max_rows * D, 2);
        check_against_rows<T>(
            D, 1,
            [&](std::size_t B, const execution& ex, backend bk, std::vector<std::vector<T>>& o) {
                kernels::forward_noise<T>(std::span<const T>(x0.data(), B * D), std::span<const T>(a.data(), B),
                                          std::span<const T>(b.data(), B), std::span<const T>(z.data(), B * D), o[0], ex, bk);
            },
            [&](backend bk, std::vector<std::vector<T>>& o) {
                for (std::size_t r = 0; r < max_rows; ++r)
                    kernels::forward_noise<T>(std::span<const T>(x0.data() + r * D, D), std::span<const T>(&a[r], 1),
                                              std::span<const T>(&b[r], 1), std::span<const T>(z.data() + r * D, D),
                                              std::span<T>(o[0].data() + r * D, D), {1}, bk);
            });
    }
}

TEMPLATE_TEST_CASE("ddpm_step on short rows equals row-by-row calls bit for bit", "[kernels][ddpm][rows]", float,
                   double) {
    using T = TestType;
    const noise_schedule s(schedule_config{});
    for (const bool learned : {false, true}) {
        const auto var = learned ? variance_type::learned_range : variance_type::fixed_small;
        const auto sv = learned ? kernels::step_variance::learned_range : kernels::step_variance::fixed;
        const std::size_t ch = learned ? 2 : 1;
        std::vector<reverse_coefficients<T>> coefs(max_rows);
        std::vector<kernels::x0_clip<T>> clips(max_rows);
        for (std::size_t r = 0; r < max_rows; ++r) {
            coefs[r] = reverse_step_coefficients<T>(s, alternative(r) ? 0 : 400, alternative(r) ? -1 : 399,
                                                    prediction_type::epsilon, var);
            clips[r] = {r % 11 != 3, T(1), T(1)};
        }
        for (const std::size_t D : short_dims) {
            INFO("learned " << learned << " D " << D);
            const auto out = values<T>(max_rows * D * ch, 3), xt = values<T>(max_rows * D, 4), zb = values<T>(max_rows * D, 5);
            for (const bool stream : {true, false}) {
                const auto noise_for = [&](std::size_t first_row, std::size_t rows) {
                    return stream ? kernels::step_noise<T>::from(kernels::noise_stream{9, 77, std::uint32_t(first_row)})
                                  : kernels::step_noise<T>::from(std::span<const T>(zb.data() + first_row * D, rows * D));
                };
                check_against_rows<T>(
                    D, 2,
                    [&](std::size_t B, const execution& ex, backend bk, std::vector<std::vector<T>>& o) {
                        kernels::ddpm_step<T>(std::span<const reverse_coefficients<T>>(coefs.data(), B),
                                              std::span<const kernels::x0_clip<T>>(clips.data(), B), sv,
                                              std::span<const T>(out.data(), B * D * ch), std::span<const T>(xt.data(), B * D),
                                              noise_for(0, B), o[0], o[1], ex, bk);
                    },
                    [&](backend bk, std::vector<std::vector<T>>& o) {
                        for (std::size_t r = 0; r < max_rows; ++r)
                            kernels::ddpm_step<T>(std::span<const reverse_coefficients<T>>(&coefs[r], 1),
                                                  std::span<const kernels::x0_clip<T>>(&clips[r], 1), sv,
                                                  std::span<const T>(out.data() + r * D * ch, D * ch),
                                                  std::span<const T>(xt.data() + r * D, D), noise_for(r, 1),
                                                  std::span<T>(o[0].data() + r * D, D), std::span<T>(o[1].data() + r * D, D),
                                                  {1}, bk);
                    });
            }
        }
    }
}

TEMPLATE_TEST_CASE("ddim_step on short rows equals row-by-row calls bit for bit", "[kernels][ddim][rows]", float,
                   double) {
    using T = TestType;
    std::vector<kernels::ddim_coefficients<T>> coefs(max_rows);
    std::vector<kernels::x0_clip<T>> clips(max_rows);
    for (std::size_t r = 0; r < max_rows; ++r) {
        coefs[r] = {kernels::x0_form::multiply, T(1.4), T(0.9), kernels::eps_form::model_output, 0, 1, 0, T(0.8),
                    T(0.5), alternative(r) ? T(0) : T(0.2)};
        clips[r] = {r % 13 != 4, T(1), T(1)};
    }
    for (const std::size_t ch : {1u, 2u}) {
        for (const std::size_t D : short_dims) {
            INFO("channels " << ch << " D " << D);
            const auto out = values<T>(max_rows * D * ch, 6), xt = values<T>(max_rows * D, 7);
            check_against_rows<T>(
                D, 2,
                [&](std::size_t B, const execution& ex, backend bk, std::vector<std::vector<T>>& o) {
                    kernels::ddim_step<T>(std::span<const kernels::ddim_coefficients<T>>(coefs.data(), B),
                                          std::span<const kernels::x0_clip<T>>(clips.data(), B),
                                          std::span<const T>(out.data(), B * D * ch), std::span<const T>(xt.data(), B * D),
                                          kernels::step_noise<T>::from(kernels::noise_stream{10, 5, 0}), o[0], o[1], ex, bk,
                                          ch);
                },
                [&](backend bk, std::vector<std::vector<T>>& o) {
                    for (std::size_t r = 0; r < max_rows; ++r)
                        kernels::ddim_step<T>(std::span<const kernels::ddim_coefficients<T>>(&coefs[r], 1),
                                              std::span<const kernels::x0_clip<T>>(&clips[r], 1),
                                              std::span<const T>(out.data() + r * D * ch, D * ch),
                                              std::span<const T>(xt.data() + r * D, D),
                                              kernels::step_noise<T>::from(kernels::noise_stream{10, 5, std::uint32_t(r)}),
                                              std::span<T>(o[0].data() + r * D, D), std::span<T>(o[1].data() + r * D, D),
                                              {1}, bk, ch);
                });
        }
    }
}

TEMPLATE_TEST_CASE("combine and sigma_step on short rows equal row-by-row calls bit for bit",
                   "[kernels][combine][rows]", float, double) {
    using T = TestType;
    std::vector<kernels::combine_coefficients<T, 2>> cc(max_rows);
    std::vector<kernels::sigma_step_coefficients<T>> sc(max_rows);
    for (std::size_t r = 0; r < max_rows; ++r) {
        cc[r] = {{T(0.9), alternative(r) ? T(-0.4) : T(0.25)}, r % 17 == 3 ? T(0) : T(0.5)};
        sc[r].form = kernels::sigma_x0_form::epsilon;
        sc[r].a = T(0.7);
        sc[r].s = T(1.3);
        sc[r].dt = alternative(r) ? T(-0.2) : T(-0.1);
        sc[r].sigma_up = r % 19 == 7 ? T(0) : T(0.3);
    }
    for (const std::size_t D : short_dims) {
        INFO("D " << D);
        const auto p = values<T>(max_rows * D, 8), q = values<T>(max_rows * D, 9);
        const kernels::noise_stream ns{31, 2, 0};
        const auto shifted = [&](std::size_t r) { return kernels::noise_stream{ns.seed, ns.step, std::uint32_t(r)}; };
        check_against_rows<T>(
            D, 1,
            [&](std::size_t B, const execution& ex, backend bk, std::vector<std::vector<T>>& o) {
                kernels::combine<T, 2>(std::span<const kernels::combine_coefficients<T, 2>>(cc.data(), B),
                                       {std::span<const T>(p.data(), B * D), std::span<const T>(q.data(), B * D)},
                                       kernels::step_noise<T>::from(ns), o[0], ex, bk);
            },
            [&](backend bk, std::vector<std::vector<T>>& o) {
                for (std::size_t r = 0; r < max_rows; ++r)
                    kernels::combine<T, 2>(std::span<const kernels::combine_coefficients<T, 2>>(&cc[r], 1),
                                           {std::span<const T>(p.data() + r * D, D), std::span<const T>(q.data() + r * D, D)},
                                           kernels::step_noise<T>::from(shifted(r)), std::span<T>(o[0].data() + r * D, D),
                                           {1}, bk);
            });
        check_against_rows<T>(
            D, 2,
            [&](std::size_t B, const execution& ex, backend bk, std::vector<std::vector<T>>& o) {
                kernels::sigma_step<T>(std::span<const kernels::sigma_step_coefficients<T>>(sc.data(), B),
                                       {std::span<const T>(p.data(), B * D), std::span<const T>(q.data(), B * D), {}, {},
                                        o[0], o[1], {}},
                                       kernels::step_noise<T>::from(ns), ex, bk);
            },
            [&](backend bk, std::vector<std::vector<T>>& o) {
                for (std::size_t r = 0; r < max_rows; ++r)
                    kernels::sigma_step<T>(std::span<const kernels::sigma_step_coefficients<T>>(&sc[r], 1),
                                           {std::span<const T>(p.data() + r * D, D), std::span<const T>(q.data() + r * D, D),
                                            {}, {}, std::span<T>(o[0].data() + r * D, D),
                                            std::span<T>(o[1].data() + r * D, D), {}},
                                           kernels::step_noise<T>::from(shifted(r)), {1}, bk);
            });
    }
}

TEST_CASE("task grid: short rows in whole-row tiles, enough tasks for two threads", "[kernels][grid]") {
    for (const std::size_t D : {1u, 2u, 3u, 17u, 63u, 64u, 256u, 257u, 511u, 512u, 3072u, 4096u, 5000u, 40000u}) {
        for (const std::size_t B : {1u, 2u, 16u, 300u, 4096u}) {
            INFO("B " << B << " D " << D);
            const kernels::detail::task_grid grid(B, D);
            std::vector<unsigned> seen(B * D, 0);
            std::size_t bad_tiles = 0;
            for (std::size_t k = 0; k < grid.tasks(); ++k)
                grid.for_task(k, [&](std::size_t row, std::size_t rows, std::size_t first, std::size_t count) {
                    if (rows * count > kernels::detail::chunk_elements || (rows > 1 && (first != 0 || count != D)))
                        ++bad_tiles;
                    for (std::size_t r = row; r < row + rows; ++r)
                        for (std::size_t i = first; i < first + count; ++i) ++seen[r * D + i];
                });
            CHECK(bad_tiles == 0);
            CHECK(std::count(seen.begin(), seen.end(), 1u) == static_cast<std::ptrdiff_t>(B * D)); // each once
            // 2^15 elements or more are at least 4 tasks (two threads share them).
            if (B * D >= (1u << 15)) REQUIRE(grid.tasks() >= 4);
        }
    }
}
