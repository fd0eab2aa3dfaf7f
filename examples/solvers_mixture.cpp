// solvers_mixture — sample quality per network call (NFE) of the samplers,
// measured with the exact ε-predictor of a 2-D Gaussian mixture, so that every
// difference comes from the solver and none from training.
//
// The data: 8 components of std 0.5 on a circle of radius 4, weights 1:2
// alternating (1/12, 2/12, …). For DDPM (1000 calls), DDIM (η = 0), and the
// multistep solvers DPM-Solver++(2M), DPM-Solver++(2M) on Karras sigmas,
// DPM-Solver++(3M), SDE-DPM-Solver++(2M), DPM-Solver(2M, ε form) and UniPC
// (bh2, orders 2 and 3) at NFE ∈ {5, 10, 15, 20, 25, 50} it prints
//   * the sliced Wasserstein-1 distance of the samples to a fresh data sample
//     (64 directions), next to the same distance between two data samples
//     (the floor a perfect sampler reaches with this many points);
//   * the worst mixture-weight error max_k |π̂_k − π_k| (each sample assigned
//     to its most likely component), next to the data-vs-data floor;
// as a Markdown table, and writes solvers_nfe.png (distance vs NFE, log
// scale, one line per solver, the floor and DDPM-1000 as references).
//
// Usage: solvers_mixture [--small] [--seed N] [--out DIR] [--help]
#include <ddpm/ddpm.hpp>
#include <ddpm/samplers/dpm_solver.hpp>
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

/// One sampler: a name, a colour, and how to draw n samples with a given NFE.
struct solver {
    std::string name;
    examples::rgb colour;
    std::function<void(std::size_t nfe, std::span<float> out)> run;
};

struct result {
    std::vector<double> sw, weight;
};

void usage(std::FILE* to) {
    std::fprintf(to,
                 "usage: solvers_mixture [--small] [--seed N] [--out DIR] [--help]\n"
                 "  Sliced Wasserstein-1 distance and mixture-weight error of DDPM, DDIM, DPM-Solver and UniPC\n"
                 "  samples of an 8-component 2-D Gaussian mixture (exact eps-predictor) per network call.\n"
                 "  --small    fast smoke run (2,000 samples, NFE 5, 10, 20)\n"
                 "  --seed N   seed of all the randomness (default 2022)\n"
                 "  --out DIR  write solvers_nfe.png to DIR (default: .)\n"
                 "  --help     print this help\n");
}

struct options {
    bool small = false;
    std::uint64_t seed = 2022;
    std::filesystem::path out = ".";
};

int run(const options& opt) {
    const auto mix = make_mixture();
    const std::size_t n = opt.small ? 2000 : 20000;
    const std::vector<std::size_t> nfes = opt.small ? std::vector<std::size_t>{5, 10, 20}
                                                    : std::vector<std::size_t>{5, 10, 15, 20, 25, 50};
    const ddpm::noise_schedule schedule(ddpm::schedule_config{}, ddpm::profile::diffusers); // linear 1e-4 → 0.02, T = 1000
    examples::mixture_denoiser<float> model(mix, schedule);
    ddpm::sampler_options so;
    so.batch = n;
    std::uint64_t stream = opt.seed;

    std::vector<solver> solvers;
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

    // References: two fresh data samples, and DDPM over all 1000 steps.
    examples::normal_rng data_rng(opt.seed + 1000);
    const auto target = mix.sample<float>(n, data_rng);
    const auto fresh = mix.sample<float>(n, data_rng);
    const double sw_floor = examples::sliced_wasserstein(fresh, target, D);
    const double w_floor = worst_weight_error(mix, fresh);
    std::vector<float> xs(n * D);
    ddpm::sample(ddpm::ddpm_scheduler<float>(schedule), model, ddpm::counter_noise(opt.seed, D), xs, so);
    const double sw_ddpm = examples::sliced_wasserstein(xs, target, D);
    const double w_ddpm = worst_weight_error(mix, xs);

    std::vector<result> results(solvers.size());
    for (std::size_t s = 0; s < solvers.size(); ++s)
        for (const std::size_t nfe : nfes) {
            solvers[s].run(nfe, xs);
            results[s].sw.push_back(examples::sliced_wasserstein(xs, target, D));
            results[s].weight.push_back(worst_weight_error(mix, xs));
        }

    std::printf("8 Gaussians (std 0.5) on a circle of radius 4, weights 1:2 alternating; exact eps-predictor;\n");
    std::printf("linear betas 1e-4..0.02, T = 1000; %zu samples per run; seed %llu\n\n", n,
                static_cast<unsigned long long>(opt.seed));
    std::printf("Sliced W1 to a fresh data sample (lower is better) / worst mixture-weight error:\n\n");
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
    std::printf("| DDPM, 1000 NFE | %.4f / %.4f (every column) |\n", sw_ddpm, w_ddpm);
    std::printf("| data vs data (floor) | %.4f / %.4f |\n\n", sw_floor, w_floor);

    // Who reaches the floor at 20 NFE (within 1.5x of the data-vs-data distance)?
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
    std::vector<double> xs_nfe(nfes.begin(), nfes.end());
    const std::vector<double> ends{0.0, static_cast<double>(nfes.back()) + 2};
    chart.polyline(c, ends, std::vector<double>{sw_floor, sw_floor}, {0, 0, 0}, 1.0);
    chart.polyline(c, ends, std::vector<double>{sw_ddpm, sw_ddpm}, {160, 160, 160}, 1.0);
    int row = 0;
    for (std::size_t s = 0; s < solvers.size(); ++s) {
        chart.polyline(c, xs_nfe, results[s].sw, solvers[s].colour, 2.0);
        chart.legend(c, row++, solvers[s].name, solvers[s].colour);
    }
    chart.legend(c, row++, "DDPM, 1000 NFE", {160, 160, 160});
    chart.legend(c, row++, "data vs data (floor)", {0, 0, 0});
    examples::draw_label(c, 80, 530,
                         "8-component 2-D Gaussian mixture, exact eps-predictor, " + std::to_string(n) +
                             " samples per point (examples/solvers_mixture.cpp)",
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
                         (a == "--out" || a == "--seed") ? "missing value after" : "unknown option", argv[i]);
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
