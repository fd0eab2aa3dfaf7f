// ddpm/parallel.hpp — a small fork-join pool for the CPU kernels.
//
// Work is cut into tasks whose boundaries do not depend on the thread count,
// and every task writes only its own elements, so results are identical for
// any number of threads (the noise is addressed by (seed, sample, step,
// element), never by "the next draw of this thread").
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace ddpm {

/// How many threads a kernel may use. 1 (the default) runs on the calling
/// thread; 0 means std::thread::hardware_concurrency().
struct execution {
    unsigned threads = 1;

    [[nodiscard]] unsigned resolved() const noexcept {
        if (threads != 0) return threads;
        const unsigned h = std::thread::hardware_concurrency();
        return h == 0 ? 1u : h;
    }
};

namespace detail {

/// A persistent pool of worker threads running one fork-join job at a time.
/// The calling thread takes part, so a pool for n threads owns n − 1 workers.
class thread_pool {
public:
    explicit thread_pool(unsigned threads) {
        for (unsigned i = 1; i < threads; ++i) m_workers.emplace_back([this] { work(); });
    }
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;
    ~thread_pool() {
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_stop = true;
            m_generation.fetch_add(1, std::memory_order_release);
        }
        m_start.notify_all();
        for (auto& t : m_workers) t.join();
    }

    [[nodiscard]] unsigned size() const noexcept { return static_cast<unsigned>(m_workers.size()) + 1; }

    /// A type-erased task: call(context, i). No allocation, unlike std::function.
    struct task_ref {
        void (*call)(void*, std::size_t) = nullptr;
        void* context = nullptr;
        void operator()(std::size_t i) const { call(context, i); }
    };

    /// Runs task(i) for i in [0, n) on all threads and returns when all are done.
    void run(std::size_t n, task_ref task) {
        if (m_workers.empty() || n <= 1) {
            for (std::size_t i = 0; i < n; ++i) task(i);
            return;
        }
        std::unique_lock<std::mutex> lock(m_run_mutex); // one job at a time
        {
            std::lock_guard<std::mutex> guard(m_mutex);
            m_task = task;
            m_count = n;
            m_next.store(0, std::memory_order_relaxed);
            m_busy.store(m_workers.size(), std::memory_order_relaxed);
            m_generation.fetch_add(1, std::memory_order_release);
        }
        m_start.notify_all();
        drain();
        // Kernels take tens to hundreds of microseconds: spin briefly for the
        // workers before sleeping, so that waking costs little.
        for (int spin = 0; spin < spin_limit && m_busy.load(std::memory_order_acquire) != 0; ++spin) pause();
        std::unique_lock<std::mutex> wait(m_mutex);
        m_done.wait(wait, [this] { return m_busy.load(std::memory_order_acquire) == 0; });
        m_task = {};
    }

private:
    void drain() {
        for (;;) {
            const std::size_t i = m_next.fetch_add(1, std::memory_order_relaxed);
            if (i >= m_count) return;
            m_task(i);
        }
    }

    static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#else
        std::this_thread::yield();
#endif
    }

    void work() {
        std::size_t seen = 0;
        for (;;) {
            // Spin a little for the next job (they come back to back in a
            // sampling loop), then sleep on the condition variable.
            for (int spin = 0; spin < spin_limit && m_generation.load(std::memory_order_acquire) == seen; ++spin) pause();
            {
                std::unique_lock<std::mutex> lock(m_mutex);
                m_start.wait(lock, [&] { return m_generation.load(std::memory_order_acquire) != seen; });
                seen = m_generation.load(std::memory_order_acquire);
                if (m_stop) return;
            }
            drain();
            if (m_busy.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                std::lock_guard<std::mutex> lock(m_mutex);
                m_done.notify_one();
            }
        }
    }

    std::vector<std::thread> m_workers;
    std::mutex m_mutex;
    std::mutex m_run_mutex;
    std::condition_variable m_start;
    std::condition_variable m_done;
    task_ref m_task{};
    std::size_t m_count = 0;
    std::atomic<std::size_t> m_next{0};
    static constexpr int spin_limit = 20000; // about 20–100 µs of pause instructions
    std::atomic<std::size_t> m_busy{0};
    std::atomic<std::size_t> m_generation{0};
    bool m_stop = false;
};

/// The process-wide pool for `threads` threads (created on first use).
inline thread_pool& pool_for(unsigned threads) {
    static std::mutex mutex;
    static std::vector<std::unique_ptr<thread_pool>> pools;
    std::lock_guard<std::mutex> lock(mutex);
    for (auto& p : pools)
        if (p->size() == threads) return *p;
    pools.push_back(std::make_unique<thread_pool>(threads));
    return *pools.back();
}

} // namespace detail

/// Runs task(i) for i in [0, n) with the threads `exec` allows. Allocates
/// nothing (after the pool for a thread count exists); the calling thread
/// takes part.
template <class F>
void parallel_for(const execution& exec, std::size_t n, F&& task) {
    const auto threads = static_cast<unsigned>(std::min<std::size_t>(exec.resolved(), std::max<std::size_t>(n, 1)));
    if (threads <= 1) {
        for (std::size_t i = 0; i < n; ++i) task(i);
        return;
    }
    using Fn = std::remove_reference_t<F>;
    detail::thread_pool::task_ref ref{[](void* ctx, std::size_t i) { (*static_cast<Fn*>(ctx))(i); },
                                      const_cast<void*>(static_cast<const void*>(std::addressof(task)))};
    detail::pool_for(threads).run(n, ref);
}

} // namespace ddpm
