// Stream v2 (noise_version::v2): v1 for a sample's whole 64-element groups, a
// compact layout for its last partial group. Pinned here: the layout against
// its definition (written out again from docs/random.md), that D a multiple
// of 64 gives the v1 values, that every path (scalar, every arch, dispatched)
// gives normal_at_v2 bit for bit for any sub-range of the samples, golden
// hashes, and the argument checks.
#include <catch2/catch.hpp>

#include <ddpm/error.hpp>
#include <ddpm/random/counter_noise.hpp>

#include "random_test_support.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace rnd = ddpm::random;
using ddpm_test::same_bits;

namespace {

constexpr std::uint64_t v2_seed = 0x9E3779B97F4A7C15ull;
constexpr std::uint32_t v2_step = 77u;
constexpr float canary = -4321.0f;
constexpr std::size_t pad = 3;

/// The v2 value written out from the definition: G = ⌊D/64⌋ whole groups;
/// below 64G the v1 layout (block 16⌊e/64⌋ + e mod 16, word ⌊e/16⌋ mod 4),
/// from 64G on block 16G + ⌊t/4⌋, word t mod 4 (t = e − 64G); Box–Muller of
/// words (0, 1) or (2, 3), z0 for the even word.
float v2_by_definition(std::uint64_t seed, std::uint32_t sample, std::uint32_t step, std::uint64_t e,
                       std::uint64_t dim) {
    const std::uint64_t g = dim / 64;
    std::uint64_t block = 0;
    unsigned word = 0;
    if (e < 64 * g) {
        block = 16 * (e / 64) + e % 16;
        word = static_cast<unsigned>((e / 16) % 4);
    } else {
        block = 16 * g + (e - 64 * g) / 4;
        word = static_cast<unsigned>((e - 64 * g) % 4);
    }
    const rnd::philox4x32_counter w = rnd::philox4x32_10(
        {{static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32), sample, step}},
        {{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}});
    const unsigned pair = word & 2u;
    const rnd::normal_pair z = rnd::box_muller(w.w[pair], w.w[pair + 1]);
    return (word & 1u) ? z.z1 : z.z0;
}

/// Runs fill(out, rows, count, sample_dim, first_sample, first) over a grid of
/// sample sizes, sub-ranges [first, first + count) (inside whole groups,
/// across the split, inside the tail), row counts around the batch width and
/// sample indices that wrap at 2^32, against normal_at_v2, checking that
/// nothing outside the tile is written.
template <class Fill>
void check_v2_grid(std::size_t w, Fill fill) {
    const std::size_t row_counts[] = {1, 2 * w + 3, 37};
    const std::uint32_t first_samples[] = {5u, 0xFFFFFFF7u};
    for (std::uint64_t dim = 1; dim <= 200; dim += (dim < 70 ? 1 : 7)) {
        const std::uint64_t whole = dim - dim % 64;
        // whole rows, a cut start, a cut end, only the tail, a piece across the split
        std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges = {{0, dim}, {dim / 3, dim}, {0, dim - dim / 4}};
        if (whole > 0 && whole < dim) {
            ranges.push_back({whole, dim});
            ranges.push_back({whole - 5, dim - (dim - whole) / 2});
            ranges.push_back({whole + 1, dim});
        }
        for (const auto& [first, end] : ranges) {
            if (end <= first) continue;
            const auto count = static_cast<std::size_t>(end - first);
            for (const std::size_t rows : row_counts) {
                for (const std::uint32_t fs : first_samples) {
                    std::vector<float> got(rows * count + 2 * pad, canary);
                    fill(got.data() + pad, rows, count, dim, fs, first);
                    for (std::size_t r = 0; r < rows; ++r)
                        for (std::size_t k = 0; k < count; ++k) {
                            const float ref = rnd::normal_at_v2(v2_seed, static_cast<std::uint32_t>(fs + r), v2_step,
                                                                first + k, dim);
                            if (!same_bits(got[pad + r * count + k], ref))
                                FAIL("dim " << dim << ", [" << first << ", " << end << "), rows " << rows
                                            << ", first_sample " << fs << ": row " << r << " element " << first + k
                                            << " differs");
                        }
                    for (std::size_t k = 0; k < pad; ++k) {
                        REQUIRE(got[k] == canary);
                        REQUIRE(got[pad + rows * count + k] == canary);
                    }
                }
            }
        }
    }
}

} // namespace

TEST_CASE("normal_at_v2 follows the v2 layout and is v1 in whole groups", "[random][v2]") {
    for (std::uint64_t dim = 1; dim <= 260; ++dim) {
        for (std::uint64_t e = 0; e < dim; ++e) {
            const float v = rnd::normal_at_v2(v2_seed, 12345u, v2_step, e, dim);
            if (!same_bits(v, v2_by_definition(v2_seed, 12345u, v2_step, e, dim)))
                FAIL("dim " << dim << " element " << e << ": not the definition");
            if (e < dim - dim % 64 && !same_bits(v, rnd::normal_at(v2_seed, 12345u, v2_step, e)))
                FAIL("dim " << dim << " element " << e << ": whole-group element differs from v1");
        }
    }
    // A tail past 2^32 blocks (the block index is 64-bit).
    const std::uint64_t big = (1ull << 38) + 70; // 64G = 2^38 + 64, tail of 6
    for (std::uint64_t e = big - 8; e < big; ++e)
        CHECK(same_bits(rnd::normal_at_v2(v2_seed, 3u, v2_step, e, big), v2_by_definition(v2_seed, 3u, v2_step, e, big)));
    // The tail of a 2-D point: one block, one Box–Muller pair.
    CHECK(rnd::locate_element_v2(0, 2).block == 0);
    CHECK(rnd::locate_element_v2(1, 2).block == 0);
    CHECK(rnd::locate_element_v2(1, 2).word == 1);
    CHECK(rnd::locate_element_v2(70, 71).block == 16 + 1);
    CHECK(rnd::locate_element_v2(70, 71).word == 2);
}

TEST_CASE("stream v2 tiles: the scalar reference is normal_at_v2", "[random][fill][rows][v2]") {
    check_v2_grid(4, [](float* out, std::size_t rows, std::size_t count, std::uint64_t dim, std::uint32_t fs,
                        std::uint64_t first) {
        rnd::detail::fill_rows_v2_scalar(out, rows, count, dim, v2_seed, fs, v2_step, first);
    });
}

#if DDPM_HAS_XSIMD

TEMPLATE_LIST_TEST_CASE("stream v2 tiles equal normal_at_v2 bit for bit on every arch", "[random][fill][rows][v2][simd]",
                        ddpm_test::simd_archs) {
    using arch = TestType;
    constexpr std::size_t w = xsimd::batch<float, arch>::size;
    INFO("arch = " << arch::name() << ", W = " << w);
    check_v2_grid(w, [](float* out, std::size_t rows, std::size_t count, std::uint64_t dim, std::uint32_t fs,
                        std::uint64_t first) {
        rnd::detail::fill_rows_v2_simd<arch>(out, rows, count, dim, v2_seed, fs, v2_step, first);
    });
}

#endif // DDPM_HAS_XSIMD

TEST_CASE("stream v2 tiles (dispatched) equal normal_at_v2 bit for bit", "[random][fill][rows][v2]") {
    check_v2_grid(8, [](float* out, std::size_t rows, std::size_t count, std::uint64_t dim, std::uint32_t fs,
                        std::uint64_t first) {
        rnd::detail::fill_rows_v2(out, rows, count, dim, v2_seed, fs, v2_step, first);
    });
}

TEST_CASE("fill_normal_rows with a noise_version", "[random][fill][rows][v2]") {
    for (const std::size_t dim : {1u, 2u, 3u, 17u, 64u, 67u, 128u}) {
        const std::size_t rows = 19;
        std::vector<float> v1(rows * dim), v1_versioned(rows * dim), v2(rows * dim), v2_scalar(rows * dim);
        rnd::fill_normal_rows(v1, dim, v2_seed, 40, v2_step);
        rnd::fill_normal_rows(v1_versioned, dim, v2_seed, 40, v2_step, rnd::noise_version::v1);
        CHECK(ddpm_test::first_bit_difference(v1, v1_versioned) == -1);
        rnd::fill_normal_rows_scalar(v1_versioned, dim, v2_seed, 40, v2_step, rnd::noise_version::v1);
        CHECK(ddpm_test::first_bit_difference(v1, v1_versioned) == -1);
        rnd::fill_normal_rows(v2, dim, v2_seed, 40, v2_step, rnd::noise_version::v2);
        rnd::fill_normal_rows_scalar(v2_scalar, dim, v2_seed, 40, v2_step, rnd::noise_version::v2);
        CHECK(ddpm_test::first_bit_difference(v2, v2_scalar) == -1);
        for (std::size_t r = 0; r < rows; ++r)
            for (std::size_t k = 0; k < dim; ++k)
                REQUIRE(same_bits(v2[r * dim + k], rnd::normal_at_v2(v2_seed, static_cast<std::uint32_t>(40 + r),
                                                                       v2_step, k, dim)));
        // A multiple of 64 is v1 exactly, and so is one more (the tail's only
        // element is word 0 of block 16G in both); anything else differs.
        if (dim % 64 <= 1) CHECK(ddpm_test::first_bit_difference(v1, v2) == -1);
        else CHECK(ddpm_test::first_bit_difference(v1, v2) != -1);
    }
}

TEST_CASE("golden values pin stream v2", "[random][fill][rows][golden][v2]") {
    // 4096 2-D points, 1000 samples of 67 (one whole group and a tail of 3),
    // and 3×32×32 images (the v1 values: the same hash as v1's).
    std::vector<float> points(4096 * 2);
    rnd::fill_normal_rows(points, 2, 0x0123456789abcdefull, 3, 999, rnd::noise_version::v2);
    CHECK(ddpm_test::fnv1a(points) == 0xdea9e59a595c8800ull);
    rnd::fill_normal_rows_scalar(points, 2, 0x0123456789abcdefull, 3, 999, rnd::noise_version::v2);
    CHECK(ddpm_test::fnv1a(points) == 0xdea9e59a595c8800ull);
    std::vector<float> odd(1000 * 67);
    rnd::fill_normal_rows(odd, 67, 42, 0, 1, rnd::noise_version::v2);
    CHECK(ddpm_test::fnv1a(odd) == 0xd8e5bb13ddf7beb2ull);
    std::vector<float> images(4 * 3072), images_v1(4 * 3072);
    rnd::fill_normal_rows(images, 3072, 7, 0, 5, rnd::noise_version::v2);
    rnd::fill_normal_rows(images_v1, 3072, 7, 0, 5);
    CHECK(ddpm_test::fnv1a(images) == ddpm_test::fnv1a(images_v1));
}

TEST_CASE("fill_normal_rows rejects an unknown noise_version", "[random][fill][rows][v2][errors]") {
    std::vector<float> v(6, canary);
    const auto bad = static_cast<rnd::noise_version>(3);
    CHECK_THROWS_AS(rnd::fill_normal_rows(v, 2, 1, 2, 3, bad), ddpm::invalid_argument);
    CHECK_THROWS_AS(rnd::fill_normal_rows_scalar(v, 2, 1, 2, 3, bad), ddpm::invalid_argument);
    CHECK_THROWS_AS(rnd::fill_normal_rows(v, 4, 1, 2, 3, rnd::noise_version::v2), ddpm::invalid_argument);
    for (const float x : v) CHECK(x == canary); // nothing written
    try {
        rnd::fill_normal_rows(v, 2, 1, 2, 3, bad);
    } catch (const ddpm::invalid_argument& e) {
        const std::string what = e.what();
        CHECK(what.find("version") != std::string::npos);
        CHECK(what.find("3") != std::string::npos);
    }
}
