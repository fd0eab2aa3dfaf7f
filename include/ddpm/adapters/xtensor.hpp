// ddpm/adapters/xtensor.hpp — xtensor containers as ddpm buffers.
//
//   #include <ddpm/adapters/xtensor.hpp>   // not part of <ddpm/ddpm.hpp>; needs xtensor ≥ 0.24
//
// After this include the xtensor containers — xt::xarray, xt::xtensor,
// xt::xtensor_fixed and the adaptors returned by xt::adapt — with value_type
// float or double are ddpm input_buffers, and output_buffers when their
// elements are writable:
//
//   xt::xtensor<float, 2> x0({B, D}), noise({B, D}), xt_out({B, D}); // sample b is x0(b, :)
//   ddpm::q_sample(schedule, x0, noise, timesteps, xt_out);
//
// ## Layout
//
// ddpm reads a buffer as B samples × D elements, batch-first and row-major:
// sample b is the storage elements [b·D, (b+1)·D), B being the number of
// timesteps given with the call. A row-major container of shape (B, …) is
// exactly that: axis 0 is the batch, the remaining axes (C, H, W, …) are one
// sample flattened in C order, like a PyTorch or NumPy (B, C, H, W) array.
//   - layout_type::row_major (xtensor's default): accepted, no run-time cost.
//   - layout_type::column_major: rejected at compile time (a static_assert),
//     because its storage interleaves the samples. Copy it into a row-major
//     container first (`xt::xarray<float> r = cm;` converts on assignment).
//   - layout_type::dynamic (xt::xarray<T, layout_type::dynamic>, or
//     xt::adapt(…, shape, strides)): the strides are checked when ddpm views
//     the container; anything but packed row-major strides throws
//     ddpm::invalid_argument before anything is written (through
//     ddpm::as_span, which must be conditionally noexcept for this: the
//     traits' data()/size() are noexcept only for static layouts).
//   - Views (xt::view, xt::strided_view, xt::transpose, …) and lazy
//     expressions are not buffers: evaluate them first (xt::eval, or assign to
//     a container).
//
// `ddpm::as_xtensor(buffer, shape)` goes the other way: it wraps a ddpm buffer
// (a std::vector the sampler filled, a std::span) in a non-owning xtensor
// adaptor with xt::adapt(ptr, n, xt::no_ownership(), shape).
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/error.hpp"

// xtensor ≥ 0.26 moved its headers into subfolders; Debian 12 ships 0.24.
#if __has_include(<xtensor/containers/xadapt.hpp>)
#include <xtensor/containers/xadapt.hpp>
#else
#include <xtensor/xadapt.hpp>
#endif

#include <concepts>
#include <cstddef>
#include <iterator>
#include <ranges>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

namespace ddpm {

namespace detail::xtensor {

/// An xtensor container or adaptor (derived from xt::xcontainer). The
/// requires-expression gates the derived_from check so that other types never
/// name xt::xcontainer<B>.
template <class B>
concept container = requires {
    B::static_layout;
    typename B::value_type;
    typename B::shape_type;
    typename B::strides_type;
} && std::derived_from<B, xt::xcontainer<B>>;

/// True when the strides are the packed row-major strides of the shape
/// (extent-1 axes, whose stride xtensor sets to 0, are ignored).
template <class B>
[[nodiscard]] bool is_row_major_packed(const B& b) noexcept {
    const auto& shape = b.shape();
    const auto& strides = b.strides();
    std::size_t expected = 1;
    for (std::size_t i = std::size(shape); i-- > 0;) {
        const auto extent = static_cast<std::size_t>(shape[i]);
        if (extent == 0) return true; // empty: nothing to read
        if (extent == 1) continue;
        if (static_cast<std::size_t>(strides[i]) != expected) return false;
        expected *= extent;
    }
    return true;
}

/// "(a, b, c)" for a shape or strides (built with appends: GCC 12 warns
/// falsely on `"literal" + std::string` at -O3).
template <class C>
[[nodiscard]] std::string format_extents(const C& c) {
    std::string s = "(";
    bool first = true;
    for (const auto e : c) {
        if (!first) s += ", ";
        s += std::to_string(e);
        first = false;
    }
    s += ")";
    return s;
}

template <class B>
void require_row_major(const B& b) {
    if (is_row_major_packed(b)) return;
    std::string value = format_extents(b.strides());
    value += " for shape ";
    value += format_extents(b.shape());
    throw_invalid("ddpm (xtensor adapter)", "strides", value,
                  "packed row-major strides (ddpm reads batch-first, C order); copy into a row-major "
                  "xt::xarray / xt::xtensor first");
}

template <class B>
struct traits {
    static_assert(B::static_layout != xt::layout_type::column_major,
                  "ddpm: column-major xtensor containers are not batch-first (their storage interleaves the "
                  "samples). Use layout_type::row_major (the default), or copy: xt::xarray<float> r = cm;");
    static constexpr bool dynamic = B::static_layout == xt::layout_type::dynamic;

    using value_type = std::remove_cv_t<typename B::value_type>;
    static constexpr bool writable = !std::is_const_v<std::remove_reference_t<typename B::reference>>;

    static auto data(B& b) noexcept(!dynamic) {
        if constexpr (dynamic) require_row_major(b);
        return b.data();
    }
    static std::size_t size(B& b) noexcept(!dynamic) {
        if constexpr (dynamic) require_row_major(b);
        return static_cast<std::size_t>(b.size());
    }
};

} // namespace detail::xtensor

/// buffer_traits for xtensor containers and adaptors (see the top of this
/// file for the layout rules).
template <class B>
    requires detail::xtensor::container<B>
struct buffer_traits<B> : detail::xtensor::traits<B> {};

/// The same for row-major containers, which are also contiguous ranges: this
/// specialisation is more constrained than the primary contiguous-range one,
/// so it is the one chosen.
template <class B>
    requires std::ranges::contiguous_range<B> && std::ranges::sized_range<B> && detail::xtensor::container<B>
struct buffer_traits<B> : detail::xtensor::traits<B> {};

/// @brief Checks that container `x` holds `batch` samples batch-first: its
/// first axis has extent `batch` (a 1-D container only needs a size that is a
/// multiple of `batch`).
/// @throws ddpm::invalid_argument naming the shape.
template <class B>
    requires detail::xtensor::container<B>
void check_batch_layout(const B& x, std::size_t batch, std::string_view name = "buffer") {
    constexpr std::string_view where = "ddpm::check_batch_layout";
    if (batch == 0) detail::throw_invalid(where, "batch", 0, ">= 1");
    const auto& shape = x.shape();
    const std::size_t rank = std::size(shape);
    const std::string s = detail::xtensor::format_extents(shape);
    std::string parameter(name);
    parameter += ".shape()";
    std::ostringstream expected;
    expected << (rank <= 1 ? "a multiple of batch = " : "shape[0] = ") << batch;
    if (rank <= 1) {
        if (static_cast<std::size_t>(x.size()) % batch != 0)
            detail::throw_invalid(where, parameter, s, expected.str() + " elements");
        return;
    }
    if (static_cast<std::size_t>(shape[0]) != batch)
        detail::throw_invalid(where, parameter, s, expected.str() + " (the batch first: B, ...)");
}

/// @brief Wraps a ddpm buffer in a non-owning xtensor adaptor of the given
/// row-major shape: xt::adapt(ptr, n, xt::no_ownership(), shape). Read-only
/// buffers give an adaptor over const elements.
///
/// @param[in] b     a buffer (std::vector, std::span, …): an lvalue, or a span.
/// @param[in] shape the shape, e.g. std::array<std::size_t, 2>{B, D} (gives
///                  an xtensor_adaptor) or std::vector<std::size_t> (an
///                  xarray_adaptor).
/// @throws ddpm::invalid_argument unless the shape's product is the size.
template <class B, class Shape>
    requires input_buffer<B>
[[nodiscard]] auto as_xtensor(B&& b, const Shape& shape) {
    static_assert(std::is_lvalue_reference_v<B> || std::ranges::borrowed_range<std::remove_cvref_t<B>>,
                  "ddpm::as_xtensor: the buffer must outlive the adaptor; pass an lvalue or a std::span");
    const auto n = as_span(b).size();
    std::size_t product = 1;
    for (const auto e : shape) product *= static_cast<std::size_t>(e);
    if (product != n) {
        std::ostringstream expected;
        expected << "a shape whose product is the buffer's size " << n;
        detail::throw_invalid("ddpm::as_xtensor", "shape", detail::xtensor::format_extents(shape), expected.str());
    }
    if constexpr (output_buffer<B>) return xt::adapt(as_mutable_span(b).data(), n, xt::no_ownership(), shape);
    else return xt::adapt(as_span(b).data(), n, xt::no_ownership(), shape);
}

} // namespace ddpm
