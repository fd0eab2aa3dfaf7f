// ddpm/core/overlap.hpp — detecting output buffers that overlap other
// buffers of the same call, where the contract forbids it (for example a
// scheduler step's pred_original_sample, written before the inputs are read
// when dynamic thresholding is on).
#pragma once

#include "ddpm/error.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ddpm::detail {

/// True when the memory of `a` and `b` intersects (empty spans never do).
/// Compares addresses as integers: `<` on pointers into unrelated arrays is
/// unspecified.
template <class A, class B>
[[nodiscard]] bool overlaps(std::span<A> a, std::span<B> b) noexcept {
    if (a.empty() || b.empty()) return false;
    const auto a0 = reinterpret_cast<std::uintptr_t>(a.data());
    const auto b0 = reinterpret_cast<std::uintptr_t>(b.data());
    return a0 < b0 + b.size_bytes() && b0 < a0 + a.size_bytes();
}

/// Throws ddpm::invalid_argument when the output `out` (called `out_name`)
/// overlaps `other` (called `other_name`). Called before anything is written.
template <class A, class B>
void check_no_overlap(std::string_view where, std::string_view out_name, std::span<A> out,
                      std::string_view other_name, std::span<B> other) {
    if (overlaps(out, other))
        throw_invalid(where, out_name, "a buffer that overlaps " + std::string(other_name),
                      "a buffer that does not overlap " + std::string(other_name) + " (" + std::string(out_name) +
                          " is written while " + std::string(other_name) + " is still needed)");
}

} // namespace ddpm::detail
