// The pool's join protocol (parallel.hpp): workers join a job only while it
// is open, and the caller waits only for those that joined. Back-to-back jobs
// of tiny tasks, with changing thread counts and no spin (workers sleep and
// wake late), must still run every task exactly once and return only when
// all are done.
#include <catch2/catch.hpp>

#include <ddpm/parallel.hpp>

#include <atomic>
#include <chrono>
#include <vector>

using namespace ddpm;
using namespace std::chrono_literals;

TEST_CASE("pool: late workers never run a task twice or after the job returned", "[kernels][parallel]") {
    const auto saved = pool_spin_time();
    for (const auto spin : {0ns, std::chrono::nanoseconds(5us)}) {
        set_pool_spin_time(spin);
        std::vector<std::atomic<int>> hits(257);
        for (int job = 0; job < 2000; ++job) {
            const std::size_t n = 1 + static_cast<std::size_t>(job % 257);
            const unsigned threads = 2 + static_cast<unsigned>(job % 3);
            for (std::size_t i = 0; i < n; ++i) hits[i].store(0, std::memory_order_relaxed);
            parallel_for(execution{threads}, n, [&](std::size_t i) { hits[i].fetch_add(1, std::memory_order_relaxed); });
            // Every task ran once, and the job is over: no worker adds later.
            std::size_t wrong = 0;
            for (std::size_t i = 0; i < n; ++i) wrong += hits[i].load(std::memory_order_relaxed) != 1;
            REQUIRE(wrong == 0);
        }
    }
    set_pool_spin_time(saved);
}
