// examples/common/random.hpp — deterministic randomness for the demos.
//
//   normal_rng    uniform and standard normal draws from a seeded
//                 std::mt19937_64 (whose output the C++ standard fixes) and a
//                 Box–Muller transform written here: std::normal_distribution
//                 differs between standard libraries, this does not. For data.
// The samplers' noise is the library's ddpm::counter_noise.
#pragma once


#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <random>
#include <span>

namespace examples {

/// Uniform doubles in [0, 1) (53 random bits) and standard normals
/// (Box–Muller, the spare value cached) from a seeded std::mt19937_64.
class normal_rng {
public:
    using result_type = std::mt19937_64::result_type;

    explicit normal_rng(std::uint64_t seed) : m_engine(seed) {}

    /// Uniform in [0, 1).
    double uniform() { return static_cast<double>(m_engine() >> 11) * 0x1.0p-53; }

    /// A standard normal draw.
    double normal() {
        if (m_has_spare) {
            m_has_spare = false;
            return m_spare;
        }
        const double u1 = 1.0 - uniform(); // (0, 1]: log(u1) is finite
        const double u2 = uniform();
        const double r = std::sqrt(-2.0 * std::log(u1));
        const double phi = 2.0 * std::numbers::pi * u2;
        m_spare = r * std::sin(phi);
        m_has_spare = true;
        return r * std::cos(phi);
    }

    /// An integer in [0, n) (n >= 1), by rejection: unbiased.
    std::uint64_t below(std::uint64_t n) {
        const std::uint64_t threshold = (std::uint64_t{0} - n) % n; // 2^64 mod n
        for (;;) {
            const std::uint64_t x = m_engine();
            if (x >= threshold) return x % n;
        }
    }

    /// The underlying engine: a std::uniform_random_bit_generator with full
    /// 64-bit words, as ddpm's timestep samplers expect.
    std::mt19937_64& engine() noexcept { return m_engine; }

private:
    std::mt19937_64 m_engine;
    double m_spare = 0;
    bool m_has_spare = false;
};

} // namespace examples
