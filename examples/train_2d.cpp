// train_2d — train a small ε-network on a 2-D point cloud and sample from it
// (Ho et al. 2020: Algorithm 1 to train, Algorithm 2 to sample).
//
// The network is a multilayer perceptron written here with Eigen — its own
// forward and backward pass and Adam, no framework: input (x, y) and a
// sinusoidal embedding of t (the paper's Transformer embedding), three hidden
// layers of 128 SiLU units, output ε̂ (2 values). ddpm supplies the rest:
//
//   Algorithm 1, repeated:
//     x_0 ~ data (a minibatch)        t ~ Uniform{0..T−1}   ddpm::uniform_timestep_sampler
//     ε ~ N(0, I)                     counter-based         ddpm::random::fill_normal
//     x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε                         ddpm::q_sample
//     target = ε                                            ddpm::training_target
//     loss = ‖ε − ε_θ(x_t, t)‖²  (L_simple)                 ddpm::weighted_mse
//     gradient step on the loss                              (here: backprop + Adam)
//   Algorithm 2 with the trained network (exponential moving average of the
//   weights)                                                ddpm::ddpm_sampler
//   and, with the same network, DDIM with 20 steps           ddpm::ddim_sample
//
// The Eigen buffers go to ddpm as they are (ddpm/adapters/eigen.hpp): a
// column-major 2 × B matrix holds one sample per column, batch-first.
//
// It prints the loss curve in brief, the wall time, and how close the samples
// are to the data: the sliced Wasserstein-1 distance to a fresh data sample
// (are the points distributed like the data?) and the mean distance from a
// sample to its nearest data point (do they land on the data?), each next to
// the same number for a second fresh data sample (the noise floor) and for
// pure noise N(0, I) (the scale). It writes train_2d_samples.png
// (data | DDPM | DDIM, and the progressive generation of the DDPM chain) and
// train_2d_loss.png. Everything is deterministic given --seed.
//
// Usage: train_2d [--small] [--dataset swissroll|moons] [--iters N] [--seed N] [--out DIR] [--help]
#include <ddpm/adapters/eigen.hpp>
#include <ddpm/ddpm.hpp>
#include <ddpm/random/counter_noise.hpp>

#include "common/chart.hpp"
#include "common/metrics.hpp"
#include "common/plot.hpp"
#include "common/png.hpp"
#include "common/random.hpp"
#include "common/text.hpp"

#include <Eigen/Dense>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iterator>
#include <numbers>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace {

using matrix = Eigen::MatrixXf; // column-major: one sample per column
using vector = Eigen::VectorXf;
constexpr std::size_t D = 2;

// ---------------------------------------------------------------------------
// Data: 2-D point clouds, scaled to about unit variance (like N(0, I) at t = T).

std::vector<float> standardise(std::vector<float> xy) {
    const auto m = examples::coordinate_moments(std::span<const float>(xy), D);
    const double scale = std::sqrt((m.std[0] * m.std[0] + m.std[1] * m.std[1]) / 2); // one scale: keep the shape
    for (std::size_t k = 0; k < xy.size(); ++k)
        xy[k] = static_cast<float>((xy[k] - m.mean[k % D]) / scale);
    return xy;
}

/// The 2-D swiss roll: θ ∈ [1.5π, 4.5π], (θ cos θ, θ sin θ) plus noise.
std::vector<float> make_swiss_roll(std::size_t n, examples::normal_rng& rng) {
    std::vector<float> xy(n * D);
    for (std::size_t k = 0; k < n; ++k) {
        const double th = 1.5 * std::numbers::pi * (1 + 2 * rng.uniform());
        xy[2 * k] = static_cast<float>(th * std::cos(th) + 0.35 * rng.normal());
        xy[2 * k + 1] = static_cast<float>(th * std::sin(th) + 0.35 * rng.normal());
    }
    return xy;
}

/// Two interleaving half circles.
std::vector<float> make_moons(std::size_t n, examples::normal_rng& rng) {
    std::vector<float> xy(n * D);
    for (std::size_t k = 0; k < n; ++k) {
        const bool upper = rng.uniform() < 0.5;
        const double th = std::numbers::pi * rng.uniform();
        xy[2 * k] = static_cast<float>((upper ? std::cos(th) : 1 - std::cos(th)) + 0.05 * rng.normal());
        xy[2 * k + 1] = static_cast<float>((upper ? std::sin(th) : 0.5 - std::sin(th)) + 0.05 * rng.normal());
    }
    return xy;
}

// ---------------------------------------------------------------------------
// The ε-network: an MLP with SiLU activations.
//
//   h_0 = [x; y; emb(t)]                 emb(t)_k = sin(t' ω_k), cos(t' ω_k), ω_k = 10000^(−k/8), k < 8,
//                                        t' = t · 1000/T
//   h_l = silu(W_l h_{l−1} + b_l)        l = 1..3 (128 units)
//   ε̂   = W_4 h_3 + b_4

constexpr int embed_frequencies = 8;
constexpr int input_size = static_cast<int>(D) + 2 * embed_frequencies;

struct layer {
    matrix w;
    vector b;
};
using parameters = std::vector<layer>;

float silu(float z) { return z / (1 + std::exp(-z)); }
float silu_grad(float z) {
    const float s = 1 / (1 + std::exp(-z));
    return s * (1 + z * (1 - s));
}

/// PyTorch's default nn.Linear initialisation: U(−1/√fan_in, 1/√fan_in).
parameters init_parameters(int hidden, int depth, examples::normal_rng& rng) {
    parameters p;
    int fan_in = input_size;
    for (int l = 0; l <= depth; ++l) {
        const int fan_out = l == depth ? static_cast<int>(D) : hidden;
        const float bound = 1 / std::sqrt(static_cast<float>(fan_in));
        layer L{matrix(fan_out, fan_in), vector(fan_out)};
        for (int i = 0; i < L.w.size(); ++i) L.w.data()[i] = static_cast<float>((2 * rng.uniform() - 1) * bound);
        for (int i = 0; i < L.b.size(); ++i) L.b[i] = static_cast<float>((2 * rng.uniform() - 1) * bound);
        p.push_back(std::move(L));
        fan_in = fan_out;
    }
    return p;
}

parameters zeros_like(const parameters& p) {
    parameters z;
    for (const auto& L : p) z.push_back({matrix::Zero(L.w.rows(), L.w.cols()), vector::Zero(L.b.size())});
    return z;
}

/// Forward and backward passes over a batch, keeping the activations for
/// the backward pass.
class mlp {
public:
    /// `time_scale` multiplies t before the embedding: 1000/T, so that every T
    /// sees the embedding of a T = 1000 model (improved-diffusion's
    /// rescale_timesteps); with T = 200 and t as is, the lowest frequencies
    /// would hardly change over the chain.
    explicit mlp(double time_scale) : m_time_scale(time_scale) {}

    /// ε̂ for B samples: x is 2 × B (x_t, one sample per column), t holds B
    /// 0-based timesteps; the result is 2 × B.
    const matrix& forward(const parameters& p, const Eigen::Ref<const matrix>& x, std::span<const ddpm::timestep_t> t) {
        const auto B = static_cast<int>(t.size());
        m_h.resize(p.size());
        m_z.resize(p.size());
        m_input.resize(input_size, B);
        m_input.topRows(D) = x;
        for (int b = 0; b < B; ++b)
            for (int k = 0; k < embed_frequencies; ++k) {
                const double w = std::pow(10000.0, -static_cast<double>(k) / embed_frequencies);
                const double a = static_cast<double>(t[static_cast<std::size_t>(b)]) * m_time_scale * w;
                m_input(static_cast<int>(D) + k, b) = static_cast<float>(std::sin(a));
                m_input(static_cast<int>(D) + embed_frequencies + k, b) = static_cast<float>(std::cos(a));
            }
        const matrix* h = &m_input;
        for (std::size_t l = 0; l < p.size(); ++l) {
            m_z[l].noalias() = p[l].w * *h;
            m_z[l].colwise() += p[l].b;
            if (l + 1 < p.size()) m_h[l] = m_z[l].unaryExpr(&silu);
            h = l + 1 < p.size() ? &m_h[l] : &m_z[l];
        }
        return m_z.back();
    }

    /// Gradients of the loss with respect to every parameter, given its
    /// gradient with respect to the last forward()'s output (2 × B).
    void backward(const parameters& p, const matrix& d_out, parameters& grad) {
        m_delta = d_out; // ∂loss/∂z_l, starting at the linear output layer
        for (std::size_t l = p.size(); l-- > 0;) {
            const matrix& h_in = l == 0 ? m_input : m_h[l - 1];
            grad[l].w.noalias() = m_delta * h_in.transpose();
            grad[l].b = m_delta.rowwise().sum();
            if (l == 0) break;
            m_back.noalias() = p[l].w.transpose() * m_delta;
            m_delta = m_back.cwiseProduct(m_z[l - 1].unaryExpr(&silu_grad));
        }
    }

private:
    double m_time_scale;
    matrix m_input, m_delta, m_back;
    std::vector<matrix> m_z, m_h;
};

/// Adam (Kingma & Ba 2015) with bias correction.
class adam {
public:
    explicit adam(const parameters& p) : m_m(zeros_like(p)), m_v(zeros_like(p)) {}

    void step(parameters& p, const parameters& g, float lr) {
        constexpr float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
        ++m_t;
        const float c1 = 1 - std::pow(b1, static_cast<float>(m_t)), c2 = 1 - std::pow(b2, static_cast<float>(m_t));
        const auto update = [&](auto& w, const auto& gw, auto& m, auto& v) {
            m = b1 * m + (1 - b1) * gw;
            v = b2 * v + (1 - b2) * gw.cwiseProduct(gw);
            w.array() -= lr * (m.array() / c1) / ((v.array() / c2).sqrt() + eps);
        };
        for (std::size_t l = 0; l < p.size(); ++l) {
            update(p[l].w, g[l].w, m_m[l].w, m_v[l].w);
            update(p[l].b, g[l].b, m_m[l].b, m_v[l].b);
        }
    }

private:
    parameters m_m, m_v;
    long m_t = 0;
};

// ---------------------------------------------------------------------------
// Pictures.

const examples::rgb data_colour{120, 120, 120}, sample_colour{30, 100, 200}, ddim_colour{40, 150, 80};

struct frame {
    std::int64_t t; // paper-indexed: x_T is t = T, the sample t = 0
    std::vector<float> x;
};

examples::canvas draw_samples(std::span<const float> data, std::span<const float> ddpm_x, std::span<const float> ddim_x,
                              const std::vector<frame>& frames, const std::string& ddpm_title,
                              const std::string& ddim_title, int panel, int small_panel) {
    const int margin = 14, top = 34;
    const int nf = static_cast<int>(frames.size());
    const int width = std::max(margin + 3 * (panel + margin), margin + nf * (small_panel + margin));
    const int strip_top = top + panel + 46;
    examples::canvas c(width, strip_top + small_panel + 40, {255, 255, 255});
    const std::span<const float> sets[] = {data, ddpm_x, ddim_x};
    const examples::rgb colours[] = {data_colour, sample_colour, ddim_colour};
    const std::string titles[] = {"data (fresh sample)", ddpm_title, ddim_title};
    for (int s = 0; s < 3; ++s) {
        const examples::scatter_panel p{margin + s * (panel + margin), top, panel, -2.6, 2.6};
        examples::draw_label_centred(c, p.x + panel / 2, 10, titles[s], {30, 30, 30}, 2);
        p.draw_frame(c);
        p.scatter(c, sets[s], [&](std::size_t) { return colours[s]; }, 1.3, 0.55f);
    }
    examples::draw_label(c, margin, strip_top - 20,
                         "Progressive generation (DDPM chain state x_t, paper indexing; grey ring: radius 2)",
                         {30, 30, 30}, 1);
    for (int f = 0; f < nf; ++f) {
        const examples::scatter_panel p{margin + f * (small_panel + margin), strip_top, small_panel, -3.2, 3.2};
        p.draw_frame(c, 2.0);
        p.scatter(c, std::span<const float>(frames[static_cast<std::size_t>(f)].x), [&](std::size_t) { return sample_colour; }, 0.9, 0.5f);
        examples::draw_label_centred(c, p.x + small_panel / 2, strip_top + small_panel + 8,
                                     "t = " + std::to_string(frames[static_cast<std::size_t>(f)].t), {30, 30, 30}, 2);
    }
    return c;
}

examples::canvas draw_loss(std::span<const double> loss, std::span<const double> smooth) {
    examples::canvas c(760, 420, {255, 255, 255});
    std::vector<double> xs(loss.size());
    for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<double>(i + 1);
    double hi = 0;
    for (const double v : smooth) hi = std::max(hi, v);
    hi = std::ceil(hi * 1.15 * 10) / 10;
    const examples::line_chart chart{80, 40, 650, 320, 0, static_cast<double>(loss.size()), 0.0, hi, false};
    chart.draw_axes(c, "iteration", "L_simple: mean squared error of eps_theta(x_t, t), per minibatch");
    // The raw per-minibatch loss, thinned, then its moving average.
    std::vector<double> tx, ty;
    const std::size_t stride = std::max<std::size_t>(1, loss.size() / 1500);
    for (std::size_t i = 0; i < loss.size(); i += stride) tx.push_back(xs[i]), ty.push_back(loss[i]);
    for (std::size_t i = 0; i < tx.size(); ++i) c.disc(chart.px(tx[i]), chart.py(std::min(ty[i], hi)), 1.0, {170, 190, 220}, 0.5f);
    chart.polyline(c, xs, smooth, {30, 100, 200}, 2.0);
    chart.legend(c, 0, "loss of each minibatch", {170, 190, 220});
    chart.legend(c, 1, "exponential moving average", {30, 100, 200});
    return c;
}

// ---------------------------------------------------------------------------

void usage(std::FILE* to) {
    std::fprintf(to,
                 "usage: train_2d [--small] [--dataset swissroll|moons] [--iters N] [--seed N] [--out DIR] [--help]\n"
                 "  Trains a small MLP eps-network (Eigen) on a 2-D point cloud with L_simple (Algorithm 1),\n"
                 "  then samples it with DDPM (Algorithm 2) and DDIM, and measures the sample quality.\n"
                 "  --small            fast smoke run (few iterations; the samples are not good then)\n"
                 "  --dataset NAME     swissroll (default) or moons\n"
                 "  --iters N          training iterations (default 12000; --small: 300)\n"
                 "  --seed N           seed of all the randomness (default 1)\n"
                 "  --out DIR          write train_2d_samples.png and train_2d_loss.png to DIR (default: .)\n"
                 "  --help             print this help\n");
}

struct options {
    bool small = false;
    std::string dataset = "swissroll";
    long iters = -1;
    std::uint64_t seed = 1;
    std::filesystem::path out = ".";
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(const options& opt) {
    const auto t_start = std::chrono::steady_clock::now();
    const long iters = opt.iters > 0 ? opt.iters : (opt.small ? 300 : 12000);
    const std::size_t batch = opt.small ? 128 : 256;
    const std::size_t num_samples = opt.small ? 500 : 2000;
    const int hidden = 128, depth = 3;

    // The cosine schedule (Nichol & Dhariwal 2021; diffusers' squaredcos_cap_v2)
    // with T = 200 steps: ᾱ falls gradually, so that more of the steps see
    // the 2-D structure than with the paper's linear schedule at this T.
    constexpr std::int64_t T = 200;
    const ddpm::noise_schedule schedule{ddpm::schedule_config{.num_train_timesteps = T,
                                                              .schedule = ddpm::beta_schedule::squaredcos_cap_v2}};

    examples::normal_rng rng(opt.seed);
    const auto make = [&](std::size_t n) {
        return opt.dataset == "moons" ? make_moons(n, rng) : make_swiss_roll(n, rng);
    };
    // One standardisation for every set drawn from the data distribution.
    auto raw = make(10000 + 2 * num_samples);
    raw = standardise(std::move(raw));
    const std::span<const float> train_set(raw.data(), 10000 * D);
    const std::span<const float> fresh_a(raw.data() + 10000 * D, num_samples * D);
    const std::span<const float> fresh_b(raw.data() + (10000 + num_samples) * D, num_samples * D);

    std::printf("DDPM on a 2-D %s: %zu training points, cosine schedule with T = %lld, L_simple\n",
                opt.dataset.c_str(), train_set.size() / D, static_cast<long long>(T));
    std::printf("network: MLP (x, y, 16-d sinusoidal t embedding) -> %d x %d SiLU -> eps; Adam, batch %zu, %ld iterations\n\n",
                depth, hidden, batch, iters);

    // ---- Training: Algorithm 1 ----------------------------------------------
    parameters params = init_parameters(hidden, depth, rng);
    parameters ema = params, grad = zeros_like(params);
    adam optimiser(params);
    mlp net(1000.0 / static_cast<double>(T));
    const ddpm::uniform_timestep_sampler timestep_sampler(schedule);
    matrix x0(D, batch), eps(D, batch), xt(D, batch), target(D, batch), d_out(D, batch);
    std::vector<ddpm::timestep_t> t(batch);
    std::vector<double> weights(batch), losses(static_cast<std::size_t>(iters)), smooth(static_cast<std::size_t>(iters));
    const float lr_max = 2e-3f, lr_min = 2e-5f;
    const float ema_decay = opt.small ? 0.9f : 0.995f;
    double loss_ema = 0;
    const long report_every = std::max(1L, iters / 10);
    std::printf("%10s %12s %12s %10s\n", "iteration", "loss (EMA)", "learning rate", "time (s)");
    const auto t_train = std::chrono::steady_clock::now();
    for (long it = 0; it < iters; ++it) {
        for (std::size_t b = 0; b < batch; ++b) { // x_0: a minibatch, drawn with replacement
            const std::size_t k = rng.below(train_set.size() / D);
            x0(0, static_cast<int>(b)) = train_set[k * D];
            x0(1, static_cast<int>(b)) = train_set[k * D + 1];
        }
        timestep_sampler.sample(rng.engine(), t, weights);            // t ~ Uniform{0..T−1}, weight 1
        ddpm::random::fill_normal(std::span<float>(eps.data(), eps.size()), opt.seed, /*sample*/ 0,
                                  static_cast<std::uint32_t>(it));   // ε ~ N(0, I), keyed on the iteration
        ddpm::q_sample(schedule, x0, eps, t, xt);                      // x_t (q_sample(…, ddpm::counter_noise(seed),
                                                                       // step, xt, eps) fuses these two lines)
        ddpm::training_target(schedule, ddpm::prediction_type::epsilon, x0, eps, t, target); // = ε
        const matrix& pred = net.forward(params, xt, t);
        const double loss = ddpm::weighted_mse(pred, target, weights, batch); // L_simple
        // ∂loss/∂pred of mean_b w_b mean_d (pred − target)²
        for (std::size_t b = 0; b < batch; ++b)
            d_out.col(static_cast<int>(b)) =
                (pred.col(static_cast<int>(b)) - target.col(static_cast<int>(b))) *
                static_cast<float>(2 * weights[b] / static_cast<double>(batch * D));
        net.backward(params, d_out, grad);
        const double progress = static_cast<double>(it) / static_cast<double>(iters);
        const auto lr = static_cast<float>(lr_min + 0.5 * (lr_max - lr_min) * (1 + std::cos(std::numbers::pi * progress)));
        optimiser.step(params, grad, lr);
        for (std::size_t l = 0; l < params.size(); ++l) { // EMA of the weights, used for sampling
            ema[l].w = ema_decay * ema[l].w + (1 - ema_decay) * params[l].w;
            ema[l].b = ema_decay * ema[l].b + (1 - ema_decay) * params[l].b;
        }
        loss_ema = it == 0 ? loss : 0.99 * loss_ema + 0.01 * loss;
        losses[static_cast<std::size_t>(it)] = loss;
        smooth[static_cast<std::size_t>(it)] = loss_ema;
        if ((it + 1) % report_every == 0 || it == 0)
            std::printf("%10ld %12.4f %12.2e %10.1f\n", it + 1, loss_ema, static_cast<double>(lr), seconds_since(t_train));
    }
    const double train_s = seconds_since(t_train);

    // ---- Sampling: Algorithm 2, and DDIM, with the EMA weights ---------------
    // Any callable (x_t, t, out) is a ddpm::denoiser; this one runs the MLP.
    auto network = [&](std::span<const float> x, std::span<const ddpm::timestep_t> ts, std::span<float> out) {
        const Eigen::Map<const matrix> xm(x.data(), D, static_cast<Eigen::Index>(ts.size()));
        Eigen::Map<matrix>(out.data(), D, static_cast<Eigen::Index>(ts.size())) = net.forward(ema, xm, ts);
    };
    const std::int64_t frame_ts[] = {T, 100, 60, 40, 30, 20, 10, 0};
    std::vector<frame> frames;
    const ddpm::counter_noise sample_noise(opt.seed + 1, D);
    frames.push_back({T, std::vector<float>(num_samples * D)});
    sample_noise.fill(std::span<float>(frames.back().x), 0); // x_T: what the sampler draws as step 0
    auto observer = [&](std::size_t, ddpm::timestep_t tt, std::span<const float> x, std::span<const float>) {
        // After the step at 0-based timestep tt the chain holds the paper's x_tt.
        if (std::find(std::begin(frame_ts), std::end(frame_ts), tt) != std::end(frame_ts))
            frames.push_back({tt, std::vector<float>(x.begin(), x.end())});
    };
    matrix ddpm_x(D, static_cast<Eigen::Index>(num_samples)), ddim_x(D, static_cast<Eigen::Index>(num_samples));
    auto t0 = std::chrono::steady_clock::now();
    ddpm::ddpm_sampler<float> sampler(ddpm::ddpm_scheduler<float>{schedule});
    sampler.sample(network, sample_noise, ddpm_x, {.batch = num_samples}, observer);
    const double ddpm_s = seconds_since(t0);

    constexpr std::int64_t ddim_steps = 20;
    ddpm::ddim_scheduler<float> ddim(schedule); // η = 0: deterministic
    // diffusers' default "leading" spacing: 190, 180, …, 0. ("trailing" would
    // start at t = 199, where the cosine schedule's ᾱ ≈ 6e-8 (its last β is
    // capped at 0.999): x̂_0 = (x_t − √(1 − ᾱ) ε̂)/√ᾱ multiplies the network's
    // error by ~4000 there, and DDIM's first jump, to √ᾱ_189 = 0.078, passes
    // ten times more of it on than DDPM's first step does.)
    ddim.set_timesteps(ddim_steps, ddpm::timestep_spacing::leading);
    t0 = std::chrono::steady_clock::now();
    ddpm::ddim_sample(ddim, network, ddpm::counter_noise(opt.seed + 1, D), ddim_x, {.batch = num_samples});
    const double ddim_s = seconds_since(t0);

    // ---- Quality ------------------------------------------------------------
    std::vector<float> noise_vec(num_samples * D);
    ddpm::counter_noise(opt.seed + 2, D).fill(std::span<float>(noise_vec), 0);
    const std::span<const float> noise(noise_vec);
    const std::span<const float> ddpm_span(ddpm_x.data(), num_samples * D), ddim_span(ddim_x.data(), num_samples * D);
    std::printf("\nHow close %zu samples are to a fresh data sample of %zu points (lower is better):\n", num_samples,
                num_samples);
    std::printf("  %-24s %18s %24s\n", "", "sliced W1 (64 dir.)", "mean dist. to nearest");
    const auto report = [&](const char* name, std::span<const float> xs, const char* note) {
        std::printf("  %-24s %18.4f %24.4f%s%s\n", name, examples::sliced_wasserstein(xs, fresh_a, D),
                    examples::nearest_neighbour_distance(xs, fresh_a, D), *note ? "   " : "", note);
    };
    const std::string ddpm_name = "DDPM, " + std::to_string(T) + " steps";
    const std::string ddim_name = "DDIM, " + std::to_string(ddim_steps) + " steps";
    report(ddpm_name.c_str(), ddpm_span, "");
    report(ddim_name.c_str(), ddim_span, "");
    report("another data sample", fresh_b, "<- the best possible, up to noise");
    report("pure noise N(0, I)", noise, "<- no training at all");
    std::printf("  (sampling took %.2f s with DDPM, %.2f s with DDIM)\n", ddpm_s, ddim_s);
    std::printf("\ntraining %.1f s, sampling %.1f s, total %.1f s\n", train_s, ddpm_s + ddim_s, seconds_since(t_start));

    // ---- Pictures -----------------------------------------------------------
    std::filesystem::create_directories(opt.out);
    const auto samples_path = (opt.out / "train_2d_samples.png").string();
    const auto loss_path = (opt.out / "train_2d_loss.png").string();
    const auto pic = draw_samples(fresh_a, ddpm_span, ddim_span, frames,
                                  "DDPM, " + std::to_string(T) + " steps", "DDIM, " + std::to_string(ddim_steps) + " steps",
                                  340, 128);
    examples::write_png(samples_path, pic.width(), pic.height(), pic.pixels());
    const auto loss_pic = draw_loss(losses, smooth);
    examples::write_png(loss_path, loss_pic.width(), loss_pic.height(), loss_pic.pixels());
    std::printf("wrote %s (%dx%d): data | DDPM | DDIM, %zu points each, and x_t at t =", samples_path.c_str(),
                pic.width(), pic.height(), num_samples);
    for (const auto& f : frames) std::printf(" %lld", static_cast<long long>(f.t));
    std::printf("\nwrote %s (%dx%d): the training loss\n", loss_path.c_str(), loss_pic.width(), loss_pic.height());
    return 0;
}

bool parse_number(const char* s, auto& out) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(s, &end, 10);
    if (end == s || *end != '\0') return false;
    out = static_cast<std::remove_reference_t<decltype(out)>>(v);
    return true;
}

} // namespace

int main(int argc, char** argv) {
    options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        const bool has_value = i + 1 < argc;
        bool ok = true;
        if (a == "--help" || a == "-h") {
            usage(stdout);
            return 0;
        }
        if (a == "--small") {
            opt.small = true;
        } else if (a == "--out" && has_value) {
            opt.out = argv[++i];
        } else if (a == "--dataset" && has_value) {
            opt.dataset = argv[++i];
            ok = opt.dataset == "swissroll" || opt.dataset == "moons";
        } else if (a == "--iters" && has_value) {
            ok = parse_number(argv[++i], opt.iters) && opt.iters > 0;
        } else if (a == "--seed" && has_value) {
            ok = parse_number(argv[++i], opt.seed);
        } else {
            const bool missing = a == "--out" || a == "--dataset" || a == "--iters" || a == "--seed";
            std::fprintf(stderr, "train_2d: %s '%s'\n", missing ? "missing value after" : "unknown option", argv[i]);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            std::fprintf(stderr, "train_2d: bad value '%s' for %s\n", argv[i], argv[i - 1]);
            usage(stderr);
            return 2;
        }
    }
    try {
        return run(opt);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "train_2d: error: %s\n", e.what());
        return 1;
    }
}
