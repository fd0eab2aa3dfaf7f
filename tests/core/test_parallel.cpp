// ddpm/parallel.hpp: nested parallel_for runs inline instead of deadlocking,
// and the worker threads are bounded and can be released (issue 11, item 2).
// Also built under ThreadSanitizer by scripts/build-and-test.sh --tsan.
#include <catch2/catch.hpp>

#include <ddpm/ddpm.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <future>
#include <numeric>
#include <thread>
#include <vector>

namespace {

/// Runs f on another thread and fails (instead of hanging the suite) when it
/// has not finished within `limit`. A deadlocked f leaves its thread behind,
/// so the process is ended by ctest's timeout if that happens.
template <class F>
bool finishes_within(std::chrono::seconds limit, F f) {
    std::packaged_task<void()> task(std::move(f));
    auto done = task.get_future();
    std::thread(std::move(task)).detach();
    if (done.wait_for(limit) != std::future_status::ready) return false;
    done.get(); // rethrows
    return true;
}

} // namespace

TEST_CASE("parallel_for: nested calls run inline instead of deadlocking", "[parallel]") {
    const unsigned threads = GENERATE(2u, 3u);
    INFO("threads " << threads);
    constexpr std::size_t outer = 64, inner = 257;
    std::vector<std::atomic<int>> hits(outer * inner);
    const bool ok = finishes_within(std::chrono::seconds(20), [&] {
        ddpm::parallel_for(ddpm::execution{threads}, outer, [&](std::size_t i) {
            // Same thread count (the deadlock of issue 11), and another one.
            ddpm::parallel_for(ddpm::execution{threads}, inner / 2, [&](std::size_t j) { hits[i * inner + j]++; });
            ddpm::parallel_for(ddpm::execution{threads + 1}, inner - inner / 2,
                               [&](std::size_t j) { hits[i * inner + inner / 2 + j]++; });
        });
    });
    REQUIRE(ok);
    for (const auto& h : hits) REQUIRE(h.load() == 1);
}

TEST_CASE("sample() with threads inside a parallel_for task does not deadlock", "[parallel][samplers]") {
    const ddpm::noise_schedule s(ddpm::schedule_config{.num_train_timesteps = 20});
    const ddpm::ddpm_scheduler<float> scheduler(s);
    constexpr std::size_t B = 64, D = 4096; // enough work per call for several tasks
    const auto model = [](std::span<const float> x, std::span<const ddpm::timestep_t>, std::span<float> out) {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = 0.1f * x[i];
    };
    std::vector<std::vector<float>> results(2, std::vector<float>(B * D));
    const bool ok = finishes_within(std::chrono::seconds(60), [&] {
        ddpm::parallel_for(ddpm::execution{2}, 2, [&](std::size_t r) {
            ddpm::sampler_options opt;
            opt.batch = B;
            opt.exec.threads = 2;
            ddpm::counter_noise noise(7);
            (void)ddpm::sample(scheduler, model, noise, results[r], opt);
        });
    });
    REQUIRE(ok);
    CHECK(results[0] == results[1]); // same seed, same result, whichever thread ran it
}

TEST_CASE("parallel_for: worker threads are bounded by the largest count and can be released", "[parallel]") {
    ddpm::release_worker_threads();
    CHECK(ddpm::detail::worker_thread_count() == 0);
    std::atomic<std::size_t> sum{0};
    for (unsigned threads = 2; threads <= 40; ++threads)
        ddpm::parallel_for(ddpm::execution{threads}, 100, [&](std::size_t i) { sum += i; });
    CHECK(sum.load() == 39u * 4950u);
    // One set of workers for every thread count: 39 for the largest request
    // (40 threads, the caller included), not one pool per count.
    CHECK(ddpm::detail::worker_thread_count() == 39);
    ddpm::release_worker_threads();
    CHECK(ddpm::detail::worker_thread_count() == 0);
    // The pool starts again on demand, and results do not depend on the count.
    std::vector<int> a(1000), b(1000);
    ddpm::parallel_for(ddpm::execution{3}, a.size(), [&](std::size_t i) { a[i] = static_cast<int>(i * i % 97); });
    ddpm::parallel_for(ddpm::execution{1}, b.size(), [&](std::size_t i) { b[i] = static_cast<int>(i * i % 97); });
    CHECK(a == b);
    CHECK(ddpm::detail::worker_thread_count() == 2);
    // From inside a task, releasing would wait for itself: it does nothing.
    const bool ok = finishes_within(std::chrono::seconds(20), [] {
        ddpm::parallel_for(ddpm::execution{2}, 8, [](std::size_t) { ddpm::release_worker_threads(); });
    });
    REQUIRE(ok);
    CHECK(ddpm::detail::worker_thread_count() == 2);
    ddpm::release_worker_threads();
}

TEST_CASE("parallel_for: concurrent callers with different thread counts", "[parallel]") {
    std::vector<std::thread> callers;
    std::vector<long> totals(4, 0);
    for (unsigned c = 0; c < 4; ++c)
        callers.emplace_back([&, c] {
            for (int rep = 0; rep < 20; ++rep) {
                std::vector<long> v(300);
                ddpm::parallel_for(ddpm::execution{2 + c}, v.size(), [&](std::size_t i) { v[i] = static_cast<long>(i); });
                totals[c] += std::accumulate(v.begin(), v.end(), 0L);
            }
        });
    for (auto& t : callers) t.join();
    for (const long t : totals) CHECK(t == 20L * (299L * 300L / 2));
}
