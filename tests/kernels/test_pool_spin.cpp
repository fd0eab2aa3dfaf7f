// The pool's spin before sleeping is measured in time (set_pool_spin_time);
// results never depend on it, nor on the thread count.
#include <catch2/catch.hpp>

#include <ddpm/kernels/fused.hpp>
#include <ddpm/parallel.hpp>

#include <chrono>
#include <cstring>
#include <vector>

using namespace ddpm;
using namespace std::chrono_literals;

TEST_CASE("pool spin time: results do not depend on it", "[kernels][parallel]") {
    const auto saved = pool_spin_time();
    const std::size_t B = 8, D = 20000;
    std::vector<float> x0(B * D), a(B), b(B);
    for (std::size_t i = 0; i < x0.size(); ++i) x0[i] = float(i % 97) / 97.0f - 0.5f;
    for (std::size_t r = 0; r < B; ++r) {
        a[r] = 0.9f - 0.1f * float(r);
        b[r] = 0.2f + 0.05f * float(r);
    }
    const kernels::noise_stream ns{3, 4, 0};
    std::vector<float> xt_ref(B * D), eps_ref(B * D);
    kernels::forward_noise<float>(x0, a, b, ns, xt_ref, eps_ref, {1});
    for (const auto spin : {0ns, std::chrono::nanoseconds(1us), std::chrono::nanoseconds(50us),
                            std::chrono::nanoseconds(2ms)}) {
        set_pool_spin_time(spin);
        REQUIRE(pool_spin_time() == spin);
        for (const unsigned threads : {2u, 3u})
            for (int rep = 0; rep < 5; ++rep) { // back to back: the spin path, then the sleep path
                std::vector<float> xt(B * D), eps(B * D);
                kernels::forward_noise<float>(x0, a, b, ns, xt, eps, {threads});
                REQUIRE(std::memcmp(xt.data(), xt_ref.data(), xt.size() * sizeof(float)) == 0);
                REQUIRE(std::memcmp(eps.data(), eps_ref.data(), eps.size() * sizeof(float)) == 0);
            }
    }
    set_pool_spin_time(saved);
}

TEST_CASE("pool spin time: out-of-range values are refused and change nothing", "[kernels][parallel][errors]") {
    const auto saved = pool_spin_time();
    CHECK_THROWS_AS(set_pool_spin_time(-1ns), ddpm::invalid_argument);
    CHECK_THROWS_AS(set_pool_spin_time(11ms), ddpm::invalid_argument);
    CHECK(pool_spin_time() == saved);
}
