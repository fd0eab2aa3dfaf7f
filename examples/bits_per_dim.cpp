// bits_per_dim — the variational bound of a DDPM in bits/dim, next to the
// true negative log-likelihood it bounds (Ho et al. 2020, eq. 5 and §4.2;
// docs/math.md#likelihood-and-bits-per-dimension).
//
//   L = L_T + Σ_{t=2}^{T} L_{t−1} + L_0   ≥   −log p_θ(x_0)
//
//   L_T     = KL(q(x_T | x_0) ‖ N(0, I))                      ddpm::prior_bpd
//   L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t))   ddpm::vb_terms_bpd at 0-based index t−1 ≥ 1
//   L_0     = −log p_θ(x_0 | x_1), a Gaussian discretised    ddpm::vb_terms_bpd at index 0
//             on the 256 levels of [−1, 1] (eq. 13)
//
// The data: x_0 drawn from a 2-D mixture of 4 narrow Gaussians (s_k = 3 to
// 6 grid steps of 2/255, centred on grid points in [−0.6, 0.6]²) and rounded
// to the 256-level grid, as 8-bit pixels are: a discrete distribution P over
// the 256² grid cells whose probabilities are known exactly (the mixture's
// mass on each cell, examples/common/mixture.hpp). Its entropy — the true
// NLL, E[−log₂ P(x_0)]/D — is the best any model can do.
//
// The model: the exact ε-predictor of the continuous mixture (docs/math.md
// #analytic-denoisers) on the paper's linear schedule with T = 1000, with
// three choices of the reverse variance σ_t² of p_θ(x_{t−1} | x_t):
//   fixed_small  β̃_t, the posterior variance (exact if x_0 were known)
//   fixed_large  β_t (Ho et al. 2020 §3.2: the two extremes of σ_t²)
//   optimal      β̃_t + c1_t² Var[x_0 | x_t] per coordinate, which makes
//                p_θ(x_{t−1} | x_t) the Gaussian closest to the true reverse
//                step (Bao et al. 2022): what a learned variance (Nichol &
//                Dhariwal 2021) aims at. Sent to ddpm as a network with a
//                learned variance (variance_type::learned: ε, then log σ²).
// The discretised decoder makes p_θ a distribution on the same cells, so the
// bound cannot go below the true NLL: E[L] ≥ E[−log p_θ(x_0)] ≥ H(P). The
// demo estimates every term per data point, as improved-diffusion's
// calc_bpd_loop does (one noise draw per (x_0, t), the same draws for every
// model), and prints:
//   * the per-timestep breakdown, in groups of t, for the three variances;
//   * the total bound next to the true NLL and their paired difference, with
//     standard errors;
//   * the bound of a wrong model (every s_k × 1.5): the bound ranks models;
//   * the bound for shorter chains (T = 100, 250), β scaled by 1000/T.
// Exit status 1 if a bound lies more than 4 standard errors below the true
// NLL (which would be a bug).
//
// Usage: bits_per_dim [--small] [--seed N] [--help]
#include <ddpm/ddpm.hpp>

#include "common/mixture.hpp"
#include "common/random.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <numbers>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t D = 2;

examples::gaussian_mixture make_mixture() {
    const auto grid = [](int k) { return k / 127.5 - 1.0; }; // level k of 0..255
    examples::gaussian_mixture mix;
    mix.dim = D;
    mix.weights = {0.4, 0.3, 0.2, 0.1};
    mix.means = {grid(64), grid(80), /**/ grid(178), grid(166), /**/ grid(150), grid(60), /**/ grid(90), grid(190)};
    const double step = 2.0 / 255.0;
    mix.stds = {5 * step, 4 * step, 6 * step, 3 * step};
    mix.validate();
    return mix;
}

/// The bound of `model` on the data x0 (B × D), in bits/dim, with every term
/// per sample: prior[b], terms[t * B + b].
struct bound_terms {
    std::size_t batch = 0;
    std::int64_t T = 0;
    std::vector<double> prior, terms;

    [[nodiscard]] double total(std::size_t b) const {
        double s = prior[b];
        for (std::int64_t t = 0; t < T; ++t) s += terms[static_cast<std::size_t>(t) * batch + b];
        return s;
    }
    /// Mean over the batch of Σ_{t in [lo, hi]} L_t.
    [[nodiscard]] double group(std::int64_t lo, std::int64_t hi) const {
        double s = 0;
        for (std::int64_t t = lo; t <= std::min(hi, T - 1); ++t)
            for (std::size_t b = 0; b < batch; ++b) s += terms[static_cast<std::size_t>(t) * batch + b];
        return s / static_cast<double>(batch);
    }
};

/// The three reverse variances compared.
enum class variance_model { fixed_small, fixed_large, optimal };
constexpr variance_model variance_models[] = {variance_model::fixed_small, variance_model::fixed_large,
                                              variance_model::optimal};

/// improved-diffusion's calc_bpd_loop: for every 0-based t, x_t = q_sample(x_0,
/// ε_t) with fresh noise (counter-based: seed, sample b, step t), the network's
/// output at (x_t, t) and vb_terms_bpd; plus prior_bpd.
template <class Model>
bound_terms calc_bpd_loop(const ddpm::noise_schedule& s, Model& model, const ddpm::model_options& opt,
                          std::span<const double> x0, std::uint64_t seed) {
    bound_terms r;
    r.batch = x0.size() / D;
    r.T = s.size();
    r.prior.resize(r.batch);
    r.terms.resize(static_cast<std::size_t>(r.T) * r.batch);
    ddpm::prior_bpd(s, x0, r.prior);

    const ddpm::counter_noise noise(seed, D);
    const std::size_t channels = ddpm::is_learned(opt.variance) ? 2 : 1;
    std::vector<double> eps(x0.size()), xt(x0.size()), out(channels * x0.size());
    std::vector<ddpm::timestep_t> ts(r.batch);
    for (std::int64_t t = 0; t < r.T; ++t) {
        std::fill(ts.begin(), ts.end(), t);
        noise.fill(std::span<double>(eps), static_cast<std::uint64_t>(t));
        ddpm::q_sample(s, x0, eps, ts, xt);
        model(std::span<const double>(xt), std::span<const ddpm::timestep_t>(ts), std::span<double>(out));
        ddpm::vb_terms_bpd(s, opt, out, x0, xt, ts,
                           std::span<double>(r.terms).subspan(static_cast<std::size_t>(t) * r.batch, r.batch));
    }
    return r;
}

/// The bound of the mixture `model_mix`'s exact denoiser with one of the
/// three reverse variances.
bound_terms variational_bound(const ddpm::noise_schedule& s, const examples::gaussian_mixture& model_mix,
                              variance_model v, std::span<const double> x0, std::uint64_t seed) {
    ddpm::model_options opt; // ε-prediction, no clipping
    if (v == variance_model::optimal) {
        opt.variance = ddpm::variance_type::learned; // the network outputs log σ² too
        examples::mixture_denoiser_with_variance<double> model(model_mix, s);
        return calc_bpd_loop(s, model, opt, x0, seed);
    }
    opt.variance = v == variance_model::fixed_small ? ddpm::variance_type::fixed_small : ddpm::variance_type::fixed_large;
    examples::mixture_denoiser<double> model(model_mix, s);
    return calc_bpd_loop(s, model, opt, x0, seed);
}

struct mean_se {
    double mean = 0, se = 0;
};

mean_se mean_and_se(std::span<const double> v) {
    double m = 0, m2 = 0;
    for (const double x : v) m += x;
    m /= static_cast<double>(v.size());
    for (const double x : v) m2 += (x - m) * (x - m);
    return {m, std::sqrt(m2 / static_cast<double>(v.size() - 1) / static_cast<double>(v.size()))};
}

ddpm::noise_schedule linear_schedule(std::int64_t T) {
    // The paper's 1e-4 → 0.02 at T = 1000; shorter chains scale β by 1000/T
    // (improved-diffusion) so that ᾱ_T stays near 0.
    const double scale = 1000.0 / static_cast<double>(T);
    return ddpm::noise_schedule{ddpm::schedule_config{.num_train_timesteps = T,
                                                      .schedule = ddpm::beta_schedule::linear,
                                                      .beta_start = 1e-4 * scale,
                                                      .beta_end = 0.02 * scale}};
}

void usage(std::FILE* to) {
    std::fprintf(to,
                 "usage: bits_per_dim [--small] [--seed N] [--help]\n"
                 "  The DDPM variational bound in bits/dim of a discretised 2-D Gaussian mixture with its\n"
                 "  exact denoiser, next to the true negative log-likelihood.\n"
                 "  --small    fast smoke run (fewer data points, no T sweep)\n"
                 "  --seed N   seed of all the randomness (default 2006)\n"
                 "  --help     print this help\n");
}

struct options {
    bool small = false;
    std::uint64_t seed = 2006;
};

int run(const options& opt) {
    const auto t_start = std::chrono::steady_clock::now();
    const auto mix = make_mixture();
    const std::size_t n = opt.small ? 200 : 6000;

    // ---- Data on the 256-level grid, and its exact NLL ----------------------
    examples::normal_rng rng(opt.seed);
    auto x0 = mix.sample<double>(n, rng);
    for (auto& v : x0) v = examples::gaussian_mixture::to_grid(v);
    std::vector<double> nll(n), scratch(mix.size());
    for (std::size_t b = 0; b < n; ++b)
        nll[b] = -mix.log_cell_probability(x0.data() + b * D, scratch) / (static_cast<double>(D) * std::numbers::ln2);
    const mean_se true_nll = mean_and_se(nll);

    std::printf("Variational bound (Ho et al. 2020, eq. 5) vs the true NLL, in bits/dim\n");
    std::printf("data:  %zu points of a 2-D mixture of %zu Gaussians (s_k = 3..6 grid steps) rounded to the\n", n,
                mix.size());
    std::printf("       256-level grid of [-1, 1]; true NLL = E[-log2 P(x_0)] / D, P exact\n");
    std::printf("model: the mixture's exact eps-predictor, with the reverse variance sigma_t^2\n");
    std::printf("       fixed_small = posterior variance (beta~_t), fixed_large = beta_t, or\n");
    std::printf("       optimal = beta~_t + c1_t^2 Var[x_0|x_t] per coordinate (what a learned variance aims at)\n");
    std::printf("schedule: linear 1e-4 -> 0.02, T = 1000; one noise draw per (x_0, t), as calc_bpd_loop\n\n");

    const std::uint64_t noise_seed = opt.seed + 1; // the same noise for every model: paired comparisons
    const auto s = linear_schedule(1000);
    std::vector<bound_terms> r;
    for (const auto v : variance_models) r.push_back(variational_bound(s, mix, v, x0, noise_seed));

    struct group {
        const char* name;
        std::int64_t lo, hi;
    };
    const group groups[] = {
        {"L_0        decoder -log p(x_0|x_1)", 0, 0}, {"L_1        t = 2", 1, 1},
        {"L_2..L_9   t = 3..10", 2, 9},               {"L_10..L_49", 10, 49},
        {"L_50..L_99", 50, 99},                       {"L_100..L_249", 100, 249},
        {"L_250..L_499", 250, 499},                   {"L_500..L_998 t = 501..999", 500, 998},
        {"L_999      t = T", 999, 999},
    };
    const auto totals = [n](const bound_terms& b) {
        std::vector<double> v(n);
        for (std::size_t k = 0; k < n; ++k) v[k] = b.total(k);
        return v;
    };
    std::printf("  %-36s %12s %12s %12s\n", "term (paper indexing), mean", "fixed_small", "fixed_large", "optimal");
    for (const auto& g : groups) {
        std::printf("  %-36s", g.name);
        for (const auto& b : r) {
            const double v = b.group(g.lo, g.hi);
            std::printf(v < 1e-3 ? " %12.2e" : " %12.6f", v);
        }
        std::printf("\n");
    }
    std::printf("  %-36s", "L_T        prior KL to N(0, I)");
    for (const auto& b : r) std::printf(" %12.2e", mean_and_se(b.prior).mean);
    std::printf("\n  %-36s", "total: the bound L");
    for (const auto& b : r) std::printf(" %12.4f", mean_and_se(totals(b)).mean);
    std::printf("\n  %-36s", "  standard error");
    for (const auto& b : r) std::printf(" %12.4f", mean_and_se(totals(b)).se);
    std::printf("\n  %-36s %12.4f   +- %.4f\n", "true NLL", true_nll.mean, true_nll.se);
    std::printf("  %-36s", "bound - true NLL (paired)");
    bool ok = true;
    std::vector<mean_se> gaps;
    for (const auto& b : r) {
        auto t = totals(b);
        for (std::size_t k = 0; k < n; ++k) t[k] -= nll[k];
        gaps.push_back(mean_and_se(t));
        std::printf(" %12.4f", gaps.back().mean);
        ok = ok && gaps.back().mean > -4 * gaps.back().se; // the exit status: a gross error only
    }
    std::printf("\n  %-36s", "  standard error");
    for (const auto& gp : gaps) std::printf(" %12.4f", gp.se);
    std::printf("\n  %-36s", "  verdict");
    for (const auto& gp : gaps)
        std::printf(" %12s", gp.mean > 3 * gp.se ? "above" : gp.mean > -3 * gp.se ? "tight" : "BELOW!");
    std::printf("\n  (above: by more than 3 standard errors; tight: equal within the Monte-Carlo error)\n");

    // ---- A wrong model: the bound ranks models -------------------------------
    auto wrong = mix;
    for (auto& sd : wrong.stds) sd *= 1.5;
    std::printf("\n  %-36s", "bound of a wrong model (s_k x 1.5)");
    std::vector<double> wrong_bound;
    for (const auto v : variance_models) {
        wrong_bound.push_back(mean_and_se(totals(variational_bound(s, wrong, v, x0, noise_seed))).mean);
        std::printf(" %12.4f", wrong_bound.back());
    }
    std::printf("\n  %-36s", "  minus the exact model's bound");
    for (std::size_t i = 0; i < r.size(); ++i) std::printf(" %12.4f", wrong_bound[i] - mean_and_se(totals(r[i])).mean);
    std::printf("\n");

    // ---- Shorter chains -------------------------------------------------------
    if (!opt.small) {
        std::printf("\nbound - true NLL for shorter chains (beta scaled by 1000/T):\n");
        std::printf("  %-36s %12s %12s %12s\n", "T", "fixed_small", "fixed_large", "optimal");
        for (const std::int64_t T : {100, 250, 1000}) {
            const auto sT = linear_schedule(T);
            std::printf("  %-36lld", static_cast<long long>(T));
            for (std::size_t i = 0; i < std::size(variance_models); ++i) {
                const double b = T == 1000 ? mean_and_se(totals(r[i])).mean
                                           : mean_and_se(totals(variational_bound(sT, mix, variance_models[i], x0,
                                                                                  noise_seed)))
                                                 .mean;
                std::printf(" %12.4f", b - true_nll.mean);
            }
            std::printf("\n");
        }
    }
    std::printf("\n(%.2f s)\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count());
    return ok ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--help" || a == "-h") {
            usage(stdout);
            return 0;
        }
        if (a == "--small") {
            opt.small = true;
        } else if (a == "--seed" && i + 1 < argc) {
            char* end = nullptr;
            opt.seed = std::strtoull(argv[++i], &end, 10);
            if (end == argv[i] || *end != '\0') {
                std::fprintf(stderr, "bits_per_dim: bad seed '%s'\n", argv[i]);
                usage(stderr);
                return 2;
            }
        } else {
            std::fprintf(stderr, "bits_per_dim: %s '%s'\n", a == "--seed" ? "missing value after" : "unknown option",
                         argv[i]);
            usage(stderr);
            return 2;
        }
    }
    try {
        return run(opt);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bits_per_dim: error: %s\n", e.what());
        return 1;
    }
}
