// Guidance adapters (ddpm/guidance.hpp): classifier-free guidance in one call
// of 2B or two calls of B, guidance_rescale, the prediction types, classifier
// guidance, and guided DDIM on the analytic mixture (docs/guidance.md).
#include <catch2/catch.hpp>

#include <ddpm/guidance.hpp>
#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>
#include <ddpm/samplers/dpm_solver.hpp>
#include <ddpm/samplers/noise.hpp>
#include <samplers/mixture.hpp>
#include <support/gaussian.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace {

using ddpm_test::gaussian;

/// A conditional test network: out = (1 + 0.1 c) x + 0.01 t + 0.5 c per
/// element (c = -1 is the unconditional label); counts its calls and the
/// batch sizes it was called with. For 2·D outputs the variance values are
/// 100 + c.
struct affine_net {
    std::size_t channels = 1;
    std::vector<std::size_t> batches{};

    template <class T, class Ts>
    void operator()(std::span<const T> x, std::span<const Ts> t, std::span<const int> c, std::span<T> out) {
        const std::size_t B = t.size(), D = x.size() / B;
        REQUIRE(c.size() == B);
        REQUIRE(out.size() == B * D * channels);
        batches.push_back(B);
        for (std::size_t b = 0; b < B; ++b) {
            for (std::size_t i = 0; i < D; ++i)
                out[b * D * channels + i] = static_cast<T>((1 + 0.1 * c[b]) * static_cast<double>(x[b * D + i]) +
                                                           0.01 * static_cast<double>(t[b]) + 0.5 * c[b]);
            for (std::size_t i = D; i < D * channels; ++i) out[b * D * channels + i] = static_cast<T>(100 + c[b]);
        }
    }
};

/// The same network with the condition captured: a plain denoiser.
struct fixed_condition {
    std::vector<int> c;
    affine_net net{};
    template <class T, class Ts>
    void operator()(std::span<const T> x, std::span<const Ts> t, std::span<T> out) {
        std::vector<int> cs = c.size() == 1 ? std::vector<int>(t.size(), c.front()) : c;
        net(x, t, std::span<const int>(cs), out);
    }
};

template <class T>
double max_abs_diff(const std::vector<T>& a, const std::vector<T>& b) {
    REQUIRE(a.size() == b.size());
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        m = std::max(m, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
    return m;
}

/// The network's own output for one condition per sample.
template <class T>
std::vector<T> run(affine_net& net, const std::vector<T>& x, const std::vector<ddpm::timestep_t>& t,
                   const std::vector<int>& c, std::size_t channels = 1) {
    std::vector<T> out(x.size() * channels);
    net.channels = channels;
    net(std::span<const T>(x), std::span<const ddpm::timestep_t>(t), std::span<const int>(c), std::span<T>(out));
    return out;
}

} // namespace

TEMPLATE_TEST_CASE("classifier-free guidance: w = 0 is the unconditional network, w = 1 the conditional one",
                   "[guidance][cfg]", float, double) {
    using T = TestType;
    const std::size_t B = 3, D = 5;
    const auto x = gaussian<T>(B * D, 1);
    const std::vector<ddpm::timestep_t> t{0, 10, 999};
    const std::vector<int> labels{0, 2, 1};
    affine_net ref;
    const auto out_c = run<T>(ref, x, t, labels);
    const auto out_u = run<T>(ref, x, t, {-1, -1, -1});
    const double tol = std::is_same_v<T, float> ? 4e-6 : 1e-14;

    for (const auto batching : {ddpm::guidance_batching::joint, ddpm::guidance_batching::separate}) {
        ddpm::cfg_options o;
        o.batching = batching;
        std::vector<T> out(B * D);
        ddpm::classifier_free_guidance<affine_net, int> g1(affine_net{}, labels, -1, 1.0, o);
        g1(std::span<const T>(x), std::span<const ddpm::timestep_t>(t), std::span<T>(out));
        CHECK(max_abs_diff(out, out_c) <= tol);
        ddpm::classifier_free_guidance<affine_net, int> g0(affine_net{}, labels, -1, 0.0, o);
        g0(std::span<const T>(x), std::span<const ddpm::timestep_t>(t), std::span<T>(out));
        CHECK(max_abs_diff(out, out_u) <= tol);
        // w = 3: u + 3 (c − u), element by element.
        ddpm::classifier_free_guidance<affine_net, int> g3(affine_net{}, labels, -1, 3.0, o);
        g3(std::span<const T>(x), std::span<const ddpm::timestep_t>(t), std::span<T>(out));
        for (std::size_t i = 0; i < out.size(); ++i)
            CHECK(out[i] == Approx(out_u[i] + 3 * (out_c[i] - out_u[i])).margin(tol * 4));
    }
}

TEMPLATE_TEST_CASE("classifier-free guidance: one call of 2B and two calls of B agree", "[guidance][cfg]", float,
                   double) {
    using T = TestType;
    const std::size_t B = 4, D = 6;
    const auto x = gaussian<T>(B * D, 2);
    const std::vector<ddpm::timestep_t> t{3, 4, 5, 6};
    const std::vector<int> labels{1, 0, 3, 2};
    ddpm::cfg_options joint, separate;
    separate.batching = ddpm::guidance_batching::separate;
    for (const double rescale : {0.0, 0.7}) {
        joint.guidance_rescale = separate.guidance_rescale = rescale;
        ddpm::classifier_free_guidance<affine_net, int> gj(affine_net{}, labels, -1, 4.5, joint);
        ddpm::classifier_free_guidance<affine_net, int> gs(affine_net{}, labels, -1, 4.5, separate);
        std::vector<T> oj(B * D), os(B * D);
        for (int call = 0; call < 2; ++call) { // the second call reuses the scratch buffers
            gj(std::span<const T>(x), std::span<const ddpm::timestep_t>(t), std::span<T>(oj));
            gs(std::span<const T>(x), std::span<const ddpm::timestep_t>(t), std::span<T>(os));
        }
        CHECK(oj == os);
        CHECK(gj.network().batches == std::vector<std::size_t>{2 * B, 2 * B});
        CHECK(gs.network().batches == std::vector<std::size_t>{B, B, B, B});

        // Two plain denoisers give the same as well.
        ddpm::guidance_pair gp(fixed_condition{{-1}}, fixed_condition{labels}, 4.5, joint);
        std::vector<T> op(B * D);
        gp(std::span<const T>(x), std::span<const ddpm::timestep_t>(t), std::span<T>(op));
        CHECK(op == oj);
    }
    // One condition for every sample is broadcast.
    ddpm::classifier_free_guidance<affine_net, int> one(affine_net{}, {2}, -1, 2.0);
    ddpm::classifier_free_guidance<affine_net, int> all(affine_net{}, {2, 2, 2, 2}, -1, 2.0);
    std::vector<T> o1(B * D), o4(B * D);
    one(std::span<const T>(x), std::span<const ddpm::timestep_t>(t), std::span<T>(o1));
    all(std::span<const T>(x), std::span<const ddpm::timestep_t>(t), std::span<T>(o4));
    CHECK(o1 == o4);
}

TEST_CASE("classifier-free guidance forwards the timestep type it is called with", "[guidance][cfg]") {
    const std::size_t B = 2, D = 3;
    const auto x = gaussian<double>(B * D, 3);
    const std::vector<double> t{12.25, 500.5}; // real-valued timesteps, as a continuous-time sampler passes
    ddpm::classifier_free_guidance<affine_net, int> g(affine_net{}, {1, 0}, -1, 2.0);
    std::vector<double> out(B * D);
    g(std::span<const double>(x), std::span<const double>(t), std::span<double>(out));
    // The 0.01 t term survives only if the fractional timesteps reached the network.
    affine_net ref;
    std::vector<double> oc(B * D), ou(B * D);
    const std::vector<int> c{1, 0}, u{-1, -1};
    ref(std::span<const double>(x), std::span<const double>(t), std::span<const int>(c), std::span<double>(oc));
    ref(std::span<const double>(x), std::span<const double>(t), std::span<const int>(u), std::span<double>(ou));
    for (std::size_t i = 0; i < out.size(); ++i) CHECK(out[i] == Approx(ou[i] + 2 * (oc[i] - ou[i])).margin(1e-12));
    STATIC_REQUIRE(ddpm::denoiser<ddpm::classifier_free_guidance<affine_net, int>, float>);
    STATIC_REQUIRE(ddpm::denoiser<ddpm::classifier_free_guidance<affine_net, int>, double>);
}

TEST_CASE("classifier-free guidance: a learned variance is guided on its first D values only", "[guidance][cfg]") {
    const std::size_t B = 2, D = 4;
    const auto x = gaussian<double>(B * D, 4);
    const std::vector<ddpm::timestep_t> t{1, 2};
    affine_net ref;
    const auto oc = run<double>(ref, x, t, {2, 1}, 2);
    const auto ou = run<double>(ref, x, t, {-1, -1}, 2);
    for (const auto batching : {ddpm::guidance_batching::joint, ddpm::guidance_batching::separate}) {
        affine_net net;
        net.channels = 2;
        ddpm::classifier_free_guidance<affine_net, int> g(net, {2, 1}, -1, 3.0, {0.0, batching});
        std::vector<double> out(2 * B * D);
        g(std::span<const double>(x), std::span<const ddpm::timestep_t>(t), std::span<double>(out));
        for (std::size_t b = 0; b < B; ++b)
            for (std::size_t i = 0; i < 2 * D; ++i) {
                const std::size_t k = b * 2 * D + i;
                if (i < D) CHECK(out[k] == Approx(ou[k] + 3 * (oc[k] - ou[k])).margin(1e-12));
                else CHECK(out[k] == oc[k]); // the conditional half's variance
            }
    }
}

TEST_CASE("guidance_rescale follows diffusers' rescale_noise_cfg", "[guidance][cfg]") {
    const std::size_t B = 3, D = 8;
    const auto x = gaussian<double>(B * D, 5);
    const std::vector<ddpm::timestep_t> t{100, 200, 300};
    const std::vector<int> labels{0, 1, 2};
    affine_net ref;
    const auto oc = run<double>(ref, x, t, labels);
    const auto ou = run<double>(ref, x, t, {-1, -1, -1});
    const double w = 6.0;
    // rescale_noise_cfg: std over all dims but the batch, unbiased (torch.std's default).
    auto stdev = [&](const std::vector<double>& v, std::size_t b) {
        double m = 0, s = 0;
        for (std::size_t i = 0; i < D; ++i) m += v[b * D + i];
        m /= D;
        for (std::size_t i = 0; i < D; ++i) s += (v[b * D + i] - m) * (v[b * D + i] - m);
        return std::sqrt(s / (D - 1));
    };
    std::vector<double> cfg(B * D);
    for (std::size_t i = 0; i < cfg.size(); ++i) cfg[i] = ou[i] + w * (oc[i] - ou[i]);
    for (const double phi : {0.0, 0.3, 0.7, 1.0}) {
        ddpm::classifier_free_guidance<affine_net, int> g(affine_net{}, labels, -1, w, {phi});
        std::vector<double> out(B * D);
        g(std::span<const double>(x), std::span<const ddpm::timestep_t>(t), std::span<double>(out));
        for (std::size_t b = 0; b < B; ++b) {
            const double ratio = stdev(oc, b) / stdev(cfg, b);
            for (std::size_t i = 0; i < D; ++i) {
                const double rescaled = cfg[b * D + i] * ratio;
                CHECK(out[b * D + i] == Approx(phi * rescaled + (1 - phi) * cfg[b * D + i]).epsilon(1e-12));
            }
            if (phi == 1.0) CHECK(stdev(out, b) == Approx(stdev(oc, b)).epsilon(1e-12));
        }
    }
}

TEST_CASE("guidance adapters reject bad arguments and leave out untouched", "[guidance][errors]") {
    using cfg = ddpm::classifier_free_guidance<affine_net, int>;
    CHECK_THROWS_AS(cfg(affine_net{}, {}, -1, 2.0), ddpm::invalid_argument);
    CHECK_THROWS_AS(cfg(affine_net{}, {1}, -1, std::nan("")), ddpm::invalid_argument);
    CHECK_THROWS_AS(cfg(affine_net{}, {1}, -1, 2.0, {1.5}), ddpm::invalid_argument);
    CHECK_THROWS_AS(cfg(affine_net{}, {1}, -1, 2.0, {-0.1}), ddpm::invalid_argument);
    CHECK_THROWS_AS(ddpm::guidance_pair(fixed_condition{{-1}}, fixed_condition{{1}}, 1.0, {2.0}),
                    ddpm::invalid_argument);

    const std::vector<ddpm::timestep_t> t{1, 2, 3};
    const auto x = gaussian<float>(3 * 4, 6);
    const std::vector<float> sentinel(3 * 4, -7.0f);
    std::vector<float> out = sentinel;
    // Two conditions for a batch of three.
    cfg two(affine_net{}, {1, 2}, -1, 2.0);
    try {
        two(std::span<const float>(x), std::span<const ddpm::timestep_t>(t), std::span<float>(out));
        FAIL("no exception");
    } catch (const ddpm::invalid_argument& e) {
        CHECK_THAT(e.what(), Catch::Contains("conditions.size() = 2") && Catch::Contains("batch B = 3"));
    }
    CHECK(out == sentinel);
    CHECK(two.network().batches.empty()); // the network was not called
    // An output that is not a multiple of the input.
    cfg three(affine_net{}, {1, 2, 0}, -1, 2.0);
    std::vector<float> short_out(5, -7.0f);
    CHECK_THROWS_AS(three(std::span<const float>(x), std::span<const ddpm::timestep_t>(t), std::span<float>(short_out)),
                    ddpm::invalid_argument);
    CHECK(short_out == std::vector<float>(5, -7.0f));
    // guidance_rescale needs at least 2 values per sample for a standard deviation.
    cfg rescaled(affine_net{}, {1, 2, 0}, -1, 2.0, {0.5});
    std::vector<float> x1(3), o1(3, -7.0f);
    CHECK_THROWS_AS(rescaled(std::span<const float>(x1), std::span<const ddpm::timestep_t>(t), std::span<float>(o1)),
                    ddpm::invalid_argument);
    CHECK(o1 == std::vector<float>(3, -7.0f));
}

// ---------------------------------------------------------------------------
// The analytic 2-D mixture: the conditional model of label k is component k's
// exact ε-predictor, the unconditional model the mixture's. Then p(x | y = k)
// is component k, and classifier guidance with the exact ∇ log p(y | x_t)
// turns the mixture's predictor into component k's.

namespace {

using mixture2 = ddpm_test::gaussian_mixture<2, 2>;
using single = ddpm_test::gaussian_mixture<2, 1>;

mixture2 test_mixture() { return {{0.7, 0.3}, {{{-1.0, 0.0}, {1.0, 0.0}}}, {0.6, 0.6}}; }

single component(const mixture2& m, std::size_t k) { return {{1.0}, {{m.means[k]}}, {m.stds[k]}}; }

/// net(x, t, label, out): label −1 → the mixture, k → component k.
template <class T>
struct label_net {
    ddpm_test::mixture_denoiser<T, 2, 2> mix;
    std::array<ddpm_test::mixture_denoiser<T, 2, 1>, 2> parts;

    label_net(const mixture2& m, const ddpm::noise_schedule& s)
        : mix(m, s), parts{ddpm_test::mixture_denoiser<T, 2, 1>(component(m, 0), s),
                           ddpm_test::mixture_denoiser<T, 2, 1>(component(m, 1), s)} {}

    void operator()(std::span<const T> x, std::span<const ddpm::timestep_t> t, std::span<const int> c,
                    std::span<T> out) {
        for (std::size_t b = 0; b < t.size(); ++b) {
            const auto xb = x.subspan(2 * b, 2);
            const auto tb = t.subspan(b, 1);
            const auto ob = out.subspan(2 * b, 2);
            if (c[b] < 0) mix(xb, tb, ob);
            else parts[static_cast<std::size_t>(c[b])](xb, tb, ob);
        }
    }
};

/// ∇_x log p(y = k | x_t) of the mixture, exactly: the gradient of log r_k(x_t),
/// ∇ log q_k − Σ_j r_j ∇ log q_j with ∇ log q_j = −(x − √ᾱ m_j)/v_j.
template <class T>
struct label_gradient {
    mixture2 m;
    std::vector<double> acp;
    int label;

    void operator()(std::span<const T> x, std::span<const ddpm::timestep_t> t, std::span<T> g) const {
        for (std::size_t b = 0; b < t.size(); ++b) {
            const double a = acp[static_cast<std::size_t>(t[b])];
            std::array<double, 2> logp{}, var{};
            std::array<std::array<double, 2>, 2> score{};
            for (std::size_t k = 0; k < 2; ++k) {
                var[k] = a * m.stds[k] * m.stds[k] + 1 - a;
                double d2 = 0;
                for (std::size_t j = 0; j < 2; ++j) {
                    const double r = static_cast<double>(x[2 * b + j]) - std::sqrt(a) * m.means[k][j];
                    d2 += r * r;
                    score[k][j] = -r / var[k];
                }
                logp[k] = std::log(m.weights[k]) - std::log(var[k]) - 0.5 * d2 / var[k];
            }
            const double mx = std::max(logp[0], logp[1]);
            const double z = std::exp(logp[0] - mx) + std::exp(logp[1] - mx);
            const std::array<double, 2> r{std::exp(logp[0] - mx) / z, std::exp(logp[1] - mx) / z};
            for (std::size_t j = 0; j < 2; ++j)
                g[2 * b + j] = static_cast<T>(score[static_cast<std::size_t>(label)][j] -
                                              (r[0] * score[0][j] + r[1] * score[1][j]));
        }
    }
};

/// Fraction of the B samples nearest to component k's mean.
double rate_in(const mixture2& m, const std::vector<double>& xs, std::size_t k) {
    std::size_t n = 0;
    for (std::size_t b = 0; b < xs.size() / 2; ++b) n += m.nearest(xs.data() + 2 * b) == k;
    return static_cast<double>(n) / static_cast<double>(xs.size() / 2);
}

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

} // namespace

TEST_CASE("guided DDIM on the analytic mixture lands in the chosen component more often as w grows",
          "[guidance][cfg][mixture]") {
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const auto mix = test_mixture();
    const std::size_t B = 2000;
    ddpm::ddim_scheduler<double> sch(s);
    sch.set_timesteps(50);
    ddpm::sampler_options o;
    o.batch = B;
    std::vector<double> rates;
    for (const double w : {0.0, 0.5, 1.0, 3.0}) {
        ddpm::classifier_free_guidance<label_net<double>, int> g(label_net<double>(mix, s), {1}, -1, w);
        std::vector<double> x(2 * B);
        ddpm::ddim_sample(sch, g, ddpm::counter_noise(11), x, o);
        rates.push_back(rate_in(mix, x, 1));
    }
    INFO("rates " << rates[0] << " " << rates[1] << " " << rates[2] << " " << rates[3]);
    // Nearest-mean classification of the two unit-distance components: a
    // point of component k lands on its side with probability Φ(1/0.6).
    const double p_side = normal_cdf(1.0 / 0.6);
    const double se = std::sqrt(0.25 / B);
    CHECK(std::abs(rates[0] - (0.3 * p_side + 0.7 * (1 - p_side))) <= 5 * se); // w = 0: the mixture
    CHECK(std::abs(rates[2] - p_side) <= 5 * se);                               // w = 1: component 1
    CHECK(rates[1] > rates[0] + 10 * se);
    CHECK(rates[2] > rates[1] + 10 * se);
    CHECK(rates[3] > rates[2] + 0.02); // w = 3 sharpens beyond the component (0.96 -> 1.0 measured)
}

TEST_CASE("guidance is just a denoiser: guided DPM-Solver++ lands in the chosen component too",
          "[guidance][cfg][mixture]") {
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const auto mix = test_mixture();
    const std::size_t B = 2000;
    ddpm::dpm_solver_multistep_scheduler<double> sch(s);
    sch.set_timesteps(20);
    ddpm::sampler_options o;
    o.batch = B;
    std::vector<double> rates;
    for (const double w : {0.0, 1.0}) {
        ddpm::classifier_free_guidance<label_net<double>, int> g(label_net<double>(mix, s), {1}, -1, w);
        std::vector<double> x(2 * B);
        ddpm::dpm_solver_sample(sch, g, ddpm::counter_noise(12), x, o);
        rates.push_back(rate_in(mix, x, 1));
    }
    INFO("rates " << rates[0] << " " << rates[1]);
    const double p_side = normal_cdf(1.0 / 0.6);
    const double se = std::sqrt(0.25 / B);
    CHECK(std::abs(rates[0] - (0.3 * p_side + 0.7 * (1 - p_side))) <= 5 * se);
    CHECK(std::abs(rates[1] - p_side) <= 5 * se);
}

TEMPLATE_TEST_CASE("classifier guidance with the exact classifier gradient gives the component's predictor",
                   "[guidance][classifier]", float, double) {
    using T = TestType;
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const auto mix = test_mixture();
    const std::size_t B = 64;
    const auto x = gaussian<T>(2 * B, 8);
    std::vector<ddpm::timestep_t> t(B);
    for (std::size_t b = 0; b < B; ++b) t[b] = static_cast<ddpm::timestep_t>((b * 997) % 1000);
    const label_gradient<T> grad{mix, s.f64().alphas_cumprod, 1};
    ddpm::classifier_guidance guided(ddpm_test::mixture_denoiser<T, 2, 2>(mix, s), grad, s, 1.0);
    ddpm_test::mixture_denoiser<T, 2, 1> target(component(mix, 1), s);
    std::vector<T> out(2 * B), ref(2 * B);
    guided(std::span<const T>(x), std::span<const ddpm::timestep_t>(t), std::span<T>(out));
    target(std::span<const T>(x), std::span<const ddpm::timestep_t>(t), std::span<T>(ref));
    CHECK(max_abs_diff(out, ref) <= (std::is_same_v<T, float> ? 1e-5 : 1e-12));

    // The x_0 and v forms of the same network, guided, are the x_0 and v of
    // the guided ε: x̂_0 = (x − √(1−ᾱ) ε)/√ᾱ, v = (ε − √(1−ᾱ) x)/√ᾱ.
    const auto& acp = s.f64().alphas_cumprod;
    auto convert = [&](ddpm::prediction_type p, std::span<const T> xs, std::span<const ddpm::timestep_t> ts,
                       std::span<T> o) {
        ddpm_test::mixture_denoiser<T, 2, 2> eps_net(mix, s);
        eps_net(xs, ts, o);
        for (std::size_t b = 0; b < ts.size(); ++b) {
            const double a = acp[static_cast<std::size_t>(ts[b])];
            for (std::size_t j = 0; j < 2; ++j) {
                const double e = o[2 * b + j], xv = xs[2 * b + j];
                o[2 * b + j] = static_cast<T>(p == ddpm::prediction_type::sample ? (xv - std::sqrt(1 - a) * e) / std::sqrt(a)
                                                                                 : (e - std::sqrt(1 - a) * xv) / std::sqrt(a));
            }
        }
    };
    std::vector<ddpm::timestep_t> tm(B);
    for (std::size_t b = 0; b < B; ++b) tm[b] = static_cast<ddpm::timestep_t>(200 + (b * 13) % 600); // ᾱ not tiny
    for (const auto p : {ddpm::prediction_type::sample, ddpm::prediction_type::v_prediction}) {
        auto net = [&](std::span<const T> xs, std::span<const ddpm::timestep_t> ts, std::span<T> o) { convert(p, xs, ts, o); };
        ddpm::classifier_guidance g(net, grad, s, 2.5, p);
        ddpm::classifier_guidance ge(ddpm_test::mixture_denoiser<T, 2, 2>(mix, s), grad, s, 2.5);
        std::vector<T> o(2 * B), e(2 * B);
        g(std::span<const T>(x), std::span<const ddpm::timestep_t>(tm), std::span<T>(o));
        ge(std::span<const T>(x), std::span<const ddpm::timestep_t>(tm), std::span<T>(e));
        for (std::size_t b = 0; b < B; ++b) {
            const double a = acp[static_cast<std::size_t>(tm[b])];
            for (std::size_t j = 0; j < 2; ++j) {
                const double ev = e[2 * b + j], xv = x[2 * b + j];
                const double want = p == ddpm::prediction_type::sample ? (xv - std::sqrt(1 - a) * ev) / std::sqrt(a)
                                                                       : (ev - std::sqrt(1 - a) * xv) / std::sqrt(a);
                CHECK(static_cast<double>(o[2 * b + j]) == Approx(want).margin(std::is_same_v<T, float> ? 2e-5 : 1e-11));
            }
        }
    }

    // Errors: a timestep outside [0, T), before any call; a non-finite scale.
    std::vector<T> sentinel(2 * B, T(-7)), o2 = sentinel;
    t[3] = 1000;
    CHECK_THROWS_AS(guided(std::span<const T>(x), std::span<const ddpm::timestep_t>(t), std::span<T>(o2)),
                    ddpm::invalid_argument);
    CHECK(o2 == sentinel);
    CHECK_THROWS_AS(ddpm::classifier_guidance(ddpm_test::mixture_denoiser<T, 2, 2>(mix, s), grad, s, INFINITY),
                    ddpm::invalid_argument);
}

TEST_CASE("classifier-guided DDPM and DDIM land in the chosen component more often as the scale grows",
          "[guidance][classifier][mixture]") {
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const auto mix = test_mixture();
    const std::size_t B = 1000;
    ddpm::sampler_options o;
    o.batch = B;
    const label_gradient<double> grad{mix, s.f64().alphas_cumprod, 1};
    ddpm::ddim_scheduler<double> ddim(s);
    ddim.set_timesteps(50);
    ddpm::ddpm_scheduler<double> ddpm_s(s);
    for (const bool use_ddim : {true, false}) {
        std::vector<double> rates;
        for (const double scale : {0.0, 1.0, 4.0}) {
            ddpm::classifier_guidance g(ddpm_test::mixture_denoiser<double, 2, 2>(mix, s), grad, s, scale);
            std::vector<double> x(2 * B);
            if (use_ddim) ddpm::ddim_sample(ddim, g, ddpm::counter_noise(21), x, o);
            else ddpm::sample(ddpm_s, g, ddpm::counter_noise(21), x, o);
            rates.push_back(rate_in(mix, x, 1));
        }
        INFO((use_ddim ? "DDIM" : "DDPM") << " rates " << rates[0] << " " << rates[1] << " " << rates[2]);
        const double se = std::sqrt(0.25 / B);
        CHECK(rates[1] > rates[0] + 10 * se);
        CHECK(std::abs(rates[1] - normal_cdf(1.0 / 0.6)) <= 5 * se); // scale 1: component 1 exactly
        CHECK(rates[2] > rates[1] + 2 * se);
    }
}
