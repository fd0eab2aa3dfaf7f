// Run-time dispatch (ddpm/dispatch/isa.hpp): every instruction set this CPU
// runs and this build links gives the bits of the scalar reference, for the
// fused kernels and the noise fills; forcing is checked, and an instruction
// set that cannot run is refused with ddpm::invalid_argument.
//
// Built at the default x86-64 flags (SSE2), without contraction possible, so
// the compile-time SIMD path itself equals the scalar reference bit for bit.
#include <catch2/catch.hpp>

#include <ddpm/dispatch/isa.hpp>
#include <ddpm/kernels/combine.hpp>
#include <ddpm/kernels/fused.hpp>
#include <ddpm/random/counter_noise.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

using namespace ddpm;
using kernels::backend;

namespace {

template <class T>
std::vector<T> gaussian(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> d(0.0, 1.5);
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(d(g));
    return v;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

/// The instruction sets to run: baseline, plus every one this CPU runs. A
/// build that links the dispatch objects (DDPM_TEST_EXPECT_DISPATCH) must
/// offer AVX2 on a CPU that has it, so the test cannot pass by skipping it.
std::vector<dispatch::isa> isas_to_test() {
    std::vector<dispatch::isa> out{dispatch::isa::baseline};
    for (const auto i : {dispatch::isa::avx2, dispatch::isa::avx512}) {
        if (dispatch::available(i)) out.push_back(i);
#if DDPM_TEST_EXPECT_DISPATCH && DDPM_HAS_XSIMD
        else if (i == dispatch::isa::avx2 && dispatch::cpu_supports(i))
            FAIL("this CPU has AVX2+FMA but the dispatched kernels are not registered");
#endif
    }
    return out;
}

struct restore_automatic {
    ~restore_automatic() { dispatch::automatic(); }
};

} // namespace

TEST_CASE("dispatch: the automatic choice is the best available instruction set", "[kernels][dispatch]") {
    const restore_automatic restore;
    dispatch::automatic();
    const auto isas = isas_to_test();
    const auto best = isas.back();
    const auto expect = best > dispatch::compiled_isa ? best : dispatch::isa::baseline;
    CHECK(dispatch::active<kernels::detail::kernel_table<float>>() == expect);
    CHECK(dispatch::active<kernels::detail::kernel_table<double>>() == expect);
#if DDPM_HAS_XSIMD
    CHECK(dispatch::active<random::detail::fill_table>() == expect);
#endif
    for (const auto i : isas) {
        dispatch::force_isa(i);
        CHECK(dispatch::active<kernels::detail::kernel_table<float>>() == i);
    }
}

TEST_CASE("dispatch: forcing an instruction set that cannot run is refused", "[kernels][dispatch][errors]") {
    const restore_automatic restore;
    for (const auto i : {dispatch::isa::avx2, dispatch::isa::avx512})
        if (!dispatch::available(i)) CHECK_THROWS_AS(dispatch::force_isa(i), ddpm::invalid_argument);
    CHECK_NOTHROW(dispatch::force_isa(dispatch::isa::baseline));
}

TEST_CASE("dispatch: noise fills equal the scalar reference bit for bit on every path", "[kernels][dispatch][random]") {
    const restore_automatic restore;
    for (const auto i : isas_to_test()) {
        INFO("isa " << dispatch::name(i));
        dispatch::force_isa(i);
        for (const std::size_t n : {1u, 63u, 64u, 65u, 1000u, 4099u})
            for (const std::uint64_t offset : {0u, 5u, 64u, 1000003u}) {
                std::vector<float> ref(n), got(n), uref(n), ugot(n);
                random::fill_normal_scalar(ref, 42, 7, 11, offset);
                random::fill_normal(std::span<float>(got), 42, 7, 11, offset);
                random::fill_uniform_scalar(uref, 42, 7, 11, offset);
                random::fill_uniform(std::span<float>(ugot), 42, 7, 11, offset);
                REQUIRE(same_bits(got, ref));
                REQUIRE(same_bits(ugot, uref));
            }
    }
}

TEMPLATE_TEST_CASE("dispatch: fused kernels equal the scalar reference bit for bit on every path",
                   "[kernels][dispatch]", float, double) {
    using T = TestType;
    const restore_automatic restore;
    const std::size_t B = 3;
    const std::size_t D = GENERATE(1, 15, 64, 517, 20000);
    INFO("D=" << D);
    const auto x0 = gaussian<T>(B * D, 1), out = gaussian<T>(B * D, 2), xt = gaussian<T>(B * D, 3);
    const auto z = gaussian<T>(B * D, 4);
    const std::vector<T> a{T(0.9), T(0.5), T(0.1)}, b{T(0.43), T(0.86), T(0.99)};
    const kernels::noise_stream ns{77, 5, 2};

    struct outputs {
        std::vector<T> fwd, fwd_eps, fwd_buf, ddpm_prev, ddpm_x0, ddim_prev, ddim_x0;
    };
    auto run = [&](backend bk) {
        std::vector<outputs> all;
        for (const auto form : {kernels::x0_form::multiply, kernels::x0_form::divide, kernels::x0_form::identity})
            for (const bool clip : {false, true}) {
                outputs o;
                o.fwd.resize(B * D);
                o.fwd_eps.resize(B * D);
                o.fwd_buf.resize(B * D);
                kernels::forward_noise<T>(x0, a, b, ns, o.fwd, o.fwd_eps, {1}, bk);
                kernels::forward_noise<T>(x0, a, b, std::span<const T>(z), o.fwd_buf, {1}, bk);
                kernels::reverse_coefficients<T> rc;
                rc.form = form;
                rc.x0_a = T(1.3);
                rc.x0_b = T(0.7);
                rc.mean_coef_x0 = T(0.35);
                rc.mean_coef_xt = T(0.6);
                rc.noise_scale = T(0.2);
                std::vector<kernels::reverse_coefficients<T>> rcs(B, rc);
                rcs[2].final_step = true;
                const std::vector<kernels::x0_clip<T>> clips(B, {clip, T(1.1), T(1.05)});
                o.ddpm_prev.resize(B * D);
                o.ddpm_x0.resize(B * D);
                kernels::ddpm_step<T>(rcs, clips, kernels::step_variance::fixed, out, xt,
                                      kernels::step_noise<T>::from(ns), o.ddpm_prev, o.ddpm_x0, {1}, bk);
                for (const auto ef : {kernels::eps_form::model_output, kernels::eps_form::from_v,
                                      kernels::eps_form::from_out, kernels::eps_form::from_x0}) {
                    const kernels::ddim_coefficients<T> dc{form, T(1.7), T(0.6), ef, T(0.8), T(0.55), T(1.3),
                                                           T(0.9), T(0.4), T(0.1)};
                    std::vector<kernels::ddim_coefficients<T>> dcs(B, dc);
                    dcs[1].sigma = T(0); // σ = 0 (η = 0): no noise in that row's loop
                    std::vector<T> prev(B * D), x0o(B * D);
                    kernels::ddim_step<T>(dcs, clips, out, xt, kernels::step_noise<T>::from(ns), prev, x0o, {1}, bk);
                    o.ddim_prev.insert(o.ddim_prev.end(), prev.begin(), prev.end());
                    o.ddim_x0.insert(o.ddim_x0.end(), x0o.begin(), x0o.end());
                }
                all.push_back(std::move(o));
            }
        return all;
    };
    const auto ref = run(backend::scalar);
    for (const auto i : isas_to_test()) {
        INFO("isa " << dispatch::name(i));
        dispatch::force_isa(i);
        const auto got = run(backend::simd);
        REQUIRE(got.size() == ref.size());
        for (std::size_t k = 0; k < ref.size(); ++k) {
            INFO("form/clip case " << k);
            REQUIRE(same_bits(got[k].fwd, ref[k].fwd));
            REQUIRE(same_bits(got[k].fwd_eps, ref[k].fwd_eps));
            REQUIRE(same_bits(got[k].fwd_buf, ref[k].fwd_buf));
            REQUIRE(same_bits(got[k].ddpm_prev, ref[k].ddpm_prev));
            REQUIRE(same_bits(got[k].ddpm_x0, ref[k].ddpm_x0));
            REQUIRE(same_bits(got[k].ddim_prev, ref[k].ddim_prev));
            REQUIRE(same_bits(got[k].ddim_x0, ref[k].ddim_x0));
        }
    }
}


TEMPLATE_TEST_CASE("dispatch: solver kernels equal the scalar reference bit for bit on every path",
                   "[kernels][dispatch][combine]", float, double) {
    using T = TestType;
    const restore_automatic restore;
    const std::size_t B = 2;
    const std::size_t D = GENERATE(3, 64, 1001);
    INFO("D=" << D);
    const auto o = gaussian<T>(B * D, 5), x = gaussian<T>(B * D, 6), base = gaussian<T>(B * D, 7);
    const auto dprev = gaussian<T>(B * D, 8), in3 = gaussian<T>(B * D, 9);
    const auto noise = kernels::step_noise<T>::from(kernels::noise_stream{5, 9, 1});

    auto run = [&](backend bk) {
        std::vector<std::vector<T>> all;
        std::vector<kernels::combine_coefficients<T, 3>> cc(B);
        cc[0] = {{T(0.5), T(-1.25), T(0.75)}, T(0.3)};
        cc[1] = {{T(1.5), T(0.25), T(-0.5)}, T(0)};
        std::vector<T> y(B * D);
        kernels::combine<T, 3>(cc, {std::span<const T>(o), std::span<const T>(x), std::span<const T>(in3)}, noise, y,
                               {1}, bk);
        all.push_back(y);
        for (const auto form : {kernels::sigma_x0_form::epsilon, kernels::sigma_x0_form::v, kernels::sigma_x0_form::sample})
            for (const bool avg : {false, true}) {
                kernels::sigma_step_coefficients<T> sc;
                sc.form = form;
                sc.a = T(0.7);
                sc.b = T(1.9);
                sc.s = T(1.3);
                sc.dt = T(-0.2);
                sc.average = avg;
                sc.sigma_up = T(0.15);
                sc.clip = true;
                sc.clip_range = T(1.2);
                const std::vector<kernels::sigma_step_coefficients<T>> scs(B, sc);
                std::vector<T> next(B * D), x0(B * D), d(B * D);
                kernels::sigma_step<T>(scs, {o, x, base, dprev, next, x0, d}, noise, {1}, bk);
                all.push_back(next);
                all.push_back(x0);
                all.push_back(d);
            }
        for (const auto form : {kernels::output_form::identity, kernels::output_form::x_minus_bo_c,
                                kernels::output_form::ax_minus_bo, kernels::output_form::ao_plus_bx}) {
            const std::vector<kernels::output_coefficients<T>> ocs(B, {form, T(1.1), T(0.45), T(0.8)});
            std::vector<T> out(B * D);
            kernels::convert_output<T>(ocs, o, x, out, {1}, bk);
            all.push_back(out);
        }
        return all;
    };
    const auto ref = run(backend::scalar);
    for (const auto i : isas_to_test()) {
        INFO("isa " << dispatch::name(i));
        dispatch::force_isa(i);
        CHECK(dispatch::active<kernels::detail::solver_table<T>>() == i);
        const auto got = run(backend::simd);
        REQUIRE(got.size() == ref.size());
        for (std::size_t k = 0; k < ref.size(); ++k) {
            INFO("output " << k);
            REQUIRE(same_bits(got[k], ref[k]));
        }
    }
}

TEMPLATE_TEST_CASE("dispatch: reductions give the same bits on every SIMD path", "[kernels][dispatch][reduce]", float,
                   double) {
    using T = TestType;
    const restore_automatic restore;
    const std::size_t B = 3;
    const std::size_t D = GENERATE(1, 15, 16, 17, 100, 3000);
    INFO("D=" << D);
    const auto p = gaussian<T>(B * D, 11), q = gaussian<T>(B * D, 12);
    const std::vector<T> w{T(1), T(0.5), T(2)}, lv1{T(-1), T(0), T(0.5)}, lv2{T(-0.5), T(0.2), T(1)};
    auto run = [&](backend bk) {
        std::vector<T> mse(B), kl(B);
        kernels::weighted_mse<T>(p, q, w, B, mse, {1}, bk);
        kernels::gaussian_kl_sum<T>(p, lv1, q, lv2, kl, {1}, bk);
        mse.insert(mse.end(), kl.begin(), kl.end());
        return mse;
    };
    const auto ref = run(backend::scalar);
    dispatch::force_isa(dispatch::isa::baseline);
    const auto base = run(backend::simd);
    for (std::size_t k = 0; k < ref.size(); ++k)
        REQUIRE(std::abs(double(base[k]) - double(ref[k])) <= 1e-5 * std::max(1.0, std::abs(double(ref[k]))));
    for (const auto i : isas_to_test()) {
        INFO("isa " << dispatch::name(i));
        dispatch::force_isa(i);
        REQUIRE(same_bits(run(backend::simd), base));
    }
}
