// Philox4x32: Random123's known answers, a sweep against Random123 itself, and
// the SIMD version against the scalar one on every arch.
#include <catch2/catch.hpp>

#include <ddpm/random/philox.hpp>
#include <ddpm/random/philox_simd.hpp>

// After ddpm on purpose: Random123 defines a function-like macro philox4x32(c, k).
#include <Random123/philox.h>

#include "random_test_support.hpp"

#include <cstdint>
#include <random>

using ddpm::random::philox4x32_counter;
using ddpm::random::philox4x32_key;

namespace {

philox4x32_counter reference(const philox4x32_counter& c, const philox4x32_key& k, unsigned rounds = 10) {
    const r123array4x32 rc = {{c.w[0], c.w[1], c.w[2], c.w[3]}};
    const r123array2x32 rk = {{k.w[0], k.w[1]}};
    const r123array4x32 r = philox4x32_R(rounds, rc, rk);
    return {{r.v[0], r.v[1], r.v[2], r.v[3]}};
}

template <int R>
philox4x32_counter ours(const philox4x32_counter& c, const philox4x32_key& k) {
    return ddpm::random::philox4x32_r<R>(c, k);
}

template <int... R>
philox4x32_counter ours_rounds(unsigned rounds, const philox4x32_counter& c, const philox4x32_key& k,
                               std::integer_sequence<int, R...>) {
    philox4x32_counter out{};
    ((rounds == static_cast<unsigned>(R + 1) ? (out = ours<R + 1>(c, k), 0) : 0), ...);
    return out;
}

} // namespace

TEST_CASE("philox4x32_10 reproduces Random123's known answers", "[random][philox]") {
    // Random123 kat_vectors, "philox4x32 10" lines: counter, key -> output.
    struct kat {
        philox4x32_counter ctr;
        philox4x32_key key;
        philox4x32_counter expected;
    };
    const kat kats[] = {
        {{{0u, 0u, 0u, 0u}}, {{0u, 0u}}, {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
        {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
         {{0xffffffffu, 0xffffffffu}},
         {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
        {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
         {{0xa4093822u, 0x299f31d0u}},
         {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
    };
    for (const kat& k : kats) {
        CHECK(ddpm::random::philox4x32_10(k.ctr, k.key) == k.expected);
        CHECK(reference(k.ctr, k.key) == k.expected); // and Random123 agrees with the table
    }
    // The same through the Random123 C++ class.
    r123::Philox4x32 g;
    const r123::Philox4x32::ctr_type c = {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}};
    const r123::Philox4x32::key_type k = {{0xa4093822u, 0x299f31d0u}};
    const r123::Philox4x32::ctr_type r = g(c, k);
    CHECK(r[0] == 0xd16cfe09u);
    CHECK(r[3] == 0x24126ea1u);
}

TEST_CASE("philox4x32 is usable in constant expressions", "[random][philox]") {
    constexpr philox4x32_counter z = ddpm::random::philox4x32_10({{0u, 0u, 0u, 0u}}, {{0u, 0u}});
    STATIC_REQUIRE(z.w[0] == 0x6627e8d5u);
    STATIC_REQUIRE(z.w[3] == 0x9b00dbd8u);
}

TEST_CASE("philox4x32 equals Random123 on random counters and keys for every round count", "[random][philox]") {
    std::mt19937_64 rng(20240611);
    std::uniform_int_distribution<std::uint32_t> word;
    for (int n = 0; n < 20000; ++n) {
        const philox4x32_counter c{{word(rng), word(rng), word(rng), word(rng)}};
        const philox4x32_key k{{word(rng), word(rng)}};
        const philox4x32_counter expected = reference(c, k);
        const philox4x32_counter got = ddpm::random::philox4x32_10(c, k);
        if (!(got == expected)) {
            FAIL_CHECK("mismatch at n = " << n);
            break;
        }
    }
    for (unsigned rounds = 1; rounds <= 16; ++rounds) {
        INFO("rounds = " << rounds);
        for (int n = 0; n < 200; ++n) {
            const philox4x32_counter c{{word(rng), word(rng), word(rng), word(rng)}};
            const philox4x32_key k{{word(rng), word(rng)}};
            CHECK(ours_rounds(rounds, c, k, std::make_integer_sequence<int, 16>{}) == reference(c, k, rounds));
        }
    }
    // Carries across the counter words and the key schedule's wrap-around.
    for (std::uint32_t a : {0u, 1u, 0x7fffffffu, 0x80000000u, 0xfffffffeu, 0xffffffffu})
        for (std::uint32_t b : {0u, 0xffffffffu}) {
            const philox4x32_counter c{{a, b, a ^ b, ~a}};
            const philox4x32_key k{{b, a}};
            CHECK(ddpm::random::philox4x32_10(c, k) == reference(c, k));
        }
}

#if DDPM_HAS_XSIMD
TEMPLATE_LIST_TEST_CASE("philox4x32 over xsimd batches equals the scalar generator lane by lane", "[random][philox][simd]",
                        ddpm_test::simd_archs) {
    using arch = TestType;
    using batch = ddpm::random::philox4x32_batch<arch>;
    constexpr std::size_t w = batch::size;
    INFO("arch = " << arch::name() << ", W = " << w);
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<std::uint32_t> word;
    for (int n = 0; n < 500; ++n) {
        alignas(64) std::uint32_t lanes[4][w];
        for (auto& row : lanes)
            for (auto& x : row) x = word(rng);
        if (n == 0) // extreme words in the first round
            for (std::size_t l = 0; l < w; ++l)
                for (auto& row : lanes) row[l] = (l % 2) ? 0xffffffffu : 0u;
        const philox4x32_key k{{word(rng), word(rng)}};
        batch c;
        for (int j = 0; j < 4; ++j) c.w[j] = batch::batch_type::load_unaligned(lanes[j]);
        const batch out = ddpm::random::philox4x32_10(c, k);
        const batch out7 = ddpm::random::philox4x32_r<7>(c, k);
        alignas(64) std::uint32_t got[4][w];
        alignas(64) std::uint32_t got7[4][w];
        for (int j = 0; j < 4; ++j) {
            out.w[j].store_unaligned(got[j]);
            out7.w[j].store_unaligned(got7[j]);
        }
        for (std::size_t l = 0; l < w; ++l) {
            const philox4x32_counter cl{{lanes[0][l], lanes[1][l], lanes[2][l], lanes[3][l]}};
            const philox4x32_counter e = ddpm::random::philox4x32_10(cl, k);
            const philox4x32_counter e7 = ddpm::random::philox4x32_r<7>(cl, k);
            for (int j = 0; j < 4; ++j) {
                if (got[j][l] != e.w[j] || got7[j][l] != e7.w[j]) {
                    FAIL("lane " << l << " word " << j << " differs at n = " << n);
                }
            }
        }
    }
}
#endif
