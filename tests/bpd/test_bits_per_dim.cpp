// ddpm::bits_per_dim (include/ddpm/samplers/likelihood.hpp): the whole
// variational bound of a batch with the caller's network.
//
//  * parity with improved-diffusion's calc_bpd_loop (tests/data/vlb.json,
//    f64coef: end-to-end float64) for linear_T50 and linear_T1000 and the
//    FIXED_SMALL, FIXED_LARGE and LEARNED_RANGE runs, in the
//    improved_diffusion profile, in double;
//  * every term equals the public one-step functions (q_sample,
//    vb_terms_bpd, predict_eps_from_x0) across profiles, parameterisations,
//    variance types, clipping modes and both precisions; the seed and
//    noise-source paths draw what they document;
//  * the bound lies above the exact NLL of discretised Gaussian data under the
//    model (see the comment of that test), and tightens as T grows;
//  * the observer (order, values, stop), bad input, the finite check, the
//    strong guarantee on throw, and no allocation inside the loop.
#include <catch2/catch.hpp>


#include "../likelihood/noise_recipe.hpp"
#include "../likelihood/vlb_support.hpp"

#include <ddpm/core/forward.hpp>
#include <ddpm/core/likelihood.hpp>
#include <ddpm/core/parameterization.hpp>
#include <ddpm/random/counter_noise.hpp>
#include <ddpm/samplers/likelihood.hpp>
#include <ddpm/samplers/noise.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <limits>
#include <new>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <support/count_allocations.hpp>

using ddpm_test::g_allocations;

using ddpm_test::golden;
using ddpm_test::max_rel_diff;
using ddpm_test::values;
using ddpm_test::vlb_batch;
using ddpm_test::vlb_dim;

namespace {

constexpr std::size_t N = vlb_batch * vlb_dim;
constexpr double tol_f64 = 1e-12;
// The KL terms (bits) are compared relative to max(|a|, |b|, 0.01 bits), i.e.
// absolutely to 1e-14 bits below 0.01 bits: near t = T the KL is a tiny
// residue of O(1) terms that cancel (tests/likelihood/test_vlb_parity.cpp,
// `bits_floor`, has the derivation).
constexpr double bits_floor = 0.01;

/// The toy network of the golden files, on spans and without allocating:
/// tanh(0.7 x)·(0.5 + t/1000) + 0.05 x, and for learned variances 0.3 sin(x)
/// as the second half of each sample's channels (tests/likelihood/vlb_support.hpp).
struct toy_net {
    std::size_t dim = vlb_dim;
    bool learned = false;
    template <class T>
    void operator()(std::span<const T> x, std::span<const ddpm::timestep_t> t, std::span<T> out) const {
        const std::size_t stride = (learned ? 2 : 1) * dim;
        for (std::size_t b = 0; b < t.size(); ++b) {
            const T scale = T(0.5) + static_cast<T>(static_cast<double>(t[b]) / 1000.0);
            for (std::size_t i = 0; i < dim; ++i) {
                const T v = x[b * dim + i];
                out[b * stride + i] = std::tanh(T(0.7) * v) * scale + T(0.05) * v;
                if (learned) out[b * stride + dim + i] = T(0.3) * std::sin(v);
            }
        }
    }
};

/// vlb.json's deterministic noise: step t is the recipe's z_t.
struct recipe_noise {
    void fill(std::span<double> out, std::uint64_t step) const {
        const auto z = ddpm_test::vlb_noise(static_cast<std::int64_t>(step), out.size());
        std::copy(z.begin(), z.end(), out.begin());
    }
};

ddpm::bpd_options golden_options(const std::string& vt) {
    ddpm::bpd_options o;
    o.batch = vlb_batch;
    o.model.prediction = ddpm::prediction_type::epsilon;
    o.model.variance = ddpm_test::variance_from_golden(vt);
    o.model.clip = ddpm::clip_options::clip(1.0); // calc_bpd_loop(clip_denoised=True)
    return o;
}

} // namespace

TEST_CASE("bits_per_dim reproduces improved-diffusion's calc_bpd_loop (vlb.json f64coef)",
          "[bpd][parity][vlb]") {
    const auto& g = golden("vlb.json");
    const auto x0 = values(g.at("x0"));
    REQUIRE(x0.size() == N);
    ddpm_test::worst_table w("bits_per_dim vs calc_bpd_loop f64coef, improved_diffusion profile, double");
    for (const char* dname : {"linear_T50", "linear_T1000"}) {
        const auto& gd = g.at("diffusions").at(dname);
        const auto T = gd.at("T").get<std::int64_t>();
        const auto s = ddpm_test::vlb_schedule(T);
        const auto cols = static_cast<std::size_t>(T);
        for (const char* vt : {"FIXED_SMALL", "FIXED_LARGE", "LEARNED_RANGE"}) {
            INFO(dname << " " << vt);
            const auto& ref = gd.at("var_types").at(vt).at("f64coef").at("calc_bpd_loop_clip_denoised_True");
            const toy_net net{vlb_dim, std::string(vt) == "LEARNED_RANGE"};
            ddpm::bpd_result r;
            const std::size_t n = ddpm::bits_per_dim(s, net, x0, recipe_noise{}, r, golden_options(vt));
            REQUIRE(n == cols);
            REQUIRE(r.complete());
            REQUIRE(r.batch == vlb_batch);
            REQUIRE(r.num_timesteps == cols);
            REQUIRE(r.vb.size() == vlb_batch * cols);

            const std::string p = std::string(dname) + " ";
            CHECK(w.record(p + "total_bpd", max_rel_diff(r.total_bpd, values(ref.at("total_bpd")))) <= tol_f64);
            CHECK(w.record(p + "prior_bpd", max_rel_diff(r.prior_bpd, values(ref.at("prior_bpd")))) <= tol_f64);
            // Same layout as the golden [B, T]: column j is timestep T − 1 − j.
            const auto vb = values(ref.at("vb"));
            w.record(p + "vb (pure relative, info)", max_rel_diff(r.vb, vb));
            w.record(p + "vb (abs bits, info)", ddpm_test::max_abs_diff(r.vb, vb));
            CHECK(w.record(p + "vb", max_rel_diff(r.vb, vb, bits_floor)) <= tol_f64);
            CHECK(w.record(p + "xstart_mse", max_rel_diff(r.xstart_mse, values(ref.at("xstart_mse")))) <= tol_f64);
            CHECK(w.record(p + "mse", max_rel_diff(r.mse, values(ref.at("mse")))) <= tol_f64);
            // index(b, t) addresses the same layout: (1, t = 0) is the last
            // entry, (0, t = T − 1) the first.
            CHECK(r.index(1, 0) == 2 * cols - 1);
            CHECK(r.index(0, T - 1) == 0);
            CHECK(ddpm_test::rel_diff(r.vb[r.index(1, 0)], vb[2 * cols - 1], bits_floor) <= tol_f64);
        }
    }
    w.print();
}

TEST_CASE("bits_per_dim: buffer_noise slot t is the noise of timestep t", "[bpd][noise]") {
    const auto& g = golden("vlb.json");
    const auto x0 = values(g.at("x0"));
    const auto s = ddpm_test::vlb_schedule(50);
    std::vector<double> slots(50 * N);
    for (std::int64_t t = 0; t < 50; ++t) {
        const auto z = ddpm_test::vlb_noise(t, N);
        std::copy(z.begin(), z.end(), slots.begin() + t * static_cast<std::ptrdiff_t>(N));
    }
    ddpm::bpd_result a, b;
    const toy_net net{};
    ddpm::bits_per_dim(s, net, x0, recipe_noise{}, a, golden_options("FIXED_SMALL"));
    ddpm::bits_per_dim(s, net, x0, ddpm::buffer_noise<double>(slots), b, golden_options("FIXED_SMALL"));
    CHECK(a.vb == b.vb);
    CHECK(a.mse == b.mse);
    CHECK(a.total_bpd == b.total_bpd);
}

// ---------------------------------------------------------------------------
// Every term against the public one-step functions.

namespace {

/// A network for the cross-check: the toy ε/x̂_0/v output, and for a learned
/// variance a second channel that is valid for the profile's reading of it
/// (learned: σ² > 0 in diffusers, log σ² elsewhere; learned_range: v ∈ [−1, 1]).
struct cross_net {
    std::size_t dim;
    ddpm::variance_type variance;
    bool diffusers;
    template <class T>
    void operator()(std::span<const T> x, std::span<const ddpm::timestep_t> t, std::span<T> out) const {
        const bool learned = ddpm::is_learned(variance);
        const std::size_t stride = (learned ? 2 : 1) * dim;
        for (std::size_t b = 0; b < t.size(); ++b)
            for (std::size_t i = 0; i < dim; ++i) {
                const T v = x[b * dim + i];
                out[b * stride + i] =
                    std::tanh(T(0.7) * v) * static_cast<T>(0.5 + static_cast<double>(t[b]) / 100.0) + T(0.05) * v;
                if (!learned) continue;
                const T var = T(1e-3) * (T(1.5) + std::sin(v)); // in (5e-4, 2.5e-3)
                T& o = out[b * stride + dim + i];
                if (variance == ddpm::variance_type::learned_range) o = T(0.9) * std::sin(T(3) * v);
                else o = diffusers ? var : std::log(var);
            }
    }
};

/// B·D values on the 256-level grid, including both edge levels.
template <class T>
std::vector<T> grid_data(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 gen(seed);
    std::vector<T> x(n);
    for (auto& v : x) v = static_cast<T>(2.0 * static_cast<double>(gen() % 256) / 255.0 - 1.0);
    x[0] = T(-1);
    x[1] = T(1);
    return x;
}

struct cross_case {
    const char* name;
    ddpm::profile profile;
    ddpm::prediction_type prediction;
    ddpm::variance_type variance;
    ddpm::clip_options clip;
};

template <class T>
void check_against_one_step(const cross_case& c) {
    INFO(c.name << (std::is_same_v<T, float> ? " float" : " double"));
    constexpr std::size_t B = 3, D = 40; // D not a multiple of the generator's 16/64 blocks
    constexpr std::int64_t Tn = 20;
    ddpm::schedule_config sc;
    sc.num_train_timesteps = Tn;
    // β from 1e-3 to 0.2 (improved_diffusion scales the endpoints by 1000/T).
    const double scale = c.profile == ddpm::profile::improved_diffusion ? 1000.0 / Tn : 1.0;
    sc.beta_start = 0.001 / scale;
    sc.beta_end = 0.2 / scale;
    const ddpm::noise_schedule s(sc, c.profile);
    const auto x0 = grid_data<T>(B * D, 11);
    ddpm::bpd_options o;
    o.batch = B;
    o.model = {c.prediction, c.variance, c.clip};
    const cross_net net{D, c.variance, c.profile == ddpm::profile::diffusers};
    constexpr std::uint64_t seed = 0x5eed;
    ddpm::bpd_result r;
    REQUIRE(ddpm::bits_per_dim(s, net, x0, ddpm::counter_noise(seed), r, o) == static_cast<std::size_t>(Tn));

    // The same terms from the one-step functions.
    const double tol = std::is_same_v<T, double> ? 1e-13 : 2e-6;
    double worst = 0.0;
    std::vector<T> z(B * D), xt(B * D), mo(B * D * (ddpm::is_learned(c.variance) ? 2 : 1)), bits(B), px0(B * D),
        eps(B * D), prior(B);
    for (std::int64_t t = Tn - 1; t >= 0; --t) {
        for (std::size_t b = 0; b < B; ++b)
            for (std::size_t i = 0; i < D; ++i)
                z[b * D + i] = static_cast<T>(ddpm::random::normal_at_v2(seed, static_cast<std::uint32_t>(b),
                                                                         static_cast<std::uint32_t>(t), i, D));
        const std::vector<ddpm::timestep_t> ts(B, t);
        ddpm::q_sample(s, x0, z, ts, xt);
        net(std::span<const T>(xt), std::span<const ddpm::timestep_t>(ts), std::span<T>(mo));
        ddpm::vb_terms_bpd(s, o.model, mo, x0, xt, ts, bits, px0);
        ddpm::predict_eps_from_x0(s, xt, px0, ts, eps);
        for (std::size_t b = 0; b < B; ++b) {
            double xm = 0.0, em = 0.0;
            for (std::size_t k = b * D; k < (b + 1) * D; ++k) {
                const T dx = px0[k] - x0[k];
                const T de = eps[k] - z[k];
                xm += static_cast<double>(dx * dx);
                em += static_cast<double>(de * de);
            }
            const auto at = r.index(b, t);
            INFO("t = " << t << ", sample " << b);
            worst = std::max(worst, ddpm_test::rel_diff(r.vb[at], static_cast<double>(bits[b]), bits_floor));
            CHECK(ddpm_test::rel_diff(r.vb[at], static_cast<double>(bits[b]), bits_floor) <= tol);
            CHECK(ddpm_test::rel_diff(r.xstart_mse[at], static_cast<double>(static_cast<T>(xm / D))) <= tol);
            CHECK(ddpm_test::rel_diff(r.mse[at], static_cast<double>(static_cast<T>(em / D))) <= tol);
            CHECK(std::isfinite(r.vb[at]));
        }
    }
    ddpm::prior_bpd(s, x0, prior);
    for (std::size_t b = 0; b < B; ++b) {
        CHECK(r.prior_bpd[b] == static_cast<double>(prior[b]));
        double sum = 0.0;
        for (std::int64_t t = Tn - 1; t >= 0; --t) sum += r.vb[r.index(b, t)];
        CHECK(r.total_bpd[b] == sum + r.prior_bpd[b]);
    }
    std::cout << "[bits_per_dim vs vb_terms_bpd] " << c.name << (std::is_same_v<T, float> ? " float" : " double")
              << ": worst vb difference " << worst << "\n";
}

} // namespace

TEST_CASE("bits_per_dim's terms are vb_terms_bpd's, for every profile, parameterisation and clip mode",
          "[bpd][consistency]") {
    using ddpm::prediction_type;
    using ddpm::profile;
    using ddpm::variance_type;
    const cross_case cases[] = {
        {"default eps fixed_small none", profile::standard, prediction_type::epsilon, variance_type::fixed_small,
         ddpm::clip_options::none()},
        {"default v learned_range dynamic", profile::standard, prediction_type::v_prediction,
         variance_type::learned_range, ddpm::clip_options::dynamic(0.9, 1.5)},
        {"ho2020 x0 fixed_large clip", profile::ho2020, prediction_type::sample, variance_type::fixed_large,
         ddpm::clip_options::clip(1.0)},
        {"improved_diffusion eps learned clip", profile::improved_diffusion, prediction_type::epsilon,
         variance_type::learned, ddpm::clip_options::clip(1.0)},
        {"diffusers eps learned none", profile::diffusers, prediction_type::epsilon, variance_type::learned,
         ddpm::clip_options::none()},
        {"diffusers v fixed_small_log clip", profile::diffusers, prediction_type::v_prediction,
         variance_type::fixed_small_log, ddpm::clip_options::clip(1.0)},
    };
    for (const auto& c : cases) {
        check_against_one_step<double>(c);
        check_against_one_step<float>(c);
    }
}

TEST_CASE("bits_per_dim: counter_noise draws normal_at_v2(seed, sample, t, i, D), in any batch split", "[bpd][noise]") {
    constexpr std::size_t D = 70;
    const auto s = ddpm_test::vlb_schedule(30);
    const auto x0 = grid_data<double>(3 * D, 5);
    const toy_net net{D, false};
    ddpm::bpd_options o;
    o.batch = 3;

    // The same stream through fill() (the noise-source path, step = t) instead
    // of the fused kernel's own draw.
    struct philox_noise {
        std::uint64_t seed;
        std::size_t dim;
        void fill(std::span<double> out, std::uint64_t step) const {
            for (std::size_t b = 0; b < out.size() / dim; ++b)
                for (std::size_t i = 0; i < dim; ++i)
                    out[b * dim + i] = ddpm::random::normal_at_v2(seed, static_cast<std::uint32_t>(b),
                                                                  static_cast<std::uint32_t>(step), i, dim);
        }
    };
    ddpm::bpd_result by_counter, by_fill;
    ddpm::bits_per_dim(s, net, x0, ddpm::counter_noise(77), by_counter, o);
    ddpm::bits_per_dim(s, net, x0, philox_noise{77, D}, by_fill, o);
    CHECK(by_counter.vb == by_fill.vb);
    CHECK(by_counter.mse == by_fill.mse);
    CHECK(by_counter.total_bpd == by_fill.total_bpd);

    // Sample 2 alone, as sample index 2 of the stream, gets the same terms.
    o.batch = 1;
    ddpm::bpd_result third;
    ddpm::bits_per_dim(s, net, std::span<const double>(x0.data() + 2 * D, D), ddpm::counter_noise(77, 0, 2), third, o);
    for (std::int64_t t = 0; t < 30; ++t) CHECK(third.vb[third.index(0, t)] == by_counter.vb[by_counter.index(2, t)]);
    CHECK(third.total_bpd[0] == by_counter.total_bpd[2]);

    // Another seed gives other terms.
    ddpm::bpd_result other;
    o.batch = 3;
    ddpm::bits_per_dim(s, net, x0, ddpm::counter_noise(78), other, o);
    CHECK(other.vb != by_counter.vb);
}

// ---------------------------------------------------------------------------
// The bound lies above the NLL.
//
// Data: x_0 is discretised Gaussian data — each element independently takes
// grid level x_k = 2k/255 − 1 with the mass that N(m, s²) puts on its bin
// [x_k − 1/255, x_k + 1/255] (the outer bins extended to ±∞), the way 8-bit
// pixels are quantised. The model: the exact ε-predictor of the *continuous*
// N(m, s²) (docs/math.md#analytic-denoisers), fixed_small, no clipping, the
// default profile (exact normal CDF).
//
// Why the comparison is honest: with that model every reverse step is affine
// in x_t plus Gaussian noise, so the model's chain p_θ(x_{0:T}) — x at index
// T − 1 from N(0, 1), steps t = T − 1 … 1, then the discretised decoder at
// t = 0 — has an exact marginal: the state before the decoder is N(μ, v) by
// the affine recursion, and the decoder, a discretised N(A μ' + C, σ_0²) of
// that state, integrates to the bin probability of N(A μ + C, A² v + σ_0²).
// p_θ is thus a proper distribution on the 256 levels (checked: it sums to 1
// and its cross-entropy with the data is above the data's entropy), and the
// variational bound satisfies E_z[bound(x_0)] ≥ −log p_θ(x_0) for every x_0
// (the gap is KL(q(x_{1:T}|x_0) ‖ p_θ(x_{1:T}|x_0)) ≥ 0). bits_per_dim draws one
// z per (element, t), so its total is a one-draw estimate of the bound; with
// D = 128 independent elements per sample its spread (≈ 0.2 bits) is well
// below the gap (≈ 0.73 bits at T = 1000: the continuous model pays for not
// knowing the data is discrete), so every sample's estimate is checked, and
// the mean gap in standard errors (≈ 20). A continuous density in place of
// p_θ(x_0) would not do: the bound is on the probability of a bin, not on a
// density.
//
// Tightening: the same linear 1e-4 → 0.02 schedule with T = 100 instead of
// 1000 steps has a larger gap (≈ 1.9 bits): coarser steps, and ᾱ_T further
// from 0 (a larger prior term). That is an observation about this schedule
// family, separated by ≈ 17 standard errors (checked at 10), not a theorem for
// every pair of step counts.

namespace {

constexpr double gauss_m = 0.1;
constexpr double gauss_s = 0.25;

double phi_cdf(double x) { return 0.5 * std::erfc(-x * 0.7071067811865476); }

/// Probability of grid level x under N(mu, var), the decoder's bins and edges.
double bin_probability(double x, double mu, double var) {
    const double sd = std::sqrt(var);
    const double h = 1.0 / 255.0;
    if (x < -0.999) return phi_cdf((x + h - mu) / sd);
    if (x > 0.999) return 1.0 - phi_cdf((x - h - mu) / sd);
    return phi_cdf((x + h - mu) / sd) - phi_cdf((x - h - mu) / sd);
}

double level(int k) { return 2.0 * k / 255.0 - 1.0; }

/// The exact ε-predictor of continuous N(m, s²) data.
struct gaussian_eps {
    const ddpm::noise_schedule* s;
    std::size_t dim;
    [[nodiscard]] double eps(double x, ddpm::timestep_t t) const {
        const double ab = s->f64().alphas_cumprod[static_cast<std::size_t>(t)];
        return std::sqrt(1.0 - ab) * (x - std::sqrt(ab) * gauss_m) / (ab * gauss_s * gauss_s + 1.0 - ab);
    }
    void operator()(std::span<const double> x, std::span<const ddpm::timestep_t> t, std::span<double> out) const {
        for (std::size_t k = 0; k < x.size(); ++k) out[k] = eps(x[k], t[k / dim]);
    }
};

struct bound_vs_nll {
    double mean_gap = 0, se = 0, min_gap = 0;
};

bound_vs_nll bound_above_nll(std::int64_t T) {
    INFO("T = " << T);
    constexpr std::size_t B = 32, D = 128;
    ddpm::schedule_config sc;
    sc.num_train_timesteps = T; // linear 1e-4 → 0.02, default profile
    const ddpm::noise_schedule s(sc);
    const gaussian_eps net{&s, D};

    // The data distribution and a batch drawn from it.
    std::vector<double> P(256);
    for (int k = 0; k < 256; ++k) P[static_cast<std::size_t>(k)] = bin_probability(level(k), gauss_m, gauss_s * gauss_s);
    std::mt19937_64 gen(2024);
    std::discrete_distribution<int> draw(P.begin(), P.end());
    std::vector<int> k0(B * D);
    std::vector<double> x0(B * D);
    for (std::size_t i = 0; i < x0.size(); ++i) x0[i] = level(k0[i] = draw(gen));

    // The model's exact marginal on the grid: affine steps μ(x) = A x + C
    // (from the library's own step coefficients), variance σ_t².
    const auto step = [&](std::int64_t t) {
        const auto c = ddpm::reverse_step_coefficients<double>(s, t, t - 1, ddpm::prediction_type::epsilon,
                                                               ddpm::variance_type::fixed_small);
        const auto mu = [&](double x) {
            const double px0 = ddpm::kernels::scalar::predict_x0(c, x, net.eps(x, t));
            return ddpm::kernels::scalar::posterior_mean(px0, x, c.mean_coef_x0, c.mean_coef_xt);
        };
        const double C = mu(0.0);
        return std::array<double, 3>{mu(1.0) - C, C, std::exp(c.log_variance)};
    };
    double mean = 0.0, var = 1.0; // x at index T − 1 ~ N(0, 1)
    for (std::int64_t t = T - 1; t >= 1; --t) {
        const auto [A, C, v] = step(t);
        mean = A * mean + C;
        var = A * A * var + v;
    }
    const auto [A0, C0, v0] = step(0);
    const double dec_mean = A0 * mean + C0, dec_var = A0 * A0 * var + v0;
    std::vector<double> nll_bits(256);
    double total = 0.0, entropy = 0.0, cross = 0.0;
    for (int k = 0; k < 256; ++k) {
        const auto u = static_cast<std::size_t>(k);
        const double q = bin_probability(level(k), dec_mean, dec_var);
        total += q;
        nll_bits[u] = -std::log2(q);
        cross += P[u] * nll_bits[u];
        if (P[u] > 0) entropy -= P[u] * std::log2(P[u]);
    }
    CHECK(std::abs(total - 1.0) < 1e-12); // a proper distribution on the grid
    CHECK(cross >= entropy);              // Gibbs: E_P[−log p_θ] ≥ H(P)

    ddpm::bpd_options o;
    o.batch = B;
    o.model.clip = ddpm::clip_options::none(); // keep the model affine
    ddpm::bpd_result r;
    REQUIRE(ddpm::bits_per_dim(s, net, x0, ddpm::counter_noise(99), r, o) == static_cast<std::size_t>(T));

    bound_vs_nll out;
    out.min_gap = std::numeric_limits<double>::infinity();
    double sum = 0.0, sum2 = 0.0;
    for (std::size_t b = 0; b < B; ++b) {
        double nll = 0.0;
        for (std::size_t i = 0; i < D; ++i) nll += nll_bits[static_cast<std::size_t>(k0[b * D + i])];
        nll /= static_cast<double>(D);
        const double gap = r.total_bpd[b] - nll;
        INFO("sample " << b << ": bound " << r.total_bpd[b] << " bits/dim, exact NLL " << nll);
        CHECK(gap > 0.0);
        out.min_gap = std::min(out.min_gap, gap);
        sum += gap;
        sum2 += gap * gap;
    }
    out.mean_gap = sum / B;
    out.se = std::sqrt((sum2 / B - out.mean_gap * out.mean_gap) / (B - 1));
    std::cout << std::setprecision(6) << "[bits_per_dim, discretised N(" << gauss_m << ", " << gauss_s << "^2), exact eps] T = " << T
              << ": entropy " << entropy << ", cross-entropy " << cross << " bits/dim; bound - NLL: mean "
              << out.mean_gap << " (s.e. " << out.se << "), min " << out.min_gap << "\n"
              << std::defaultfloat;
    CHECK(out.mean_gap > 10 * out.se);
    return out;
}

} // namespace

TEST_CASE("bits_per_dim lies above the exact NLL of discretised Gaussian data, and tightens with T",
          "[bpd][bound]") {
    const auto t1000 = bound_above_nll(1000);
    const auto t100 = bound_above_nll(100);
    CHECK(t1000.mean_gap + 10 * std::hypot(t1000.se, t100.se) < t100.mean_gap);
}

// ---------------------------------------------------------------------------
// Observer, errors, allocation.

TEST_CASE("bits_per_dim's observer sees every t in order and can stop the run", "[bpd][observer]") {
    const auto& g = golden("vlb.json");
    const auto x0 = values(g.at("x0"));
    const auto s = ddpm_test::vlb_schedule(50);
    const toy_net net{};
    ddpm::bpd_result full;
    std::vector<ddpm::timestep_t> seen;
    std::vector<double> seen_vb;
    const auto record = [&](ddpm::timestep_t t, std::span<const double> vb) {
        seen.push_back(t);
        seen_vb.insert(seen_vb.end(), vb.begin(), vb.end());
    }; // returns void: never stops
    REQUIRE(ddpm::bits_per_dim(s, net, x0, recipe_noise{}, full, golden_options("FIXED_SMALL"), record) == 50);
    REQUIRE(seen.size() == 50);
    for (std::size_t j = 0; j < 50; ++j) {
        CHECK(seen[j] == static_cast<ddpm::timestep_t>(49 - j));
        for (std::size_t b = 0; b < vlb_batch; ++b) CHECK(seen_vb[j * vlb_batch + b] == full.vb[full.index(b, seen[j])]);
    }

    // Stop after 3 timesteps (t = 49, 48, 47).
    ddpm::bpd_result part;
    std::size_t calls = 0;
    const auto stop = [&](ddpm::timestep_t, std::span<const double>) { return ++calls < 3; };
    REQUIRE(ddpm::bits_per_dim(s, net, x0, recipe_noise{}, part, golden_options("FIXED_SMALL"), stop) == 3);
    CHECK(calls == 3);
    CHECK(part.evaluated == 3);
    CHECK_FALSE(part.complete());
    CHECK(part.num_timesteps == 50);
    CHECK(part.prior_bpd == full.prior_bpd);
    for (std::size_t b = 0; b < vlb_batch; ++b) {
        CHECK(std::isnan(part.total_bpd[b]));
        for (ddpm::timestep_t t = 0; t < 50; ++t) {
            const auto at = part.index(b, t);
            if (t >= 47) {
                CHECK(part.vb[at] == full.vb[at]);
                CHECK(part.xstart_mse[at] == full.xstart_mse[at]);
                CHECK(part.mse[at] == full.mse[at]);
            } else {
                CHECK(std::isnan(part.vb[at]));
                CHECK(std::isnan(part.xstart_mse[at]));
                CHECK(std::isnan(part.mse[at]));
            }
        }
    }
}

namespace {

/// A network type that declares a learned variance (2 output channels).
struct learned_net {
    static constexpr ddpm::variance_type variance = ddpm::variance_type::learned_range;
    void operator()(std::span<const double>, std::span<const ddpm::timestep_t>, std::span<double> out) const {
        std::fill(out.begin(), out.end(), 0.0);
    }
};

ddpm::noise_schedule ten_step_schedule() {
    ddpm::schedule_config sc;
    sc.num_train_timesteps = 10;
    sc.beta_end = 0.2;
    return ddpm::noise_schedule(sc);
}

ddpm::bpd_result sentinel() {
    ddpm::bpd_result r;
    r.batch = 7;
    r.total_bpd = {123.0};
    r.vb = {1.0, 2.0};
    return r;
}

bool untouched(const ddpm::bpd_result& r) {
    return r.batch == 7 && r.total_bpd == std::vector<double>{123.0} && r.vb == std::vector<double>{1.0, 2.0} &&
           r.evaluated == 0;
}

} // namespace

TEST_CASE("bits_per_dim rejects bad input before writing anything", "[bpd][errors]") {
    const auto s = ten_step_schedule();
    const std::vector<double> x0(2 * 6, 0.0);
    const toy_net net{6, false};
    ddpm::bpd_options o;
    o.batch = 2;
    auto r = sentinel();
    using Catch::Matchers::Contains;

    SECTION("batch 0") {
        o.batch = 0;
        CHECK_THROWS_MATCHES(ddpm::bits_per_dim(s, net, x0, ddpm::counter_noise(1), r, o), ddpm::invalid_argument,
                             Catch::Matchers::Message("ddpm::bits_per_dim: options.batch = 0; expected >= 1"));
    }
    SECTION("x0 not a multiple of the batch") {
        o.batch = 5;
        CHECK_THROWS_WITH(ddpm::bits_per_dim(s, net, x0, ddpm::counter_noise(1), r, o), Contains("x0.size() = 12"));
    }
    SECTION("empty x0") {
        CHECK_THROWS_AS(ddpm::bits_per_dim(s, net, std::vector<double>{}, ddpm::counter_noise(1), r, o), ddpm::invalid_argument);
    }
    SECTION("bad clip options") {
        o.model.clip = ddpm::clip_options::clip(-1.0);
        CHECK_THROWS_WITH(ddpm::bits_per_dim(s, net, x0, ddpm::counter_noise(1), r, o), Contains("clip_range"));
    }
    SECTION("a model that declares a learned variance, options that do not") {
        o.model.variance = ddpm::variance_type::fixed_large;
        CHECK_THROWS_WITH(ddpm::bits_per_dim(s, learned_net{}, x0, ddpm::counter_noise(1), r, o),
                          Contains("options.model.variance = fixed_large") && Contains("learned_range"));
        o.model.variance = ddpm::variance_type::learned; // 2 channels too: accepted
        CHECK(ddpm::bits_per_dim(s, learned_net{}, x0, ddpm::counter_noise(1), r, o) == 10);
        r = sentinel();
    }
    SECTION("a noise source that throws (buffer too short)") {
        const std::vector<double> short_buffer(5 * x0.size());
        CHECK_THROWS_WITH(ddpm::bits_per_dim(s, net, x0, ddpm::buffer_noise<double>(short_buffer), r, o),
                          Contains("buffer_noise"));
    }
    CHECK(untouched(r));
}

TEST_CASE("bits_per_dim's finite check names the timestep", "[bpd][errors]") {
    const auto s = ten_step_schedule();
    const std::vector<double> x0(2 * 6, 0.5);
    // NaN at t = 6 only.
    const auto bad_net = [](std::span<const double> x, std::span<const ddpm::timestep_t> t, std::span<double> out) {
        for (std::size_t k = 0; k < x.size(); ++k) out[k] = t[0] == 6 && k == 7 ? std::nan("") : 0.1 * x[k];
    };
    ddpm::bpd_options o;
    o.batch = 2;
    o.check_finite = true;
    auto r = sentinel();
    CHECK_THROWS_MATCHES(ddpm::bits_per_dim(s, bad_net, x0, ddpm::counter_noise(3), r, o), ddpm::numerical_error,
                         Catch::Matchers::Message("ddpm::bits_per_dim: the network output at step 3 (t = 6) is not "
                                                  "finite: model_output[7] = nan"));
    CHECK(untouched(r));
    // Without the check the NaN reaches the terms of t = 6 and the total.
    o.check_finite = false;
    REQUIRE(ddpm::bits_per_dim(s, bad_net, x0, ddpm::counter_noise(3), r, o) == 10);
    CHECK(std::isnan(r.vb[r.index(1, 6)]));
    CHECK(std::isfinite(r.vb[r.index(1, 5)]));
    CHECK(std::isnan(r.total_bpd[1]));
}

TEST_CASE("bits_per_dim allocates nothing inside the loop over t", "[bpd][alloc]") {
    const auto& g = golden("vlb.json");
    const auto x0 = values(g.at("x0"));
    const auto s = ddpm_test::vlb_schedule(50);
    ddpm::bpd_options o = golden_options("LEARNED_RANGE");
    o.model.clip = ddpm::clip_options::dynamic(0.9, 2.0); // exercises the thresholding scratch
    o.check_finite = true;
    const toy_net inner{vlb_dim, true};
    std::size_t at_first_call = 0;
    bool first = true;
    const auto net = [&](std::span<const double> x, std::span<const ddpm::timestep_t> t, std::span<double> out) {
        if (first) at_first_call = g_allocations.load();
        first = false;
        inner(x, t, out);
    };
    std::vector<std::size_t> at_observer;
    at_observer.reserve(64);
    const auto observe = [&](ddpm::timestep_t, std::span<const double>) { at_observer.push_back(g_allocations.load()); };
    ddpm::bpd_result r;
    SECTION("counter_noise") { REQUIRE(ddpm::bits_per_dim(s, net, x0, ddpm::counter_noise(1234), r, o, observe) == 50); }
    SECTION("buffer_noise") {
        const std::vector<double> slots(50 * N, 0.25);
        REQUIRE(ddpm::bits_per_dim(s, net, x0, ddpm::buffer_noise<double>(slots), r, o, observe) == 50);
    }
    REQUIRE(at_observer.size() == 50);
    CHECK(at_observer.front() == at_first_call);
    CHECK(at_observer.back() == at_first_call);
}
