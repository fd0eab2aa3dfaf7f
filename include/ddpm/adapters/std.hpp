// ddpm/adapters/std.hpp — standard containers, C arrays and pointer + size.
//
// Nothing here is needed to pass standard containers to ddpm: the primary
// `ddpm::buffer_traits` (ddpm/buffer.hpp) already accepts every contiguous,
// sized range of float or double —
//
//   std::vector<T>, std::array<T, N>, T[N], std::span<T> / std::span<const T>,
//   std::valarray<T>, …
//
// — as inputs, and as outputs when the elements are not const. This header
// documents that (the static_asserts below are checked wherever it is
// included) and adds `ddpm::view` for memory that arrives as a pointer and a
// length (a C API, a network runtime's output tensor, a memory-mapped file).
//
// Layout: ddpm reads every buffer as B samples × D elements, batch-first and
// row-major — sample b is the elements [b·D, (b+1)·D). B is the number of
// timesteps passed with the call; D is the buffer's size divided by B.
//
//   #include <ddpm/adapters/std.hpp>
//   const float* x0 = runtime_output(); // B·D floats owned elsewhere
//   std::vector<float> noise(B * D), xt(B * D);
//   ddpm::q_sample(schedule, ddpm::view(x0, B * D), noise, timesteps, xt);
//   ddpm::q_sample(schedule, x0_vec, noise, timesteps, ddpm::view(out_ptr, B * D)); // writes through out_ptr
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/error.hpp"

#include <array>
#include <cstddef>
#include <span>
#include <type_traits>
#include <vector>

namespace ddpm {

/// @brief A span over `n` elements at `ptr`: the pointer + size adapter.
///
/// `view(const T*, n)` gives a read-only buffer (`std::span<const T>`),
/// `view(T*, n)` a writable one (`std::span<T>`). The span does not own the
/// memory; it must outlive every call that uses it.
///
/// @tparam T float or double (possibly const).
/// @param[in] ptr first element; may be null only when `n` is 0.
/// @param[in] n   number of elements (B·D for a batch).
/// @throws ddpm::invalid_argument when `ptr` is null and `n` > 0.
template <class T>
    requires std::floating_point<std::remove_const_t<T>>
[[nodiscard]] std::span<T> view(T* ptr, std::size_t n) {
    if (ptr == nullptr && n != 0) detail::throw_invalid("ddpm::view", "ptr", "nullptr", "a valid pointer when n > 0");
    return std::span<T>(ptr, n);
}

namespace detail::std_adapter_checks {
// What the primary buffer_traits accepts, checked where this header is used.
static_assert(input_buffer<std::vector<float>> && output_buffer<std::vector<double>&>);
static_assert(input_buffer<std::array<float, 4>> && output_buffer<std::array<double, 4>&>);
static_assert(input_buffer<float[4]> && output_buffer<double (&)[4]>);
static_assert(input_buffer<std::span<const float>> && !output_buffer<std::span<const float>>);
static_assert(output_buffer<std::span<float>>, "a span of non-const elements is writable even when passed by value");
static_assert(!output_buffer<const std::vector<float>&>, "const containers are inputs only");
static_assert(!input_buffer<std::vector<int>>, "elements must be float or double");
} // namespace detail::std_adapter_checks

} // namespace ddpm
