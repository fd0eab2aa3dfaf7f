// The uniform/normal transforms and the addressing: accuracy of the own
// ln/sin/cos, SIMD = scalar = normal_at bit for bit on every arch, for any
// offset and length, independence from how a batch is laid out, and golden
// hashes that pin the stream (this file is also built with -ffp-contract=off,
// =fast and with the portable SIMD fallbacks; all must reproduce them).
#include <catch2/catch.hpp>

#include <ddpm/random/counter_noise.hpp>
#include <ddpm/random/normal.hpp>
#include <ddpm/random/normal_simd.hpp>

#include "random_test_support.hpp"

#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <random>
#include <vector>

namespace rnd = ddpm::random;
using ddpm_test::first_bit_difference;
using ddpm_test::same_bits;

namespace {

/// |got − exact| in units of the ulp of float(exact).
double ulp_error(float got, double exact) {
    const float e = static_cast<float>(exact);
    const double ulp = static_cast<double>(std::nextafter(std::fabs(e), std::numeric_limits<float>::infinity())) -
                       static_cast<double>(std::fabs(e));
    return std::fabs(static_cast<double>(got) - exact) / ulp;
}

const std::uint64_t big_offsets[] = {0ull,
                                     1ull,
                                     5ull,
                                     15ull,
                                     16ull,
                                     17ull,
                                     63ull,
                                     64ull,
                                     100ull,
                                     (1ull << 34) - 37ull, // block index crosses 2^32 (lo32 -> hi32 carry)
                                     (1ull << 63) + 5ull};

} // namespace

TEST_CASE("the element to block and word mapping", "[random][addressing]") {
    for (std::uint64_t i : {0ull, 1ull, 15ull, 16ull, 17ull, 31ull, 32ull, 48ull, 63ull, 64ull, 65ull, 1000ull,
                            (1ull << 40) + 77ull, ~0ull}) {
        const rnd::noise_location at = rnd::locate_element(i);
        CHECK(at.block == 16 * (i / 64) + i % 16);
        CHECK(at.word == (i / 16) % 4);
        CHECK(rnd::element_of(at.block, at.word) == i);
    }
    // Group 0, block 0 under the zero key and counter is Random123's first
    // known answer; its words land on elements 0, 16, 32, 48.
    CHECK(rnd::bits_at(0, 0, 0, 0) == 0x6627e8d5u);
    CHECK(rnd::bits_at(0, 0, 0, 16) == 0xe169c58du);
    CHECK(rnd::bits_at(0, 0, 0, 32) == 0xbc57ac4cu);
    CHECK(rnd::bits_at(0, 0, 0, 48) == 0x9b00dbd8u);
    // Key and counter layout.
    CHECK(rnd::noise_key(0x0123456789abcdefull) == rnd::philox4x32_key{{0x89abcdefu, 0x01234567u}});
    CHECK(rnd::noise_counter(0x0000000500000007ull, 11u, 13u) == rnd::philox4x32_counter{{7u, 5u, 11u, 13u}});
    CHECK(rnd::bits_at(99, 3, 4, 64 + 5) ==
          rnd::philox4x32_10({{16u + 5u, 0u, 3u, 4u}}, rnd::noise_key(99)).w[0]);
    // A pair's partner is 16 elements away, in the same block.
    const rnd::philox4x32_counter w = rnd::noise_block(5, 6, 7, 16 * 3 + 9);
    const rnd::normal_pair p = rnd::box_muller(w.w[2], w.w[3]);
    CHECK(same_bits(rnd::normal_at(5, 6, 7, 3 * 64 + 32 + 9), p.z0));
    CHECK(same_bits(rnd::normal_at(5, 6, 7, 3 * 64 + 48 + 9), p.z1));
}

TEST_CASE("uniform_float is exact on the 2^-24 grid of the unit interval", "[random][transform]") {
    CHECK(rnd::uniform_float(0u) == 0.0f);
    CHECK(rnd::uniform_float(0xFFFFFFFFu) == 1.0f - 0x1p-24f);
    CHECK(rnd::uniform_float(0x80000000u) == 0.5f);
    CHECK(rnd::uniform_float(0x000000FFu) == 0.0f);
    CHECK(rnd::uniform_float(0x00000100u) == 0x1p-24f);
}

TEST_CASE("the own -2 ln u is within a few ulp of libm for every u the transform sees", "[random][transform]") {
    // u1 = (k + 1)·2^-24, k = 0 .. 2^24 - 1.
    double worst = 0.0;
    std::uint32_t worst_k = 0;
    for (std::uint32_t k = 0; k + 1 < (1u << 24); ++k) {
        const float u = static_cast<float>(k + 1) * 0x1p-24f;
        const double e = ulp_error(rnd::detail::minus_two_log(u), -2.0 * std::log(static_cast<double>(u)));
        if (e > worst) {
            worst = e;
            worst_k = k;
        }
    }
    INFO("worst k = " << worst_k);
    CHECK(worst < 3.0);
    CHECK(rnd::detail::minus_two_log(1.0f) == 0.0f);
    CHECK(rnd::detail::minus_two_log(0x1p-24f) == Approx(48.0 * std::log(2.0)).epsilon(1e-7));
    // Any positive normal float, not only the grid.
    for (float u : {1e-30f, 3.5e-12f, 0.1f, 0.70710677f, 0.70710683f, 2.0f, 1234.5f, 3e37f})
        CHECK(ulp_error(rnd::detail::minus_two_log(u), -2.0 * std::log(static_cast<double>(u))) < 3.0);
}

TEST_CASE("the own cos and sin are within a few ulp of libm", "[random][transform]") {
    double worst_c = 0.0;
    double worst_s = 0.0;
    float worst_norm = 0.0f;
    const double pi = 3.14159265358979323846;
    auto check = [&](std::uint32_t bits) {
        const rnd::detail::cos_sin cs = rnd::detail::cos_sin_from_bits(bits);
        const std::int32_t v = (static_cast<std::int32_t>(bits << 9) >> 8) | 1;
        const double phi = v * 0x1p-24 * pi / 2;
        const double theta = ((bits >> 31) & 1u) * pi + (((bits >> 30) & 1u) ? pi / 2 - phi : phi);
        worst_c = std::max(worst_c, ulp_error(cs.c, std::cos(theta)));
        worst_s = std::max(worst_s, ulp_error(cs.s, std::sin(theta)));
        worst_norm = std::max(worst_norm, std::fabs(std::fma(cs.c, cs.c, cs.s * cs.s) - 1.0f));
    };
    for (std::uint64_t b = 0; b < (1ull << 32); b += 1021) check(static_cast<std::uint32_t>(b));
    for (std::uint32_t b : {0u, 1u, 0x003FFFFFu, 0x00400000u, 0x007FFFFFu, 0x40000000u, 0x7FFFFFFFu, 0x80000000u,
                            0xC0400000u, 0xFFFFFFFFu})
        check(b);
    CHECK(worst_c < 2.5);
    CHECK(worst_s < 2.5);
    CHECK(worst_norm < 4e-7f);
}

TEST_CASE("box_muller: radius and angle ends", "[random][transform]") {
    // w0 >> 8 = 2^24 - 1 -> u1 = 1 -> r = 0.
    const rnd::normal_pair zero = rnd::box_muller(0xFFFFFFFFu, 0x12345678u);
    CHECK(zero.z0 == 0.0f);
    CHECK(zero.z1 == 0.0f);
    // w0 >> 8 = 0 -> u1 = 2^-24 -> r = sqrt(48 ln 2), the largest radius.
    const rnd::normal_pair far = rnd::box_muller(0u, 0u);
    const double r = std::sqrt(48.0 * std::log(2.0));
    CHECK(std::hypot(far.z0, far.z1) == Approx(r).epsilon(1e-6));
    CHECK(far.z0 > 5.7f); // θ = φ ≈ +π/2^25
}

#if DDPM_HAS_XSIMD

TEMPLATE_LIST_TEST_CASE("box_muller and uniform_float over batches equal the scalar ones bit for bit",
                        "[random][transform][simd]", ddpm_test::simd_archs) {
    using arch = TestType;
    using ub = xsimd::batch<std::uint32_t, arch>;
    constexpr std::size_t w = ub::size;
    INFO("arch = " << arch::name() << ", W = " << w);
    std::mt19937 rng(12345);
    std::uniform_int_distribution<std::uint32_t> word;
    const std::uint32_t extremes[] = {0u,          1u,          0xFFu,       0x100u,      0x7FFFFFu,  0x800000u,
                                      0x3FFFFFFFu, 0x40000000u, 0x7FFFFFFFu, 0x80000000u, 0xBFFFFFFFu, 0xFFFFFFFFu};
    for (int n = 0; n < 4000; ++n) {
        alignas(64) std::uint32_t a[w];
        alignas(64) std::uint32_t b[w];
        for (std::size_t l = 0; l < w; ++l) {
            a[l] = n < 12 ? extremes[n] : word(rng);
            b[l] = n < 12 ? extremes[(n + l) % 12] : word(rng);
        }
        const rnd::normal_pair_batch<arch> z = rnd::box_muller(ub::load_unaligned(a), ub::load_unaligned(b));
        const xsimd::batch<float, arch> u = rnd::uniform_float(ub::load_unaligned(a));
        alignas(64) float z0[w];
        alignas(64) float z1[w];
        alignas(64) float uu[w];
        z.z0.store_unaligned(z0);
        z.z1.store_unaligned(z1);
        u.store_unaligned(uu);
        for (std::size_t l = 0; l < w; ++l) {
            const rnd::normal_pair e = rnd::box_muller(a[l], b[l]);
            if (!same_bits(z0[l], e.z0) || !same_bits(z1[l], e.z1) || !same_bits(uu[l], rnd::uniform_float(a[l])))
                FAIL("n = " << n << ", lane " << l << ": words " << a[l] << ", " << b[l]);
        }
    }
}

TEMPLATE_LIST_TEST_CASE("SIMD fills equal the scalar fills and the per-element functions bit for bit",
                        "[random][fill][simd]", ddpm_test::simd_archs) {
    using arch = TestType;
    constexpr std::size_t w = xsimd::batch<float, arch>::size;
    INFO("arch = " << arch::name() << ", W = " << w);
    const std::size_t lengths[] = {0, 1, w - 1, w, w + 1, 15, 16, 17, 63, 64, 65, 127, 1000, 4099};
    const std::uint64_t seed = 0x9E3779B97F4A7C15ull;
    const float canary = -12345.0f;
    const std::size_t pad = 7;
    for (std::uint64_t offset : big_offsets) {
        for (std::size_t n : lengths) {
            INFO("offset = " << offset << ", n = " << n);
            const std::uint32_t sample = static_cast<std::uint32_t>(n * 31 + offset % 1000);
            const std::uint32_t step = 977u;
            // Unaligned starts: the span begins `pad` floats into its buffer.
            std::vector<float> simd(n + 2 * pad, canary), scalar(n + 2 * pad, canary), usimd(n + 2 * pad, canary),
                uscalar(n + 2 * pad, canary);
            const auto inner = [&](std::vector<float>& v) { return std::span<float>(v.data() + pad, n); };
            rnd::fill_normal_simd<arch>(inner(simd), seed, sample, step, offset);
            rnd::fill_normal_scalar(inner(scalar), seed, sample, step, offset);
            rnd::fill_uniform_simd<arch>(inner(usimd), seed, sample, step, offset);
            rnd::fill_uniform_scalar(inner(uscalar), seed, sample, step, offset);
            REQUIRE(first_bit_difference(simd, scalar) == -1);
            REQUIRE(first_bit_difference(usimd, uscalar) == -1);
            for (std::size_t k = 0; k < pad; ++k) {
                REQUIRE(simd[k] == canary);
                REQUIRE(simd[pad + n + k] == canary);
                REQUIRE(usimd[k] == canary);
                REQUIRE(usimd[pad + n + k] == canary);
            }
            for (std::size_t k = 0; k < n; ++k) {
                if (!same_bits(scalar[pad + k], rnd::normal_at(seed, sample, step, offset + k)) ||
                    !same_bits(uscalar[pad + k], rnd::uniform_at(seed, sample, step, offset + k)))
                    FAIL("element " << k << " differs from normal_at/uniform_at");
            }
        }
    }
}

TEMPLATE_LIST_TEST_CASE("normal_batches lanes are the elements the mapping names", "[random][fill][simd]",
                        ddpm_test::simd_archs) {
    using arch = TestType;
    constexpr std::size_t w = xsimd::batch<float, arch>::size;
    if constexpr (16 % w == 0) {
        const rnd::philox4x32_key key = rnd::noise_key(77);
        for (std::uint64_t first_block : {0ull, w * 1ull, 16ull * 1000 + 16 - w, (1ull << 32) - w, (1ull << 32)}) {
            const rnd::noise_batches<arch> nb = rnd::normal_batches<arch>(key, 3u, 4u, first_block);
            const rnd::noise_batches<arch> ub = rnd::uniform_batches<arch>(key, 3u, 4u, first_block);
            for (unsigned j = 0; j < 4; ++j) {
                alignas(64) float v[w];
                alignas(64) float u[w];
                nb.v[j].store_unaligned(v);
                ub.v[j].store_unaligned(u);
                for (std::size_t l = 0; l < w; ++l) {
                    const std::uint64_t e = rnd::element_of(first_block + l, j);
                    CHECK(same_bits(v[l], rnd::normal_at(77, 3u, 4u, e)));
                    CHECK(same_bits(u[l], rnd::uniform_at(77, 3u, 4u, e)));
                }
            }
        }
    }
}

#endif // DDPM_HAS_XSIMD

TEST_CASE("the default fills equal the scalar reference", "[random][fill]") {
    for (std::uint64_t offset : big_offsets) {
        for (std::size_t n : {0u, 1u, 17u, 64u, 333u, 5000u}) {
            std::vector<float> a(n), b(n);
            rnd::fill_normal(a, 3, 1, 2, offset);
            rnd::fill_normal_scalar(b, 3, 1, 2, offset);
            CHECK(first_bit_difference(a, b) == -1);
            rnd::fill_uniform(a, 3, 1, 2, offset);
            rnd::fill_uniform_scalar(b, 3, 1, 2, offset);
            CHECK(first_bit_difference(a, b) == -1);
        }
    }
}

TEST_CASE("the double fills are the float stream widened", "[random][fill]") {
    for (std::uint64_t offset : {0ull, 5ull, 64ull, 1000003ull}) {
        for (std::size_t n : {0u, 1u, 63u, 1024u, 1025u, 5000u}) {
            INFO("offset = " << offset << ", n = " << n);
            std::vector<float> f(n);
            std::vector<double> d(n, -1.0);
            rnd::fill_normal(f, 11, 2, 3, offset);
            rnd::fill_normal(std::span<double>(d), 11, 2, 3, offset);
            for (std::size_t k = 0; k < n; ++k) REQUIRE(d[k] == static_cast<double>(f[k]));
            rnd::fill_uniform(f, 11, 2, 3, offset);
            rnd::fill_uniform(std::span<double>(d), 11, 2, 3, offset);
            for (std::size_t k = 0; k < n; ++k) REQUIRE(d[k] == static_cast<double>(f[k]));
        }
    }
}

TEST_CASE("noise does not depend on how the batch is laid out or chunked", "[random][fill]") {
    const std::uint64_t seed = 2024;
    const std::uint32_t step = 500;
    const std::size_t d = 37; // elements per sample, not a multiple of anything
    // Batch A: samples 10..14, filled row by row in one call per row.
    const std::uint32_t b0 = 10;
    const std::size_t rows_a = 5;
    std::vector<float> a(rows_a * d);
    for (std::size_t b = 0; b < rows_a; ++b)
        rnd::fill_normal(std::span<float>(a).subspan(b * d, d), seed, b0 + static_cast<std::uint32_t>(b), step);
    // Batch B: samples 8..16 (a superset), each row filled in ragged chunks.
    const std::uint32_t b1 = 8;
    const std::size_t rows_b = 9;
    std::vector<float> bb(rows_b * d);
    for (std::size_t b = 0; b < rows_b; ++b) {
        std::size_t at = 0;
        for (std::size_t chunk : {3u, 1u, 20u, 13u}) {
            rnd::fill_normal(std::span<float>(bb).subspan(b * d + at, chunk), seed, b1 + static_cast<std::uint32_t>(b),
                             step, at);
            at += chunk;
        }
        REQUIRE(at == d);
    }
    // Batch C: one element at a time.
    for (std::size_t b = 0; b < rows_a; ++b) {
        for (std::size_t i = 0; i < d; ++i) {
            const float x = a[b * d + i];
            CHECK(same_bits(x, bb[(b + (b0 - b1)) * d + i]));
            CHECK(same_bits(x, rnd::normal_at(seed, b0 + static_cast<std::uint32_t>(b), step, i)));
        }
    }
    // The same sample inside a long flat buffer at an offset (the D × B layout
    // of a user who lays samples out as one stream) — equal to the row view.
    std::vector<float> flat(3 * d);
    rnd::fill_normal(flat, seed, b0 + 2, step, 0);
    for (std::size_t i = 0; i < d; ++i) CHECK(same_bits(flat[i], a[2 * d + i]));
}

TEST_CASE("counter_engine walks one stream and is a uniform random bit generator", "[random][engine]") {
    STATIC_REQUIRE(std::uniform_random_bit_generator<rnd::counter_engine>);
    rnd::counter_engine g(8, 9, 10, 60);
    for (std::uint64_t i = 60; i < 60 + 200; ++i) CHECK(g() == rnd::bits_at(8, 9, 10, i));
    CHECK(g.position() == 260);
    g.seek(5);
    for (std::uint64_t i = 5; i < 200; ++i) CHECK(same_bits(g.normal(), rnd::normal_at(8, 9, 10, i)));
    g.seek(1ull << 40);
    g.discard(3);
    for (std::uint64_t i = (1ull << 40) + 3; i < (1ull << 40) + 70; ++i)
        CHECK(same_bits(g.uniform(), rnd::uniform_at(8, 9, 10, i)));
    CHECK(g.seed() == 8);
    CHECK(g.sample() == 9);
    CHECK(g.step() == 10);
    std::uniform_int_distribution<int> die(1, 6);
    rnd::counter_engine g2(1, 2, 3);
    int sum = 0;
    for (int k = 0; k < 600; ++k) sum += die(g2);
    CHECK(sum > 600);
}

TEST_CASE("golden values pin the stream", "[random][golden]") {
    // These fix the mapping, Philox, and the float transforms. They must come
    // out identical in every build: any arch, -ffp-contract=off/fast, the
    // portable SIMD fallbacks, and (later) CUDA. Changing them is an API break.
    const float first8[8] = {0x1.75f32cp-2f, 0x1.17d508p-3f, -0x1.cd5582p+0f, -0x1.d88f98p-2f,
                             -0x1.6d956p-2f, 0x1.324f1ap+0f,  -0x1.d808aap-2f, 0x1.b8f7e4p-1f};
    for (std::uint64_t i = 0; i < 8; ++i) {
        INFO("element " << i);
        CHECK(same_bits(rnd::normal_at(0, 0, 0, i), first8[i]));
    }
    std::vector<float> v(100000);
    rnd::fill_normal(v, 0x0123456789abcdefull, 3, 999, 0);
    CHECK(ddpm_test::fnv1a(v) == 0x4951ebe88a452390ull);
    rnd::fill_normal_scalar(v, 0x0123456789abcdefull, 3, 999, 0);
    CHECK(ddpm_test::fnv1a(v) == 0x4951ebe88a452390ull);
    std::vector<float> w(4099);
    rnd::fill_normal(w, 42, 0, 0, (1ull << 40) + 13);
    CHECK(ddpm_test::fnv1a(w) == 0x8218f62199711a68ull);
    rnd::fill_uniform(v, 1, 7, 5, 0);
    CHECK(ddpm_test::fnv1a(v) == 0x9e12e4d43a38b64cull);
}
