// ddpm/dispatch/isa.hpp — run-time choice of the instruction set for the
// SIMD kernels and the counter-noise generator.
//
// The kernels are templates compiled at the flags of the caller's translation
// unit (xsimd::default_arch: SSE2 on a default x86-64 build). On top of that,
// the CMake target ddpm::xsimd links one object file per extra instruction set
// (today: AVX2+FMA, include/ddpm/dispatch/arch_avx2.cpp, compiled with
// -mavx2 -mfma -ffp-contract=off). Each such file instantiates the kernels at
// its xsimd arch and, during static initialisation, registers a table of
// function pointers here. At each call the kernels ask for the table of the
// best registered instruction set that the CPU supports (cpuid, through
// __builtin_cpu_supports) and that beats the compile-time one; with no table
// (plain `-I include`, or a CPU without AVX2) they run the compile-time code.
//
// Every path gives the same bits: the noise is bit-identical on every arch by
// construction (random/detail/simd_ops.hpp), and the element-wise kernels
// perform the same IEEE operations in the same order on every width (the
// arch files are compiled with -ffp-contract=off so no multiply-add is fused).
//
// Forcing a path (tests, benchmarks, bug reports): the environment variable
// DDPM_FORCE_ISA=baseline|avx2|avx512 (read once, at the first kernel call),
// or dispatch::force_isa(). `baseline` is the compile-time code; forcing an
// instruction set that is not registered or not supported by the CPU throws
// ddpm::invalid_argument from the next kernel call (force_isa throws at once).
#pragma once

#include "ddpm/config.hpp"
#include "ddpm/error.hpp"

#include <array>
#include <atomic>
#include <cstdlib>
#include <string>
#include <string_view>

namespace ddpm::dispatch {

/// The instruction sets a kernel table can be registered for, in order.
enum class isa : int {
    baseline = 0, ///< the code compiled at the caller's flags (xsimd::default_arch)
    avx2 = 1,     ///< AVX2 + FMA (x86-64-v3)
    avx512 = 2,   ///< AVX-512F (no table is built yet; reserved)
};
inline constexpr int isa_count = 3;

[[nodiscard]] constexpr std::string_view name(isa i) noexcept {
    switch (i) {
    case isa::avx2: return "avx2";
    case isa::avx512: return "avx512";
    case isa::baseline: break;
    }
    return "baseline";
}

/// The best instruction set the compile-time code already uses (a table is
/// only worth calling when it is better than this).
inline constexpr isa compiled_isa =
#if defined(__AVX512F__)
    isa::avx512;
#elif defined(__AVX2__) && defined(__FMA__)
    isa::avx2;
#else
    isa::baseline;
#endif

/// Whether this CPU can run code built for `i`.
[[nodiscard]] inline bool cpu_supports(isa i) noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    // __builtin_cpu_init: the registration may run before libgcc's own
    // constructor has filled in the CPU model.
    static const bool has_avx2 = (__builtin_cpu_init(), __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
    static const bool has_avx512 = (__builtin_cpu_init(), __builtin_cpu_supports("avx512f") != 0);
    switch (i) {
    case isa::baseline: return true;
    case isa::avx2: return has_avx2;
    case isa::avx512: return has_avx512;
    }
    return false;
#else
    return i == isa::baseline;
#endif
}

namespace detail {

/// The registered tables of one kind (a struct of function pointers), one slot
/// per instruction set; null where none was linked. Zero-initialised before
/// any dynamic initialisation, filled by the arch files' static initialisers.
template <class Table>
inline std::atomic<const Table*> registered[isa_count]{};

/// Whether any table is registered for each isa (force_isa checks it).
inline std::atomic<bool> any_registered[isa_count]{};

/// -1: automatic; otherwise the forced isa. -2: not read yet.
inline std::atomic<int> forced{-2};
/// The unparsable DDPM_FORCE_ISA value, if any (reported by resolve()).
inline std::atomic<bool> forced_invalid{false};

inline int read_forced() noexcept {
    int f = forced.load(std::memory_order_acquire);
    if (f != -2) return f;
    int parsed = -1;
    const char* env = std::getenv("DDPM_FORCE_ISA");
    if (env != nullptr && *env != '\0') {
        const std::string_view v(env);
        if (v == "baseline") parsed = 0;
        else if (v == "avx2") parsed = 1;
        else if (v == "avx512") parsed = 2;
        else forced_invalid.store(true, std::memory_order_relaxed);
    }
    int expected = -2;
    forced.compare_exchange_strong(expected, parsed, std::memory_order_acq_rel);
    return forced.load(std::memory_order_acquire);
}

} // namespace detail

/// Registers `table` as the implementation of its kind for `i` (called by the
/// arch files during static initialisation; registering again replaces it).
template <class Table>
void register_table(isa i, const Table* table) noexcept {
    detail::registered<Table>[static_cast<int>(i)].store(table, std::memory_order_release);
    detail::any_registered[static_cast<int>(i)].store(true, std::memory_order_release);
}

/// Whether kernels for `i` are linked and this CPU runs them (baseline: always).
[[nodiscard]] inline bool available(isa i) noexcept {
    return i == isa::baseline ||
           (detail::any_registered[static_cast<int>(i)].load(std::memory_order_acquire) && cpu_supports(i));
}

/// Whether a table of kind `Table` is registered for `i` and the CPU runs it.
template <class Table>
[[nodiscard]] bool available(isa i) noexcept {
    if (i == isa::baseline) return true;
    return detail::registered<Table>[static_cast<int>(i)].load(std::memory_order_acquire) != nullptr &&
           cpu_supports(i);
}

/// The table a kernel call of kind `Table` uses, or null for the compile-time
/// code: the forced isa when one is forced, else the best registered one the
/// CPU supports that beats compiled_isa. Never throws: a forced isa that is
/// not available gives null (resolve() reports it).
template <class Table>
[[nodiscard]] const Table* table_nothrow() noexcept {
    const int f = detail::read_forced();
    if (f >= 0) {
        if (f == 0 || !available<Table>(static_cast<isa>(f))) return nullptr;
        return detail::registered<Table>[f].load(std::memory_order_acquire);
    }
    for (int i = isa_count - 1; i > static_cast<int>(compiled_isa); --i)
        if (available<Table>(static_cast<isa>(i))) return detail::registered<Table>[i].load(std::memory_order_acquire);
    return nullptr;
}

/// table_nothrow(), but a forced isa that is unknown, not registered or not
/// supported by this CPU throws ddpm::invalid_argument naming it.
template <class Table>
[[nodiscard]] const Table* resolve(std::string_view where) {
    const int f = detail::read_forced();
    if (f < 0 && detail::forced_invalid.load(std::memory_order_relaxed))
        ddpm::detail::throw_invalid(where, "DDPM_FORCE_ISA", std::string(std::getenv("DDPM_FORCE_ISA") ? std::getenv("DDPM_FORCE_ISA") : ""),
                                    "baseline, avx2 or avx512");
    if (f > 0 && !available<Table>(static_cast<isa>(f)))
        ddpm::detail::throw_invalid(where, "forced isa", std::string(name(static_cast<isa>(f))),
                                    "an instruction set this CPU supports and whose kernels are linked "
                                    "(link ddpm::xsimd through CMake)");
    return table_nothrow<Table>();
}

/// Forces every later kernel call onto `i` (baseline: the compile-time code),
/// overriding DDPM_FORCE_ISA. Throws ddpm::invalid_argument if `i` is not
/// available (see available()).
inline void force_isa(isa i) {
    if (!available(i))
        ddpm::detail::throw_invalid("ddpm::dispatch::force_isa", "isa", std::string(name(i)),
                                    "an instruction set this CPU supports and whose kernels are linked");
    detail::read_forced();
    detail::forced.store(static_cast<int>(i), std::memory_order_release);
    detail::forced_invalid.store(false, std::memory_order_relaxed);
}

/// The isa kernel calls of kind `Table` use now (after forcing and the CPU).
template <class Table>
[[nodiscard]] isa active() noexcept {
    const Table* t = table_nothrow<Table>();
    for (int i = 1; i < isa_count; ++i)
        if (t != nullptr && detail::registered<Table>[i].load(std::memory_order_acquire) == t) return static_cast<isa>(i);
    return isa::baseline;
}

/// Back to automatic choice (DDPM_FORCE_ISA is no longer consulted).
inline void automatic() noexcept {
    detail::read_forced();
    detail::forced.store(-1, std::memory_order_release);
    detail::forced_invalid.store(false, std::memory_order_relaxed);
}

} // namespace ddpm::dispatch
