// fill_normal_rows: tiles of whole rows (B samples × D elements), vectorised
// across samples for short rows. Every arch this build can name, the scalar
// reference and the dispatched entry point must give normal_at bit for bit,
// for D = 1..130, odd row counts (partial last batches), element offsets that
// cut groups and cross 2^32 blocks, and sample indices that wrap at 2^32.
#include <catch2/catch.hpp>

#include <ddpm/error.hpp>
#include <ddpm/random/counter_noise.hpp>

#include "random_test_support.hpp"

#include <cstdint>
#include <vector>

namespace rnd = ddpm::random;
using ddpm_test::first_bit_difference;
using ddpm_test::same_bits;

namespace {

constexpr std::uint64_t rows_seed = 0xD1B54A32D192ED03ull;
constexpr std::uint32_t rows_step = 613u;
const std::uint64_t rows_offsets[] = {0ull, 5ull, 81ull, (1ull << 34) - 3ull};
const std::uint32_t rows_first_samples[] = {7u, 0xFFFFFFF3u}; // the second wraps past 2^32 − 1
constexpr float canary = -4321.0f;
constexpr std::size_t pad = 5;

/// The tile row by row with the per-row fill_normal_scalar (already pinned to
/// normal_at by the golden tests).
std::vector<float> per_row_reference(std::size_t rows, std::size_t dim, std::uint32_t first_sample,
                                     std::uint64_t offset) {
    std::vector<float> ref(rows * dim);
    for (std::size_t r = 0; r < rows; ++r)
        rnd::fill_normal_scalar(std::span<float>(ref.data() + r * dim, dim), rows_seed,
                                static_cast<std::uint32_t>(first_sample + r), rows_step, offset);
    return ref;
}

/// Runs fill(out span, dim, first_sample, offset) over the (dim, rows,
/// offset, first_sample) grid and compares with the per-row reference,
/// checking that nothing outside the span is written.
template <class Fill>
void check_rows_grid(std::size_t w, Fill fill) {
    const std::size_t row_counts[] = {1, w - 1 == 0 ? 2 : w - 1, 2 * w + 3, 37};
    for (std::size_t dim = 1; dim <= 130; ++dim) {
        for (const std::size_t rows : row_counts) {
            for (const std::uint64_t offset : rows_offsets) {
                for (const std::uint32_t first_sample : rows_first_samples) {
                    std::vector<float> got(rows * dim + 2 * pad, canary);
                    fill(std::span<float>(got.data() + pad, rows * dim), dim, first_sample, offset);
                    const std::vector<float> ref = per_row_reference(rows, dim, first_sample, offset);
                    const std::vector<float> inner(got.begin() + pad, got.end() - static_cast<std::ptrdiff_t>(pad));
                    const long diff = first_bit_difference(inner, ref);
                    if (diff != -1)
                        FAIL("dim " << dim << ", rows " << rows << ", offset " << offset << ", first_sample "
                                    << first_sample << ": element " << diff << " differs");
                    for (std::size_t k = 0; k < pad; ++k) {
                        REQUIRE(got[k] == canary);
                        REQUIRE(got[pad + rows * dim + k] == canary);
                    }
                }
            }
        }
    }
}

} // namespace

TEST_CASE("fill_normal_rows_scalar is normal_at of each row's sample", "[random][fill][rows]") {
    for (const std::size_t dim : {1u, 2u, 3u, 16u, 17u, 63u, 64u, 65u, 130u}) {
        for (const std::uint64_t offset : rows_offsets) {
            const std::size_t rows = 11;
            std::vector<float> v(rows * dim);
            rnd::fill_normal_rows_scalar(v, dim, rows_seed, 0xFFFFFFFAu, rows_step, offset);
            for (std::size_t r = 0; r < rows; ++r)
                for (std::size_t k = 0; k < dim; ++k)
                    if (!same_bits(v[r * dim + k], rnd::normal_at(rows_seed, static_cast<std::uint32_t>(0xFFFFFFFAu + r),
                                                                 rows_step, offset + k)))
                        FAIL("dim " << dim << " offset " << offset << " row " << r << " element " << k);
        }
    }
}

#if DDPM_HAS_XSIMD

TEMPLATE_LIST_TEST_CASE("fill_normal_rows_simd equals the per-row fills bit for bit on every arch",
                        "[random][fill][rows][simd]", ddpm_test::simd_archs) {
    using arch = TestType;
    constexpr std::size_t w = xsimd::batch<float, arch>::size;
    INFO("arch = " << arch::name() << ", W = " << w);
    check_rows_grid(w, [](std::span<float> out, std::size_t dim, std::uint32_t first_sample, std::uint64_t offset) {
        rnd::fill_normal_rows_simd<arch>(out, dim, rows_seed, first_sample, rows_step, offset);
    });
}

#endif // DDPM_HAS_XSIMD

TEST_CASE("fill_normal_rows (dispatched) equals the per-row fills bit for bit", "[random][fill][rows]") {
    check_rows_grid(8, [](std::span<float> out, std::size_t dim, std::uint32_t first_sample, std::uint64_t offset) {
        rnd::fill_normal_rows(out, dim, rows_seed, first_sample, rows_step, offset);
    });
}

TEST_CASE("fill_normal_rows pins the stream of 2-D points", "[random][fill][rows][golden]") {
    // 4096 samples × 2 elements: the hash of the per-row stream (the golden
    // stream of test_normal.cpp), which the across-samples path must reproduce.
    std::vector<float> v(4096 * 2), per_row(4096 * 2);
    rnd::fill_normal_rows(v, 2, 0x0123456789abcdefull, 3, 999);
    CHECK(ddpm_test::fnv1a(v) == 0x2b68dd61059bccebull);
    for (std::uint32_t r = 0; r < 4096; ++r)
        rnd::fill_normal(std::span<float>(per_row.data() + 2 * r, 2), 0x0123456789abcdefull, 3 + r, 999);
    CHECK(ddpm_test::fnv1a(per_row) == 0x2b68dd61059bccebull);
}

TEST_CASE("fill_normal_rows rejects a span that is not whole rows", "[random][fill][rows][errors]") {
    std::vector<float> v(10, canary);
    CHECK_THROWS_AS(rnd::fill_normal_rows(v, 3, 1, 2, 3), ddpm::invalid_argument);
    CHECK_THROWS_AS(rnd::fill_normal_rows(v, 0, 1, 2, 3), ddpm::invalid_argument);
    CHECK_THROWS_AS(rnd::fill_normal_rows_scalar(v, 4, 1, 2, 3), ddpm::invalid_argument);
    for (const float x : v) CHECK(x == canary); // nothing written
    CHECK_NOTHROW(rnd::fill_normal_rows(std::span<float>(), 0, 1, 2, 3));
    try {
        rnd::fill_normal_rows(v, 3, 1, 2, 3);
    } catch (const ddpm::invalid_argument& e) {
        const std::string what = e.what();
        CHECK(what.find("out.size()") != std::string::npos);
        CHECK(what.find("multiple of dim (3)") != std::string::npos);
    }
}
