// pipelines_demo — img2img (SDEdit) and inpainting (RePaint replacement) on
// 16×16 pictures, with the exact ε-predictor of a Gaussian mixture of four
// shapes (disk, square, cross, ring; pixel noise std 0.08), so that what the
// pictures show comes from the pipeline and none of it from training.
//
// img2img: the input is half a ring (top) on half a disk (bottom) with
//   pixel noise; strength 0.04 … 1 with DDIM (25 steps). The shapes' pixel
//   std is small (0.08), so the exact denoiser snaps to one shape early:
//   strength 0.04 (one step, from t = 0) keeps the input, 0.08 (from t = 40)
//   gives a clean ring; strength 1 forgets the input.
// Inpainting: the left half of a cross is known, the right half generated,
//   with DPM-Solver++(2M) (20 steps); 64 runs are checked to complete a
//   cross (the component nearest to the result).
//
// Writes pipelines_demo.png and prints the numbers.
// Usage: pipelines_demo [--small] [--out DIR] [--help]
#include <ddpm/ddpm.hpp>
#include <ddpm/pipelines.hpp>

#include "common/mixture.hpp"
#include "common/plot.hpp"
#include "common/png.hpp"
#include "common/text.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

namespace {

constexpr int side = 16;
constexpr std::size_t D = side * side;

/// The four shapes, values in {−1, 1} (background −1).
std::vector<double> shapes() {
    std::vector<double> m(4 * D, -1.0);
    for (int y = 0; y < side; ++y)
        for (int x = 0; x < side; ++x) {
            const double cx = x - 7.5, cy = y - 7.5, r = std::sqrt(cx * cx + cy * cy);
            const auto at = [&](int k) -> double& { return m[static_cast<std::size_t>(k) * D + y * side + x]; };
            if (r < 5.5) at(0) = 1;                                    // disk
            if (std::abs(cx) < 5 && std::abs(cy) < 5) at(1) = 1;      // square
            if (std::abs(cx) < 1.6 || std::abs(cy) < 1.6) at(2) = 1;  // cross
            if (r > 4 && r < 6.8) at(3) = 1;                           // ring
        }
    return m;
}

examples::gaussian_mixture make_mixture() {
    examples::gaussian_mixture mix;
    mix.dim = D;
    mix.weights = {0.25, 0.25, 0.25, 0.25};
    mix.means = shapes();
    mix.stds = {0.08, 0.08, 0.08, 0.08};
    mix.validate();
    return mix;
}

/// Draws one picture (values in [−1, 1]) at (x0, y0), `scale` pixels per
/// value; `mask` (optional) tints the unknown region.
void draw_picture(examples::canvas& c, int x0, int y0, int scale, const float* v, const float* mask = nullptr) {
    for (int y = 0; y < side; ++y)
        for (int x = 0; x < side; ++x) {
            const float u = std::clamp((v[y * side + x] + 1.0f) * 0.5f, 0.0f, 1.0f);
            auto g = static_cast<std::uint8_t>(std::lround(u * 255.0f));
            examples::rgb col{g, g, g};
            if (mask && mask[y * side + x] == 0.0f) col = {static_cast<std::uint8_t>(g / 3 + 120), 60, 60};
            c.fill_rect(x0 + x * scale, y0 + y * scale, scale, scale, col);
        }
}

double rms(const float* a, const float* b) {
    double s = 0;
    for (std::size_t i = 0; i < D; ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
    return std::sqrt(s / D);
}

} // namespace

int main(int argc, char** argv) try {
    bool small = false;
    std::string out_dir = ".";
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--small")) small = true;
        else if (!std::strcmp(argv[i], "--out") && i + 1 < argc) out_dir = argv[++i];
        else {
            std::puts("usage: pipelines_demo [--small] [--out DIR]");
            return std::strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    const auto mix = make_mixture();
    const ddpm::noise_schedule schedule(ddpm::schedule_config{});
    examples::mixture_denoiser<float> net(mix, schedule);
    std::vector<double> scratch(mix.size());
    const auto data = mix.at_level(1.0);

    // ---- img2img: half a ring on half a disk, with pixel noise -------------
    std::vector<float> input(D);
    const ddpm::counter_noise pixel_noise(77, D);
    std::vector<float> jitter(D);
    pixel_noise.fill(std::span<float>(jitter), 0);
    for (std::size_t i = 0; i < D; ++i) {
        const int x = static_cast<int>(i % side), y = static_cast<int>(i / side);
        (void)x;
        const double base = y < side / 2 ? mix.mean(3)[i] : mix.mean(0)[i]; // ring on top, disk below
        input[i] = static_cast<float>(base + 0.35 * jitter[i]);
    }
    const std::vector<double> strengths{0.04, 0.08, 0.16, 0.32, 1.0};
    ddpm::ddim_scheduler<float> ddim(schedule);
    ddim.set_timesteps(25);
    std::vector<std::vector<float>> edited;
    std::puts("img2img (DDIM, 25 steps): strength -> network calls, rms change from the input, nearest shape");
    for (const double s : strengths) {
        std::vector<float> out(D);
        const auto calls = ddpm::img2img(ddim, s, net, ddpm::counter_noise(5, D), input, out,
                                         ddpm::sampler_options{.batch = 1});
        const char* names[] = {"disk", "square", "cross", "ring"};
        std::printf("  strength %.2f: %2zu calls, rms change %.3f, nearest %s\n", s, calls,
                    rms(out.data(), input.data()), names[mix.most_likely_component(out.data(), data, scratch)]);
        edited.push_back(std::move(out));
    }

    // ---- inpainting: the left half of a cross known ------------------------
    const std::size_t runs = small ? 16 : 64;
    std::vector<float> known(runs * D), mask(runs * D), result(runs * D);
    for (std::size_t b = 0; b < runs; ++b)
        for (std::size_t i = 0; i < D; ++i) {
            known[b * D + i] = static_cast<float>(mix.mean(2)[i]);
            mask[b * D + i] = (i % side) < side / 2 ? 1.0f : 0.0f;
        }
    ddpm::dpm_solver_multistep_scheduler<float> dpm(schedule);
    dpm.set_timesteps(20);
    ddpm::inpaint(dpm, net, ddpm::counter_noise(9, D), known, mask, result, ddpm::sampler_options{.batch = runs});
    std::size_t crosses = 0;
    for (std::size_t b = 0; b < runs; ++b)
        crosses += mix.most_likely_component(result.data() + b * D, data, scratch) == 2 ? 1 : 0;
    // the same runs without the hook: free samples, for comparison
    std::vector<float> free(runs * D);
    ddpm::dpm_solver_sample(dpm, net, ddpm::counter_noise(9, D), free, ddpm::sampler_options{.batch = runs});
    std::size_t free_crosses = 0;
    for (std::size_t b = 0; b < runs; ++b)
        free_crosses += mix.most_likely_component(free.data() + b * D, data, scratch) == 2 ? 1 : 0;
    std::printf("inpainting (DPM-Solver++ 2M, 20 steps, left half of a cross known): %zu / %zu results are crosses "
                "(without the known half: %zu / %zu)\n",
                crosses, runs, free_crosses, runs);

    // ---- the picture -------------------------------------------------------
    const int scale = 6, cell = side * scale, gap = 10, top = 26;
    const int cols = 1 + static_cast<int>(strengths.size());
    examples::canvas c(gap + cols * (cell + gap), 2 * (top + cell) + 3 * gap, {205, 212, 225});
    examples::draw_label(c, gap, 6, "img2img (DDIM 25 steps): input, then strength 0.04, 0.08, 0.16, 0.32, 1", {30, 30, 30}, 1);
    draw_picture(c, gap, top, scale, input.data());
    for (std::size_t k = 0; k < edited.size(); ++k)
        draw_picture(c, gap + static_cast<int>(k + 1) * (cell + gap), top, scale, edited[k].data());
    const int y2 = top + cell + gap + top;
    examples::draw_label(c, gap, y2 - 20, "inpainting (DPM-Solver++ 20 steps): known half (red = unknown), 5 results",
                         {30, 30, 30}, 1);
    draw_picture(c, gap, y2, scale, known.data(), mask.data());
    for (int k = 0; k < 5 && static_cast<std::size_t>(k) < runs; ++k)
        draw_picture(c, gap + (k + 1) * (cell + gap), y2, scale, result.data() + static_cast<std::size_t>(k) * D);
    const auto path = (std::filesystem::path(out_dir) / "pipelines_demo.png").string();
    examples::write_png(path, c.width(), c.height(), c.pixels());
    std::printf("wrote %s\n", path.c_str());
    return crosses * 10 >= runs * 9 ? 0 : 1; // the known half must decide the shape
} catch (const std::exception& e) {
    std::fprintf(stderr, "pipelines_demo: %s\n", e.what());
    return 1;
}
