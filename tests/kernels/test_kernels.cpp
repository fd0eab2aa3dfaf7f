// Fused kernels: SIMD against the scalar reference, independence of the
// thread count, the counter-stream addressing, and agreement with the batch
// functions of core/.
#include <catch2/catch.hpp>

#include <ddpm/core/coefficients.hpp>
#include <ddpm/core/forward.hpp>
#include <ddpm/core/p_mean_variance.hpp>
#include <ddpm/kernels/fused.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace ddpm;
using kernels::backend;

namespace {

template <class T>
std::vector<T> gaussian(std::size_t n, std::uint64_t seed, double scale = 1.0) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> d(0.0, scale);
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(d(g));
    return v;
}

template <class T>
double max_abs(const std::vector<T>& a, const std::vector<T>& b) {
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
    return m;
}

template <class T>
constexpr double tol() {
    return std::is_same_v<T, float> ? 4e-6 : 1e-14;
}

} // namespace

TEMPLATE_TEST_CASE("forward_noise: SIMD equals scalar, any thread count, addressed noise", "[kernels][forward]", float,
                   double) {
    using T = TestType;
    const std::size_t B = GENERATE(1, 3);
    const std::size_t D = GENERATE(1, 7, 15, 16, 17, 63, 64, 65, 1000, 40000);
    INFO("B=" << B << " D=" << D);
    const auto x0 = gaussian<T>(B * D, 11);
    std::vector<T> a(B), b(B);
    for (std::size_t r = 0; r < B; ++r) {
        a[r] = T(0.9) - T(0.2) * T(r);
        b[r] = std::sqrt(T(1) - a[r] * a[r]);
    }
    const kernels::noise_stream ns{1234, 7, 5};
    std::vector<T> xt_ref(B * D), eps_ref(B * D), xt(B * D), eps(B * D);
    kernels::forward_noise<T>(x0, a, b, ns, xt_ref, eps_ref, {1}, backend::scalar);
    // The noise is stream v2 (the default): random::normal_at_v2(seed, first_sample + b, step, i, D), widened.
    for (std::size_t r = 0; r < B; ++r)
        for (std::size_t i = 0; i < D; i += std::max<std::size_t>(1, D / 50))
            REQUIRE(eps_ref[r * D + i] == T(random::normal_at_v2(1234, 5 + std::uint32_t(r), 7, i, D)));
    for (const unsigned threads : {1u, 2u, 3u}) {
        INFO("threads " << threads);
        kernels::forward_noise<T>(x0, a, b, ns, xt, eps, {threads}, kernels::best_backend);
        REQUIRE(eps == eps_ref); // the noise is bit-identical on every path
        REQUIRE(max_abs(xt, xt_ref) <= tol<T>());
    }
    // Against core's q_sample with the same noise.
    std::vector<T> q(B * D);
    kernels::forward_noise<T>(x0, a, b, std::span<const T>(eps_ref), q);
    REQUIRE(max_abs(q, xt_ref) <= tol<T>());
}

TEMPLATE_TEST_CASE("ddpm_step matches p_mean_variance + sigma z", "[kernels][ddpm]", float, double) {
    using T = TestType;
    const noise_schedule s(schedule_config{});
    const std::size_t B = 3;
    const std::size_t D = GENERATE(5, 64, 1001);
    const auto pred = GENERATE(prediction_type::epsilon, prediction_type::sample, prediction_type::v_prediction);
    const auto var = GENERATE(variance_type::fixed_small, variance_type::fixed_large, variance_type::learned_range);
    const bool clip = GENERATE(false, true);
    INFO("D=" << D << " " << to_string(pred) << " " << to_string(var) << " clip " << clip);
    const std::size_t ch = is_learned(var) ? 2 : 1;
    const auto out = gaussian<T>(B * D * ch, 3);
    const auto xt = gaussian<T>(B * D, 4, 1.5);
    const std::vector<std::int64_t> ts{0, 1, 600};

    model_options opt{pred, var, clip ? clip_options::clip(1.0) : clip_options::none()};
    std::vector<T> mean(B * D), v(B * D), lv(B * D), x0(B * D);
    p_mean_variance(s, opt, out, xt, ts, mean, v, lv, x0);

    std::vector<reverse_coefficients<T>> coefs;
    std::vector<kernels::x0_clip<T>> clips;
    for (const auto t : ts) {
        coefs.push_back(reverse_step_coefficients<T>(s, t, t - 1, pred, var));
        clips.push_back({clip, T(1), T(1)});
    }
    const auto sv = var == variance_type::learned_range ? kernels::step_variance::learned_range : kernels::step_variance::fixed;
    const auto z = gaussian<T>(B * D, 5);
    for (const backend bk : {backend::scalar, kernels::best_backend}) {
        std::vector<T> prev(B * D), x0k(B * D);
        kernels::ddpm_step<T>(coefs, clips, sv, out, xt, kernels::step_noise<T>::from(std::span<const T>(z)), prev, x0k, {2}, bk);
        REQUIRE(max_abs(x0k, x0) <= tol<T>() * 200); // x̂_0 at t=600 divides by √ᾱ ≈ 0.2
        for (std::size_t r = 0; r < B; ++r)
            for (std::size_t i = 0; i < D; ++i) {
                const std::size_t k = r * D + i;
                const double sigma = ts[r] == 0 ? 0.0 : std::exp(0.5 * double(lv[k]));
                REQUIRE(std::abs(double(prev[k]) - (double(mean[k]) + sigma * double(z[k]))) <= 200 * tol<T>());
            }
        // No noise source: the mean itself.
        std::vector<T> prev0(B * D);
        kernels::ddpm_step<T>(coefs, clips, sv, out, xt, kernels::step_noise<T>::none(), prev0, {}, {1}, bk);
        REQUIRE(max_abs(prev0, mean) <= 200 * tol<T>());
    }
}

TEMPLATE_TEST_CASE("ddpm_step with stream noise: SIMD = scalar, threads do not matter", "[kernels][ddpm]", float, double) {
    using T = TestType;
    const noise_schedule s(schedule_config{});
    const std::size_t B = 4, D = 20000;
    const auto out = gaussian<T>(B * D, 6);
    const auto xt = gaussian<T>(B * D, 7);
    std::vector<reverse_coefficients<T>> coefs;
    for (const std::int64_t t : {999, 500, 10, 0})
        coefs.push_back(reverse_step_coefficients<T>(s, t, t - 1, prediction_type::epsilon, variance_type::fixed_small));
    const std::vector<kernels::x0_clip<T>> clips(B, {true, T(1), T(1)});
    const auto noise = kernels::step_noise<T>::from(kernels::noise_stream{99, 3, 0});
    std::vector<T> ref(B * D), got(B * D);
    kernels::ddpm_step<T>(coefs, clips, kernels::step_variance::fixed, out, xt, noise, ref, {}, {1}, backend::scalar);
    for (const unsigned threads : {1u, 2u, 3u}) {
        kernels::ddpm_step<T>(coefs, clips, kernels::step_variance::fixed, out, xt, noise, got, {}, {threads});
        REQUIRE(max_abs(got, ref) <= 4 * tol<T>());
        std::vector<T> again(B * D);
        kernels::ddpm_step<T>(coefs, clips, kernels::step_variance::fixed, out, xt, noise, again, {}, {1});
        REQUIRE(again == got); // deterministic, thread count irrelevant
    }
}

TEMPLATE_TEST_CASE("ddim_step matches the scalar formula", "[kernels][ddim]", float, double) {
    using T = TestType;
    const std::size_t B = 2;
    const std::size_t D = GENERATE(3, 16, 257);
    const auto form = GENERATE(kernels::x0_form::multiply, kernels::x0_form::divide, kernels::x0_form::identity);
    const auto ef = GENERATE(kernels::eps_form::model_output, kernels::eps_form::from_v, kernels::eps_form::from_out,
                             kernels::eps_form::from_x0);
    const auto out = gaussian<T>(B * D, 8);
    const auto xt = gaussian<T>(B * D, 9);
    const auto z = gaussian<T>(B * D, 10);
    kernels::ddim_coefficients<T> c{form, T(1.7), T(0.6), ef, T(0.8), T(0.55), T(1.3), T(0.9), T(0.4), T(0.1)};
    const std::vector<kernels::ddim_coefficients<T>> coefs(B, c);
    const std::vector<kernels::x0_clip<T>> clips(B, {true, T(1.5), T(1)});
    for (const backend bk : {backend::scalar, kernels::best_backend}) {
        std::vector<T> prev(B * D), x0(B * D);
        kernels::ddim_step<T>(coefs, clips, out, xt, kernels::step_noise<T>::from(std::span<const T>(z)), prev, x0, {1}, bk);
        for (std::size_t k = 0; k < B * D; ++k) {
            double x0r = form == kernels::x0_form::multiply ? 1.7 * double(xt[k]) - 0.6 * double(out[k])
                         : form == kernels::x0_form::divide ? (double(xt[k]) - 0.6 * double(out[k])) / 1.7
                                                            : double(out[k]);
            x0r = std::clamp(x0r, -1.5, 1.5);
            const double e = ef == kernels::eps_form::model_output ? double(out[k])
                             : ef == kernels::eps_form::from_v    ? 0.8 * double(out[k]) + 0.55 * double(xt[k])
                             : ef == kernels::eps_form::from_out  ? (0.8 * double(xt[k]) - 1.3 * double(out[k])) / 0.55
                                                                  : (0.8 * double(xt[k]) - 1.3 * x0r) / 0.55;
            REQUIRE(std::abs(double(x0[k]) - x0r) <= 10 * tol<T>());
            REQUIRE(std::abs(double(prev[k]) - (0.9 * x0r + 0.4 * e + 0.1 * double(z[k]))) <= 20 * tol<T>());
        }
    }
}

TEMPLATE_TEST_CASE("reductions: weighted MSE and Gaussian KL sums", "[kernels][reduce]", float, double) {
    using T = TestType;
    const std::size_t B = 3;
    const std::size_t D = GENERATE(1, 15, 16, 17, 4099);
    const auto p = gaussian<T>(B * D, 12), q = gaussian<T>(B * D, 13);
    const std::vector<T> w{T(1), T(0.5), T(2)}, l1{T(-1), T(0), T(0.3)}, l2{T(-0.5), T(0.2), T(0.3)};
    for (const backend bk : {backend::scalar, kernels::best_backend}) {
        std::vector<T> mse(B), kl(B);
        kernels::weighted_mse<T>(p, q, w, B, mse, {2}, bk);
        kernels::gaussian_kl_sum<T>(p, l1, q, l2, kl, {1}, bk);
        for (std::size_t b = 0; b < B; ++b) {
            double s = 0, k = 0;
            for (std::size_t i = 0; i < D; ++i) {
                const double d = double(p[b * D + i]) - double(q[b * D + i]);
                s += d * d;
                k += 0.5 * (-1 + double(l2[b]) - double(l1[b]) + std::exp(double(l1[b]) - double(l2[b])) +
                            d * d * std::exp(-double(l2[b])));
            }
            CHECK(double(mse[b]) == Approx(double(w[b]) * s / double(D)).epsilon(1e-5));
            CHECK(double(kl[b]) == Approx(k).epsilon(1e-5).margin(1e-9));
        }
    }
}

TEST_CASE("kernel arguments are checked before anything is written", "[kernels][errors]") {
    std::vector<float> x(10, 0.5f), a{0.5f, 0.5f}, b{0.5f}, xt(10, -7.f), eps(10, -7.f);
    REQUIRE_THROWS_AS(kernels::forward_noise<float>(x, a, b, kernels::noise_stream{}, xt, eps), ddpm::invalid_argument);
    std::vector<float> a3{0.5f, 0.5f, 0.5f}, b3(3, 0.5f);
    REQUIRE_THROWS_AS(kernels::forward_noise<float>(x, a3, b3, kernels::noise_stream{}, xt, eps), ddpm::invalid_argument);
    std::vector<reverse_coefficients<float>> c(2);
    std::vector<float> out(10), prev(10, -7.f);
    REQUIRE_THROWS_AS(kernels::ddpm_step<float>(c, {}, kernels::step_variance::learned_range, out, x,
                                                kernels::step_noise<float>::none(), prev, {}),
                      ddpm::invalid_argument);
    std::vector<float> short_noise(9);
    REQUIRE_THROWS_AS(kernels::ddpm_step<float>(c, {}, kernels::step_variance::fixed, out, x,
                                                kernels::step_noise<float>::from(std::span<const float>(short_noise)), prev, {}),
                      ddpm::invalid_argument);
    for (const float v : xt) REQUIRE(v == -7.f);
    for (const float v : eps) REQUIRE(v == -7.f);
    for (const float v : prev) REQUIRE(v == -7.f);
}

// Issue 11, item 3: a NaN from the network must reach x̂_0 and x_prev on every
// backend. xsimd's min/max return the bound for a NaN operand, so a clip built
// on them turned NaN into −bound on the SIMD path while the scalar reference
// (kernels::scalar::clamp) passes it through.
TEMPLATE_TEST_CASE("clipping propagates NaN on the scalar and the SIMD backend", "[kernels][clip][nan]", float, double) {
    using T = TestType;
    const noise_schedule s(schedule_config{});
    const std::size_t B = 2, D = 67; // a SIMD body and a scalar tail on every width
    const T nan = std::numeric_limits<T>::quiet_NaN();
    auto out = gaussian<T>(B * D, 21);
    const auto xt = gaussian<T>(B * D, 22);
    const auto z = gaussian<T>(B * D, 23);
    const std::vector<std::size_t> poisoned{0, 5, 17, D - 1, D + 3, 2 * D - 2};
    for (const auto k : poisoned) out[k] = nan;
    const auto is_poisoned = [&](std::size_t k) {
        return std::find(poisoned.begin(), poisoned.end(), k) != poisoned.end();
    };
    std::vector<reverse_coefficients<T>> coefs;
    for (const std::int64_t t : {500, 10})
        coefs.push_back(reverse_step_coefficients<T>(s, t, t - 1, prediction_type::epsilon, variance_type::fixed_small));
    const std::vector<kernels::x0_clip<T>> clips(B, {true, T(1), T(1)});
    kernels::ddim_coefficients<T> dc{kernels::x0_form::multiply, T(1.7), T(0.6), kernels::eps_form::from_x0,
                                     T(0.8), T(0.55), T(1.3), T(0.9), T(0.4), T(0.1)};
    const std::vector<kernels::ddim_coefficients<T>> dcoefs(B, dc);
    for (const backend bk : {backend::scalar, kernels::best_backend}) {
        INFO("backend " << (bk == backend::scalar ? "scalar" : "simd"));
        std::vector<T> prev(B * D), x0(B * D);
        kernels::ddpm_step<T>(coefs, clips, kernels::step_variance::fixed, out, xt,
                              kernels::step_noise<T>::from(std::span<const T>(z)), prev, x0, {1}, bk);
        for (std::size_t k = 0; k < B * D; ++k) {
            INFO("ddpm k=" << k);
            REQUIRE(std::isnan(x0[k]) == is_poisoned(k));
            REQUIRE(std::isnan(prev[k]) == is_poisoned(k));
        }
        kernels::ddim_step<T>(dcoefs, clips, out, xt, kernels::step_noise<T>::from(std::span<const T>(z)), prev, x0,
                              {1}, bk);
        for (std::size_t k = 0; k < B * D; ++k) {
            INFO("ddim k=" << k);
            REQUIRE(std::isnan(x0[k]) == is_poisoned(k));
            REQUIRE(std::isnan(prev[k]) == is_poisoned(k));
        }
    }
}
