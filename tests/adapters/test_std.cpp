// ddpm/adapters/std.hpp: standard containers, C arrays, spans and pointer +
// size give the same results as std::vector.
#include <catch2/catch.hpp>

#include <ddpm/adapters/std.hpp>

#include "reference.hpp"

#include <array>
#include <span>
#include <utility>
#include <valarray>
#include <vector>

using adapters_test::batch;
using adapters_test::check_all_operations;
using adapters_test::differences;
using adapters_test::dim;
using adapters_test::pool;
using adapters_test::reference;

TEMPLATE_TEST_CASE("std adapters reproduce std::vector", "[adapters][std]", float, double) {
    using T = TestType;
    pool<T> memory;

    SECTION("std::span<const T> inputs, std::span<T> outputs") {
        check_all_operations<T>(
            [&](const std::vector<T>& v, std::size_t, std::size_t) { return std::span<const T>(memory.keep(v)); },
            [&](const std::vector<T>& v, std::size_t, std::size_t) { return std::span<T>(memory.keep(v)); });
    }
    SECTION("ddpm::view(pointer, size)") {
        check_all_operations<T>(
            [&](const std::vector<T>& v, std::size_t b, std::size_t d) {
                const T* p = memory.keep(v).data();
                return ddpm::view(p, b * d); // std::span<const T>
            },
            [&](const std::vector<T>& v, std::size_t b, std::size_t d) {
                return ddpm::view(memory.keep(v).data(), b * d); // std::span<T>
            });
    }
    SECTION("const std::vector inputs") {
        check_all_operations<T>([](const std::vector<T>& v, std::size_t, std::size_t) { return v; },
                                [](const std::vector<T>& v, std::size_t, std::size_t) { return v; });
    }
    SECTION("std::valarray") {
        check_all_operations<T>(
            [](const std::vector<T>& v, std::size_t, std::size_t) { return std::valarray<T>(v.data(), v.size()); },
            [](const std::vector<T>& v, std::size_t, std::size_t) { return std::valarray<T>(v.data(), v.size()); });
    }
}

TEMPLATE_TEST_CASE("std::array and C arrays reproduce std::vector", "[adapters][std]", float, double) {
    using T = TestType;
    constexpr std::size_t n = batch * dim;
    const reference<T> ref;
    const auto to_array = [](const std::vector<T>& v) {
        std::array<T, n> a{};
        std::copy(v.begin(), v.end(), a.begin());
        return a;
    };

    SECTION("std::array") {
        const std::array<T, n> x0 = to_array(ref.x0), noise = to_array(ref.noise);
        std::array<T, n> xt{}, mean{};
        std::array<T, batch> var{}, log_var{};
        const std::array<std::int64_t, batch> ts{0, 420, 999}; // timesteps may be an array too
        ddpm::q_sample(ref.schedule, x0, noise, ts, xt);
        CHECK(differences(xt, ref.xt) == 0);
        ddpm::q_posterior_mean_variance(ref.schedule, x0, xt, ts, mean, var, log_var);
        CHECK(differences(mean, ref.post_mean) == 0);
        CHECK(differences(var, ref.post_var) == 0);
        CHECK(differences(log_var, ref.post_log_var) == 0);
    }
    SECTION("C arrays") {
        T x0[n], noise[n], xt[n], mean[n], var[batch], log_var[batch];
        std::copy(ref.x0.begin(), ref.x0.end(), x0);
        std::copy(ref.noise.begin(), ref.noise.end(), noise);
        const std::int64_t ts[batch] = {0, 420, 999};
        ddpm::q_sample(ref.schedule, x0, noise, ts, xt);
        CHECK(differences(xt, ref.xt) == 0);
        ddpm::q_posterior_mean_variance(ref.schedule, std::as_const(x0), xt, ts, mean, var, log_var);
        CHECK(differences(mean, ref.post_mean) == 0);
        CHECK(differences(var, ref.post_var) == 0);
        CHECK(differences(log_var, ref.post_log_var) == 0);
    }
}

TEST_CASE("ddpm::view checks its pointer", "[adapters][std]") {
    float* null = nullptr;
    CHECK(ddpm::view(null, 0).empty());
    REQUIRE_THROWS_AS(ddpm::view(null, 4), ddpm::invalid_argument);
    float data[4] = {};
    const auto v = ddpm::view(data, 4);
    STATIC_REQUIRE(std::is_same_v<decltype(v), const std::span<float>>);
    const float* cdata = data;
    STATIC_REQUIRE(std::is_same_v<decltype(ddpm::view(cdata, 4)), std::span<const float>>);
    STATIC_REQUIRE(!ddpm::output_buffer<decltype(ddpm::view(cdata, 4))>);
}
