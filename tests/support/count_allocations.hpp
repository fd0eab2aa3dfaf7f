// tests/support/count_allocations.hpp — replaces the global allocation
// functions with malloc/free ones that count calls, for the "no allocation
// inside the loop" tests. Include it in exactly one source file of a test
// executable (it defines the replacements); read ddpm_test::allocations().
// Every non-aligned form is replaced, so new/delete pairs stay matched.
#pragma once

// GCC's -Wmismatched-new-delete cannot see that operator new is replaced too.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace ddpm_test {
inline std::atomic<std::size_t> g_allocations{0};
/// Allocations made so far by the whole executable.
inline std::size_t allocations() noexcept { return g_allocations.load(std::memory_order_relaxed); }
} // namespace ddpm_test

void* operator new(std::size_t n) {
    ddpm_test::g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    ddpm_test::g_allocations.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t& tag) noexcept { return ::operator new(n, tag); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
