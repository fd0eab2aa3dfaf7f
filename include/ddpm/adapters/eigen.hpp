// ddpm/adapters/eigen.hpp — Eigen dense objects as ddpm buffers.
//
//   #include <ddpm/adapters/eigen.hpp>   // not part of <ddpm/ddpm.hpp>; needs Eigen ≥ 3.3
//
// After this include every Eigen dense object with direct access and scalar
// float or double — Matrix, Array, Map, Ref and blocks of them — is a ddpm
// input_buffer, and an output_buffer when it is writable (not const, not a
// Map<const …>/Ref<const …>):
//
//   using batch_t = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
//   batch_t x0(B, D), noise(B, D), xt(B, D);      // sample b is row b
//   ddpm::q_sample(schedule, x0, noise, timesteps, xt);
//
// ## Contiguity
//
// ddpm reads a buffer as one block of size() elements in storage order, so the
// object must be contiguous: inner stride 1 and outer stride = inner size.
//   - Matrix, Array, Map without a Stride, vectors with unit inner stride and
//     Ref<VectorX…> are contiguous by type: no run-time check.
//   - A stride that is known at compile time and breaks contiguity (for
//     example Map<VectorXf, 0, InnerStride<2>>) is a static_assert.
//   - Objects whose strides are only known at run time (Map with
//     OuterStride<> / InnerStride<> / Stride<Dynamic, Dynamic>, Ref<MatrixX…>,
//     blocks) are checked when ddpm views them; a non-contiguous one throws
//     ddpm::invalid_argument before anything is written. Blocks of whole rows
//     of a RowMajor matrix (topRows, middleRows, row(b)) and of whole columns
//     of a ColMajor matrix (leftCols, col(b)) pass; leftCols of a RowMajor
//     matrix does not. m.transpose() views the same storage and passes too.
//   - Expressions without storage (a + b, m.cwiseAbs(), m * 2) are not
//     buffers: evaluate them first (.eval(), or assign to a Matrix).
//   The traits' data()/size() are noexcept exactly when no run-time check is
//   needed, so the error reaches the caller through ddpm::as_span when as_span
//   is conditionally noexcept (ddpm/buffer.hpp).
//
// ## Batch layout — which samples are where
//
// ddpm's batch is B samples × D elements, batch-first: sample b is the storage
// elements [b·D, (b+1)·D). B is the number of timesteps given with the call.
//   - RowMajor B×D matrix (Matrix<T, Dynamic, Dynamic, RowMajor>): sample b is
//     row b. This is the natural choice and mirrors a PyTorch (B, D) tensor.
//   - ColMajor D×B matrix (Eigen's default MatrixX…): sample b is column b,
//     which is also contiguous. Use this when you keep Eigen's default
//     storage order: put the samples in the columns.
//   - ColMajor B×D matrix: NOT batch-first. Its storage is column by column,
//     so the first B stored values are element 0 of every sample, yet ddpm
//     reads the first D stored values as sample 0. ddpm cannot detect this
//     from the buffer alone (the size is still B·D). Either declare the matrix RowMajor,
//     or store the transpose (D×B, one column per sample), or copy:
//     `batch_t rowmajor = colmajor_BxD;` (Eigen converts the storage order on
//     assignment). ddpm::check_batch_layout(m, B) below catches the mistake.
//   - Vectors (VectorX…, ArrayX…, RowVectorX…) of B·D elements are flat
//     batch-first buffers.
// Multi-channel data (B × C × H × W) is flattened per sample in whatever order
// the network uses (NCHW: D = C·H·W); ddpm does not look inside a sample.
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/error.hpp"

#include <Eigen/Core>

#include <concepts>
#include <cstddef>
#include <ranges>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

namespace ddpm {

namespace detail::eigen {

/// A dense Eigen object that exposes its storage (DirectAccessBit). The
/// requires-expression gates the derived_from check so that non-Eigen types
/// never name Eigen::DenseBase<B>.
template <class B>
concept direct_access_dense = requires {
    typename B::Scalar;
    typename B::StorageKind;
    B::Flags;
} && std::derived_from<B, Eigen::DenseBase<B>> && ((int(B::Flags) & Eigen::DirectAccessBit) != 0);

enum class contiguity {
    always,  ///< contiguous by type
    runtime, ///< strides known only at run time: checked on each view
    never,   ///< compile-time strides that are never contiguous
};

/// The StrideType of a Map or Ref (outer 0 means "the inner size", i.e. packed).
template <class B>
struct stride_of {
    static constexpr bool known = false;
    static constexpr int outer = Eigen::Dynamic;
};
template <class P, int O, class S>
struct stride_of<Eigen::Map<P, O, S>> {
    static constexpr bool known = true;
    static constexpr int outer = S::OuterStrideAtCompileTime;
};
template <class P, int O, class S>
struct stride_of<Eigen::Ref<P, O, S>> {
    static constexpr bool known = true;
    static constexpr int outer = S::OuterStrideAtCompileTime;
};

template <class B>
consteval contiguity classify() {
    constexpr int dyn = Eigen::Dynamic;
    constexpr int inner_stride = Eigen::internal::traits<B>::InnerStrideAtCompileTime;
    constexpr int outer_stride = Eigen::internal::traits<B>::OuterStrideAtCompileTime;
    constexpr int inner = B::InnerSizeAtCompileTime;
    constexpr int outer = B::IsRowMajor ? int(B::RowsAtCompileTime) : int(B::ColsAtCompileTime);
    constexpr int size = B::SizeAtCompileTime;
    if constexpr (std::derived_from<B, Eigen::PlainObjectBase<B>>) return contiguity::always; // Matrix, Array
    if (size == 0 || size == 1) return contiguity::always;
    if (inner_stride != dyn && inner_stride != 1 && inner != 1) return contiguity::never;
    if (B::IsVectorAtCompileTime && inner_stride == 1) return contiguity::always;
    if (stride_of<B>::known && stride_of<B>::outer == 0 && inner_stride == 1) return contiguity::always;
    if (outer_stride != dyn && inner != dyn) {
        if (outer_stride == inner && inner_stride == 1) return contiguity::always;
        if (outer_stride != inner && outer != dyn && outer > 1) return contiguity::never;
    }
    return contiguity::runtime;
}

/// Run-time contiguity: inner stride 1 and outer stride = inner size, ignoring
/// strides along dimensions of extent ≤ 1.
template <class B>
[[nodiscard]] bool is_contiguous(const B& b) noexcept {
    if (b.size() <= 1) return true;
    const auto inner = b.innerSize();
    if (inner > 1 && b.innerStride() != 1) return false;
    if (b.outerSize() > 1 && b.outerStride() != inner) return false;
    return true;
}

template <class B>
void require_contiguous(const B& b) {
    if (is_contiguous(b)) return;
    // Built with a stream: GCC 12 warns falsely on `"literal" + std::string` at -O3.
    std::ostringstream value, expected;
    value << "(inner " << b.innerStride() << ", outer " << b.outerStride() << ") for a " << b.rows() << "x"
          << b.cols() << (B::IsRowMajor ? " RowMajor" : " ColMajor") << " object";
    expected << "a contiguous object: inner stride 1 and outer stride " << b.innerSize()
             << " (= inner size). Use a Matrix/Array or a Map without a Stride, a block of whole rows of a RowMajor "
                "matrix (whole columns of a ColMajor one), or copy it (.eval())";
    throw_invalid("ddpm (Eigen adapter)", "strides", value.str(), expected.str());
}

template <class B>
struct traits {
    static constexpr contiguity kind = classify<B>();
    static_assert(kind != contiguity::never,
                  "ddpm: this Eigen object's compile-time strides are not contiguous (inner stride != 1 or outer "
                  "stride != inner size). ddpm reads a buffer as one contiguous block: use a Matrix/Array, a Map "
                  "without a Stride, or copy it with .eval().");
    static constexpr bool nothrow = kind == contiguity::always;

    using value_type = std::remove_cv_t<typename B::Scalar>;
    static constexpr bool writable = (int(B::Flags) & Eigen::LvalueBit) != 0;

    static auto data(B& b) noexcept(nothrow) {
        if constexpr (kind == contiguity::runtime) require_contiguous(b);
        return b.data();
    }
    static std::size_t size(B& b) noexcept(nothrow) {
        if constexpr (kind == contiguity::runtime) require_contiguous(b);
        return static_cast<std::size_t>(b.size());
    }
    /// The samplers' check of an output holding `batch` samples
    /// (check_batch_layout, defined below).
    static void check_layout(const B& b, std::size_t batch, std::string_view name);
};

} // namespace detail::eigen

/// buffer_traits for Eigen dense objects with direct access (see the top of
/// this file for contiguity and batch layout).
template <class B>
    requires detail::eigen::direct_access_dense<B>
struct buffer_traits<B> : detail::eigen::traits<B> {};

/// The same, more constrained than the primary contiguous-range
/// specialisation, for Eigen versions whose vector iterators model
/// std::contiguous_iterator (so that the two never tie).
template <class B>
    requires std::ranges::contiguous_range<B> && std::ranges::sized_range<B> && detail::eigen::direct_access_dense<B>
struct buffer_traits<B> : detail::eigen::traits<B> {};

/// @brief Checks that `m` holds `batch` samples batch-first in storage order.
///
/// Passes for vectors whose size is a multiple of `batch`, for RowMajor
/// matrices with `batch` rows (sample = row) and for ColMajor matrices with
/// `batch` columns (sample = column). Catches the one silent mistake: a
/// ColMajor B×D matrix, whose storage interleaves the samples.
///
/// @param[in] m     any Eigen dense object.
/// @param[in] batch B, the number of samples (timesteps) of the call.
/// @param[in] name  the argument's name for the message.
/// @throws ddpm::invalid_argument naming the shape and the fix.
template <class Derived>
void check_batch_layout(const Eigen::DenseBase<Derived>& m, std::size_t batch, std::string_view name = "buffer") {
    constexpr std::string_view where = "ddpm::check_batch_layout";
    const auto size = static_cast<std::size_t>(m.size());
    std::ostringstream shape;
    shape << m.rows() << "x" << m.cols() << (Derived::IsRowMajor ? " RowMajor" : " ColMajor");
    if (batch == 0) detail::throw_invalid(where, "batch", 0, ">= 1");
    if (size % batch != 0) {
        std::ostringstream expected;
        expected << "a multiple of batch = " << batch << " elements";
        detail::throw_invalid(where, name, shape.str(), expected.str());
    }
    if (m.rows() == 1 || m.cols() == 1) return; // a vector: flat, batch-first
    if (static_cast<std::size_t>(m.outerSize()) == batch) return;
    std::ostringstream expected;
    expected << "batch-first storage with " << batch << " samples: "
             << (Derived::IsRowMajor ? "a RowMajor matrix with one row per sample"
                                     : "a ColMajor matrix with one column per sample");
    if (static_cast<std::size_t>(m.innerSize()) == batch)
        expected << ". A ColMajor BxD matrix stores the samples interleaved: declare it RowMajor, or store its "
                    "transpose (DxB, one column per sample)";
    detail::throw_invalid(where, name, shape.str(), expected.str());
}

template <class B>
void detail::eigen::traits<B>::check_layout(const B& b, std::size_t batch, std::string_view name) {
    check_batch_layout(b, batch, name);
}

/// @brief Views a ddpm batch buffer as an Eigen B×D RowMajor matrix (sample b
/// is row b), without copying: Eigen::Map<Matrix<T, Dynamic, Dynamic,
/// RowMajor>>, or Map<const …> when the buffer is read-only.
///
/// @param[in] b     a buffer (std::vector, std::span, …); an lvalue, or a
///                  span, which does not own its memory.
/// @param[in] batch rows B.   @param[in] dim columns D.
/// @throws ddpm::invalid_argument unless batch · dim == the buffer's size.
template <class B>
    requires input_buffer<B>
[[nodiscard]] auto as_eigen(B&& b, Eigen::Index batch, Eigen::Index dim) {
    static_assert(std::is_lvalue_reference_v<B> || std::ranges::borrowed_range<std::remove_cvref_t<B>>,
                  "ddpm::as_eigen: the buffer must outlive the Map; pass an lvalue or a std::span");
    using T = detail::value_of<B>;
    using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const auto n = as_span(b).size();
    if (batch < 0 || dim < 0 || static_cast<std::size_t>(batch) * static_cast<std::size_t>(dim) != n) {
        std::ostringstream value, expected;
        value << batch << " x " << dim;
        expected << "non-negative with a product equal to the buffer's size " << n;
        detail::throw_invalid("ddpm::as_eigen", "batch x dim", value.str(), expected.str());
    }
    if constexpr (output_buffer<B>) return Eigen::Map<matrix>(as_mutable_span(b).data(), batch, dim);
    else return Eigen::Map<const matrix>(as_span(b).data(), batch, dim);
}

} // namespace ddpm
