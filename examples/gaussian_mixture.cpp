// gaussian_mixture — DDPM and DDIM sampling with the exact ε-predictor of a
// 2-D Gaussian mixture: the whole reverse chain checked against a known
// answer, with no training noise to hide anything.
//
// The data is x_0 ~ Σ_k π_k N(m_k, s_k² I) (5 components). Its best possible
// ε-network is known in closed form (docs/math.md#analytic-denoisers;
// examples/common/mixture.hpp): the responsibility-weighted combination of the
// per-component predictors √(1 − ᾱ_t)(x_t − √ᾱ_t m_k)/(ᾱ_t s_k² + 1 − ᾱ_t).
//
// 1. Samples N points with ancestral DDPM over all T = 1000 steps (Algorithm
//    2) and with deterministic DDIM over 50 steps (η = 0), from counter-based
//    noise (so the run is the same for every batch size).
// 2. Prints how close each sample set is to the target: the mixture weights
//    recovered by assigning every point to its most likely component, the
//    spread of each component, and the sliced Wasserstein-1 distance to a
//    fresh target sample — next to the same distance between two fresh
//    target samples (the noise floor of a finite sample) and for pure noise.
// 3. Writes mixture_samples.png (target | DDPM | DDIM scatter plots) and
//    mixture_progressive.png (x_t during DDPM sampling, and the denoiser's
//    prediction of x_0 from it: the paper's progressive generation, §4.3).
//
// Usage: gaussian_mixture [--small] [--seed N] [--out DIR] [--help]
#include <ddpm/ddpm.hpp>

#include "common/metrics.hpp"
#include "common/mixture.hpp"
#include "common/plot.hpp"
#include "common/png.hpp"
#include "common/random.hpp"
#include "common/text.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t D = 2;

/// Paper-indexed t of the frames of the progressive strip: x_1000 = x_T is the
/// initial noise, x_0 the sample.
constexpr std::int64_t frame_t[] = {1000, 700, 500, 400, 300, 200, 100, 0};
constexpr std::size_t num_frames = std::size(frame_t);

const examples::rgb palette[] = {{230, 110, 20}, {30, 100, 200}, {40, 160, 70}, {200, 40, 120}, {120, 80, 190}};

examples::gaussian_mixture make_mixture() {
    examples::gaussian_mixture mix;
    mix.dim = D;
    mix.weights = {0.30, 0.25, 0.20, 0.15, 0.10};
    mix.means = {-1.4, 1.0, /**/ 1.2, 1.3, /**/ 1.5, -1.0, /**/ -0.2, -1.5, /**/ -1.7, -0.8};
    mix.stds = {0.30, 0.25, 0.35, 0.20, 0.15};
    mix.validate();
    return mix;
}

/// Weights and per-component spread recovered from a sample: each point goes
/// to its most likely component; s is the RMS distance to the component's
/// sample mean per coordinate.
struct recovered {
    std::vector<double> weight, spread;
    std::vector<std::size_t> label;
};

recovered recover(const examples::gaussian_mixture& mix, std::span<const float> xs) {
    const std::size_t n = xs.size() / D, K = mix.size();
    recovered r{std::vector<double>(K, 0.0), std::vector<double>(K, 0.0), std::vector<std::size_t>(n)};
    std::vector<double> scratch(K), count(K, 0.0), sum(K * D, 0.0), sum2(K, 0.0);
    const auto data = mix.at_level(1.0);
    for (std::size_t b = 0; b < n; ++b) {
        const std::size_t k = mix.most_likely_component(xs.data() + b * D, data, scratch);
        r.label[b] = k;
        count[k] += 1;
        for (std::size_t j = 0; j < D; ++j) {
            sum[k * D + j] += xs[b * D + j];
            sum2[k] += static_cast<double>(xs[b * D + j]) * xs[b * D + j];
        }
    }
    for (std::size_t k = 0; k < K; ++k) {
        r.weight[k] = count[k] / static_cast<double>(n);
        if (count[k] < 2) continue;
        double mean2 = 0;
        for (std::size_t j = 0; j < D; ++j) mean2 += (sum[k * D + j] / count[k]) * (sum[k * D + j] / count[k]);
        r.spread[k] = std::sqrt(std::max(0.0, (sum2[k] / count[k] - mean2) / D));
    }
    return r;
}

// ---------------------------------------------------------------------------
// Pictures.

void draw_component_rings(examples::canvas& c, const examples::scatter_panel& p, const examples::gaussian_mixture& mix) {
    for (std::size_t k = 0; k < mix.size(); ++k)
        c.circle(p.px(mix.mean(k)[0]), p.py(mix.mean(k)[1]), 2 * mix.stds[k] / (p.hi - p.lo) * p.size, {150, 150, 150},
                 0.8f);
}

examples::canvas draw_samples(const examples::gaussian_mixture& mix, std::span<const float> target,
                              const recovered& rt, std::span<const float> ddpm_x, const recovered& rd,
                              std::span<const float> ddim_x, const recovered& ri, int panel, std::size_t shown) {
    const int margin = 14, top = 34;
    examples::canvas c(margin + 3 * (panel + margin), top + panel + margin + 14, {255, 255, 255});
    const std::span<const float> sets[] = {target, ddpm_x, ddim_x};
    const recovered* labels[] = {&rt, &rd, &ri};
    const char* titles[] = {"target (fresh sample)", "DDPM, 1000 steps", "DDIM, 50 steps (eta = 0)"};
    for (int s = 0; s < 3; ++s) {
        const examples::scatter_panel p{margin + s * (panel + margin), top, panel, -2.75, 2.75};
        examples::draw_label_centred(c, p.x + panel / 2, 10, titles[s], {30, 30, 30}, 2);
        p.draw_frame(c);
        const auto xs = sets[s].first(std::min(sets[s].size(), shown * D));
        const auto* lab = labels[s];
        p.scatter(c, xs, [&](std::size_t k) { return palette[lab->label[k] % std::size(palette)]; }, 1.4, 0.6f);
        draw_component_rings(c, p, mix);
    }
    examples::draw_label(c, margin, top + panel + 6,
                         "colour: most likely component; grey rings: radius 2 s_k around each mean m_k",
                         {90, 90, 90});
    return c;
}

examples::canvas draw_progressive(const examples::gaussian_mixture& mix, std::span<const float> xt_frames,
                                  std::span<const float> x0_frames, const recovered& final_labels, std::size_t n,
                                  std::size_t shown, int panel) {
    const int margin = 10, left = 70, top = 30;
    examples::canvas c(left + static_cast<int>(num_frames) * (panel + margin), top + 2 * (panel + margin) + 24,
                       {255, 255, 255});
    for (std::size_t f = 0; f < num_frames; ++f)
        for (int row = 0; row < 2; ++row) {
            const examples::scatter_panel p{left + static_cast<int>(f) * (panel + margin), top + row * (panel + margin),
                                            panel, -3.5, 3.5};
            if (row == 0)
                examples::draw_label_centred(c, p.x + panel / 2, 8, "t = " + std::to_string(frame_t[f]), {30, 30, 30},
                                             2);
            p.draw_frame(c, 2.0);
            const auto& frames = row == 0 ? xt_frames : x0_frames;
            p.scatter(c, frames.subspan(f * n * D, shown * D),
                      [&](std::size_t k) { return palette[final_labels.label[k] % std::size(palette)]; }, 1.0, 0.6f);
            if (row == 1) draw_component_rings(c, p, mix);
        }
    examples::draw_label(c, 8, top + panel / 2 - 8, "x_t", {30, 30, 30}, 2);
    examples::draw_label(c, 8, top + panel + margin + panel / 2 - 16, "x0 pred", {30, 30, 30}, 2);
    examples::draw_label(c, 8, top + panel + margin + panel / 2 + 6, "from x_t", {30, 30, 30}, 1);
    examples::draw_label(c, left, top + 2 * (panel + margin) + 4,
                         "DDPM sampling with the exact denoiser. Top: the chain state x_t (paper indexing; grey ring: "
                         "radius 2). Bottom: the prediction of x_0 from x_t, i.e. E[x_0 | x_t]. Colour: the component "
                         "the final sample lands in.",
                         {90, 90, 90});
    return c;
}

// ---------------------------------------------------------------------------

void usage(std::FILE* to) {
    std::fprintf(to,
                 "usage: gaussian_mixture [--small] [--seed N] [--out DIR] [--help]\n"
                 "  Samples a 2-D Gaussian mixture with its exact eps-predictor, with DDPM (1000 steps)\n"
                 "  and DDIM (50 steps), and measures how close the samples are to the target.\n"
                 "  --small    fast smoke run (fewer samples)\n"
                 "  --seed N   seed of all the randomness (default 2020)\n"
                 "  --out DIR  write mixture_samples.png and mixture_progressive.png to DIR (default: .)\n"
                 "  --help     print this help\n");
}

struct options {
    bool small = false;
    std::uint64_t seed = 2020;
    std::filesystem::path out = ".";
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(const options& opt) {
    const auto mix = make_mixture();
    const std::size_t K = mix.size();
    const std::size_t n = opt.small ? 1000 : 5000;
    const ddpm::noise_schedule schedule{ddpm::schedule_config{}}; // the paper's linear 1e-4 → 0.02, T = 1000
    const auto T = schedule.size();

    std::printf("Exact eps-predictor of a 2-D mixture of %zu Gaussians (docs/math.md, \"Analytic denoisers\")\n", K);
    std::printf("schedule: linear beta 1e-4 -> 0.02, T = %lld; %zu samples per set; seed %llu\n\n",
                static_cast<long long>(T), n, static_cast<unsigned long long>(opt.seed));

    // ---- DDPM, all 1000 steps, recording the progressive frames ------------
    examples::mixture_denoiser<float> model(mix, schedule);
    const ddpm::counter_noise ddpm_noise(opt.seed, D);
    std::vector<float> ddpm_x(n * D);
    std::vector<float> xt_frames(num_frames * n * D), x0_frames(num_frames * n * D);
    // x_T itself: the sampler draws it as step 0 of the noise source.
    ddpm_noise.fill(std::span<float>(xt_frames).first(n * D), 0);
    const auto frame_of = [](std::int64_t paper_t) {
        for (std::size_t f = 0; f < num_frames; ++f)
            if (frame_t[f] == paper_t) return f;
        return num_frames;
    };
    // After the step at 0-based model timestep t the chain holds the paper's
    // x_t; the x̂_0 reported at that step was predicted from x_{t+1}.
    auto observer = [&](std::size_t, ddpm::timestep_t t, std::span<const float> x, std::span<const float> x0_hat) {
        if (const auto f = frame_of(t); f < num_frames) std::copy(x.begin(), x.end(), xt_frames.begin() + f * n * D);
        if (const auto f = frame_of(t + 1); f < num_frames)
            std::copy(x0_hat.begin(), x0_hat.end(), x0_frames.begin() + f * n * D);
    };
    ddpm::ddpm_sampler<float> ddpm_sampler(ddpm::ddpm_scheduler<float>{schedule});
    auto t0 = std::chrono::steady_clock::now();
    ddpm_sampler.sample(model, ddpm_noise, ddpm_x, {.batch = n}, observer);
    const double ddpm_s = seconds_since(t0);
    // The last frame (x_0) has no later prediction: show the sample in both rows.
    std::copy(ddpm_x.begin(), ddpm_x.end(), x0_frames.begin() + (num_frames - 1) * n * D);

    // ---- DDIM, 50 steps, η = 0 ---------------------------------------------
    ddpm::ddim_scheduler<float> ddim(schedule); // η = 0 by default
    ddim.set_timesteps(50);                     // diffusers' "leading" spacing: 980, 960, …, 0
    std::vector<float> ddim_x(n * D);
    t0 = std::chrono::steady_clock::now();
    ddpm::ddim_sample(ddim, model, ddpm::counter_noise(opt.seed + 1, D), ddim_x, {.batch = n});
    const double ddim_s = seconds_since(t0);

    // ---- References: two fresh target samples and pure noise ----------------
    examples::normal_rng data_rng(opt.seed + 2);
    const auto target_a = mix.sample<float>(n, data_rng);
    const auto target_b = mix.sample<float>(n, data_rng);
    std::vector<float> noise(n * D);
    for (auto& v : noise) v = static_cast<float>(data_rng.normal());

    const auto r_ddpm = recover(mix, ddpm_x), r_ddim = recover(mix, ddim_x), r_fresh = recover(mix, target_b);
    const auto r_target = recover(mix, target_a);

    std::printf("Recovered weights pi_k (each point assigned to its most likely component)\n");
    std::printf("and spread s_k (RMS per coordinate around the component's sample mean):\n");
    std::printf("  k  mean            | pi target  DDPM-1000  DDIM-50  fresh | s target  DDPM-1000  DDIM-50  fresh\n");
    for (std::size_t k = 0; k < K; ++k)
        std::printf("  %zu  (%5.2f, %5.2f)  |   %.3f      %.3f     %.3f   %.3f |   %.3f     %.3f     %.3f   %.3f\n",
                    k, mix.mean(k)[0], mix.mean(k)[1], mix.weights[k], r_ddpm.weight[k], r_ddim.weight[k],
                    r_fresh.weight[k], mix.stds[k], r_ddpm.spread[k], r_ddim.spread[k], r_fresh.spread[k]);
    double worst_ddpm = 0, worst_ddim = 0;
    for (std::size_t k = 0; k < K; ++k) {
        const double se = std::sqrt(mix.weights[k] * (1 - mix.weights[k]) / static_cast<double>(n));
        worst_ddpm = std::max(worst_ddpm, std::abs(r_ddpm.weight[k] - mix.weights[k]) / se);
        worst_ddim = std::max(worst_ddim, std::abs(r_ddim.weight[k] - mix.weights[k]) / se);
    }
    std::printf("  largest weight error in standard errors sqrt(pi(1-pi)/n): DDPM %.2f, DDIM %.2f\n\n", worst_ddpm,
                worst_ddim);

    const double sw_ddpm = examples::sliced_wasserstein(ddpm_x, target_a, D);
    const double sw_ddim = examples::sliced_wasserstein(ddim_x, target_a, D);
    const double sw_floor = examples::sliced_wasserstein(target_b, target_a, D);
    const double sw_noise = examples::sliced_wasserstein(noise, target_a, D);
    std::printf("Sliced Wasserstein-1 to a fresh target sample (64 directions; data units, lower is better):\n");
    std::printf("  DDPM, 1000 steps      %.4f   (sampling took %.2f s)\n", sw_ddpm, ddpm_s);
    std::printf("  DDIM, 50 steps        %.4f   (sampling took %.2f s)\n", sw_ddim, ddim_s);
    std::printf("  another target sample %.4f   <- noise floor of %zu points\n", sw_floor, n);
    std::printf("  pure noise N(0, I)    %.4f\n\n", sw_noise);

    // ---- Pictures -----------------------------------------------------------
    std::filesystem::create_directories(opt.out);
    const auto samples_path = (opt.out / "mixture_samples.png").string();
    const auto progressive_path = (opt.out / "mixture_progressive.png").string();
    const std::size_t shown = std::min<std::size_t>(n, 2500);
    const auto samples = draw_samples(mix, target_a, r_target, ddpm_x, r_ddpm, ddim_x, r_ddim, 360, shown);
    examples::write_png(samples_path, samples.width(), samples.height(), samples.pixels());
    const auto progressive = draw_progressive(mix, xt_frames, x0_frames, r_ddpm, n, std::min<std::size_t>(n, 1500), 150);
    examples::write_png(progressive_path, progressive.width(), progressive.height(), progressive.pixels());
    std::printf("wrote %s (%dx%d): target | DDPM | DDIM, %zu points each\n", samples_path.c_str(), samples.width(),
                samples.height(), shown);
    std::printf("wrote %s (%dx%d): x_t and the predicted x_0 at t =", progressive_path.c_str(), progressive.width(),
                progressive.height());
    for (const auto t : frame_t) std::printf(" %lld", static_cast<long long>(t));
    std::printf("\n");
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
        } else if (a.starts_with("--out=") && a.size() > 6) {
            opt.out = std::string(a.substr(6));
        } else if (a == "--seed" && i + 1 < argc) {
            char* end = nullptr;
            opt.seed = std::strtoull(argv[++i], &end, 10);
            if (end == argv[i] || *end != '\0') {
                std::fprintf(stderr, "gaussian_mixture: bad seed '%s'\n", argv[i]);
                usage(stderr);
                return 2;
            }
        } else {
            std::fprintf(stderr, "gaussian_mixture: %s '%s'\n",
                         (a == "--out" || a == "--seed") ? "missing value after" : "unknown option", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    try {
        return run(opt);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "gaussian_mixture: error: %s\n", e.what());
        return 1;
    }
}
