// ddpm/buffer.hpp — how ddpm sees the caller's memory.
//
// Every batch function takes "buffers": anything that exposes contiguous
// floating-point storage. `buffer_traits<B>` says how to get the pointer and
// the element count; it is specialised for contiguous ranges here
// (std::vector, std::array, std::span, C arrays) and by the adapters
// (ddpm/adapters/eigen.hpp, ddpm/adapters/xtensor.hpp) for other types, in the
// way fmt::formatter<T> is specialised.
//
// Layout convention: a batch is B samples × D elements, row-major (sample b
// occupies [b·D, (b+1)·D)), one timestep per sample.
#pragma once

#include "ddpm/error.hpp"

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace ddpm {

/// Timesteps are 0-based indices into the schedule tables, t ∈ [0, T).
using timestep_t = std::int64_t;

/// Customisation point. The primary template handles contiguous sized ranges.
template <class B, class = void>
struct buffer_traits {};

template <class B>
    requires std::ranges::contiguous_range<B> && std::ranges::sized_range<B>
struct buffer_traits<B> {
    using value_type = std::remove_cv_t<std::ranges::range_value_t<B>>;
    static constexpr bool writable = !std::is_const_v<std::remove_reference_t<std::ranges::range_reference_t<B>>>;
    static auto data(B& b) noexcept { return std::ranges::data(b); }
    static std::size_t size(B& b) noexcept { return static_cast<std::size_t>(std::ranges::size(b)); }
};

namespace detail {
template <class B>
using traits_of = buffer_traits<std::remove_cvref_t<B>>;
template <class B>
using value_of = typename traits_of<B>::value_type;
} // namespace detail

/// Something ddpm can read: contiguous storage of float or double.
template <class B>
concept input_buffer = requires(std::remove_cvref_t<B>& b) {
    typename detail::traits_of<B>::value_type;
    { detail::traits_of<B>::data(b) };
    { detail::traits_of<B>::size(b) } -> std::convertible_to<std::size_t>;
} && std::floating_point<detail::value_of<B>>;

/// Something ddpm can write: an input_buffer whose elements are not const.
template <class B>
concept output_buffer = input_buffer<B> && detail::traits_of<B>::writable &&
                        !std::is_const_v<std::remove_reference_t<B>>;

/// Per-sample timesteps: a contiguous range of integers.
template <class B>
concept timestep_buffer = std::ranges::contiguous_range<B> && std::ranges::sized_range<B> &&
                          std::integral<std::remove_cv_t<std::ranges::range_value_t<B>>>;

namespace detail {
/// True when viewing B cannot throw (adapters with run-time stride checks can).
template <class B>
inline constexpr bool nothrow_view_v =
    noexcept(traits_of<B>::data(std::declval<std::remove_cvref_t<B>&>())) &&
    noexcept(traits_of<B>::size(std::declval<std::remove_cvref_t<B>&>()));
} // namespace detail

/// A read-only span over any input_buffer.
template <input_buffer B>
[[nodiscard]] auto as_span(const B& b) noexcept(detail::nothrow_view_v<B>) {
    using T = detail::value_of<B>;
    auto& m = const_cast<std::remove_cvref_t<B>&>(b); // traits take B&; we only read
    return std::span<const T>(detail::traits_of<B>::data(m), detail::traits_of<B>::size(m));
}

/// A writable span over any output_buffer.
template <output_buffer B>
[[nodiscard]] auto as_mutable_span(B& b) noexcept(detail::nothrow_view_v<B>) {
    using T = detail::value_of<B>;
    return std::span<T>(detail::traits_of<B>::data(b), detail::traits_of<B>::size(b));
}

namespace detail {

/// Runs an adapter's batch-layout check of a sampler's output, where the
/// adapter has one (Eigen: a ColMajor B×D matrix interleaves the samples).
template <class B>
void check_output_layout(const B& b, std::size_t batch, std::string_view name) {
    if constexpr (requires { traits_of<B>::check_layout(b, batch, name); }) {
        if (batch > 0) traits_of<B>::check_layout(b, batch, name);
    }
}

/// Shape of one batched call: B samples of D elements.
struct batch_shape {
    std::size_t batch = 0;
    std::size_t dim = 0;
    [[nodiscard]] std::size_t elements() const noexcept { return batch * dim; }
};

/// Derives B × D from the timesteps and the first buffer; throws unless the
/// buffer holds a whole number of samples (and at least one timestep given).
inline batch_shape shape_from(std::string_view where, std::size_t num_timesteps, std::string_view buffer_name,
                              std::size_t buffer_size) {
    if (num_timesteps == 0) throw_invalid(where, "timesteps.size()", 0, ">= 1 (one timestep per sample)");
    if (buffer_size % num_timesteps != 0)
        throw_invalid(where, std::string(buffer_name) + ".size()", buffer_size,
                      "a multiple of timesteps.size() = " + std::to_string(num_timesteps) +
                          " (B samples x D elements, batch-first)");
    return {num_timesteps, buffer_size / num_timesteps};
}

/// Throws unless `size` equals `expected` elements.
inline void check_size(std::string_view where, std::string_view name, std::size_t size, std::size_t expected,
                       std::string_view what = "elements (B x D)") {
    if (size != expected)
        throw_invalid(where, std::string(name) + ".size()", size, std::to_string(expected) + " " + std::string(what));
}

/// Throws unless every timestep lies in [0, T).
template <class Ts>
void check_timesteps(std::string_view where, const Ts& timesteps, std::int64_t T) {
    std::size_t i = 0;
    for (const auto t : timesteps) {
        const auto v = static_cast<std::int64_t>(t);
        if (v < 0 || v >= T)
            throw_invalid(where, "timesteps[" + std::to_string(i) + "]", v,
                          "in [0, " + std::to_string(T) + ") (0-based index, t = 0 is the least noisy step)");
        ++i;
    }
}

} // namespace detail
} // namespace ddpm
