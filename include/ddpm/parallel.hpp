// ddpm/parallel.hpp — a small fork-join pool for the CPU kernels.
//
// Work is cut into tasks whose boundaries do not depend on the thread count,
// and every task writes only its own elements, so results are identical for
// any number of threads (the noise is addressed by (seed, sample, step,
// element), never by "the next draw of this thread").
//
// Threads that never hurt: the calling thread takes tasks like any worker, a
// worker only joins a job while it is open (until the caller has claimed the
// last task), and the caller waits only for the workers that joined. So a
// worker the OS has not scheduled (a loaded machine) costs the caller
// nothing: it runs every task itself, as on one thread, and the late worker
// finds the job closed. Workers spin briefly (pool_spin_time, default 5 µs)
// for the next job, then sleep on a condition variable, so that an idle
// worker does not take the core another runnable process needs.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "ddpm/error.hpp"

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

/// How long a pool thread spins (pause instructions) for a job or for its
/// helpers before it sleeps on a condition variable, in nanoseconds.
[[nodiscard]] inline std::atomic<std::int64_t>& pool_spin_ns() noexcept {
    static std::atomic<std::int64_t> ns{5'000};
    return ns;
}

/// Spins until done() or until pool_spin_ns() have passed (the clock is read
/// every 64 pauses: a pause costs from a few to over 100 cycles depending on
/// the CPU, so a count of pauses is no measure of time).
template <class Done>
void spin_for_pool(Done&& done) noexcept {
    const std::int64_t budget = pool_spin_ns().load(std::memory_order_relaxed);
    if (budget <= 0) return;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(budget);
    for (unsigned k = 1; !done(); ++k) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#else
        std::this_thread::yield();
#endif
        if (k % 64 == 0 && std::chrono::steady_clock::now() >= deadline) return;
    }
}

/// True on a pool worker, and on a calling thread while it runs its share of
/// a job: a parallel_for started there runs inline (a nested job would wait
/// for the workers that are busy running its parent: a deadlock).
[[nodiscard]] inline bool& inside_parallel_task() noexcept {
    thread_local bool inside = false;
    return inside;
}

/// Marks the calling thread as running pool tasks for its lifetime.
class parallel_task_scope {
public:
    parallel_task_scope() noexcept : m_saved(inside_parallel_task()) { inside_parallel_task() = true; }
    parallel_task_scope(const parallel_task_scope&) = delete;
    parallel_task_scope& operator=(const parallel_task_scope&) = delete;
    ~parallel_task_scope() { inside_parallel_task() = m_saved; }

private:
    bool m_saved;
};

/// A persistent pool of worker threads running one fork-join job at a time.
/// The calling thread takes part, so a job on n threads uses n − 1 workers.
/// The pool grows to the largest thread count asked for (a job on fewer
/// threads leaves the other workers asleep) and release() joins them all.
class thread_pool {
public:
    thread_pool() = default;
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;
    ~thread_pool() { release(); }

    /// Worker threads alive now.
    [[nodiscard]] std::size_t workers() {
        std::lock_guard<std::mutex> lock(m_run_mutex);
        return m_workers.size();
    }

    /// Joins every worker; the next job starts the ones it needs again.
    void release() {
        std::lock_guard<std::mutex> run(m_run_mutex);
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_stop = true;
            m_generation.fetch_add(1, std::memory_order_release);
        }
        m_start.notify_all();
        for (auto& t : m_workers) t.join();
        m_workers.clear();
        std::lock_guard<std::mutex> lock(m_mutex);
        m_stop = false;
    }

    /// A type-erased task: call(context, i). No allocation, unlike std::function.
    struct task_ref {
        void (*call)(void*, std::size_t) = nullptr;
        void* context = nullptr;
        void operator()(std::size_t i) const { call(context, i); }
    };

    /// Runs task(i) for i in [0, n) on `threads` threads (the caller and
    /// threads − 1 workers) and returns when all are done. Must not be called
    /// from inside a task (parallel_for runs nested calls inline instead).
    void run(std::size_t n, task_ref task, unsigned threads) {
        if (threads <= 1 || n <= 1) {
            for (std::size_t i = 0; i < n; ++i) task(i);
            return;
        }
        std::unique_lock<std::mutex> lock(m_run_mutex); // one job at a time
        grow(threads - 1);
        {
            std::lock_guard<std::mutex> guard(m_mutex);
            m_task = task;
            m_count = n;
            m_active = threads - 1;
            m_open = true;
            m_next.store(0, std::memory_order_relaxed);
            m_generation.fetch_add(1, std::memory_order_release);
        }
        m_start.notify_all();
        {
            const parallel_task_scope scope;
            drain();
        }
        // Every task is claimed: close the job, so that a worker waking only
        // now does not join it, and wait for the workers that did join (they
        // are running their last task: spin briefly, then sleep).
        {
            std::lock_guard<std::mutex> guard(m_mutex);
            m_open = false;
        }
        if (m_busy.load(std::memory_order_acquire) != 0) {
            spin_for_pool([this] { return m_busy.load(std::memory_order_acquire) == 0; });
            std::unique_lock<std::mutex> wait(m_mutex);
            m_done.wait(wait, [this] { return m_busy.load(std::memory_order_acquire) == 0; });
        }
        m_task = {};
    }

private:
    /// Starts workers until there are `count`; the caller holds m_run_mutex.
    void grow(std::size_t count) {
        if (m_workers.size() >= count) return;
        std::size_t seen = 0;
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            seen = m_generation.load(std::memory_order_acquire);
        }
        m_workers.reserve(count);
        while (m_workers.size() < count) {
            const std::size_t index = m_workers.size();
            m_workers.emplace_back([this, index, seen] { work(index, seen); });
        }
    }

    void drain() {
        for (;;) {
            const std::size_t i = m_next.fetch_add(1, std::memory_order_relaxed);
            if (i >= m_count) return;
            m_task(i);
        }
    }

    void work(std::size_t index, std::size_t seen) {
        inside_parallel_task() = true;
        bool spin_first = false;
        for (;;) {
            // After a job, spin a little for the next one (they come back to
            // back in a sampling loop), then sleep on the condition variable.
            if (spin_first) spin_for_pool([&] { return m_generation.load(std::memory_order_acquire) != seen; });
            {
                std::unique_lock<std::mutex> lock(m_mutex);
                m_start.wait(lock, [&] { return m_generation.load(std::memory_order_acquire) != seen; });
                seen = m_generation.load(std::memory_order_acquire);
                if (m_stop) return;
                // Join only an open job that wants this worker; joining under
                // m_mutex orders it before the caller's close.
                spin_first = index < m_active;
                if (!spin_first || !m_open) continue;
                m_busy.fetch_add(1, std::memory_order_acq_rel);
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
    std::size_t m_active = 0; // workers taking part in the current job
    bool m_open = false;      // whether workers may still join the current job
    std::atomic<std::size_t> m_next{0};
    std::atomic<std::size_t> m_busy{0}; // workers that joined the current job and are not done
    std::atomic<std::size_t> m_generation{0};
    bool m_stop = false;
};

/// The process-wide pool (created on first use; its workers on first need).
[[nodiscard]] inline thread_pool& shared_pool() {
    static thread_pool pool;
    return pool;
}

/// Worker threads alive in the process-wide pool.
[[nodiscard]] inline std::size_t worker_thread_count() { return shared_pool().workers(); }

} // namespace detail

/// Joins the worker threads of parallel_for's process-wide pool (at most the
/// largest `threads` ever asked for, minus one); waits for a running job
/// first. The next parallel_for on more than one thread starts them again.
/// Called from inside a parallel_for task (where joining would wait for
/// itself) it does nothing.
inline void release_worker_threads() {
    if (detail::inside_parallel_task()) return;
    detail::shared_pool().release();
}

/// Sets how long pool threads spin for work (and the caller for its helpers)
/// before sleeping: 0 sleeps at once; default 5 µs (longer spins took the core
/// another process needed on a loaded machine; see docs/benchmarks.md). Measured in time, not in
/// pause instructions. Results never depend on it, only the wake-up latency
/// and the CPU time burnt while waiting.
/// @throws ddpm::invalid_argument for a negative time or one over 10 ms.
inline void set_pool_spin_time(std::chrono::nanoseconds spin) {
    if (spin.count() < 0 || spin > std::chrono::milliseconds(10))
        detail::throw_invalid("ddpm::set_pool_spin_time", "spin (ns)", spin.count(), "between 0 and 10 ms");
    detail::pool_spin_ns().store(spin.count(), std::memory_order_relaxed);
}

/// The spin time set_pool_spin_time() set.
[[nodiscard]] inline std::chrono::nanoseconds pool_spin_time() noexcept {
    return std::chrono::nanoseconds(detail::pool_spin_ns().load(std::memory_order_relaxed));
}

/// Runs task(i) for i in [0, n) with the threads `exec` allows. Allocates
/// nothing (once the pool has grown to the thread count); the calling thread
/// takes part. A parallel_for called from inside a task (for example a
/// sampler with exec.threads > 1 run in a parallel_for) runs inline on the
/// calling thread: results are the same, since tasks never depend on the
/// thread count.
template <class F>
void parallel_for(const execution& exec, std::size_t n, F&& task) {
    const auto threads = static_cast<unsigned>(std::min<std::size_t>(exec.resolved(), std::max<std::size_t>(n, 1)));
    if (threads <= 1 || detail::inside_parallel_task()) {
        for (std::size_t i = 0; i < n; ++i) task(i);
        return;
    }
    using Fn = std::remove_reference_t<F>;
    detail::thread_pool::task_ref ref{[](void* ctx, std::size_t i) { (*static_cast<Fn*>(ctx))(i); },
                                      const_cast<void*>(static_cast<const void*>(std::addressof(task)))};
    detail::shared_pool().run(n, ref, threads);
}

} // namespace ddpm
