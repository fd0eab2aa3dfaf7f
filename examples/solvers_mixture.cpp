// solvers_mixture — sample quality per network call (NFE) of the samplers,
// measured with the exact ε-predictor of a 2-D Gaussian mixture, so that every
// difference comes from the solver and none from training.
//
// The data: 8 components of std 0.5 on a circle of radius 4, weights 1:2
// alternating (1/12, 2/12, …). For DDPM (1000 calls), DDIM (η = 0), the Euler
// family (Euler, Euler ancestral, Heun: real-valued timesteps, so the exact
// predictor's continuous form) and the multistep solvers DPM-Solver++(2M),
// DPM-Solver++(2M) on Karras sigmas, DPM-Solver++(3M), SDE-DPM-Solver++(2M),
// DPM-Solver(2M, ε form) and UniPC (bh2, orders 2 and 3) at NFE ∈ {5, 10, 15,
// 20, 25, 50} it prints, averaged over --repeats independent runs,
//   * the sliced Wasserstein-1 distance (64 directions) of n samples to a
//     LARGE reference sample of the data (10 n points), next to the floor: the
//     same distance for fresh n-point data samples (mean of 5, and the worst),
//     what a perfect sampler reaches with n points. With 8 well-separated
//     modes this distance is dominated by the multinomial noise of the mode
//     weights, so a small reference would add its own (large) noise;
//   * the worst mixture-weight error max_k |π̂_k − π_k| (each sample assigned
//     to its most likely component), next to the data floor (mean of 5);
// as a Markdown table, and writes solvers_nfe.png (distance vs NFE, log
// scale, one line per solver, the floor and DDPM-1000 as references).
// Heun makes 2N − 1 calls for N steps: it runs the largest N with 2N − 1 <=
// the column's NFE (5, 9, 15, 19, 25, 49 calls), and is plotted at those.
//
// Usage: solvers_mixture [--small] [--seed N] [--repeats R] [--out DIR] [--help]
#include <ddpm/ddpm.hpp>
#include <ddpm/samplers/dpm_solver.hpp>
#include <ddpm/samplers/euler.hpp>
#include <ddpm/samplers/heun.hpp>
#include <ddpm/samplers/unipc.hpp>

#include "common/chart.hpp"
#include "common/metrics.hpp"
#include "common/mixture.hpp"
#include "common/plot.hpp"
#include "common/png.hpp"
#include "common/random.hpp"
#include "common/text.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <numbers>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t D = 2;

examples::gaussian_mixture make_mixture() {
    examples::gaussian_mixture mix;
    mix.dim = D;
    for (std::size_t k = 0; k < 8; ++k) {
        const double a = 2 * std::numbers::pi * static_cast<double>(k) / 8.0;
        mix.means.push_back(4.0 * std::cos(a));
        mix.means.push_back(4.0 * std::sin(a));
        mix.weights.push_back(k % 2 == 0 ? 1.0 / 12.0 : 2.0 / 12.0);
        mix.stds.push_back(0.5);
    }
    mix.validate();
    return mix;
}

/// max_k |π̂_k − π_k| with every point assigned to its most likely component.
double worst_weight_error(const examples::gaussian_mixture& mix, std::span<const float> xs) {
    const std::size_t n = xs.size() / D, K = mix.size();
    std::vector<double> count(K, 0.0), scratch(K);
    const auto data = mix.at_level(1.0);
    for (std::size_t b = 0; b < n; ++b) count[mix.most_likely_component(xs.data() + b * D, data, scratch)] += 1;
    double worst = 0;
    for (std::size_t k = 0; k < K; ++k) worst = std::max(worst, std::abs(count[k] / static_cast<double>(n) - mix.weights[k]));
    return worst;
}

/// The exact predictor's real-timestep form (for the Euler family) must equal
/// its integer form at integer t: the largest difference over a few levels.
double integer_vs_real_timesteps(const examples::gaussian_mixture& mix, const ddpm::noise_schedule& schedule) {
    examples::mixture_denoiser<double> model(mix, schedule);
    examples::normal_rng rng(7);
    const std::size_t B = 64;
    const auto x0 = mix.sample<double>(B, rng);
    std::vector<double> x(B * D), by_int(B * D), by_real(B * D);
    double worst = 0;
    for (const ddpm::timestep_t t : {0, 1, 250, 500, 998, 999}) {
        const double a = schedule.f64().alphas_cumprod[static_cast<std::size_t>(t)];
        for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sqrt(a) * x0[i] + std::sqrt(1 - a) * rng.normal();
        const std::vector<ddpm::timestep_t> ti(B, t);
        const std::vector<double> tr(B, static_cast<double>(t));
        model(std::span<const double>(x), std::span<const ddpm::timestep_t>(ti), std::span<double>(by_int));
        model(std::span<const double>(x), std::span<const double>(tr), std::span<double>(by_real));
        for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(by_int[i] - by_real[i]));
    }
    return worst;
}

/// One sampler: a name, a colour, how to draw n samples with a given NFE,
/// and the number of network calls that makes (if not the NFE).
struct solver {
    std::string name;
    examples::rgb colour;
    std::function<void(std::size_t nfe, std::span<float> out)> run;
    std::function<std::size_t(std::size_t nfe)> calls = [](std::size_t nfe) { return nfe; };
};

struct result {
    std::vector<double> sw, weight;
};

void usage(std::FILE* to) {
    std::fprintf(to,
                 "usage: solvers_mixture [--small] [--seed N] [--repeats R] [--out DIR] [--help]\n"
                 "  Sliced Wasserstein-1 distance and mixture-weight error of DDPM, DDIM, Euler, Heun, DPM-Solver\n"
                 "  and UniPC samples of an 8-component 2-D Gaussian mixture (exact eps-predictor) per network call.\n"
                 "  --small      fast smoke run (2,000 samples, NFE 5, 10, 20, one run each)\n"
                 "  --seed N     seed of all the randomness (default 2022)\n"
                 "  --repeats R  average every number over R independent runs (default 3; 1 with --small)\n"
                 "  --out DIR    write solvers_nfe.png to DIR (default: .)\n"
                 "  --help       print this help\n");
}

struct options {
    bool small = false;
    std::uint64_t seed = 2022;
    std::size_t repeats = 0; // 0: the default (3, or 1 with --small)
    std::filesystem::path out = ".";
};

int run(const options& opt) {
    const auto mix = make_mixture();
    const std::size_t n = opt.small ? 2000 : 20000;
    const std::vector<std::size_t> nfes = opt.small ? std::vector<std::size_t>{5, 10, 20}
                                                    : std::vector<std::size_t>{5, 10, 15, 20, 25, 50};
    const ddpm::noise_schedule schedule(ddpm::schedule_config{}, ddpm::profile::diffusers); // linear 1e-4 → 0.02, T = 1000
    examples::mixture_denoiser<float> model(mix, schedule);
    if (const double d = integer_vs_real_timesteps(mix, schedule); !(d <= 1e-9)) {
        std::fprintf(stderr, "solvers_mixture: the exact predictor's real-timestep form differs from the integer one "
                             "by %.3g at integer t (expected <= 1e-9)\n", d);
        return 1;
    }
    ddpm::sampler_options so;
    so.batch = n;
    std::uint64_t stream = opt.seed;

    std::vector<solver> solvers;
    // The Euler family: real timesteps (linspace spacing, diffusers' default).
    solvers.push_back({"Euler", {0, 190, 190}, [&](std::size_t nfe, std::span<float> out) {
                           ddpm::euler_scheduler<float> s(schedule);
                           s.set_timesteps(static_cast<std::int64_t>(nfe));
                           ddpm::sample(s, model, ddpm::counter_noise(++stream, D), out, so);
                       }});
    solvers.push_back({"Euler ancestral", {230, 0, 230}, [&](std::size_t nfe, std::span<float> out) {
                           ddpm::euler_ancestral_scheduler<float> s(schedule);
                           s.set_timesteps(static_cast<std::int64_t>(nfe));
                           ddpm::sample(s, model, ddpm::counter_noise(++stream, D), out, so);
                       }});
    const auto heun_steps = [](std::size_t nfe) { return (nfe + 1) / 2; }; // the largest N with 2N − 1 <= nfe
    solvers.push_back({"Heun", {110, 40, 200},
                       [&, heun_steps](std::size_t nfe, std::span<float> out) {
                           ddpm::heun_scheduler<float> s(schedule);
                           s.set_timesteps(static_cast<std::int64_t>(heun_steps(nfe)));
                           ddpm::sample(s, model, ddpm::counter_noise(++stream, D), out, so);
                       },
                       [heun_steps](std::size_t nfe) { return 2 * heun_steps(nfe) - 1; }});
    solvers.push_back({"DDIM (trailing)", {120, 120, 120}, [&](std::size_t nfe, std::span<float> out) {
                           ddpm::ddim_scheduler<float> s(schedule);
                           s.set_timesteps(static_cast<std::int64_t>(nfe), ddpm::timestep_spacing::trailing);
                           ddpm::ddim_sample(s, model, ddpm::counter_noise(++stream, D), out, so);
                       }});
    auto dpm = [&](std::string name, examples::rgb colour, ddpm::dpm_solver_options o) {
        solvers.push_back({std::move(name), colour, [&, o](std::size_t nfe, std::span<float> out) {
                               ddpm::dpm_solver_multistep_scheduler<float> s(schedule, {}, o);
                               s.set_timesteps(static_cast<std::int64_t>(nfe));
                               ddpm::dpm_solver_sample(s, model, ddpm::counter_noise(++stream, D), out, so);
                           }});
    };
    ddpm::dpm_solver_options o2;
    dpm("DPM-Solver++(2M)", {30, 100, 200}, o2);
    ddpm::dpm_solver_options ok = o2;
    ok.sigmas = ddpm::sigma_schedule::karras;
    dpm("DPM-Solver++(2M) Karras", {90, 170, 240}, ok);
    ddpm::dpm_solver_options o3 = o2;
    o3.solver_order = 3;
    dpm("DPM-Solver++(3M)", {20, 40, 130}, o3);
    ddpm::dpm_solver_options osde = o2;
    osde.algorithm = ddpm::dpm_algorithm::sde_dpmsolver_pp;
    dpm("SDE-DPM-Solver++(2M)", {200, 40, 120}, osde);
    ddpm::dpm_solver_options oeps = o2;
    oeps.algorithm = ddpm::dpm_algorithm::dpmsolver;
    oeps.final_sigmas = ddpm::final_sigmas_type::sigma_min;
    dpm("DPM-Solver(2M, eps)", {150, 100, 40}, oeps);
    auto uni = [&](std::string name, examples::rgb colour, ddpm::unipc_options o) {
        solvers.push_back({std::move(name), colour, [&, o](std::size_t nfe, std::span<float> out) {
                               ddpm::unipc_scheduler<float> s(schedule, {}, o);
                               s.set_timesteps(static_cast<std::int64_t>(nfe));
                               ddpm::unipc_sample(s, model, ddpm::counter_noise(++stream, D), out, so);
                           }});
    };
    ddpm::unipc_options u2;
    uni("UniPC(bh2, 2)", {40, 160, 70}, u2);
    ddpm::unipc_options u3 = u2;
    u3.solver_order = 3;
    uni("UniPC(bh2, 3)", {230, 110, 20}, u3);
    // A diagnostic: the same 2M solver started from the true marginal
    // q(x_999) = √ᾱ x_0 + √(1 − ᾱ) z of the data instead of N(0, I). The
    // linear schedule's last ᾱ is 4e-5, so N(0, I) is off by √ᾱ·4 ≈ 0.025 in
    // the mean of each component: this row shows what that mismatch costs.
    examples::normal_rng start_rng(opt.seed + 2000);
    solvers.push_back({"DPM-Solver++(2M), x_T ~ q(x_999)", {170, 170, 0}, [&](std::size_t nfe, std::span<float> out) {
                           ddpm::dpm_solver_multistep_scheduler<float> s(schedule, {}, o2);
                           s.set_timesteps(static_cast<std::int64_t>(nfe));
                           const double a = schedule.f64().alphas_cumprod.back();
                           const auto x0 = mix.sample<float>(out.size() / D, start_rng);
                           for (std::size_t i = 0; i < out.size(); ++i)
                               out[i] = static_cast<float>(std::sqrt(a) * x0[i] + std::sqrt(1 - a) * start_rng.normal());
                           ddpm::sampler_options from_input = so;
                           from_input.start_from_input = true;
                           ddpm::dpm_solver_sample(s, model, ddpm::counter_noise(++stream, D), out, from_input);
                       }});

    // The reference: a large data sample (reference_factor × n points), so
    // that its own mode-weight noise is small next to that of n samples. The
    // floor: the distance of fresh n-point data samples to it (mean of
    // floor_samples, and the worst).
    constexpr std::size_t reference_factor = 10, floor_samples = 5;
    examples::normal_rng data_rng(opt.seed + 1000);
    const examples::sliced_reference target(std::span<const float>(mix.sample<float>(reference_factor * n, data_rng)), D);
    double sw_floor = 0, sw_floor_max = 0, w_floor = 0;
    for (std::size_t i = 0; i < floor_samples; ++i) {
        const auto fresh = mix.sample<float>(n, data_rng);
        const double d = target.distance(fresh);
        sw_floor += d / floor_samples, sw_floor_max = std::max(sw_floor_max, d);
        w_floor += worst_weight_error(mix, fresh) / static_cast<double>(floor_samples);
    }

    // DDPM over all 1000 steps, and every solver at every NFE: the mean over
    // `repeats` independent runs (fresh noise each).
    const std::size_t repeats = opt.repeats != 0 ? opt.repeats : (opt.small ? 1 : 3);
    const double inv_r = 1.0 / static_cast<double>(repeats);
    std::vector<float> xs(n * D);
    double sw_ddpm = 0, w_ddpm = 0, sw_ddpm_lo = 1e300, sw_ddpm_hi = 0;
    for (std::size_t r = 0; r < repeats; ++r) {
        ddpm::sample(ddpm::ddpm_scheduler<float>(schedule), model, ddpm::counter_noise(opt.seed + 500 + r, D), xs, so);
        const double d = target.distance(xs);
        sw_ddpm += d * inv_r, sw_ddpm_lo = std::min(sw_ddpm_lo, d), sw_ddpm_hi = std::max(sw_ddpm_hi, d);
        w_ddpm += worst_weight_error(mix, xs) * inv_r;
    }

    std::vector<result> results(solvers.size());
    for (std::size_t s = 0; s < solvers.size(); ++s)
        for (const std::size_t nfe : nfes) {
            double sw = 0, w = 0;
            for (std::size_t r = 0; r < repeats; ++r) {
                solvers[s].run(nfe, xs);
                sw += target.distance(xs) * inv_r;
                w += worst_weight_error(mix, xs) * inv_r;
            }
            results[s].sw.push_back(sw);
            results[s].weight.push_back(w);
        }

    std::printf("8 Gaussians (std 0.5) on a circle of radius 4, weights 1:2 alternating; exact eps-predictor;\n");
    std::printf("linear betas 1e-4..0.02, T = 1000; %zu samples per run, mean of %zu runs; reference %zu data points;\n"
                "seed %llu. Heun runs N steps = 2N - 1 calls <= the column's NFE.\n\n",
                n, repeats, reference_factor * n, static_cast<unsigned long long>(opt.seed));
    std::printf("Sliced W1 to a %zu-point data sample (lower is better) / worst mixture-weight error:\n\n",
                reference_factor * n);
    std::printf("| sampler |");
    for (const auto nfe : nfes) std::printf(" NFE %zu |", nfe);
    std::printf("\n|---|");
    for (std::size_t k = 0; k < nfes.size(); ++k) std::printf("---|");
    std::printf("\n");
    for (std::size_t s = 0; s < solvers.size(); ++s) {
        std::printf("| %s |", solvers[s].name.c_str());
        for (std::size_t k = 0; k < nfes.size(); ++k) std::printf(" %.4f / %.4f |", results[s].sw[k], results[s].weight[k]);
        std::printf("\n");
    }
    std::printf("| DDPM, 1000 NFE | %.4f / %.4f (every column; runs %.4f..%.4f) |\n", sw_ddpm, w_ddpm, sw_ddpm_lo,
                sw_ddpm_hi);
    std::printf("| %zu-point data samples (floor) | %.4f / %.4f (mean of %zu; worst %.4f) |\n\n", n, sw_floor, w_floor,
                floor_samples, sw_floor_max);

    // Who reaches the floor at 20 NFE (within 1.5x of the mean data floor)?
    const auto at20 = std::find(nfes.begin(), nfes.end(), std::size_t{20});
    if (at20 != nfes.end()) {
        const auto k = static_cast<std::size_t>(at20 - nfes.begin());
        for (std::size_t s = 0; s < solvers.size(); ++s)
            std::printf("at 20 NFE %-26s %s the floor (%.4f vs %.4f)\n", solvers[s].name.c_str(),
                        results[s].sw[k] <= 1.5 * sw_floor ? "reaches" : "does NOT reach", results[s].sw[k], sw_floor);
        std::printf("\n");
    }

    // ---- the plot -----------------------------------------------------------
    double lo = sw_floor, hi = sw_floor;
    for (const auto& r : results)
        for (const double v : r.sw) lo = std::min(lo, v), hi = std::max(hi, v);
    lo = std::pow(10.0, std::floor(std::log10(lo * 0.8)));
    hi = std::pow(10.0, std::ceil(std::log10(hi * 1.2)));
    examples::canvas c(900, 560, {255, 255, 255});
    const examples::line_chart chart{80, 40, 780, 450, 0.0, static_cast<double>(nfes.back()) + 2, lo, hi, true};
    chart.draw_axes(c, "network calls (NFE)", "sliced W1 to the data (log scale)");
    const std::vector<double> ends{0.0, static_cast<double>(nfes.back()) + 2};
    chart.polyline(c, ends, std::vector<double>{sw_floor, sw_floor}, {0, 0, 0}, 1.0);
    chart.polyline(c, ends, std::vector<double>{sw_ddpm, sw_ddpm}, {160, 160, 160}, 1.0);
    int row = 0;
    for (std::size_t s = 0; s < solvers.size(); ++s) {
        std::vector<double> calls;
        for (const std::size_t nfe : nfes) calls.push_back(static_cast<double>(solvers[s].calls(nfe)));
        chart.polyline(c, calls, results[s].sw, solvers[s].colour, 2.0);
        chart.legend(c, row++, solvers[s].name, solvers[s].colour);
    }
    chart.legend(c, row++, "DDPM, 1000 NFE", {160, 160, 160});
    chart.legend(c, row++, "fresh data samples (floor, mean of 5)", {0, 0, 0});
    examples::draw_label(c, 80, 530,
                         "8-component 2-D Gaussian mixture, exact eps-predictor, " + std::to_string(n) +
                             " samples, mean of " + std::to_string(repeats) + " runs, to " +
                             std::to_string(reference_factor * n) + " data points (examples/solvers_mixture.cpp)",
                         {90, 90, 90});
    std::filesystem::create_directories(opt.out);
    const auto path = (opt.out / "solvers_nfe.png").string();
    examples::write_png(path, c.width(), c.height(), c.pixels());
    std::printf("wrote %s (%dx%d)\n", path.c_str(), c.width(), c.height());

    // The smoke run fails loudly if the solvers regress badly: at 20 NFE the
    // second-order multistep solvers must be within 3x of the floor.
    if (at20 != nfes.end()) {
        const auto k = static_cast<std::size_t>(at20 - nfes.begin());
        for (std::size_t s = 0; s < solvers.size(); ++s)
            if ((solvers[s].name == "DPM-Solver++(2M)" || solvers[s].name == "UniPC(bh2, 2)") &&
                !(results[s].sw[k] <= 3.0 * sw_floor)) {
                std::fprintf(stderr, "solvers_mixture: %s at 20 NFE is %.4f, more than 3x the floor %.4f\n",
                             solvers[s].name.c_str(), results[s].sw[k], sw_floor);
                return 1;
            }
    }
    return 0;
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
        } else if (a == "--out" && i + 1 < argc) {
            opt.out = argv[++i];
        } else if (a == "--repeats" && i + 1 < argc) {
            char* end = nullptr;
            const unsigned long long r = std::strtoull(argv[++i], &end, 10);
            if (end == argv[i] || *end != '\0' || r == 0 || r > 100) {
                std::fprintf(stderr, "solvers_mixture: bad repeats '%s' (expected 1..100)\n", argv[i]);
                usage(stderr);
                return 2;
            }
            opt.repeats = static_cast<std::size_t>(r);
        } else if (a == "--seed" && i + 1 < argc) {
            char* end = nullptr;
            opt.seed = std::strtoull(argv[++i], &end, 10);
            if (end == argv[i] || *end != '\0') {
                std::fprintf(stderr, "solvers_mixture: bad seed '%s'\n", argv[i]);
                usage(stderr);
                return 2;
            }
        } else {
            std::fprintf(stderr, "solvers_mixture: %s '%s'\n",
                         (a == "--out" || a == "--seed" || a == "--repeats") ? "missing value after" : "unknown option", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    try {
        return run(opt);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "solvers_mixture: error: %s\n", e.what());
        return 1;
    }
}
