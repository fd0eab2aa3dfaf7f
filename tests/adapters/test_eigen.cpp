// ddpm/adapters/eigen.hpp: Eigen dense objects give the same results as
// std::vector, and non-contiguous or wrongly laid out objects are refused.
#include <catch2/catch.hpp>

#include <ddpm/adapters/eigen.hpp>

#include "reference.hpp"

#include <Eigen/Core>

#include <algorithm>
#include <list>
#include <span>
#include <utility>
#include <vector>

using adapters_test::as_span_propagates;
using adapters_test::batch;
using adapters_test::check_all_operations;
using adapters_test::differences;
using adapters_test::dim;
using adapters_test::pool;
using adapters_test::reference;

namespace {

template <class T>
using row_major = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using col_major = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

/// Copies flat storage into a fresh Eigen object of the given shape.
template <class M>
M filled(const std::vector<typename M::Scalar>& v, Eigen::Index rows, Eigen::Index cols) {
    M m(rows, cols);
    std::copy(v.begin(), v.end(), m.data());
    return m;
}

const auto B = static_cast<Eigen::Index>(batch);

} // namespace

// What is and is not a buffer, decided at compile time.
static_assert(ddpm::input_buffer<Eigen::MatrixXf> && ddpm::output_buffer<Eigen::MatrixXd&>);
static_assert(ddpm::input_buffer<Eigen::ArrayXXd> && ddpm::input_buffer<Eigen::VectorXf>);
static_assert(ddpm::input_buffer<Eigen::Map<const Eigen::MatrixXf>>);
static_assert(!ddpm::output_buffer<Eigen::Map<const Eigen::MatrixXf>>, "Map<const> is read-only");
static_assert(!ddpm::output_buffer<const Eigen::MatrixXf&>, "const objects are inputs only");
static_assert(ddpm::output_buffer<Eigen::Map<Eigen::MatrixXf>>, "a Map passed by value still writes through");
static_assert(ddpm::input_buffer<Eigen::Ref<const Eigen::MatrixXf>>);
static_assert(!ddpm::input_buffer<Eigen::MatrixXi>, "elements must be float or double");
static_assert(!ddpm::input_buffer<decltype(Eigen::MatrixXf() + Eigen::MatrixXf())>,
              "expressions without storage are not buffers: evaluate them first");
// Compile-time strides that are never contiguous stop the build with a
// static_assert in ddpm::detail::eigen::traits, e.g.
//   ddpm::as_span(Eigen::Map<Eigen::VectorXf, 0, Eigen::InnerStride<2>>(p, n));
//   ddpm::as_span(Eigen::Map<Eigen::Matrix<float, 2, 3, Eigen::RowMajor>, 0, Eigen::OuterStride<4>>(p));
// ("ddpm: this Eigen object's compile-time strides are not contiguous …"),
// so they cannot be tested at run time here.
static_assert(ddpm::detail::eigen::classify<Eigen::Map<Eigen::VectorXf, 0, Eigen::InnerStride<2>>>() ==
              ddpm::detail::eigen::contiguity::never);
static_assert(ddpm::detail::eigen::classify<
                  Eigen::Map<Eigen::Matrix<float, 2, 3, Eigen::RowMajor>, 0, Eigen::OuterStride<4>>>() ==
              ddpm::detail::eigen::contiguity::never);
// Plain objects, stride-less Maps and unit-stride vectors need no run-time check.
static_assert(ddpm::detail::eigen::traits<Eigen::Map<Eigen::MatrixXf>>::nothrow);
static_assert(ddpm::detail::eigen::traits<Eigen::Ref<Eigen::VectorXd>>::nothrow);
static_assert(ddpm::detail::eigen::traits<Eigen::Matrix<float, 3, 7, Eigen::RowMajor>>::nothrow);
static_assert(!ddpm::detail::eigen::traits<Eigen::Map<Eigen::MatrixXf, 0, Eigen::OuterStride<>>>::nothrow);

TEMPLATE_TEST_CASE("Eigen adapters reproduce std::vector", "[adapters][eigen]", float, double) {
    using T = TestType;
    pool<T> memory;

    SECTION("RowMajor B x D Matrix: sample b is row b") {
        const auto make = [](const std::vector<T>& v, std::size_t b, std::size_t d) {
            return filled<row_major<T>>(v, static_cast<Eigen::Index>(b), static_cast<Eigen::Index>(d));
        };
        check_all_operations<T>(make, make);
    }
    SECTION("ColMajor D x B Matrix: sample b is column b") {
        const auto make = [](const std::vector<T>& v, std::size_t b, std::size_t d) {
            return filled<col_major<T>>(v, static_cast<Eigen::Index>(d), static_cast<Eigen::Index>(b));
        };
        check_all_operations<T>(make, make);
    }
    SECTION("RowMajor Array") {
        const auto make = [](const std::vector<T>& v, std::size_t b, std::size_t d) {
            return filled<Eigen::Array<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
                v, static_cast<Eigen::Index>(b), static_cast<Eigen::Index>(d));
        };
        check_all_operations<T>(make, make);
    }
    SECTION("flat vectors of B*D elements") {
        const auto make = [](const std::vector<T>& v, std::size_t, std::size_t) {
            return Eigen::Matrix<T, Eigen::Dynamic, 1>(
                Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>(v.data(), static_cast<Eigen::Index>(v.size())));
        };
        check_all_operations<T>(make, make);
    }
    SECTION("Map<const RowMajor> inputs, Map<RowMajor> outputs over user memory") {
        check_all_operations<T>(
            [&](const std::vector<T>& v, std::size_t b, std::size_t d) {
                return Eigen::Map<const row_major<T>>(memory.keep(v).data(), static_cast<Eigen::Index>(b),
                                                      static_cast<Eigen::Index>(d));
            },
            [&](const std::vector<T>& v, std::size_t b, std::size_t d) {
                return Eigen::Map<row_major<T>>(memory.keep(v).data(), static_cast<Eigen::Index>(b),
                                                static_cast<Eigen::Index>(d));
            });
    }
    SECTION("Map with a run-time OuterStride equal to the inner size (checked, accepted)") {
        using map = Eigen::Map<row_major<T>, 0, Eigen::OuterStride<>>;
        const auto make = [&](const std::vector<T>& v, std::size_t b, std::size_t d) {
            return map(memory.keep(v).data(), static_cast<Eigen::Index>(b), static_cast<Eigen::Index>(d),
                       Eigen::OuterStride<>(static_cast<Eigen::Index>(d)));
        };
        check_all_operations<T>(make, make);
    }
    SECTION("Ref<const ColMajor> inputs (D x B), Ref<ColMajor> outputs") {
        // Ref<const> binds to any ColMajor object; Ref<> needs unit inner stride.
        std::list<col_major<T>> owners;
        check_all_operations<T>(
            [&](const std::vector<T>& v, std::size_t b, std::size_t d) {
                auto& m = owners.emplace_back(filled<col_major<T>>(v, static_cast<Eigen::Index>(d),
                                                                    static_cast<Eigen::Index>(b)));
                return Eigen::Ref<const col_major<T>>(m);
            },
            [&](const std::vector<T>& v, std::size_t b, std::size_t d) {
                auto& m = owners.emplace_back(filled<col_major<T>>(v, static_cast<Eigen::Index>(d),
                                                                    static_cast<Eigen::Index>(b)));
                return Eigen::Ref<col_major<T>>(m);
            });
    }
    SECTION("whole-row blocks of a larger RowMajor matrix (checked, accepted)") {
        std::list<row_major<T>> owners;
        const auto make = [&](const std::vector<T>& v, std::size_t b, std::size_t d) {
            // Samples live in rows 1 .. b of a (b + 2) x d matrix.
            auto& big = owners.emplace_back(row_major<T>::Constant(static_cast<Eigen::Index>(b) + 2,
                                                                   static_cast<Eigen::Index>(d), T(-7)));
            auto rows = big.middleRows(1, static_cast<Eigen::Index>(b));
            std::copy(v.begin(), v.end(), rows.data());
            return rows;
        };
        check_all_operations<T>(make, make);
    }
}

TEMPLATE_TEST_CASE("fixed-size Eigen matrices", "[adapters][eigen]", float, double) {
    using T = TestType;
    const reference<T> ref;
    using fixed = Eigen::Matrix<T, static_cast<int>(batch), static_cast<int>(dim), Eigen::RowMajor>;
    fixed x0, noise, xt;
    std::copy(ref.x0.begin(), ref.x0.end(), x0.data());
    std::copy(ref.noise.begin(), ref.noise.end(), noise.data());
    ddpm::q_sample(ref.schedule, std::as_const(x0), std::as_const(noise), ref.timesteps, xt);
    CHECK(differences(xt, ref.xt) == 0);
}

TEMPLATE_TEST_CASE("Eigen batch layout: ColMajor B x D is not batch-first", "[adapters][eigen]", float, double) {
    using T = TestType;
    const reference<T> ref;
    const auto D = static_cast<Eigen::Index>(dim);

    // The same numbers, sample b in row b, stored column-major.
    const row_major<T> x0_rm = filled<row_major<T>>(ref.x0, B, D);
    const row_major<T> noise_rm = filled<row_major<T>>(ref.noise, B, D);
    const col_major<T> x0_cm = x0_rm, noise_cm = noise_rm; // Eigen converts the storage order
    col_major<T> xt_cm(B, D);

    SECTION("check_batch_layout accepts batch-first objects") {
        CHECK_NOTHROW(ddpm::check_batch_layout(x0_rm, batch, "x0"));
        CHECK_NOTHROW(ddpm::check_batch_layout(col_major<T>(D, B), batch, "x0"));
        CHECK_NOTHROW(ddpm::check_batch_layout(Eigen::Matrix<T, Eigen::Dynamic, 1>(B * D), batch, "x0"));
        CHECK_NOTHROW(ddpm::check_batch_layout(col_major<T>(1, D), 1, "x0")); // one sample
    }
    SECTION("check_batch_layout refuses ColMajor B x D") {
        REQUIRE_THROWS_AS(ddpm::check_batch_layout(x0_cm, batch, "x0"), ddpm::invalid_argument);
        REQUIRE_THROWS_WITH(ddpm::check_batch_layout(x0_cm, batch, "x0"),
                            Catch::Contains("x0") && Catch::Contains("RowMajor"));
        REQUIRE_THROWS_AS(ddpm::check_batch_layout(x0_rm, batch + 1, "x0"), ddpm::invalid_argument);
    }
    SECTION("ddpm cannot see it by itself: the sizes match and the answer is wrong") {
        ddpm::q_sample(ref.schedule, x0_cm, noise_cm, ref.timesteps, xt_cm);
        // Storage element i of xt_cm is element (i % B, i / B); for the
        // reference it is (i / D, i % D). Same size, other samples' timesteps.
        CHECK(differences(xt_cm, ref.xt) > 0);
        // The fix: a RowMajor copy.
        row_major<T> xt_rm(B, D);
        ddpm::q_sample(ref.schedule, row_major<T>(x0_cm), row_major<T>(noise_cm), ref.timesteps, xt_rm);
        CHECK(differences(xt_rm, ref.xt) == 0);
    }
}

TEMPLATE_TEST_CASE("non-contiguous Eigen objects throw ddpm::invalid_argument", "[adapters][eigen]", float,
                   double) {
    using T = TestType;
    const reference<T> ref;
    const auto D = static_cast<Eigen::Index>(dim);
    using padded_map = Eigen::Map<row_major<T>, 0, Eigen::OuterStride<>>;
    std::vector<T> padded_storage(batch * (dim + 1), T(0)); // rows of D values + 1 pad
    padded_map padded(padded_storage.data(), B, D, Eigen::OuterStride<>(D + 1));
    row_major<T> wide(B, D + 3);
    auto left_cols = wide.leftCols(D); // rows are not adjacent in storage
    col_major<T> tall(D, B);
    auto row_of_colmajor = tall.row(0); // inner stride = D

    SECTION("the traits refuse them") {
        REQUIRE_THROWS_AS(ddpm::buffer_traits<padded_map>::size(padded), ddpm::invalid_argument);
        REQUIRE_THROWS_WITH(ddpm::buffer_traits<padded_map>::data(padded),
                            Catch::Contains("outer 8") && Catch::Contains("contiguous"));
        using block = decltype(left_cols);
        REQUIRE_THROWS_AS(ddpm::buffer_traits<block>::size(left_cols), ddpm::invalid_argument);
        using row = decltype(row_of_colmajor);
        REQUIRE_THROWS_AS(ddpm::buffer_traits<row>::size(row_of_colmajor), ddpm::invalid_argument);
        auto column = tall.col(1); // a whole column of a ColMajor matrix is contiguous
        CHECK(ddpm::buffer_traits<decltype(column)>::size(column) == dim);
    }
    SECTION("q_sample refuses them before writing") {
        if constexpr (as_span_propagates<padded_map>) {
            const row_major<T> x0 = filled<row_major<T>>(ref.x0, B, D);
            const row_major<T> noise = filled<row_major<T>>(ref.noise, B, D);
            REQUIRE_THROWS_AS(ddpm::q_sample(ref.schedule, x0, noise, ref.timesteps, padded),
                              ddpm::invalid_argument);
            CHECK(std::all_of(padded_storage.begin(), padded_storage.end(), [](T v) { return v == T(0); }));
            REQUIRE_THROWS_AS(ddpm::q_sample(ref.schedule, left_cols, noise, ref.timesteps, row_major<T>(B, D)),
                              ddpm::invalid_argument);
        } else {
            WARN("ddpm::as_span is unconditionally noexcept: a run-time stride error would call std::terminate. "
                 "Make as_span / as_mutable_span conditionally noexcept (see ddpm/adapters/eigen.hpp).");
        }
    }
}

TEMPLATE_TEST_CASE("ddpm::as_eigen views ddpm buffers as RowMajor matrices", "[adapters][eigen]", float, double) {
    using T = TestType;
    std::vector<T> v(batch * dim);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<T>(i);
    auto m = ddpm::as_eigen(v, B, static_cast<Eigen::Index>(dim));
    STATIC_REQUIRE(std::is_same_v<decltype(m), Eigen::Map<row_major<T>>>);
    CHECK(m(2, 3) == T(2 * dim + 3));
    m(1, 0) = T(-1);
    CHECK(v[dim] == T(-1));
    const auto& cv = v;
    const auto cm = ddpm::as_eigen(cv, B, static_cast<Eigen::Index>(dim));
    STATIC_REQUIRE(std::is_same_v<std::remove_const_t<decltype(cm)>, Eigen::Map<const row_major<T>>>);
    const auto sm = ddpm::as_eigen(std::span<const T>(v), static_cast<Eigen::Index>(dim), B);
    CHECK(sm.rows() == static_cast<Eigen::Index>(dim));
    REQUIRE_THROWS_AS(ddpm::as_eigen(v, B, static_cast<Eigen::Index>(dim) + 1), ddpm::invalid_argument);
}
