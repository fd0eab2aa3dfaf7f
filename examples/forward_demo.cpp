// forward_demo — the forward (noising) process q(x_t | x_0) of Ho et al. 2020.
//
//   x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε,   ε ~ N(0, I)          (paper eq. 4)
//
// 1. Builds the paper's linear schedule (β: 1e-4 → 0.02, T = 1000) and prints
//    ᾱ_t, √ᾱ_t, 1 − ᾱ_t and SNR at a dozen timesteps, then the paper's §4
//    check values (√ᾱ_T, 1 − ᾱ_T, L_T in bits/dim) as expected / got.
// 2. Draws a 64×64 RGB picture, scales it to [−1, 1] and noises it at
//    t ∈ {0, 50, 100, 250, 500, 750, 999} with one ddpm::q_sample call (one
//    sample per timestep): forward_strip.png.
// 3. Noises a 2-D two-moons cloud (2000 points, one sample per point) at the
//    same timesteps: forward_points.png.
//
// Timesteps are 0-based, as in the library's API: t = 0 is the paper's t = 1
// and t = 999 is the paper's t = T. All noise comes from a seeded
// std::mt19937_64 and Box–Muller, so every run prints and draws the same.
//
// Usage: forward_demo [--small] [--out DIR] [--help]
#include <ddpm/core/forward.hpp>
#include <ddpm/schedule/noise_schedule.hpp>

#include "common/plot.hpp"
#include "common/png.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iterator>
#include <numbers>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::int64_t frame_timesteps[] = {0, 50, 100, 250, 500, 750, 999};
constexpr std::size_t num_frames = std::size(frame_timesteps);

// ---------------------------------------------------------------------------
// Deterministic Gaussian noise: mt19937_64 (its output is fixed by the C++
// standard) and the Box–Muller transform.
class gaussian_source {
public:
    explicit gaussian_source(std::uint64_t seed) : m_engine(seed) {}

    double operator()() {
        if (m_has_spare) {
            m_has_spare = false;
            return m_spare;
        }
        const double u1 = 1.0 - uniform(); // (0, 1]: log(u1) is finite
        const double u2 = uniform();
        const double r = std::sqrt(-2.0 * std::log(u1));
        const double phi = 2.0 * std::numbers::pi * u2;
        m_spare = r * std::sin(phi);
        m_has_spare = true;
        return r * std::cos(phi);
    }

    template <class T>
    std::vector<T> fill(std::size_t n) {
        std::vector<T> v(n);
        for (auto& x : v) x = static_cast<T>((*this)());
        return v;
    }

    /// Uniform in [0, 1) with 53 random bits.
    double uniform() { return static_cast<double>(m_engine() >> 11) * 0x1.0p-53; }

private:
    std::mt19937_64 m_engine;
    double m_spare = 0;
    bool m_has_spare = false;
};

// ---------------------------------------------------------------------------
// Data.

/// A size × size RGB smiley on a checkerboard, HWC order, values in [0, 255].
std::vector<std::uint8_t> make_picture(int size) {
    std::vector<std::uint8_t> img(static_cast<std::size_t>(size) * size * 3);
    const auto mix = [](examples::rgb a, examples::rgb b, double w) {
        const auto m = [w](std::uint8_t p, std::uint8_t q) {
            return static_cast<std::uint8_t>(std::lround(p + w * (q - p)));
        };
        return examples::rgb{m(a.r, b.r), m(a.g, b.g), m(a.b, b.b)};
    };
    const double aa = 2.0 / size; // one pixel, in [−1, 1] units: antialiasing width
    const auto edge = [aa](double signed_distance) { return std::clamp(0.5 - signed_distance / aa, 0.0, 1.0); };
    for (int j = 0; j < size; ++j)
        for (int i = 0; i < size; ++i) {
            const double u = (i + 0.5) / size * 2 - 1, v = (j + 0.5) / size * 2 - 1; // v points down
            // Background: checkerboard of 8 squares a side, cool tones.
            const bool odd = ((i * 8 / size) + (j * 8 / size)) % 2 != 0;
            examples::rgb c = odd ? examples::rgb{46, 84, 150} : examples::rgb{92, 160, 210};
            const double r = std::hypot(u, v);
            // Face: a yellow disc with a dark rim.
            c = mix(c, {40, 30, 20}, edge(r - 0.80));
            c = mix(c, {255, 205, 40}, edge(r - 0.72));
            // Cheeks.
            c = mix(c, {250, 140, 110}, 0.6 * edge(std::hypot(u + 0.45, v - 0.12) - 0.13));
            c = mix(c, {250, 140, 110}, 0.6 * edge(std::hypot(u - 0.45, v - 0.12) - 0.13));
            // Eyes: dark ellipses.
            const double eye = std::min(std::hypot((u + 0.27) / 0.7, v + 0.25), std::hypot((u - 0.27) / 0.7, v + 0.25));
            c = mix(c, {40, 30, 20}, edge(eye - 0.14));
            // Mouth: a thick arc on the lower half of a circle.
            const double mouth = std::abs(std::hypot(u, v + 0.02) - 0.45) - 0.06;
            if (v > 0.12) c = mix(c, {150, 30, 40}, edge(mouth));
            auto* p = &img[(static_cast<std::size_t>(j) * size + i) * 3];
            p[0] = c.r, p[1] = c.g, p[2] = c.b;
        }
    return img;
}

/// Two interleaving half circles, centred and scaled to about [−1.9, 1.9] ×
/// [−1, 1] (roughly unit variance per coordinate, like N(0, I) at t = T); xy
/// interleaved, the first half of the points in moon 0.
std::vector<float> make_two_moons(std::size_t n, gaussian_source& g) {
    std::vector<float> xy(2 * n);
    for (std::size_t k = 0; k < n; ++k) {
        const bool upper = k < n / 2;
        const double theta = std::numbers::pi * g.uniform();
        double x = upper ? std::cos(theta) : 1.0 - std::cos(theta);
        double y = upper ? std::sin(theta) : 0.5 - std::sin(theta);
        x += 0.06 * g(), y += 0.06 * g();
        xy[2 * k] = static_cast<float>(1.25 * (x - 0.5));
        xy[2 * k + 1] = static_cast<float>(1.25 * (y - 0.25));
    }
    return xy;
}

std::uint8_t to_byte(float v) { // [−1, 1] → [0, 255], clipped
    return static_cast<std::uint8_t>(std::lround(std::clamp((v + 1.0f) * 127.5f, 0.0f, 255.0f)));
}

// ---------------------------------------------------------------------------
// Pictures.

std::string label(std::int64_t t) { return "t=" + std::to_string(t); }

/// The frames side by side, each scaled up, each with its t above it.
examples::canvas draw_strip(int size, std::span<const float> frames) {
    const int scale = size >= 64 ? 2 : 3, tile = size * scale, margin = 8, font = 2, top = margin + 7 * font + 6;
    examples::canvas c(margin + static_cast<int>(num_frames) * (tile + margin), top + tile + margin, {255, 255, 255});
    const std::size_t frame_len = static_cast<std::size_t>(size) * size * 3;
    std::vector<std::uint8_t> bytes(frame_len);
    for (std::size_t f = 0; f < num_frames; ++f) {
        for (std::size_t i = 0; i < frame_len; ++i) bytes[i] = to_byte(frames[f * frame_len + i]);
        const int x = margin + static_cast<int>(f) * (tile + margin);
        const auto text = label(frame_timesteps[f]);
        c.text(x + (tile - examples::canvas::text_width(text, font)) / 2, margin, text, {30, 30, 30}, font);
        c.blit(x, top, size, size, bytes, scale);
        c.rect(x - 1, top - 1, tile + 2, tile + 2, {60, 60, 60});
    }
    return c;
}

/// One scatter panel per timestep; moon 0 orange, moon 1 blue; the grey ring
/// is radius 2 (about 86 % of N(0, I) falls inside it).
examples::canvas draw_points(int panel, std::size_t n, std::span<const float> frames) {
    const int margin = 10, font = 2, top = margin + 7 * font + 6;
    examples::canvas c(margin + static_cast<int>(num_frames) * (panel + margin), top + panel + margin,
                       {255, 255, 255});
    const examples::rgb colours[2] = {{230, 110, 20}, {30, 100, 200}};
    for (std::size_t f = 0; f < num_frames; ++f) {
        const examples::scatter_panel p{margin + static_cast<int>(f) * (panel + margin), top, panel, -3.25, 3.25};
        const auto text = label(frame_timesteps[f]);
        c.text(p.x + (panel - examples::canvas::text_width(text, font)) / 2, margin, text, {30, 30, 30}, font);
        p.draw_frame(c, 2.0);
        p.scatter(c, frames.subspan(f * 2 * n, 2 * n), [&](std::size_t k) { return colours[k < n / 2 ? 0 : 1]; },
                  panel >= 150 ? 1.3 : 1.0, 0.7f);
    }
    return c;
}

// ---------------------------------------------------------------------------

void usage(std::FILE* to) {
    std::fprintf(to,
                 "usage: forward_demo [--small] [--out DIR] [--help]\n"
                 "  Shows the DDPM forward process q(x_t | x_0) on the paper's linear schedule.\n"
                 "  --small    fast smoke run (smaller picture, fewer points)\n"
                 "  --out DIR  write forward_strip.png and forward_points.png to DIR (default: .)\n"
                 "  --help     print this help\n");
}

struct options {
    bool small = false;
    std::filesystem::path out = ".";
};

int run(const options& opt) {
    // ---- 1. The schedule --------------------------------------------------
    const ddpm::schedule_config config{.num_train_timesteps = 1000,
                                       .schedule = ddpm::beta_schedule::linear,
                                       .beta_start = 1e-4,
                                       .beta_end = 0.02};
    const ddpm::noise_schedule schedule(config);
    const auto& tab = schedule.f64();
    const std::int64_t T = schedule.size();

    std::printf("DDPM forward process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)\n");
    std::printf("linear schedule: beta_start = %g, beta_end = %g, T = %lld (t is 0-based: paper t = t + 1)\n\n",
                config.beta_start, config.beta_end, static_cast<long long>(T));
    std::printf("%5s  %-12s %-12s %-14s %-12s %s\n", "t", "beta_t", "abar_t", "sqrt(abar_t)", "1 - abar_t",
                "SNR");
    for (const std::int64_t t : {0, 1, 10, 50, 100, 250, 500, 600, 750, 900, 990, 999}) {
        const auto i = static_cast<std::size_t>(t);
        std::printf("%5lld  %-12.6g %-12.6g %-14.6g %-12.6g %.6g\n", static_cast<long long>(t), tab.betas[i],
                    tab.alphas_cumprod[i], tab.sqrt_alphas_cumprod[i], 1.0 - tab.alphas_cumprod[i], tab.snr[i]);
    }

    // ---- 2. Data ------------------------------------------------------------
    const int size = opt.small ? 32 : 64;
    const std::size_t num_points = opt.small ? 500 : 2000;
    gaussian_source gauss(20200619); // arXiv 2006.11239 went up on 19 June 2020
    const auto picture = make_picture(size);
    const std::size_t D = picture.size();
    std::vector<float> x0(D);
    for (std::size_t i = 0; i < D; ++i) x0[i] = static_cast<float>(picture[i]) / 127.5f - 1.0f; // [−1, 1]
    const auto moons = make_two_moons(num_points, gauss);

    // ---- 3. The paper's check values (§4) -----------------------------------
    // L_T = KL(q(x_T | x_0) ‖ N(0, I)) per dimension, averaged over the
    // picture, in bits: ½ (−1 − log σ² + σ² + μ²) / ln 2 with μ = √ᾱ_T x_0,
    // σ² = 1 − ᾱ_T (docs/math.md#likelihood-and-bits-per-dimension).
    const auto last = static_cast<std::size_t>(T - 1);
    const double abar_T = tab.alphas_cumprod[last];
    const double var_T = 1.0 - abar_T;
    double kl_nats = 0;
    for (const float v : x0) {
        const double mu = tab.sqrt_alphas_cumprod[last] * v;
        kl_nats += 0.5 * (-1.0 - std::log(var_T) + var_T + mu * mu);
    }
    const double lt_bits = kl_nats / static_cast<double>(D) / std::numbers::ln2;
    const double lt_worst = 0.5 * (-1.0 - std::log(var_T) + var_T + abar_T) / std::numbers::ln2; // |x_0| = 1

    std::printf("\nPaper check values (Ho et al. 2020, section 4), t = T:\n");
    std::printf("  %-34s %-14s %s\n", "quantity", "expected", "got");
    const auto check = [](const char* name, const char* expected, double want, double got, double rel_tol) {
        const bool ok = std::abs(got - want) <= rel_tol * std::abs(want);
        std::printf("  %-34s %-14s %-14.8g %s\n", name, expected, got, ok ? "ok" : "MISMATCH");
        return ok;
    };
    bool ok = true;
    ok &= check("sqrt(abar_T)", "0.0063528", 0.0063528, tab.sqrt_alphas_cumprod[last], 1e-4);
    ok &= check("1 - abar_T", "0.99995964", 0.99995964, var_T, 1e-7);
    ok &= check("L_T (bits/dim, this picture)", "~1e-5", 1e-5, lt_bits, 2.0);
    std::printf("  %-34s %-14s %-14.8g %s\n", "L_T (bits/dim, worst |x_0| = 1)", "", lt_worst, "(bound)");

    // ---- 4. Noise the picture: one sample per frame, one q_sample call -----
    std::vector<float> batch_x0(num_frames * D), batch_xt(num_frames * D);
    for (std::size_t f = 0; f < num_frames; ++f) std::copy(x0.begin(), x0.end(), batch_x0.begin() + f * D);
    const auto batch_eps = gauss.fill<float>(num_frames * D);
    const std::vector<std::int64_t> ts(std::begin(frame_timesteps), std::end(frame_timesteps));
    ddpm::q_sample(schedule, batch_x0, batch_eps, ts, batch_xt);

    // Empirical spread over the pixels versus the prediction
    // Var(x_t) = ᾱ_t Var(x_0) + (1 − ᾱ_t), and the correlation with x_0.
    double m0 = 0, v0 = 0;
    for (const float v : x0) m0 += v;
    m0 /= static_cast<double>(D);
    for (const float v : x0) v0 += (v - m0) * (v - m0);
    v0 /= static_cast<double>(D);
    std::printf("\nThe %dx%dx3 picture (values in [-1, 1]) noised with q_sample, one sample per t:\n", size, size);
    std::printf("%5s  %-14s %-14s %-14s %s\n", "t", "std expected", "std got", "corr expected", "corr got");
    for (std::size_t f = 0; f < num_frames; ++f) {
        const auto t = static_cast<std::size_t>(frame_timesteps[f]);
        const float* xt = &batch_xt[f * D];
        double m = 0, v = 0, cov = 0;
        for (std::size_t i = 0; i < D; ++i) m += xt[i];
        m /= static_cast<double>(D);
        for (std::size_t i = 0; i < D; ++i) v += (xt[i] - m) * (xt[i] - m), cov += (xt[i] - m) * (x0[i] - m0);
        v /= static_cast<double>(D), cov /= static_cast<double>(D);
        const double a = tab.alphas_cumprod[t];
        const double var_pred = a * v0 + (1 - a);
        std::printf("%5zu  %-14.4f %-14.4f %-14.4f %.4f\n", t, std::sqrt(var_pred), std::sqrt(v),
                    std::sqrt(a * v0 / var_pred), cov / std::sqrt(v * v0));
    }

    // ---- 5. Noise the point cloud: each point is a sample of D = 2 ---------
    std::vector<float> pts_x0(num_frames * 2 * num_points), pts_xt(num_frames * 2 * num_points);
    std::vector<std::int64_t> pts_t(num_frames * num_points);
    for (std::size_t f = 0; f < num_frames; ++f) {
        std::copy(moons.begin(), moons.end(), pts_x0.begin() + f * 2 * num_points);
        std::fill_n(pts_t.begin() + f * num_points, num_points, frame_timesteps[f]);
    }
    const auto pts_eps = gauss.fill<float>(pts_x0.size());
    ddpm::q_sample(schedule, pts_x0, pts_eps, pts_t, pts_xt);

    // ---- 6. Pictures --------------------------------------------------------
    std::filesystem::create_directories(opt.out);
    const auto strip_path = (opt.out / "forward_strip.png").string();
    const auto points_path = (opt.out / "forward_points.png").string();
    const auto strip = draw_strip(size, batch_xt);
    examples::write_png(strip_path, strip.width(), strip.height(), strip.pixels());
    const auto points = draw_points(opt.small ? 120 : 180, num_points, pts_xt);
    examples::write_png(points_path, points.width(), points.height(), points.pixels());

    std::printf("\nwrote %s (%dx%d): the picture at t = 0 50 100 250 500 750 999\n", strip_path.c_str(),
                strip.width(), strip.height());
    std::printf("wrote %s (%dx%d): %zu two-moons points at the same t (grey ring: radius 2)\n",
                points_path.c_str(), points.width(), points.height(), num_points);
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
        } else if (a == "--out" && i + 1 < argc) {
            opt.out = argv[++i];
        } else if (a.starts_with("--out=") && a.size() > 6) {
            opt.out = std::string(a.substr(6));
        } else {
            std::fprintf(stderr, "forward_demo: %s '%s'\n", a == "--out" ? "missing directory after" : "unknown option",
                         argv[i]);
            usage(stderr);
            return 2;
        }
    }
    try {
        return run(opt);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "forward_demo: error: %s\n", e.what());
        return 1;
    }
}
