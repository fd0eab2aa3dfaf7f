// fashion_mnist — train a small U-Net ε-network on Fashion-MNIST in C++ with
// LibTorch and ddpm, and sample it with DDPM and DDIM (Ho et al. 2020:
// Algorithm 1 to train, Algorithm 2 to sample).
//
// The network is unet.hpp (LibTorch, 199 729 parameters at the default width c = 16).
// ddpm supplies the diffusion, working on the tensors' memory directly
// (ddpm/adapters/torch.hpp):
//
//   Algorithm 1, repeated:
//     x_0 ~ data (a minibatch)       t ~ Uniform{0..T−1}      ddpm::uniform_timestep_sampler
//     ε ~ N(0, I), counter-based     x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε   ddpm::q_sample (fused, writes x_t and ε)
//     w_t: 1 (L_simple) or min-SNR-5                           ddpm::loss_weights
//     loss = mean_b w_b ‖ε − ε_θ(x_t, t)‖² / D; AdamW step; EMA of the weights (LibTorch)
//   Sampling with the EMA (or raw) weights, through ddpm::torch_denoiser:
//     DDPM (Algorithm 2, x̂_0 clipped to [−1, 1])              ddpm::sample
//     DDIM (η = 0)                                             ddpm::ddim_sample
//     or one of DPM-Solver++, UniPC, Euler, Heun (--sampler)   ddpm::sample
//   --train-classifier and --fid: a small classifier (classifier.hpp) and the
//   FID in its features, with floors (real vs real, pure noise).
//
// Everything random is keyed on (seed, iteration), so a run resumed from a
// checkpoint continues exactly as the uninterrupted run would.
//
// Files written to --out: fashion_mnist_data.png (training images),
// fashion_mnist_ddpm.png, fashion_mnist_ddim.png (sample grids),
// fashion_mnist_progressive.png (x_t and x̂_0 along the DDPM chain), and the
// checkpoint folder (model.pt, ema.pt, optimizer.pt, state.txt).
//
// Usage: fashion_mnist [--small] [options]   (--help lists them)
#include <ddpm/adapters/torch.hpp>
#include <ddpm/ddpm.hpp>
#include <ddpm/guidance.hpp>

#include "common/plot.hpp"
#include "common/png.hpp"
#include "common/text.hpp"
#include "fashion_mnist/classifier.hpp"
#include "fashion_mnist/idx.hpp"
#include "fashion_mnist/unet.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

constexpr std::int64_t side = 28;
constexpr std::size_t D = side * side;

struct options {
    bool small = false;
    std::filesystem::path data = "/usr/share/datasets/fashion-mnist";
    std::filesystem::path out = ".";
    std::filesystem::path checkpoint; // default: out / "fashion_mnist_checkpoint"
    std::filesystem::path torchscript; // sample this TorchScript module instead of training
    std::filesystem::path forward_check; // write (x, t, ε̂) of the EMA network for export.py check
    long iters = -1;
    long batch = -1;
    long images = -1; // training images used (0: all)
    std::int64_t channels = -1;
    bool attention = true;
    std::string weighting = "none";
    double lr = 1e-3;
    double ema_decay = -1;
    std::string weights = "ema"; // --weights: which weights of the checkpoint are sampled
    long save_every = 500;
    bool resume = false;
    bool sample_only = false;
    long samples = -1; // images per grid
    long ddpm_steps = -1;
    long ddim_steps = -1;
    long threads = 0;
    std::uint64_t seed = 1;
    std::string sampler; // --sampler: one grid with this sampler instead of the DDPM and DDIM grids
    long steps = -1;
    std::filesystem::path train_classifier; // --train-classifier FILE
    long classifier_epochs = 2;
    std::filesystem::path fid;              // --fid CLASSIFIER: the FID table
    long fid_samples = 500;
    long fid_ddpm_samples = 100;
    std::string fid_rows = "ddpm:1000,ddim:50,ddim:20,dpm:20,dpm:10,unipc:10,euler:20,heun:10";
    double fid_max = 0; // > 0: exit 1 when a sampler's FID exceeds it
    bool classes = false;              // --classes: class-conditional U-Net, trained with label dropout
    std::filesystem::path resume_from; // --resume-from DIR: start from DIR's weights (fine-tune), iteration 0
    double label_dropout = 0.1;        // --label-dropout P: a training label becomes null_label with probability P
    double class_init = 1;             // --class-init S: the class embedding starts as N(0, S²) (0: zeros)
    double class_lr = 1;               // --class-lr K: the class embedding's learning rate is K × --lr
    double min_accuracy = 0;           // --min-accuracy A: --fid exits 1 when a guided row's accuracy is below A
    double guidance = 3;               // --guidance W: classifier-free guidance scale of the class grid
    std::string guidance_scales = "0,1,3,5"; // --guidance-scales: the rows of the conditional FID table
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// A seed for iteration `b` of run `a` (the splitmix64 finaliser).
std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
    std::uint64_t z = a * 0x9E3779B97F4A7C15ull + b + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// ---------------------------------------------------------------------------
// Data: the training images scaled to [−1, 1], (N, 1, 28, 28) float32.

/// `split` is "train" or "t10k" (the test split).
at::Tensor load_images(const std::filesystem::path& dir, std::size_t max_items, const std::string& split = "train") {
    const std::string file = split + "-images-idx3-ubyte.gz";
    const auto raw = fmnist::read_idx(dir / file, max_items);
    if (raw.shape.size() != 3 || raw.shape[1] != side || raw.shape[2] != side)
        throw std::runtime_error(file + ": expected N x 28 x 28 images");
    const auto n = static_cast<std::int64_t>(raw.shape[0]);
    at::Tensor bytes = torch::from_blob(const_cast<std::uint8_t*>(raw.values.data()), {n, 1, side, side}, torch::kUInt8);
    return bytes.to(torch::kFloat).div_(127.5).sub_(1.0); // a copy: owns its memory
}

/// The labels 0–9 of a split, (N,) int64.
at::Tensor load_labels(const std::filesystem::path& dir, const std::string& split) {
    const std::string file = split + "-labels-idx1-ubyte.gz";
    const auto raw = fmnist::read_idx(dir / file);
    if (raw.shape.size() != 1) throw std::runtime_error(file + ": expected N labels");
    const auto n = static_cast<std::int64_t>(raw.shape[0]);
    return torch::from_blob(const_cast<std::uint8_t*>(raw.values.data()), {n}, torch::kUInt8).to(torch::kLong);
}

// ---------------------------------------------------------------------------
// Pictures: images in [−1, 1] as grey squares, scaled up.

void draw_image(examples::canvas& c, int x, int y, const float* img, int scale) {
    for (int r = 0; r < side; ++r)
        for (int q = 0; q < side; ++q) {
            const float v = std::clamp((img[r * side + q] + 1.0f) * 127.5f, 0.0f, 255.0f);
            const auto g = static_cast<std::uint8_t>(std::lround(v));
            c.fill_rect(x + q * scale, y + r * scale, scale, scale, {g, g, g});
        }
}

void write_grid(const std::filesystem::path& path, const std::string& title, std::span<const float> images,
                int columns, int scale) {
    const int n = static_cast<int>(images.size() / D);
    const int rows = (n + columns - 1) / columns, cell = side * scale + 2, top = 24;
    examples::canvas c(std::max(columns * cell + 2, examples::label_width(title, 1) + 8), top + rows * cell + 2,
                       {255, 255, 255});
    examples::draw_label(c, 4, 6, title, {30, 30, 30}, 1);
    for (int k = 0; k < n; ++k)
        draw_image(c, 2 + (k % columns) * cell, top + (k / columns) * cell, images.data() + k * D, scale);
    examples::write_png(path.string(), c.width(), c.height(), c.pixels());
    std::printf("wrote %s (%dx%d)\n", path.string().c_str(), c.width(), c.height());
}

/// The progressive strip: for each of `rows` samples, x_t (upper) and x̂_0
/// (lower) at the recorded steps.
struct frame {
    std::int64_t t; // paper indexing: x_T at t = T, the sample at t = 0
    std::vector<float> x, x0;
};

void write_strip(const std::filesystem::path& path, const std::vector<frame>& frames, int rows, int scale) {
    const int cell = side * scale + 2, top = 40, label_w = 40;
    const int nf = static_cast<int>(frames.size());
    examples::canvas c(label_w + nf * cell + 4, top + rows * (2 * cell + 8) + 4, {255, 255, 255});
    examples::draw_label(c, 4, 6, "DDPM chain: x_t (upper) and x0_hat (lower) of each sample", {30, 30, 30}, 1);
    for (int f = 0; f < nf; ++f)
        examples::draw_label_centred(c, label_w + f * cell + cell / 2, 24,
                                     "t=" + std::to_string(frames[static_cast<std::size_t>(f)].t), {30, 30, 30}, 1);
    for (int r = 0; r < rows; ++r) {
        const int y = top + r * (2 * cell + 8);
        examples::draw_label(c, 4, y + cell / 2 - 3, "x_t", {30, 30, 30}, 1);
        examples::draw_label(c, 4, y + cell + cell / 2 - 3, "x0", {30, 30, 30}, 1);
        for (int f = 0; f < nf; ++f) {
            const auto& fr = frames[static_cast<std::size_t>(f)];
            draw_image(c, label_w + f * cell, y, fr.x.data() + static_cast<std::size_t>(r) * D, scale);
            if (!fr.x0.empty())
                draw_image(c, label_w + f * cell, y + cell, fr.x0.data() + static_cast<std::size_t>(r) * D, scale);
        }
    }
    examples::write_png(path.string(), c.width(), c.height(), c.pixels());
    std::printf("wrote %s (%dx%d)\n", path.string().c_str(), c.width(), c.height());
}

// ---------------------------------------------------------------------------
// Checkpoints: the model, its EMA, the optimiser and the iteration.

struct run_state {
    long iteration = 0;
    std::int64_t channels = 0;
    bool attention = true;
    std::uint64_t seed = 0;
    bool classes = false; // class-conditional network (fmnist::unet_config::classes)
};

void save_checkpoint(const std::filesystem::path& dir, fmnist::UNet& model, fmnist::UNet& ema,
                     torch::optim::AdamW& optimiser, const run_state& s) {
    std::filesystem::create_directories(dir);
    torch::save(model, (dir / "model.pt").string());
    torch::save(ema, (dir / "ema.pt").string());
    torch::save(optimiser, (dir / "optimizer.pt").string());
    std::ofstream f(dir / "state.txt");
    f << "iteration " << s.iteration << "\nchannels " << s.channels << "\nattention " << (s.attention ? 1 : 0)
      << "\nseed " << s.seed << "\nclasses " << (s.classes ? 1 : 0) << "\n";
    if (!f) throw std::runtime_error("cannot write " + (dir / "state.txt").string());
}

run_state read_state(const std::filesystem::path& dir) {
    std::ifstream f(dir / "state.txt");
    if (!f) throw std::runtime_error("no checkpoint at " + dir.string() + " (state.txt missing)");
    run_state s;
    std::string key;
    int att = 1, classes = 0;
    while (f >> key) {
        if (key == "iteration") f >> s.iteration;
        else if (key == "channels") f >> s.channels;
        else if (key == "attention") f >> att;
        else if (key == "seed") f >> s.seed;
        else if (key == "classes") f >> classes;
        else throw std::runtime_error("unknown key '" + key + "' in " + (dir / "state.txt").string());
    }
    s.attention = att != 0;
    s.classes = classes != 0;
    return s;
}

bool parse_number(const char* s, auto& out) {
    char* end = nullptr;
    if constexpr (std::is_floating_point_v<std::remove_reference_t<decltype(out)>>) {
        out = std::strtod(s, &end);
    } else {
        const long long v = std::strtoll(s, &end, 10);
        if (v < 0) return false;
        out = static_cast<std::remove_reference_t<decltype(out)>>(v);
    }
    return end != s && *end == '\0';
}

// ---------------------------------------------------------------------------
// Samplers by name, all with x̂_0 clipped to [−1, 1].

constexpr std::int64_t T = 1000; // the paper's schedule: linear β from 1e-4 to 0.02

/// The samplers --sampler and --fid take.
constexpr std::string_view sampler_names = "ddpm, ddim, dpm (DPM-Solver++ 2M), unipc (UniPC-bh2), euler, heun";

bool known_sampler(std::string_view name) {
    return name == "ddpm" || name == "ddim" || name == "dpm" || name == "unipc" || name == "euler" || name == "heun";
}

/// Samples `out` (B images) with sampler `name` at `steps` steps from the
/// noise counter_noise(seed); returns the number of network calls.
/// `net` is a ddpm::torch_denoiser, or classifier-free guidance over one.
template <class Net>
std::size_t run_sampler(std::string_view name, long steps, const ddpm::noise_schedule& schedule, Net& net,
                        std::uint64_t seed, std::span<float> out) {
    ddpm::model_options mo;
    mo.clip = ddpm::clip_options::clip(1.0); // images live in [−1, 1]
    const ddpm::sampler_options so{.batch = out.size() / D, .check_finite = true};
    const auto noise = ddpm::counter_noise(seed, D);
    const auto n = static_cast<std::int64_t>(steps);
    if (name == "ddpm") {
        ddpm::ddpm_scheduler<float> s(schedule, mo);
        if (n < T) s.set_timesteps(n);
        return ddpm::sample(s, net, noise, out, so);
    }
    if (name == "ddim") {
        ddpm::ddim_scheduler<float> s(schedule, mo);
        s.set_timesteps(n);
        return ddpm::sample(s, net, noise, out, so);
    }
    if (name == "dpm") {
        ddpm::dpm_solver_multistep_scheduler<float> s(schedule, mo); // DPM-Solver++, order 2, multistep
        s.set_timesteps(n);
        return ddpm::sample(s, net, noise, out, so);
    }
    if (name == "unipc") {
        ddpm::unipc_scheduler<float> s(schedule, mo); // UniPC-bh2, order 2, predicting x_0
        s.set_timesteps(n);
        return ddpm::sample(s, net, noise, out, so);
    }
    if (name == "euler") {
        ddpm::euler_scheduler<float> s(schedule, mo);
        s.set_timesteps(n);
        return ddpm::sample(s, net, noise, out, so);
    }
    if (name == "heun") { // 2·steps − 1 network calls
        ddpm::heun_scheduler<float> s(schedule, mo);
        s.set_timesteps(n);
        return ddpm::sample(s, net, noise, out, so);
    }
    throw std::runtime_error("unknown sampler '" + std::string(name) + "'; expected one of " +
                             std::string(sampler_names));
}

/// "DPM-Solver++ (2M)" for "dpm".
std::string sampler_label(std::string_view name) {
    return name == "ddpm"    ? "DDPM"
           : name == "ddim"  ? "DDIM"
           : name == "dpm"   ? "DPM-Solver++ (2M)"
           : name == "unipc" ? "UniPC (bh2)"
           : name == "euler" ? "Euler"
                             : "Heun";
}

/// "DPM-Solver++ (2M), 20 steps" for a grid's title.
std::string sampler_title(std::string_view name, long steps, std::size_t nfe) {
    std::string title = sampler_label(name) + ", " + std::to_string(steps) + " steps";
    if (nfe != static_cast<std::size_t>(steps)) title += " (" + std::to_string(nfe) + " network calls)";
    return title;
}

/// The network to sample: the TorchScript module of --torchscript, or the
/// checkpoint's weights `net` (the EMA, or the raw weights with --weights
/// model). Timesteps go in as float32 (the U-Net embeds them as floats), so
/// Euler and Heun's real-valued timesteps reach it unrounded.
ddpm::torch_denoiser make_denoiser(const options& o, fmnist::UNet& net) {
    const ddpm::torch_denoiser_options real_t{.timesteps = ddpm::torch_timestep_type::float32};
    if (!o.torchscript.empty()) {
        torch::jit::Module m = torch::jit::load(o.torchscript.string());
        m.eval();
        std::printf("sampling the TorchScript module %s\n", o.torchscript.string().c_str());
        return ddpm::torch_denoiser(m, {1, side, side}, real_t);
    }
    std::printf("sampling the %s weights\n", o.weights == "model" ? "raw (model.pt)" : "EMA (ema.pt)");
    net->eval();
    return ddpm::torch_denoiser(net, {1, side, side}, real_t);
}

/// Images as the 8-bit pictures they become: clamped to [−1, 1] and rounded
/// to the 256 grey levels of the data.
at::Tensor quantised(const at::Tensor& x) {
    return x.clamp(-1, 1).add(1).mul(127.5).round().div(127.5).sub(1);
}

/// The classifier's features of `images` (N, 1, 28, 28), quantised first.
at::Tensor features_of(fmnist::Classifier& classifier, const at::Tensor& images) {
    torch::NoGradGuard no_grad;
    classifier->eval();
    std::vector<at::Tensor> parts;
    for (std::int64_t i = 0; i < images.size(0); i += 500)
        parts.push_back(classifier->features(quantised(images.slice(0, i, std::min(images.size(0), i + 500)))));
    return torch::cat(parts, 0);
}

double accuracy_of(fmnist::Classifier& classifier, const at::Tensor& images, const at::Tensor& labels) {
    torch::NoGradGuard no_grad;
    classifier->eval();
    std::int64_t right = 0;
    for (std::int64_t i = 0; i < images.size(0); i += 500) {
        const auto j = std::min(images.size(0), i + 500);
        right += classifier->forward(images.slice(0, i, j)).argmax(1).eq(labels.slice(0, i, j)).sum().item<std::int64_t>();
    }
    return static_cast<double>(right) / static_cast<double>(images.size(0));
}

// ---------------------------------------------------------------------------

void usage(std::FILE* to) {
    std::fprintf(to,
                 "usage: fashion_mnist [--small] [options]\n"
                 "  Trains a small U-Net eps-network (LibTorch) on Fashion-MNIST with Algorithm 1 and samples it\n"
                 "  with DDPM (Algorithm 2) and DDIM, writing PNG grids and the progressive-generation strip.\n"
                 "  --small            smoke run: 512 images, 8 channels, 30 iterations, 4 samples (seconds)\n"
                 "  --data DIR         folder of train-images-idx3-ubyte.gz (default /usr/share/datasets/fashion-mnist)\n"
                 "  --out DIR          pictures go here (default .)\n"
                 "  --checkpoint DIR   checkpoint folder (default OUT/fashion_mnist_checkpoint)\n"
                 "  --resume           continue from the checkpoint (same network size and seed)\n"
                 "  --sample-only      skip training: sample the checkpoint's EMA (or --weights model) weights\n"
                 "  --torchscript FILE skip training: sample a TorchScript eps-network forward(x, t) (export.py)\n"
                 "  --forward-check F  write (x, t, eps_hat) of the EMA network on a fixed input to F (pickle;\n"
                 "                     export.py check compares the Python forward pass with it)\n"
                 "  --iters N          training iterations in total (default 3500; --small 30)\n"
                 "  --batch N          minibatch (default 32; --small 16)\n"
                 "  --images N         training images used, 0 = all 60000 (default 0; --small 512)\n"
                 "  --channels N       U-Net width c, a multiple of 8 (default 16; --small 8)\n"
                 "  --no-attention     no self-attention at 7x7\n"
                 "  --weighting W      none (L_simple, default) or min_snr (min-SNR-5)\n"
                 "  --lr X             AdamW peak learning rate (default 1e-3, cosine decay, 100-step warm-up)\n"
                 "  --ema X            EMA decay of the weights (default 0.999; --small 0.9), with warm-up:\n"
                 "                     min(X, (1 + i) / (10 + i)) at iteration i\n"
                 "  --weights W        sample the ema (default) or model (raw) weights of the checkpoint\n"
                 "  --save-every N     checkpoint every N iterations (default 500)\n"
                 "  --samples N        images per grid (default 36; --small 4)\n"
                 "  --ddpm-steps N     DDPM steps, 1000 = the full chain (default 1000; --small 20, respaced)\n"
                 "  --ddim-steps N     DDIM steps (default 50; --small 10)\n"
                 "  --sampler NAME     one grid with NAME at --steps steps instead of the DDPM and DDIM grids:\n"
                 "                     ddpm, ddim, dpm (DPM-Solver++ 2M), unipc, euler, heun (2 steps - 1 calls)\n"
                 "  --steps N          steps of --sampler (default 20)\n"
                 "  --threads N        LibTorch CPU threads (default: all cores)\n"
                 "  --seed N           seed of all the randomness (default 1)\n"
                 "  --train-classifier FILE  train the FID's classifier on the training split, save it to FILE\n"
                 "  --classifier-epochs N    its epochs (default 2)\n"
                 "  --fid CLASSIFIER   print the FID table of the checkpoint's network (--weights) in the classifier's\n"
                 "                     features, with its floors (real vs real, noise), and exit\n"
                 "  --fid-samples N    samples per FID (default 500)\n"
                 "  --fid-ddpm-samples N  samples for the 1000-step DDPM row (default 100; its own floors)\n"
                 "  --fid-rows LIST    sampler:steps,... (default ddpm:1000,ddim:50,ddim:20,dpm:20,dpm:10,\n"
                 "                     unipc:10,euler:20,heun:10)\n"
                 "  --fid-max X        exit 1 when a row's FID exceeds X (a check)\n"
                 "  --min-accuracy A   exit 1 when a guided row's accuracy w.r.t. the labels is below A (a check)\n"
                 "  --classes          class-conditional U-Net (class embedding, label 10 = none), trained with\n"
                 "                     label dropout; sampling writes fashion_mnist_cfg.png (one row per class)\n"
                 "                     with classifier-free guidance, --fid prints one row per guidance scale\n"
                 "  --resume-from DIR  start training from DIR's model.pt at iteration 0 (a fine-tune; an\n"
                 "                     unconditional checkpoint into --classes: every weight but the class embedding)\n"
                 "  --label-dropout P  probability of training on the null label (default 0.1)\n"
                 "  --class-init S     the class embedding starts as N(0, S^2) (default 1; 0 = zeros, so that a\n"
                 "                     --resume-from fine-tune starts equal to the unconditional network)\n"
                 "  --class-lr K       the class embedding's learning rate is K times --lr (default 1)\n"
                 "  --guidance W       guidance scale of the class grid (default 3; 0 = unconditional, 1 = conditional)\n"
                 "  --guidance-scales LIST  the --fid rows of a conditional checkpoint (default 0,1,3,5;\n"
                 "                     sampler --sampler, default dpm, at --steps, default 10)\n");
}

int run(const options& o) {
    const auto t_start = std::chrono::steady_clock::now();
    if (o.threads > 0) {
        torch::set_num_threads(static_cast<int>(o.threads));
        torch::set_num_interop_threads(1);
    }
    // Defaults sized for about 10 minutes of training on 2 idle cores (0.158 s
    // per iteration measured; examples/fashion_mnist/README.md).
    const long iters = o.iters > 0 ? o.iters : (o.small ? 30 : 3500);
    const long batch = o.batch > 0 ? o.batch : (o.small ? 16 : 32);
    const long n_images = o.images >= 0 ? o.images : (o.small ? 512 : 0);
    const long n_samples = o.samples > 0 ? o.samples : (o.small ? 4 : 36);
    const long ddpm_steps = o.ddpm_steps > 0 ? o.ddpm_steps : (o.small ? 20 : 1000);
    const long ddim_steps = o.ddim_steps > 0 ? o.ddim_steps : (o.small ? 10 : 50);
    const double ema_decay = o.ema_decay > 0 ? o.ema_decay : (o.small ? 0.9 : 0.999);
    const auto checkpoint = o.checkpoint.empty() ? o.out / "fashion_mnist_checkpoint" : o.checkpoint;
    const auto weighting = ddpm::loss_weighting_from_string(o.weighting);
    std::filesystem::create_directories(o.out);

    // The paper's schedule: linear β from 1e-4 to 0.02 over T = 1000 steps.
    const ddpm::noise_schedule schedule{ddpm::schedule_config{.num_train_timesteps = T}};

    run_state state{0, o.channels > 0 ? o.channels : (o.small ? 8 : 16), o.attention, o.seed, o.classes};
    if (o.resume || o.sample_only || !o.resume_from.empty()) {
        const run_state saved = read_state(o.resume_from.empty() ? checkpoint : o.resume_from);
        if (o.channels > 0 && o.channels != saved.channels)
            throw std::runtime_error("--channels " + std::to_string(o.channels) + " differs from the checkpoint's " +
                                     std::to_string(saved.channels));
        state = saved;
        if (!o.resume_from.empty()) { // a fine-tune: iteration 0, conditional when asked
            if (saved.classes && !o.classes)
                throw std::runtime_error("--resume-from " + o.resume_from.string() +
                                         ": a class-conditional checkpoint; pass --classes");
            state.iteration = 0;
            state.seed = o.seed;
            state.classes = o.classes;
        }
    }
    const fmnist::unet_config cfg{.channels = state.channels,
                                  .groups = 8,
                                  .attention = state.attention,
                                  .classes = state.classes,
                                  .class_init_std = o.class_init};
    torch::manual_seed(state.seed); // the initial weights
    fmnist::UNet model(cfg), ema(cfg);
    // AdamW; the class embedding in a parameter group of its own, at --class-lr times the learning rate.
    std::vector<at::Tensor> body_params, class_params;
    for (const auto& p : model->named_parameters())
        (p.key().starts_with("class_emb.") ? class_params : body_params).push_back(p.value());
    std::vector<torch::optim::OptimizerParamGroup> groups{torch::optim::OptimizerParamGroup(body_params)};
    std::vector<double> lr_scale{1.0};
    if (!class_params.empty()) {
        groups.emplace_back(class_params,
                            std::make_unique<torch::optim::AdamWOptions>(
                                torch::optim::AdamWOptions(o.lr * o.class_lr).weight_decay(0.0)));
        lr_scale.push_back(o.class_lr);
    }
    torch::optim::AdamW optimiser(std::move(groups), torch::optim::AdamWOptions(o.lr).weight_decay(0.0));
    if (!o.resume_from.empty()) { // both start from the raw weights of the checkpoint (model.pt)
        fmnist::load_weights(model, (o.resume_from / "model.pt").string());
        fmnist::load_weights(ema, (o.resume_from / "model.pt").string());
        std::printf("fine-tuning from %s (model.pt)%s\n", o.resume_from.string().c_str(),
                    o.classes ? " as a class-conditional network (the class embedding starts new)" : "");
    } else if (o.resume || o.sample_only) {
        if (!o.sample_only) {
            torch::load(ema, (checkpoint / "ema.pt").string());
            torch::load(model, (checkpoint / "model.pt").string());
            torch::load(optimiser, (checkpoint / "optimizer.pt").string());
        } else { // only the weights sampled: ema.pt (default) or model.pt
            torch::load(o.weights == "model" ? model : ema, (checkpoint / (o.weights + ".pt")).string());
        }
        std::printf("loaded checkpoint %s at iteration %ld\n", checkpoint.string().c_str(), state.iteration);
    } else {
        torch::NoGradGuard no_grad;
        for (std::size_t i = 0; i < model->parameters().size(); ++i)
            ema->parameters()[i].copy_(model->parameters()[i]);
    }
    std::int64_t n_params = 0;
    for (const auto& p : model->parameters()) n_params += p.numel();

    // ---- Training: Algorithm 1 ----------------------------------------------
    const bool train = o.torchscript.empty() && !o.sample_only && state.iteration < iters;
    if (train) {
        const auto t_load = std::chrono::steady_clock::now();
        const at::Tensor data = load_images(o.data, static_cast<std::size_t>(n_images));
        const auto N = static_cast<std::uint64_t>(data.size(0));
        const at::Tensor data_labels =
            cfg.classes ? load_labels(o.data, "train").slice(0, 0, data.size(0)) : at::Tensor();
        std::printf("Fashion-MNIST: %llu training images (%.1f s to load) from %s\n",
                    static_cast<unsigned long long>(N), seconds_since(t_load), o.data.string().c_str());
        write_grid(o.out / "fashion_mnist_data.png", "training images",
                   std::span<const float>(data.data_ptr<float>(), static_cast<std::size_t>(std::min<long>(n_samples, static_cast<long>(N))) * D),
                   6, 2);
        std::printf("U-Net: c = %lld%s, %lld parameters; T = %lld (linear betas), %s weighting; AdamW, batch %ld, "
                    "iterations %ld -> %ld, %d threads\n\n",
                    static_cast<long long>(cfg.channels), cfg.attention ? " with attention at 7x7" : "",
                    static_cast<long long>(n_params), static_cast<long long>(T), std::string(to_string(weighting)).c_str(),
                    batch, state.iteration, iters, torch::get_num_threads());

        const ddpm::uniform_timestep_sampler timestep_sampler(schedule);
        const auto B = static_cast<std::size_t>(batch);
        at::Tensor x0 = torch::empty({batch, 1, side, side}), xt = torch::empty_like(x0), eps = torch::empty_like(x0);
        at::Tensor t_tensor = torch::empty({batch}, torch::kLong), w_tensor = torch::empty({batch});
        at::Tensor y_tensor = torch::empty({batch}, torch::kLong); // labels (--classes)
        const std::span<ddpm::timestep_t> t(t_tensor.data_ptr<std::int64_t>(), B); // the tensor's memory
        std::vector<double> importance(B);
        std::vector<long> index(B);
        model->train();
        const long warmup = std::min<long>(100, iters / 10 + 1), report_every = std::max(5L, iters / 20);
        double loss_ema = 0;
        std::printf("%10s %12s %12s %10s %12s\n", "iteration", "loss (EMA)", "learning rate", "time (s)", "s/iteration");
        const auto t_train = std::chrono::steady_clock::now();
        const long first = state.iteration;
        for (long it = state.iteration; it < iters; ++it) {
            std::mt19937_64 rng(mix(o.seed, static_cast<std::uint64_t>(it)));
            for (std::size_t b = 0; b < B; ++b) index[b] = static_cast<long>(rng() % N); // bias < N / 2^64
            x0.copy_(data.index_select(0, torch::from_blob(index.data(), {batch}, torch::kLong)));
            if (cfg.classes) { // the labels, each dropped to null_label with probability --label-dropout
                auto* y = y_tensor.data_ptr<std::int64_t>();
                for (std::size_t b = 0; b < B; ++b)
                    y[b] = std::uniform_real_distribution<double>(0, 1)(rng) < o.label_dropout
                               ? fmnist::null_label
                               : data_labels[index[b]].item<std::int64_t>();
            }
            timestep_sampler.sample(rng, t, importance);                         // t ~ Uniform{0..T−1}
            ddpm::q_sample(schedule, x0, t, ddpm::kernels::noise_stream{o.seed, static_cast<std::uint32_t>(it), 0},
                           xt, eps);                                             // x_t and ε, in the tensors
            ddpm::loss_weights(schedule, weighting, ddpm::prediction_type::epsilon, t, w_tensor); // 1, or min-SNR
            const at::Tensor pred = cfg.classes ? model->forward(xt, t_tensor, y_tensor) : model->forward(xt, t_tensor);
            const at::Tensor loss = (w_tensor * (pred - eps).pow(2).mean({1, 2, 3})).mean();
            optimiser.zero_grad();
            loss.backward();
            torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
            const double progress = static_cast<double>(it) / static_cast<double>(iters);
            const double lr = it < warmup ? o.lr * static_cast<double>(it + 1) / static_cast<double>(warmup)
                                          : 1e-5 + 0.5 * (o.lr - 1e-5) * (1 + std::cos(std::numbers::pi * progress));
            for (std::size_t g = 0; g < optimiser.param_groups().size(); ++g)
                static_cast<torch::optim::AdamWOptions&>(optimiser.param_groups()[g].options()).lr(lr * lr_scale[g]);
            optimiser.step();
            {   // EMA with warm-up: decay min(d, (1 + i) / (10 + i)), so that the average covers the
                // last ~10 % of a short run instead of carrying its first, untrained weights
                torch::NoGradGuard no_grad;
                const double decay = std::min(ema_decay, (1.0 + static_cast<double>(it)) / (10.0 + static_cast<double>(it)));
                const auto p = model->parameters();
                auto e = ema->parameters();
                for (std::size_t i = 0; i < p.size(); ++i) e[i].mul_(decay).add_(p[i], 1 - decay);
            }
            const double l = loss.item<double>();
            loss_ema = it == first ? l : 0.98 * loss_ema + 0.02 * l;
            state.iteration = it + 1;
            if ((it + 1) % report_every == 0 || it == first)
                std::printf("%10ld %12.4f %12.2e %10.1f %12.3f\n", it + 1, loss_ema, lr, seconds_since(t_train),
                            seconds_since(t_train) / static_cast<double>(it + 1 - first));
            if ((it + 1) % o.save_every == 0 || it + 1 == iters) save_checkpoint(checkpoint, model, ema, optimiser, state);
        }
        const double train_s = seconds_since(t_train);
        if (model->class_emb) {
            torch::NoGradGuard no_grad;
            const at::Tensor w = model->class_emb->weight;
            std::printf("class embedding: max |w| %.4f, rms %.4f\n", w.abs().max().item<double>(),
                        w.pow(2).mean().sqrt().item<double>());
        }
        std::printf("\ntrained %ld iterations in %.1f s (%.3f s per iteration of batch %ld); checkpoint in %s\n",
                    iters - first, train_s, train_s / static_cast<double>(iters - first), batch,
                    checkpoint.string().c_str());
    }

    fmnist::UNet& sampled = o.weights == "model" ? model : ema; // the weights sampled (--weights)
    if (!o.forward_check.empty()) { // a fixed input, the same in export.py check
        torch::NoGradGuard no_grad;
        sampled->eval();
        const at::Tensor x = torch::sin(torch::arange(4 * static_cast<std::int64_t>(D), torch::kFloat) * 0.37)
                                 .reshape({4, 1, side, side});
        const at::Tensor t = torch::tensor(std::vector<std::int64_t>{0, 250, 500, 999});
        // A conditional network: (x, t, eps_hat, labels) with labels 0, 3, 7 and the null label.
        const at::Tensor labels = torch::tensor(std::vector<std::int64_t>{0, 3, 7, fmnist::null_label});
        const at::Tensor y = cfg.classes ? sampled->forward(x, t, labels) : sampled->forward(x, t);
        const std::vector<char> bytes = torch::pickle_save(
            cfg.classes ? c10::ivalue::Tuple::create({x, t, y, labels}) : c10::ivalue::Tuple::create({x, t, y}));
        std::ofstream f(o.forward_check, std::ios::binary);
        f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        if (!f) throw std::runtime_error("cannot write " + o.forward_check.string());
        std::printf("wrote %s: (x, t, eps_hat%s) of the EMA network, |eps_hat| max %.4f\n",
                    o.forward_check.string().c_str(), cfg.classes ? ", labels" : "", y.abs().max().item<double>());
    }

    // ---- Sampling with the EMA weights (or a TorchScript module) -------------
    ddpm::torch_denoiser net = make_denoiser(o, sampled);
    const auto S = static_cast<std::size_t>(n_samples);
    if (cfg.classes) { // a class grid: row k of class k, classifier-free guidance at scale --guidance
        const long steps = o.steps > 0 ? o.steps : 10;
        const std::string name = o.sampler.empty() ? "dpm" : o.sampler;
        const long per_class = o.samples > 0 ? o.samples : (o.small ? 2 : 8);
        const auto n = static_cast<std::int64_t>(per_class * fmnist::num_classes);
        std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = i / per_class;
        ddpm::classifier_free_guidance guided(net, labels, fmnist::null_label, o.guidance);
        at::Tensor images = torch::empty({n, 1, side, side});
        const auto t0 = std::chrono::steady_clock::now();
        const std::size_t nfe = run_sampler(name, steps, schedule, guided, o.seed + 1,
                                            std::span<float>(images.data_ptr<float>(), static_cast<std::size_t>(n) * D));
        const double sec = seconds_since(t0);
        std::printf("\nsampled %lld images (%ld per class): %s %ld steps, guidance scale %g, %zu guided calls, %.2f s\n",
                    static_cast<long long>(n), per_class, name.c_str(), steps, o.guidance, nfe, sec);
        char title[96];
        std::snprintf(title, sizeof title, "%s, guidance w = %g (rows: classes 0-9)", sampler_title(name, steps, nfe).c_str(),
                      o.guidance);
        write_grid(o.out / "fashion_mnist_cfg.png", title,
                   std::span<const float>(images.data_ptr<float>(), static_cast<std::size_t>(n) * D),
                   static_cast<int>(per_class), 2);
        std::printf("total %.1f s\n", seconds_since(t_start));
        return 0;
    }
    if (!o.sampler.empty()) { // one grid with the chosen sampler
        const long steps = o.steps > 0 ? o.steps : 20;
        at::Tensor images = torch::empty({n_samples, 1, side, side});
        const auto t0 = std::chrono::steady_clock::now();
        const std::size_t nfe = run_sampler(o.sampler, steps, schedule, net, o.seed + 1,
                                            std::span<float>(images.data_ptr<float>(), S * D));
        const double s = seconds_since(t0);
        std::printf("\nsampled %zu images: %s %ld steps, %zu network calls, %.2f s (%.4f s per image)\n", S,
                    o.sampler.c_str(), steps, nfe, s, s / static_cast<double>(S));
        const int columns = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(S))));
        write_grid(o.out / ("fashion_mnist_" + o.sampler + "_" + std::to_string(steps) + ".png"),
                   sampler_title(o.sampler, steps, nfe), std::span<const float>(images.data_ptr<float>(), S * D),
                   columns, 2);
        std::printf("total %.1f s\n", seconds_since(t_start));
        return 0;
    }
    ddpm::model_options mo;
    mo.clip = ddpm::clip_options::clip(1.0); // images live in [−1, 1]

    ddpm::ddpm_scheduler<float> ancestral(schedule, mo);
    if (ddpm_steps < T) ancestral.set_timesteps(ddpm_steps);
    const int strip_rows = static_cast<int>(std::min<std::size_t>(S, 4));
    const std::size_t every = std::max<std::size_t>(1, ancestral.timesteps().size() / 10);
    std::vector<frame> frames;
    at::Tensor ddpm_images = torch::empty({n_samples, 1, side, side});
    {
        frame f0{T, std::vector<float>(static_cast<std::size_t>(strip_rows) * D), {}};
        ddpm::counter_noise(o.seed + 1, D).fill(std::span<float>(f0.x), 0); // x_T, as the sampler draws it
        frames.push_back(std::move(f0));
    }
    const auto keep = static_cast<std::size_t>(strip_rows) * D;
    auto observer = [&](std::size_t step, ddpm::timestep_t t, std::span<const float> x, std::span<const float> x0_hat) {
        if ((step + 1) % every == 0 || t == 0)
            frames.push_back({t, std::vector<float>(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(keep)),
                              std::vector<float>(x0_hat.begin(), x0_hat.begin() + static_cast<std::ptrdiff_t>(keep))});
    };
    auto t0 = std::chrono::steady_clock::now();
    const auto n_ddpm = ddpm::sample(ancestral, net, ddpm::counter_noise(o.seed + 1, D), ddpm_images,
                                     {.batch = S, .check_finite = true}, observer);
    const double ddpm_s = seconds_since(t0);

    ddpm::ddim_scheduler<float> ddim(schedule, mo);
    ddim.set_timesteps(ddim_steps);
    at::Tensor ddim_images = torch::empty({n_samples, 1, side, side});
    t0 = std::chrono::steady_clock::now();
    ddpm::ddim_sample(ddim, net, ddpm::counter_noise(o.seed + 1, D), ddim_images, {.batch = S, .check_finite = true});
    const double ddim_s = seconds_since(t0);
    std::printf("\nsampled %zu images: DDPM %zu steps %.2f s (%.3f s per image), DDIM %ld steps %.2f s (%.3f s per "
                "image)\n",
                S, n_ddpm, ddpm_s, ddpm_s / static_cast<double>(S), ddim_steps, ddim_s,
                ddim_s / static_cast<double>(S));

    const int columns = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(S))));
    write_grid(o.out / "fashion_mnist_ddpm.png", "DDPM, " + std::to_string(n_ddpm) + " steps",
               std::span<const float>(ddpm_images.data_ptr<float>(), S * D), columns, 2);
    write_grid(o.out / "fashion_mnist_ddim.png", "DDIM, " + std::to_string(ddim_steps) + " steps",
               std::span<const float>(ddim_images.data_ptr<float>(), S * D), columns, 2);
    write_strip(o.out / "fashion_mnist_progressive.png", frames, strip_rows, 2);
    std::printf("total %.1f s\n", seconds_since(t_start));
    return 0;
}

// ---------------------------------------------------------------------------
// The FID's classifier and the FID table.

int train_classifier(const options& o) {
    if (o.threads > 0) torch::set_num_threads(static_cast<int>(o.threads));
    const auto t_start = std::chrono::steady_clock::now();
    const at::Tensor images = load_images(o.data, 0), labels = load_labels(o.data, "train");
    const at::Tensor test_images = load_images(o.data, 0, "t10k"), test_labels = load_labels(o.data, "t10k");
    if (images.size(0) != labels.size(0) || test_images.size(0) != test_labels.size(0))
        throw std::runtime_error("Fashion-MNIST: images and labels differ in number");
    torch::manual_seed(o.seed);
    fmnist::Classifier classifier;
    torch::optim::Adam optimiser(classifier->parameters(), torch::optim::AdamOptions(1e-3));
    const std::int64_t N = images.size(0), batch = 128;
    std::vector<std::int64_t> order(static_cast<std::size_t>(N));
    std::mt19937_64 rng(mix(o.seed, 0xC1A55));
    std::printf("classifier: %lld training images, batch %lld, %ld epochs, %d threads\n", static_cast<long long>(N),
                static_cast<long long>(batch), o.classifier_epochs, torch::get_num_threads());
    for (long epoch = 0; epoch < o.classifier_epochs; ++epoch) {
        classifier->train();
        for (std::int64_t i = 0; i < N; ++i) order[static_cast<std::size_t>(i)] = i;
        std::shuffle(order.begin(), order.end(), rng);
        const at::Tensor perm = torch::from_blob(order.data(), {N}, torch::kLong);
        double loss_sum = 0;
        std::int64_t batches = 0;
        for (std::int64_t i = 0; i + batch <= N; i += batch, ++batches) {
            const at::Tensor idx = perm.slice(0, i, i + batch);
            const at::Tensor loss =
                torch::nn::functional::cross_entropy(classifier->forward(images.index_select(0, idx)),
                                                     labels.index_select(0, idx));
            optimiser.zero_grad();
            loss.backward();
            optimiser.step();
            loss_sum += loss.item<double>();
        }
        std::printf("epoch %ld: mean loss %.4f, test accuracy %.4f (%.1f s)\n", epoch + 1,
                    loss_sum / static_cast<double>(batches), accuracy_of(classifier, test_images, test_labels),
                    seconds_since(t_start));
    }
    torch::save(classifier, o.train_classifier.string());
    std::printf("test accuracy %.4f on %lld test images; saved %s (%.1f s)\n",
                accuracy_of(classifier, test_images, test_labels), static_cast<long long>(test_images.size(0)),
                o.train_classifier.string().c_str(), seconds_since(t_start));
    return 0;
}

int fid_table(const options& o) {
    if (o.threads > 0) {
        torch::set_num_threads(static_cast<int>(o.threads));
        torch::set_num_interop_threads(1);
    }
    const auto t_start = std::chrono::steady_clock::now();
    // The rows: sampler:steps, …
    std::vector<std::pair<std::string, long>> rows;
    for (std::size_t pos = 0; pos < o.fid_rows.size();) {
        const std::size_t comma = std::min(o.fid_rows.find(',', pos), o.fid_rows.size());
        const std::string item = o.fid_rows.substr(pos, comma - pos);
        const std::size_t colon = item.find(':');
        long steps = 0;
        if (colon == std::string::npos || !known_sampler(item.substr(0, colon)) ||
            !parse_number(item.substr(colon + 1).c_str(), steps) || steps <= 0 || steps > T)
            throw std::runtime_error("--fid-rows: bad item '" + item + "'; expected sampler:steps with a sampler of " +
                                     std::string(sampler_names) + " and 1 <= steps <= 1000");
        rows.emplace_back(item.substr(0, colon), steps);
        pos = comma + 1;
    }

    fmnist::Classifier classifier;
    torch::load(classifier, o.fid.string());
    const auto checkpoint = o.checkpoint.empty() ? o.out / "fashion_mnist_checkpoint" : o.checkpoint;
    const run_state state = read_state(checkpoint);
    fmnist::UNet ema(fmnist::unet_config{
        .channels = state.channels, .groups = 8, .attention = state.attention, .classes = state.classes});
    if (o.torchscript.empty()) torch::load(ema, (checkpoint / (o.weights + ".pt")).string());
    std::vector<double> scales; // a conditional network: one row per guidance scale
    if (state.classes)
        for (std::size_t pos = 0; pos < o.guidance_scales.size();) {
            const std::size_t comma = std::min(o.guidance_scales.find(',', pos), o.guidance_scales.size());
            const std::string item = o.guidance_scales.substr(pos, comma - pos);
            double w = 0;
            if (!parse_number(item.c_str(), w) || !std::isfinite(w))
                throw std::runtime_error("--guidance-scales: bad item '" + item + "'; expected finite numbers");
            scales.push_back(w);
            pos = comma + 1;
        }
    ddpm::torch_denoiser net = make_denoiser(o, ema);
    const ddpm::noise_schedule schedule{ddpm::schedule_config{.num_train_timesteps = T}};

    // The reference: the first n test images. The floors: n training images
    // (drawn without replacement) and n images of pure noise, N(0, 1) clipped.
    const at::Tensor test = load_images(o.data, 0, "t10k"), train = load_images(o.data, 0);
    const at::Tensor test_labels = load_labels(o.data, "t10k");
    std::printf("classifier %s: test accuracy %.4f; U-Net checkpoint %s (iteration %ld, c = %lld)\n",
                o.fid.string().c_str(), accuracy_of(classifier, test, test_labels), checkpoint.string().c_str(),
                state.iteration, static_cast<long long>(state.channels));
    const std::int64_t n_max = std::max(o.fid_samples, o.fid_ddpm_samples);
    if (n_max > test.size(0)) throw std::runtime_error("--fid-samples: at most " + std::to_string(test.size(0)));
    at::Tensor train_pick;
    {
        std::vector<std::int64_t> order(static_cast<std::size_t>(train.size(0)));
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
        std::mt19937_64 rng(mix(o.seed, 0xF1D));
        std::shuffle(order.begin(), order.end(), rng);
        train_pick = torch::from_blob(order.data(), {n_max}, torch::kLong).clone();
    }
    const at::Tensor real_features = features_of(classifier, train.index_select(0, train_pick));
    const at::Tensor test_features = features_of(classifier, test.slice(0, 0, n_max));
    at::Tensor noise_images = torch::empty({n_max, 1, side, side});
    ddpm::counter_noise(mix(o.seed, 0x0015E), D).fill(std::span<float>(noise_images.data_ptr<float>(), static_cast<std::size_t>(n_max) * D), 0);
    const at::Tensor noise_features = features_of(classifier, noise_images);
    const auto fid = [&](const at::Tensor& features, std::int64_t n) {
        return fmnist::frechet_distance(fmnist::stats_of(features.slice(0, 0, n)),
                                        fmnist::stats_of(test_features.slice(0, 0, n)));
    };

    std::printf("\nFID in the classifier's %lld features against the first n test images:\n\n",
                static_cast<long long>(fmnist::ClassifierImpl::feature_dim));
    std::printf("| %-28s | %5s | %5s | %5s | %8s | %12s |\n", "sampler", "steps", "NFE", "n", "FID", "s per image");
    std::printf("|%s|%s|%s|%s|%s|%s|\n", std::string(30, '-').c_str(), std::string(7, '-').c_str(),
                std::string(7, '-').c_str(), std::string(7, '-').c_str(), std::string(10, '-').c_str(),
                std::string(14, '-').c_str());
    std::vector<std::int64_t> floor_ns{o.fid_samples};
    for (const auto& r : rows)
        if (r.first == "ddpm" && r.second == T && o.fid_ddpm_samples != o.fid_samples) floor_ns.push_back(o.fid_ddpm_samples);
    for (const auto n : floor_ns) {
        std::printf("| %-28s | %5s | %5s | %5lld | %8.3f | %12s |\n", "floor: training images", "-", "-",
                    static_cast<long long>(n), fid(real_features, n), "-");
        std::printf("| %-28s | %5s | %5s | %5lld | %8.3f | %12s |\n", "floor: pure noise", "-", "-",
                    static_cast<long long>(n), fid(noise_features, n), "-");
    }
    std::fflush(stdout);
    bool within = true;
    if (state.classes) { // sample i has label i % 10; accuracy: the classifier's agreement with it
        const std::string name = o.sampler.empty() ? "dpm" : o.sampler;
        const long steps = o.steps > 0 ? o.steps : 10;
        const std::int64_t n = o.fid_samples;
        std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = i % fmnist::num_classes;
        const at::Tensor label_tensor = torch::from_blob(labels.data(), {n}, torch::kLong).clone();
        std::printf("\nclassifier-free guidance, %s %ld steps, out = uncond + w (cond - uncond): w = 0 unconditional, "
                    "w = 1 conditional\n\n| %5s | %5s | %8s | %9s | %12s |\n|-------|-------|----------|-----------|"
                    "--------------|\n",
                    sampler_label(name).c_str(), steps, "w", "n", "FID", "accuracy", "s per image");
        for (const double w : scales) {
            at::Tensor images = torch::empty({n, 1, side, side});
            const auto t0 = std::chrono::steady_clock::now();
            const std::int64_t chunk = 100;
            for (std::int64_t i = 0; i < n; i += chunk) {
                const auto j = std::min(n, i + chunk);
                ddpm::classifier_free_guidance guided(
                    net, std::vector<std::int64_t>(labels.begin() + i, labels.begin() + j), fmnist::null_label, w);
                run_sampler(name, steps, schedule, guided, mix(o.seed + 1, static_cast<std::uint64_t>(i / chunk)),
                            std::span<float>(images.data_ptr<float>() + i * static_cast<std::int64_t>(D),
                                             static_cast<std::size_t>(j - i) * D));
            }
            const double per_image = seconds_since(t0) / static_cast<double>(n);
            const double d = fid(features_of(classifier, images), n);
            const double accuracy = accuracy_of(classifier, quantised(images), label_tensor);
            within = within && (o.fid_max <= 0 || d <= o.fid_max) && accuracy >= o.min_accuracy;
            std::printf("| %5g | %5lld | %8.3f | %9.4f | %12.4f |\n", w, static_cast<long long>(n), d, accuracy,
                        per_image);
            std::fflush(stdout);
        }
        rows.clear();
    }
    for (const auto& [name, steps] : rows) {
        const std::int64_t n = name == "ddpm" && steps == T ? o.fid_ddpm_samples : o.fid_samples;
        at::Tensor images = torch::empty({n, 1, side, side});
        std::size_t nfe = 0;
        const auto t0 = std::chrono::steady_clock::now();
        const std::int64_t chunk = 100; // samples per sampling run, each run with its own noise seed
        for (std::int64_t i = 0; i < n; i += chunk) {
            const auto j = std::min(n, i + chunk);
            nfe = run_sampler(name, steps, schedule, net, mix(o.seed + 1, static_cast<std::uint64_t>(i / chunk)),
                              std::span<float>(images.data_ptr<float>() + i * static_cast<std::int64_t>(D),
                                               static_cast<std::size_t>(j - i) * D));
        }
        const double per_image = seconds_since(t0) / static_cast<double>(n);
        const double d = fid(features_of(classifier, images), n);
        within = within && (o.fid_max <= 0 || d <= o.fid_max);
        std::printf("| %-28s | %5ld | %5zu | %5lld | %8.3f | %12.4f |\n",
                    sampler_label(name).c_str(),
                    steps, nfe, static_cast<long long>(n), d, per_image);
        std::fflush(stdout);
    }
    std::printf("\ntotal %.1f s (%d threads)\n", seconds_since(t_start), torch::get_num_threads());
    if (!within) {
        std::fprintf(stderr, "fashion_mnist: a row's FID is above --fid-max %g or its accuracy below --min-accuracy %g\n",
                     o.fid_max, o.min_accuracy);
        return 1;
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        const bool has_value = i + 1 < argc;
        bool ok = true;
        if (a == "--help" || a == "-h") {
            usage(stdout);
            return 0;
        }
        if (a == "--small") o.small = true;
        else if (a == "--resume") o.resume = true;
        else if (a == "--sample-only") o.sample_only = true;
        else if (a == "--no-attention") o.attention = false;
        else if (a == "--classes") o.classes = true;
        else if (a == "--resume-from" && has_value) o.resume_from = argv[++i];
        else if (a == "--label-dropout" && has_value) ok = parse_number(argv[++i], o.label_dropout) && o.label_dropout >= 0 && o.label_dropout <= 1;
        else if (a == "--class-init" && has_value) ok = parse_number(argv[++i], o.class_init) && o.class_init >= 0 && std::isfinite(o.class_init);
        else if (a == "--class-lr" && has_value) ok = parse_number(argv[++i], o.class_lr) && o.class_lr > 0 && std::isfinite(o.class_lr);
        else if (a == "--min-accuracy" && has_value) ok = parse_number(argv[++i], o.min_accuracy) && o.min_accuracy >= 0 && o.min_accuracy <= 1;
        else if (a == "--guidance" && has_value) ok = parse_number(argv[++i], o.guidance) && std::isfinite(o.guidance);
        else if (a == "--guidance-scales" && has_value) o.guidance_scales = argv[++i];
        else if (a == "--data" && has_value) o.data = argv[++i];
        else if (a == "--out" && has_value) o.out = argv[++i];
        else if (a == "--checkpoint" && has_value) o.checkpoint = argv[++i];
        else if (a == "--torchscript" && has_value) o.torchscript = argv[++i];
        else if (a == "--forward-check" && has_value) o.forward_check = argv[++i];
        else if (a == "--weighting" && has_value) {
            o.weighting = argv[++i];
            ok = o.weighting == "none" || o.weighting == "min_snr";
        } else if (a == "--iters" && has_value) ok = parse_number(argv[++i], o.iters) && o.iters > 0;
        else if (a == "--batch" && has_value) ok = parse_number(argv[++i], o.batch) && o.batch > 0;
        else if (a == "--images" && has_value) ok = parse_number(argv[++i], o.images);
        else if (a == "--channels" && has_value) ok = parse_number(argv[++i], o.channels) && o.channels > 0 && o.channels % 8 == 0;
        else if (a == "--lr" && has_value) ok = parse_number(argv[++i], o.lr) && o.lr > 0;
        else if (a == "--ema" && has_value) ok = parse_number(argv[++i], o.ema_decay) && o.ema_decay > 0 && o.ema_decay < 1;
        else if (a == "--save-every" && has_value) ok = parse_number(argv[++i], o.save_every) && o.save_every > 0;
        else if (a == "--samples" && has_value) ok = parse_number(argv[++i], o.samples) && o.samples > 0;
        else if (a == "--ddpm-steps" && has_value) ok = parse_number(argv[++i], o.ddpm_steps) && o.ddpm_steps > 0 && o.ddpm_steps <= 1000;
        else if (a == "--ddim-steps" && has_value) ok = parse_number(argv[++i], o.ddim_steps) && o.ddim_steps > 0 && o.ddim_steps <= 1000;
        else if (a == "--threads" && has_value) ok = parse_number(argv[++i], o.threads);
        else if (a == "--seed" && has_value) ok = parse_number(argv[++i], o.seed);
        else if (a == "--sampler" && has_value) {
            o.sampler = argv[++i];
            ok = known_sampler(o.sampler);
        } else if (a == "--steps" && has_value) ok = parse_number(argv[++i], o.steps) && o.steps > 0 && o.steps <= 1000;
        else if (a == "--train-classifier" && has_value) o.train_classifier = argv[++i];
        else if (a == "--classifier-epochs" && has_value) ok = parse_number(argv[++i], o.classifier_epochs) && o.classifier_epochs > 0;
        else if (a == "--fid" && has_value) o.fid = argv[++i];
        else if (a == "--fid-samples" && has_value) ok = parse_number(argv[++i], o.fid_samples) && o.fid_samples >= 2;
        else if (a == "--fid-ddpm-samples" && has_value) ok = parse_number(argv[++i], o.fid_ddpm_samples) && o.fid_ddpm_samples >= 2;
        else if (a == "--fid-rows" && has_value) o.fid_rows = argv[++i];
        else if (a == "--weights" && has_value) {
            o.weights = argv[++i];
            ok = o.weights == "ema" || o.weights == "model";
        }
        else if (a == "--fid-max" && has_value) ok = parse_number(argv[++i], o.fid_max) && o.fid_max > 0;
        else {
            std::fprintf(stderr, "fashion_mnist: %s '%s'\n",
                         a.starts_with("--") && !has_value ? "missing value after (or unknown)" : "unknown option",
                         argv[i]);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            std::fprintf(stderr, "fashion_mnist: bad value '%s' for %s\n", argv[i], argv[i - 1]);
            usage(stderr);
            return 2;
        }
    }
    try {
        if (!o.train_classifier.empty()) return train_classifier(o);
        if (!o.fid.empty()) return fid_table(o);
        return run(o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fashion_mnist: error: %s\n", e.what());
        return 1;
    }
}
