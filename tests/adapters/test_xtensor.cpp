// ddpm/adapters/xtensor.hpp: xtensor containers and adaptors give the same
// results as std::vector; column-major and strided ones are refused.
#include <catch2/catch.hpp>

#include <ddpm/adapters/xtensor.hpp>

#include "reference.hpp"

#if __has_include(<xtensor/containers/xfixed.hpp>)
#include <xtensor/containers/xfixed.hpp>
#include <xtensor/views/xview.hpp>
#else
#include <xtensor/xfixed.hpp>
#include <xtensor/xview.hpp>
#endif

#include <algorithm>
#include <array>
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

using shape2 = std::array<std::size_t, 2>;

template <class C, class Shape>
C filled(const std::vector<typename C::value_type>& v, const Shape& shape) {
    auto c = C::from_shape(shape);
    std::copy(v.begin(), v.end(), c.data());
    return c;
}

} // namespace

static_assert(ddpm::input_buffer<xt::xarray<float>> && ddpm::output_buffer<xt::xtensor<double, 3>&>);
static_assert(!ddpm::output_buffer<const xt::xarray<float>&>, "const containers are inputs only");
static_assert(!ddpm::input_buffer<xt::xarray<int>>, "elements must be float or double");
static_assert(ddpm::detail::xtensor::traits<xt::xarray<float>>::writable);
// Row-major containers need no run-time check; dynamic layouts are checked.
static_assert(noexcept(ddpm::as_span(std::declval<const xt::xtensor<float, 2>&>())));
static_assert(ddpm::detail::xtensor::traits<xt::xarray<float, xt::layout_type::dynamic>>::dynamic);
// Column-major containers stop the build with a static_assert in
// ddpm::detail::xtensor::traits ("ddpm: column-major xtensor containers are
// not batch-first …"), e.g.
//   ddpm::as_span(xt::xtensor<float, 2, xt::layout_type::column_major>({3, 7}));
// so they cannot be tested at run time here. Views are not buffers:
static_assert(!ddpm::input_buffer<decltype(xt::view(std::declval<xt::xarray<float>&>(), xt::all(), 0))>);

TEMPLATE_TEST_CASE("xtensor adapters reproduce std::vector", "[adapters][xtensor]", float, double) {
    using T = TestType;
    pool<T> memory;

    SECTION("xt::xarray of shape (B, D)") {
        const auto make = [](const std::vector<T>& v, std::size_t b, std::size_t d) {
            return filled<xt::xarray<T>>(v, std::vector<std::size_t>{b, d});
        };
        check_all_operations<T>(make, make);
    }
    SECTION("xt::xtensor<T, 3> of shape (B, 1, D)") {
        const auto make = [](const std::vector<T>& v, std::size_t b, std::size_t d) {
            return filled<xt::xtensor<T, 3>>(v, std::array<std::size_t, 3>{b, 1, d});
        };
        check_all_operations<T>(make, make);
    }
    SECTION("xt::xarray with a dynamic layout set to row_major (checked, accepted)") {
        const auto make = [](const std::vector<T>& v, std::size_t b, std::size_t d) {
            xt::xarray<T, xt::layout_type::dynamic> a(std::vector<std::size_t>{b, d}, xt::layout_type::row_major);
            std::copy(v.begin(), v.end(), a.data());
            return a;
        };
        check_all_operations<T>(make, make);
    }
    SECTION("xt::adapt(std::vector&, shape)") {
        const auto make = [&](const std::vector<T>& v, std::size_t b, std::size_t d) {
            return xt::adapt(memory.keep(v), shape2{b, d});
        };
        check_all_operations<T>(make, make);
    }
    SECTION("xt::adapt(const T*, n, no_ownership, shape) inputs, xt::adapt(T*, …) outputs") {
        check_all_operations<T>(
            [&](const std::vector<T>& v, std::size_t b, std::size_t d) {
                const T* p = memory.keep(v).data();
                return xt::adapt(p, b * d, xt::no_ownership(), shape2{b, d});
            },
            [&](const std::vector<T>& v, std::size_t b, std::size_t d) {
                return xt::adapt(memory.keep(v).data(), b * d, xt::no_ownership(), shape2{b, d});
            });
    }
}

TEMPLATE_TEST_CASE("xt::xtensor_fixed", "[adapters][xtensor]", float, double) {
    using T = TestType;
    const reference<T> ref;
    using fixed = xt::xtensor_fixed<T, xt::xshape<batch, dim>>;
    fixed x0, noise, xt_out;
    std::copy(ref.x0.begin(), ref.x0.end(), x0.data());
    std::copy(ref.noise.begin(), ref.noise.end(), noise.data());
    ddpm::q_sample(ref.schedule, std::as_const(x0), std::as_const(noise), ref.timesteps, xt_out);
    CHECK(differences(xt_out, ref.xt) == 0);
}

TEMPLATE_TEST_CASE("xtensor layouts that are not batch-first are refused", "[adapters][xtensor]", float, double) {
    using T = TestType;
    const reference<T> ref;
    // A dynamic-layout container holding column-major strides.
    xt::xarray<T, xt::layout_type::dynamic> cm(std::vector<std::size_t>{batch, dim}, xt::layout_type::column_major);
    std::fill(cm.begin(), cm.end(), T(0));
    using cm_t = decltype(cm);
    // An adaptor with explicit, padded strides: rows of D values + 1 pad.
    std::vector<T> padded_storage(batch * (dim + 1), T(0));
    auto padded = xt::adapt(padded_storage, shape2{batch, dim}, shape2{dim + 1, 1});
    using padded_t = decltype(padded);

    SECTION("the traits refuse them") {
        REQUIRE_THROWS_AS(ddpm::buffer_traits<cm_t>::size(cm), ddpm::invalid_argument);
        REQUIRE_THROWS_WITH(ddpm::buffer_traits<padded_t>::data(padded),
                            Catch::Contains("(8, 1)") && Catch::Contains("row-major"));
        // Extent-1 axes do not matter: a (1, D) column-major array is one row.
        xt::xarray<T, xt::layout_type::dynamic> one(std::vector<std::size_t>{1, dim}, xt::layout_type::column_major);
        CHECK(ddpm::buffer_traits<decltype(one)>::size(one) == dim);
    }
    SECTION("q_sample refuses them before writing") {
        if constexpr (as_span_propagates<cm_t>) {
            const auto x0 = filled<xt::xarray<T>>(ref.x0, shape2{batch, dim});
            const auto noise = filled<xt::xarray<T>>(ref.noise, shape2{batch, dim});
            REQUIRE_THROWS_AS(ddpm::q_sample(ref.schedule, x0, noise, ref.timesteps, cm), ddpm::invalid_argument);
            CHECK(std::all_of(cm.begin(), cm.end(), [](T v) { return v == T(0); }));
            REQUIRE_THROWS_AS(ddpm::q_sample(ref.schedule, x0, noise, ref.timesteps, padded), ddpm::invalid_argument);
            CHECK(std::all_of(padded_storage.begin(), padded_storage.end(), [](T v) { return v == T(0); }));
        } else {
            WARN("ddpm::as_span is unconditionally noexcept: a run-time stride error would call std::terminate. "
                 "Make as_span / as_mutable_span conditionally noexcept (see ddpm/adapters/xtensor.hpp).");
        }
    }
    SECTION("check_batch_layout wants the batch on axis 0") {
        CHECK_NOTHROW(ddpm::check_batch_layout(xt::xarray<T>::from_shape({batch, dim}), batch, "x0"));
        CHECK_NOTHROW(ddpm::check_batch_layout(xt::xarray<T>::from_shape({batch * dim}), batch, "x0"));
        REQUIRE_THROWS_AS(ddpm::check_batch_layout(xt::xarray<T>::from_shape({dim, batch}), batch, "x0"),
                          ddpm::invalid_argument);
        REQUIRE_THROWS_WITH(ddpm::check_batch_layout(xt::xarray<T>::from_shape({dim, batch}), batch, "x0"),
                            Catch::Contains("x0.shape()") && Catch::Contains("(7, 3)"));
    }
}

TEMPLATE_TEST_CASE("ddpm::as_xtensor wraps ddpm buffers without copying", "[adapters][xtensor]", float, double) {
    using T = TestType;
    std::vector<T> v(batch * dim);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<T>(i);
    auto a = ddpm::as_xtensor(v, shape2{batch, dim});
    CHECK(a(2, 3) == T(2 * dim + 3));
    a(1, 0) = T(-1);
    CHECK(v[dim] == T(-1));
    const auto& cv = v;
    const auto ca = ddpm::as_xtensor(cv, std::vector<std::size_t>{batch, 1, dim});
    CHECK(ca(2, 0, 3) == T(2 * dim + 3));
    STATIC_REQUIRE(!ddpm::detail::xtensor::traits<std::remove_const_t<decltype(ca)>>::writable);
    const auto sa = ddpm::as_xtensor(std::span<const T>(v), shape2{dim, batch});
    CHECK(sa.shape()[0] == dim);
    REQUIRE_THROWS_AS(ddpm::as_xtensor(v, shape2{batch, dim + 1}), ddpm::invalid_argument);
    // The adaptor is itself a buffer: ddpm results can stay in xtensor land.
    CHECK(ddpm::as_span(a).data() == v.data());
}
