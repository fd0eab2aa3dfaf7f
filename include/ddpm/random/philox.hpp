// ddpm/random/philox.hpp — the Philox4x32 counter-based generator, scalar.
//
// Philox4x32-R is the counter-based bijection of Salmon, Moraes, Dror and Shaw,
// "Parallel random numbers: as easy as 1, 2, 3" (SC'11), section 3.3: a
// 128-bit counter and a 64-bit key go through R rounds of
//
//     (hi0, lo0) = mulhilo(M0, c0)          (hi1, lo1) = mulhilo(M1, c2)
//     c' = { hi1 ^ c1 ^ k0,  lo1,  hi0 ^ c3 ^ k1,  lo0 }
//
// with the key bumped by the Weyl constants (W0, W1) between rounds. With
// R = 10 (the paper's recommended, "Crush-resistant with a safety margin"
// choice) the output equals Random123's philox4x32 word for word; the tests
// check the published known answers and a sweep against Random123 itself.
//
// Everything here is DDPM_HOST_DEVICE and constexpr: plain <cstdint>
// arithmetic, no library calls, the 32×32→64 multiply written as one 64-bit
// product (nvcc turns it into mul.lo/mul.hi, x86 into one `mul`). The SIMD
// version over xsimd batches is in ddpm/random/philox_simd.hpp.
#pragma once

#include "ddpm/config.hpp"

#include <cstdint>

namespace ddpm::random {

/// The 128-bit Philox4x32 counter (and, after the rounds, the 4 output words).
struct philox4x32_counter {
    std::uint32_t w[4];
};

/// The 64-bit Philox4x32 key.
struct philox4x32_key {
    std::uint32_t w[2];
};

DDPM_HOST_DEVICE constexpr bool operator==(const philox4x32_counter& a, const philox4x32_counter& b) noexcept {
    return a.w[0] == b.w[0] && a.w[1] == b.w[1] && a.w[2] == b.w[2] && a.w[3] == b.w[3];
}
DDPM_HOST_DEVICE constexpr bool operator==(const philox4x32_key& a, const philox4x32_key& b) noexcept {
    return a.w[0] == b.w[0] && a.w[1] == b.w[1];
}

namespace detail {

// Multipliers and Weyl key increments (Salmon et al. 2011, section 3.3; the
// same values as Random123's PHILOX_M4x32_* and PHILOX_W32_*).
inline constexpr std::uint32_t philox_m0 = 0xD2511F53u;
inline constexpr std::uint32_t philox_m1 = 0xCD9E8D57u;
inline constexpr std::uint32_t philox_w0 = 0x9E3779B9u; // golden ratio
inline constexpr std::uint32_t philox_w1 = 0xBB67AE85u; // sqrt(3) - 1

struct mulhilo32_result {
    std::uint32_t hi;
    std::uint32_t lo;
};

/// The full 64-bit product of two 32-bit words, split in halves.
DDPM_HOST_DEVICE DDPM_FORCEINLINE constexpr mulhilo32_result mulhilo32(std::uint32_t a, std::uint32_t b) noexcept {
    const std::uint64_t p = static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b);
    return {static_cast<std::uint32_t>(p >> 32), static_cast<std::uint32_t>(p)};
}

/// One Philox4x32 round (S-box = two mulhilo, P-box = the word permutation).
DDPM_HOST_DEVICE DDPM_FORCEINLINE constexpr philox4x32_counter philox4x32_round(const philox4x32_counter& c,
                                                                                 const philox4x32_key& k) noexcept {
    const mulhilo32_result p0 = mulhilo32(philox_m0, c.w[0]);
    const mulhilo32_result p1 = mulhilo32(philox_m1, c.w[2]);
    return {{p1.hi ^ c.w[1] ^ k.w[0], p1.lo, p0.hi ^ c.w[3] ^ k.w[1], p0.lo}};
}

/// The key schedule: a Weyl sequence added between rounds.
DDPM_HOST_DEVICE DDPM_FORCEINLINE constexpr philox4x32_key philox4x32_bump_key(const philox4x32_key& k) noexcept {
    return {{static_cast<std::uint32_t>(k.w[0] + philox_w0), static_cast<std::uint32_t>(k.w[1] + philox_w1)}};
}

} // namespace detail

/// Philox4x32 with `Rounds` rounds: a bijection of the counter under the key.
/// Rounds = 10 is the standard generator (Random123's philox4x32 default).
template <int Rounds = 10>
[[nodiscard]] DDPM_HOST_DEVICE constexpr philox4x32_counter philox4x32_r(philox4x32_counter counter,
                                                                          philox4x32_key key) noexcept {
    static_assert(Rounds >= 1 && Rounds <= 16, "Philox4x32 is defined for 1..16 rounds");
    counter = detail::philox4x32_round(counter, key);
    for (int r = 1; r < Rounds; ++r) {
        key = detail::philox4x32_bump_key(key);
        counter = detail::philox4x32_round(counter, key);
    }
    return counter;
}

/// Philox4x32-10: four random 32-bit words for one (counter, key).
///
/// (Named philox4x32_10 rather than philox4x32 because Random123's philox.h
/// defines a function-like macro `philox4x32(c, k)`, and ddpm must compile in
/// the same translation unit as Random123.)
[[nodiscard]] DDPM_HOST_DEVICE constexpr philox4x32_counter philox4x32_10(const philox4x32_counter& counter,
                                                                           const philox4x32_key& key) noexcept {
    return philox4x32_r<10>(counter, key);
}

// Compile-time check against Random123's known answer for the zero input
// (kat_vectors: "philox4x32 10 0 0 0 0 0 0 -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8").
static_assert(philox4x32_10({{0u, 0u, 0u, 0u}}, {{0u, 0u}}) ==
              philox4x32_counter{{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}});

} // namespace ddpm::random
