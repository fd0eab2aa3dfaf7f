// Parity of the variational-bound terms with improved-diffusion
// (tests/data/vlb.json): for linear_T1000 and linear_T50, FIXED_SMALL,
// FIXED_LARGE and LEARNED_RANGE, clip_denoised True/False — pred_xstart,
// p_mean_variance mean/log-variance, the true posterior, _vb_terms_bpd,
// _prior_bpd, and calc_bpd_loop (replayed here with the stored noise recipe).
//
// Mode f64coef (improved-diffusion end-to-end float64) is compared with ddpm in
// the improved_diffusion profile in double. Mode native (improved-diffusion as
// shipped: per-timestep coefficients rounded to float32 before they multiply
// float64 tensors) is reproduced by a test-local emulation built on ddpm's
// element-wise functions, and its distance from ddpm's float64 path is printed.
#include <catch2/catch.hpp>

#include "noise_recipe.hpp"
#include "vlb_support.hpp"

#include <ddpm/core/forward.hpp>
#include <ddpm/core/likelihood.hpp>
#include <ddpm/core/p_mean_variance.hpp>
#include <ddpm/core/parameterization.hpp>
#include <ddpm/core/posterior.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

using ddpm_test::golden;
using ddpm_test::max_rel_diff;
using ddpm_test::values;
using ddpm_test::vlb_batch;
using ddpm_test::vlb_dim;

namespace {

constexpr std::size_t N = vlb_batch * vlb_dim;
const char* const diffusions[] = {"linear_T1000", "linear_T50"};
const char* const var_types[] = {"FIXED_SMALL", "FIXED_LARGE", "LEARNED_RANGE"};

// Tolerances, relative to max(|a|, |b|, floor).
//
// Every quantity is compared with a pure relative difference except the
// B×D tensors (x_t, x̂_0, means), whose elements can pass through zero: there
// the floor is 1, i.e. the difference is absolute for |value| < 1 (the tensors
// are O(1): x_0 ∈ [−1, 1], |x_t| < 4). The measured worst values are printed.
constexpr double tol_f64 = 1e-12;
constexpr double tensor_floor = 1.0;
// The KL terms (bits) are compared relative to max(|a|, |b|, 0.01 bits), i.e.
// absolutely (to 1e-14 bits) below 0.01 bits. Why: near t = T the KL is tiny
// (6.9e-7 bits at linear_T1000 t = 999) and is the residue of O(1) terms that
// cancel: −1 + lv2 − lv1 + e^{lv1−lv2} with lv ≈ −3.9 there, so −1 + lv2 ≈ −4.9
// carries a rounding of up to ulp(4.9)/2 = 4.4e-16, and e^{lv1−lv2} ≈ 1 one of
// up to 1.1e-16 (torch's SLEEF exp is within 1 ulp, glibc's within ½). That is
// ≤ ½ (4.4 + 1.1 + 0.6)e-16 nats ≈ 4.4e-16 bits per element, the same for every
// element of a fixed-variance sample: a relative ~6e-10 of that KL. Measured:
// 4.7e-10 pure relative (3.2e-16 bits), with improved-diffusion's grouping
// (−1 + lv2) − lv1 or with ddpm's −1 + (lv2 − lv1) alike; the absolute
// differences stay ≤ 6.7e-15 bits everywhere (printed "abs" rows).
constexpr double bits_floor = 0.01;

ddpm::model_options options(const std::string& vt, bool clip) {
    ddpm::model_options o;
    o.prediction = ddpm::prediction_type::epsilon;
    o.variance = ddpm_test::variance_from_golden(vt);
    o.clip = clip ? ddpm::clip_options::clip(1.0) : ddpm::clip_options::none();
    return o;
}

/// Per-sample mean over D of f(k), the way improved-diffusion's mean_flat does.
template <class F>
std::vector<double> mean_flat(F f) {
    std::vector<double> out(vlb_batch);
    for (std::size_t b = 0; b < vlb_batch; ++b) {
        double acc = 0.0;
        for (std::size_t i = 0; i < vlb_dim; ++i) acc += f(b * vlb_dim + i);
        out[b] = acc / static_cast<double>(vlb_dim);
    }
    return out;
}

double sq(double v) { return v * v; }

// ---------------------------------------------------------------------------
// improved-diffusion's own evaluation order, for the emulations below.

/// torch's float32 exp on the CPU: Vectorized<float>::exp is Sleef_expf8_u10
/// (SLEEF xexpf, sleefsimdsp.c; the AVX2 build, whose vmla is a fused
/// multiply-add). It is within 1 ulp, not correctly rounded: on this data it is
/// 1 ulp below glibc's (correctly rounded) expf at two arguments, −lv2 of
/// FIXED_LARGE at linear_T1000 t = 10 and linear_T50 t = 1, which moves
/// output_bits by 7e-8 and 4e-8 relative. Replayed here so the native
/// emulation is exact (std::fma is the fused multiply-add, whatever the flags).
float sleef_expf_u10(float d) {
    constexpr float r_ln2 = 1.442695040888963407359924681001892137426645954152985934135449406931f;
    constexpr float l2u = 0.693145751953125f;
    constexpr float l2l = 1.428606765330187045e-06f;
    if (d < -104.0f) return 0.0f;
    if (d > 100.0f) return std::numeric_limits<float>::infinity();
    const int q = static_cast<int>(std::nearbyint(d * r_ln2));
    float s = std::fma(static_cast<float>(q), -l2u, d);
    s = std::fma(static_cast<float>(q), -l2l, s);
    float u = 0.000198527617612853646278381f;
    u = std::fma(u, s, 0.00139304355252534151077271f);
    u = std::fma(u, s, 0.00833336077630519866943359f);
    u = std::fma(u, s, 0.0416664853692054748535156f);
    u = std::fma(u, s, 0.166666671633720397949219f);
    u = std::fma(u, s, 0.5f);
    u = 1.0f + std::fma(s * s, u, s);
    return std::ldexp(u, q);
}

/// losses.normal_kl in float64, left to right as written: (−1 + lv2) − lv1 + ….
double peer_kl_f64(double m1, double lv1, double m2, double lv2) {
    const double d = m1 - m2;
    return 0.5 * (-1.0 + lv2 - lv1 + std::exp(lv1 - lv2) + (d * d) * std::exp(-lv2));
}

/// losses.normal_kl as torch evaluates it when the log-variances are float32
/// tensors (native mode: _extract_into_tensor's .float()), or when lv1 is one and
/// lv2 is the 0-dim float64 tensor of a Python 0.0 (_prior_bpd): by torch's type
/// promotion −1 + lv2 − lv1 + e^{lv1 − lv2} is then computed in float32, and only
/// (μ1 − μ2)² e^{−lv2} (float64 means) in float64.
double peer_kl_f32_logvars(double m1, float lv1, double m2, float lv2) {
    const float a = (-1.0f + lv2) - lv1;
    const float v = a + sleef_expf_u10(lv1 - lv2);
    const double d = m1 - m2;
    return 0.5 * (static_cast<double>(v) + (d * d) * static_cast<double>(sleef_expf_u10(-lv2)));
}

/// losses.discretized_gaussian_log_likelihood with a float32 log-scale tensor
/// (native, fixed variances): inv_stdv = exp(−log_scales) is a float32 tensor;
/// everything after it is float64.
double peer_dgll_f32_scale(double x, double mean, float log_scale) {
    using ddpm::kernels::scalar::approx_standard_normal_cdf;
    const double centered = x - mean;
    const double inv_stdv = static_cast<double>(sleef_expf_u10(-log_scale));
    const double cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0));
    const double cdf_min = approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0));
    const auto floor = [](double v) { return v < 1e-12 ? 1e-12 : v; };
    if (x < -0.999) return std::log(floor(cdf_plus));
    if (x > 0.999) return std::log(floor(1.0 - cdf_min));
    return std::log(floor(cdf_plus - cdf_min));
}

// ---------------------------------------------------------------------------
// improved-diffusion "native": _extract_into_tensor rounds every per-timestep
// coefficient to float32 (.float()), and torch's type promotion decides the
// precision of each operation: float32 coefficient × float64 tensor is float64,
// but an operation between float32 tensors only (the fixed log-variances, the
// log-scale of the decoder, the log-variance part of normal_kl) stays float32.
// A test-local emulation; ddpm itself has no float32-coefficient mode.
float f32(double v) { return static_cast<float>(v); }

struct native_terms {
    std::vector<double> pred_x0, mean, log_variance, true_mean, true_log_variance, bits;
};

native_terms native_vb_terms(const ddpm::noise_schedule& s, const std::string& vt, bool clip,
                             const std::vector<double>& model_output, const std::vector<double>& x0,
                             const std::vector<double>& xt, std::int64_t t) {
    const auto& d = s.f64();
    const auto i = static_cast<std::size_t>(t);
    const bool learned = vt == "LEARNED_RANGE";
    const std::size_t stride = (learned ? 2 : 1) * vlb_dim;
    const float true_lv = f32(d.posterior_log_variance_clipped[i]);
    // FIXED_LARGE: log(append(posterior_variance[1], betas[1:])).
    const float fixed_lv = vt == "FIXED_SMALL" ? true_lv
                                               : f32(std::log(t == 0 ? d.posterior_variance[1] : d.betas[i]));
    native_terms r;
    r.pred_x0.resize(N);
    r.mean.resize(N);
    r.log_variance.resize(N);
    r.true_mean.resize(N);
    r.true_log_variance.assign(N, true_lv);
    std::vector<double> elem(N);
    for (std::size_t b = 0; b < vlb_batch; ++b)
        for (std::size_t j = 0; j < vlb_dim; ++j) {
            const std::size_t k = b * vlb_dim + j;
            const double eps = model_output[b * stride + j];
            double px0 = double(f32(d.sqrt_recip_alphas_cumprod[i])) * xt[k] -
                         double(f32(d.sqrt_recipm1_alphas_cumprod[i])) * eps;
            if (clip) px0 = std::min(std::max(px0, -1.0), 1.0);
            r.pred_x0[k] = px0;
            r.mean[k] = double(f32(d.posterior_mean_coef1[i])) * px0 + double(f32(d.posterior_mean_coef2[i])) * xt[k];
            r.true_mean[k] =
                double(f32(d.posterior_mean_coef1[i])) * x0[k] + double(f32(d.posterior_mean_coef2[i])) * xt[k];
            if (!learned) {
                r.log_variance[k] = fixed_lv;
                elem[k] = t == 0 ? -peer_dgll_f32_scale(x0[k], r.mean[k], 0.5f * fixed_lv)
                                 : peer_kl_f32_logvars(r.true_mean[k], true_lv, r.mean[k], fixed_lv);
            } else {
                // float64: frac (float64) × float32 bounds.
                const double frac = (model_output[b * stride + vlb_dim + j] + 1) / 2;
                const double lv = frac * double(f32(std::log(d.betas[i]))) + (1 - frac) * double(true_lv);
                r.log_variance[k] = lv;
                elem[k] = t == 0 ? -ddpm::kernels::scalar::discretized_gaussian_log_likelihood(
                                       x0[k], r.mean[k], 0.5 * lv, ddpm::normal_cdf::tanh_approx)
                                 : peer_kl_f64(r.true_mean[k], true_lv, r.mean[k], lv);
            }
        }
    r.bits = mean_flat([&](std::size_t k) { return elem[k]; });
    for (auto& v : r.bits) v /= ddpm::kernels::scalar::ln2;
    return r;
}

std::vector<double> native_q_sample(const ddpm::noise_schedule& s, const std::vector<double>& x0,
                                    const std::vector<double>& z, std::int64_t t) {
    const auto& d = s.f64();
    const auto i = static_cast<std::size_t>(t);
    std::vector<double> xt(N);
    for (std::size_t k = 0; k < N; ++k)
        xt[k] = double(f32(d.sqrt_alphas_cumprod[i])) * x0[k] + double(f32(d.sqrt_one_minus_alphas_cumprod[i])) * z[k];
    return xt;
}

std::vector<double> native_prior_bpd(const ddpm::noise_schedule& s, const std::vector<double>& x0) {
    const auto& d = s.f64();
    const auto last = static_cast<std::size_t>(s.size() - 1);
    std::vector<double> kl(N);
    for (std::size_t k = 0; k < N; ++k)
        kl[k] = peer_kl_f32_logvars(double(f32(d.sqrt_alphas_cumprod[last])) * x0[k],
                                    f32(d.log_one_minus_alphas_cumprod[last]), 0.0, 0.0f);
    auto r = mean_flat([&](std::size_t k) { return kl[k]; });
    for (auto& v : r) v /= ddpm::kernels::scalar::ln2;
    return r;
}

// ---------------------------------------------------------------------------
// calc_bpd_loop(clip_denoised=True), replayed: t = T−1 … 0, x_t = q_sample(x_0,
// t, z_t) with the recipe noise, then _vb_terms_bpd; vb/xstart_mse/mse columns
// j = T−1−t; total = Σ_j vb + prior.
struct bpd_loop {
    std::vector<std::vector<double>> vb, xstart_mse, mse; // [B][T]
    std::vector<double> prior, total;
};

bpd_loop run_bpd_loop(const ddpm::noise_schedule& s, const std::string& vt, const std::vector<double>& x0,
                      bool native) {
    const std::int64_t T = s.size();
    const auto opt = options(vt, true);
    const bool learned = vt == "LEARNED_RANGE";
    const auto& d = s.f64();
    bpd_loop r;
    r.vb.assign(vlb_batch, std::vector<double>(static_cast<std::size_t>(T)));
    r.xstart_mse = r.vb;
    r.mse = r.vb;
    for (std::int64_t t = T - 1; t >= 0; --t) {
        const auto j = static_cast<std::size_t>(T - 1 - t);
        const auto i = static_cast<std::size_t>(t);
        const std::vector<std::int64_t> ts(vlb_batch, t);
        const auto z = ddpm_test::vlb_noise(t, N);
        std::vector<double> xt(N), bits(vlb_batch), px0(N), eps(N);
        if (native) {
            xt = native_q_sample(s, x0, z, t);
            const auto nt = native_vb_terms(s, vt, true, ddpm_test::toy_model(xt, t, learned), x0, xt, t);
            bits = nt.bits;
            px0 = nt.pred_x0;
            // _predict_eps_from_xstart with float32 coefficients
            for (std::size_t k = 0; k < N; ++k)
                eps[k] = (double(f32(d.sqrt_recip_alphas_cumprod[i])) * xt[k] - px0[k]) /
                         double(f32(d.sqrt_recipm1_alphas_cumprod[i]));
        } else {
            ddpm::q_sample(s, x0, z, ts, xt);
            ddpm::vb_terms_bpd(s, opt, ddpm_test::toy_model(xt, t, learned), x0, xt, ts, bits, px0);
            ddpm::predict_eps_from_x0(s, xt, px0, ts, eps);
        }
        const auto xmse = mean_flat([&](std::size_t k) { return sq(px0[k] - x0[k]); });
        const auto emse = mean_flat([&](std::size_t k) { return sq(eps[k] - z[k]); });
        for (std::size_t b = 0; b < vlb_batch; ++b) {
            r.vb[b][j] = bits[b];
            r.xstart_mse[b][j] = xmse[b];
            r.mse[b][j] = emse[b];
        }
    }
    if (native) {
        r.prior = native_prior_bpd(s, x0);
    } else {
        r.prior.resize(vlb_batch);
        ddpm::prior_bpd(s, x0, r.prior);
    }
    r.total.resize(vlb_batch);
    for (std::size_t b = 0; b < vlb_batch; ++b) {
        double acc = 0.0;
        for (const double v : r.vb[b]) acc += v;
        r.total[b] = acc + r.prior[b];
    }
    return r;
}

std::vector<double> row(const std::vector<double>& flat, std::size_t b, std::size_t T) {
    return {flat.begin() + static_cast<std::ptrdiff_t>(b * T), flat.begin() + static_cast<std::ptrdiff_t>((b + 1) * T)};
}

/// Compares one calc_bpd_loop result with its golden record.
void check_bpd_loop(ddpm_test::worst_table& w, const std::string& prefix, const bpd_loop& r, const nlohmann::json& ref,
                    std::size_t T, double tol_total, double tol_vb, double tol_mse) {
    const double d_total = w.record(prefix + "total_bpd", max_rel_diff(r.total, values(ref.at("total_bpd"))));
    const double d_prior = w.record(prefix + "prior_bpd", max_rel_diff(r.prior, values(ref.at("prior_bpd"))));
    CHECK(d_total <= tol_total);
    CHECK(d_prior <= tol_total);
    const auto vb = values(ref.at("vb"));
    const auto xmse = values(ref.at("xstart_mse"));
    const auto emse = values(ref.at("mse"));
    for (std::size_t b = 0; b < vlb_batch; ++b) {
        INFO("sample " << b);
        w.record(prefix + "vb[t] (pure relative, info)", max_rel_diff(r.vb[b], row(vb, b, T)));
        w.record(prefix + "vb[t] (abs, info)", ddpm_test::max_abs_diff(r.vb[b], row(vb, b, T)));
        CHECK(w.record(prefix + "vb[t]", max_rel_diff(r.vb[b], row(vb, b, T), bits_floor)) <= tol_vb);
        CHECK(w.record(prefix + "xstart_mse[t]", max_rel_diff(r.xstart_mse[b], row(xmse, b, T))) <= tol_mse);
        CHECK(w.record(prefix + "mse[t]", max_rel_diff(r.mse[b], row(emse, b, T))) <= tol_mse);
    }
}

} // namespace

TEST_CASE("vb terms, posterior and p_mean_variance match improved-diffusion f64coef", "[likelihood][parity][vlb]") {
    const auto& g = golden("vlb.json");
    const auto x0 = values(g.at("x0"));
    REQUIRE(x0.size() == N);
    ddpm_test::worst_table w("vlb.json f64coef vs ddpm improved_diffusion profile, double");
    for (const char* dname : diffusions) {
        const auto& gd = g.at("diffusions").at(dname);
        const auto T = gd.at("T").get<std::int64_t>();
        const auto s = ddpm_test::vlb_schedule(T);
        for (const auto& tv : gd.at("timesteps_recorded")) {
            const auto t = tv.get<std::int64_t>();
            const std::string tkey = std::to_string(t);
            const std::vector<std::int64_t> ts(vlb_batch, t);
            // x_t = q_sample(x_0, t, z_t): checks the noise recipe and q_sample.
            const auto z = ddpm_test::vlb_noise(t, N);
            std::vector<double> xt_ours(N);
            ddpm::q_sample(s, x0, z, ts, xt_ours);
            const auto xt = values(gd.at("x_t").at("f64coef").at(tkey));
            CHECK(w.record("x_t = q_sample(x0, z_t)", max_rel_diff(xt_ours, xt, tensor_floor)) <= tol_f64);

            for (const char* vt : var_types) {
                const auto& ref = gd.at("var_types").at(vt).at("f64coef").at("vb_terms").at(tkey);
                const bool learned = std::string(vt) == "LEARNED_RANGE";
                const auto mo = ddpm_test::toy_model(xt, t, learned);
                INFO(dname << " " << vt << " t=" << t);

                // The true posterior q(x_{t−1} | x_t, x_0).
                std::vector<double> pmean(N), pvar(vlb_batch), plog(vlb_batch);
                ddpm::q_posterior_mean_variance(s, x0, xt, ts, pmean, pvar, plog);
                CHECK(w.record("true_posterior_mean",
                               max_rel_diff(pmean, values(ref.at("true_posterior_mean")), tensor_floor)) <= tol_f64);
                const auto glog = values(ref.at("true_posterior_log_variance_clipped"));
                std::vector<double> plog_full(N);
                for (std::size_t k = 0; k < N; ++k) plog_full[k] = plog[k / vlb_dim];
                CHECK(w.record("true_posterior_log_variance_clipped", max_rel_diff(plog_full, glog)) <= tol_f64);

                for (const bool clip : {true, false}) {
                    INFO("clip_denoised=" << clip);
                    const auto& rc = ref.at(clip ? "clip_denoised_True" : "clip_denoised_False");
                    const auto opt = options(vt, clip);
                    std::vector<double> mean(N), var(N), logvar(N), px0(N), bits(vlb_batch), px0_vb(N);
                    ddpm::p_mean_variance(s, opt, mo, xt, ts, mean, var, logvar, px0);
                    ddpm::vb_terms_bpd(s, opt, mo, x0, xt, ts, bits, px0_vb);
                    CHECK(w.record("pred_xstart", max_rel_diff(px0, values(rc.at("pred_xstart")), tensor_floor)) <=
                          tol_f64);
                    CHECK(px0_vb == px0);
                    CHECK(w.record("p_mean_variance mean", max_rel_diff(mean, values(rc.at("model_mean")),
                                                                        tensor_floor)) <= tol_f64);
                    CHECK(w.record("p_mean_variance log_variance",
                                   max_rel_diff(logvar, values(rc.at("model_log_variance")))) <= tol_f64);
                    const std::string which = t == 0 ? "vb_terms_bpd bits (t=0, decoder NLL)" : "vb_terms_bpd bits (t>0, KL)";
                    w.record(which + " (pure relative, info)", max_rel_diff(bits, values(rc.at("output_bits"))));
                    w.record(which + " (abs, info)", ddpm_test::max_abs_diff(bits, values(rc.at("output_bits"))));
                    CHECK(w.record(which, max_rel_diff(bits, values(rc.at("output_bits")), bits_floor)) <= tol_f64);
                }
            }
        }
        for (const char* vt : var_types) {
            INFO(dname << " " << vt);
            std::vector<double> prior(vlb_batch);
            ddpm::prior_bpd(s, x0, prior);
            const auto& ref = gd.at("var_types").at(vt).at("f64coef").at("prior_bpd");
            CHECK(w.record("prior_bpd", max_rel_diff(prior, values(ref))) <= tol_f64);
        }
    }
    w.print();
}

TEST_CASE("calc_bpd_loop replayed with ddpm matches improved-diffusion f64coef", "[likelihood][parity][vlb]") {
    const auto& g = golden("vlb.json");
    const auto x0 = values(g.at("x0"));
    ddpm_test::worst_table w("calc_bpd_loop f64coef vs ddpm (vb_terms_bpd + prior_bpd), double");
    for (const char* dname : diffusions) {
        const auto& gd = g.at("diffusions").at(dname);
        const auto T = gd.at("T").get<std::int64_t>();
        const auto s = ddpm_test::vlb_schedule(T);
        for (const char* vt : var_types) {
            INFO(dname << " " << vt);
            const auto r = run_bpd_loop(s, vt, x0, false);
            const auto& ref = gd.at("var_types").at(vt).at("f64coef").at("calc_bpd_loop_clip_denoised_True");
            check_bpd_loop(w, std::string(dname) + " ", r, ref, static_cast<std::size_t>(T), tol_f64, tol_f64,
                           tol_f64);
        }
    }
    w.print();
}

TEST_CASE("improved-diffusion native mode (float32 coefficients) is reproduced by emulation",
          "[likelihood][parity][vlb][native]") {
    const auto& g = golden("vlb.json");
    const auto x0 = values(g.at("x0"));
    ddpm_test::worst_table w("vlb.json native vs test-local float32-coefficient emulation");
    ddpm_test::worst_table dist("vlb.json native vs ddpm's float64 path (distance, not a tolerance)");
    for (const char* dname : diffusions) {
        const auto& gd = g.at("diffusions").at(dname);
        const auto T = gd.at("T").get<std::int64_t>();
        const auto s = ddpm_test::vlb_schedule(T);
        for (const auto& tv : gd.at("timesteps_recorded")) {
            const auto t = tv.get<std::int64_t>();
            const std::string tkey = std::to_string(t);
            const std::vector<std::int64_t> ts(vlb_batch, t);
            const auto xt = values(gd.at("x_t").at("native").at(tkey));
            const auto z = ddpm_test::vlb_noise(t, N);
            CHECK(w.record("x_t", max_rel_diff(native_q_sample(s, x0, z, t), xt, tensor_floor)) <= tol_f64);
            for (const char* vt : var_types) {
                const auto& ref = gd.at("var_types").at(vt).at("native").at("vb_terms").at(tkey);
                const bool learned = std::string(vt) == "LEARNED_RANGE";
                const auto mo = ddpm_test::toy_model(xt, t, learned);
                INFO(dname << " " << vt << " t=" << t);
                for (const bool clip : {true, false}) {
                    INFO("clip_denoised=" << clip);
                    const auto& rc = ref.at(clip ? "clip_denoised_True" : "clip_denoised_False");
                    const auto r = native_vb_terms(s, vt, clip, mo, x0, xt, t);
                    CHECK(w.record("pred_xstart", max_rel_diff(r.pred_x0, values(rc.at("pred_xstart")), tensor_floor)) <= tol_f64);
                    CHECK(w.record("model_mean", max_rel_diff(r.mean, values(rc.at("model_mean")), tensor_floor)) <= tol_f64);
                    CHECK(w.record("model_log_variance", max_rel_diff(r.log_variance, values(rc.at("model_log_variance")))) <= tol_f64);
                    w.record("output_bits (pure relative, info)", max_rel_diff(r.bits, values(rc.at("output_bits"))));
                    CHECK(w.record("output_bits", max_rel_diff(r.bits, values(rc.at("output_bits")), bits_floor)) <= tol_f64);
                    if (clip) {
                        CHECK(w.record("true_posterior_mean", max_rel_diff(r.true_mean, values(ref.at("true_posterior_mean")), tensor_floor)) <= tol_f64);
                        CHECK(w.record("true_posterior_log_variance_clipped",
                                       max_rel_diff(r.true_log_variance, values(ref.at("true_posterior_log_variance_clipped")))) <= tol_f64);
                    }
                    // How far ddpm's float64 path lies from native.
                    std::vector<double> bits(vlb_batch), px0(N);
                    ddpm::vb_terms_bpd(s, options(vt, clip), mo, x0, xt, ts, bits, px0);
                    dist.record("output_bits (rel)", max_rel_diff(bits, values(rc.at("output_bits"))));
                    dist.record("pred_xstart (abs, floor 1)", max_rel_diff(px0, values(rc.at("pred_xstart")), 1.0));
                }
            }
        }
        for (const char* vt : var_types) {
            INFO(dname << " " << vt);
            const auto& vref = gd.at("var_types").at(vt).at("native");
            CHECK(w.record("prior_bpd", max_rel_diff(native_prior_bpd(s, x0), values(vref.at("prior_bpd")))) <= tol_f64);
            std::vector<double> prior(vlb_batch);
            ddpm::prior_bpd(s, x0, prior);
            dist.record("prior_bpd (rel)", max_rel_diff(prior, values(vref.at("prior_bpd"))));

            const auto& ref = vref.at("calc_bpd_loop_clip_denoised_True");
            const auto r = run_bpd_loop(s, vt, x0, true);
            check_bpd_loop(w, std::string(dname) + " ", r, ref, static_cast<std::size_t>(T), tol_f64, tol_f64, tol_f64);
            const auto r64 = run_bpd_loop(s, vt, x0, false);
            dist.record(std::string(dname) + " total_bpd (rel)", max_rel_diff(r64.total, values(ref.at("total_bpd"))));
            dist.record(std::string(dname) + " total_bpd (abs, bits)", ddpm_test::max_abs_diff(r64.total, values(ref.at("total_bpd"))));
        }
    }
    w.print();
    dist.print();
}
