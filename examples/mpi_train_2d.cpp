// mpi_train_2d — data-parallel DDPM training of a small 2-D ε-network over
// MPI ranks (ddpm/distributed/mpi.hpp, docs/distributed.md).
//
// The global minibatch of G examples is split into contiguous shards
// (distributed::shard_of). Example g of iteration s (its GLOBAL index) gets
// its data point, its timestep and its noise from counter streams keyed on
// (seed, g, s) (distributed::draw_indices, draw_timesteps, training_noise), so
// K ranks draw exactly what one rank with the whole batch G draws. Each rank
// computes the gradient of its examples' share of the global mean loss; one
// plain MPI_Allreduce (sum) over the flat parameter-gradient vector gives every
// rank the gradient of the whole minibatch, and every rank takes the same Adam
// step, so the parameters stay equal without ever being sent. With
// --importance the timesteps come from the loss-second-moment sampler, kept
// identical on every rank by distributed::update_all.
//
// So the loss curve of K ranks is the one-rank curve of batch G, up to the
// order of the floating-point sums. --check shows it: rank 0 then trains again
// alone (MPI_COMM_SELF) with the same global batch and prints both curves and
// their largest difference. The result: mpi_train_2d_loss.png (both curves)
// and mpi_train_2d.csv.
//
// Data: a ring of 8 Gaussians. Network: an MLP (x, y, 16-d sinusoidal t
// embedding) -> 2 x 64 SiLU -> ε, its parameters in ONE float vector (the
// vector the all-reduce sums), written with Eigen maps into it.
//
//   mpirun -np 2 mpi_train_2d [--batch G] [--iters N] [--importance] [--check]
//                             [--seed N] [--small] [--out DIR] [--help]
#include <ddpm/adapters/eigen.hpp>
#include <ddpm/ddpm.hpp>
#include <ddpm/distributed/mpi.hpp>

#include "common/chart.hpp"
#include "common/metrics.hpp"
#include "common/mixture.hpp"
#include "common/mpi_example.hpp"
#include "common/plot.hpp"
#include "common/png.hpp"
#include "common/random.hpp"
#include "common/text.hpp"

#include <Eigen/Dense>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace dist = ddpm::distributed;
using matrix = Eigen::MatrixXf; // one example per column
constexpr std::size_t D = 2;
constexpr int frequencies = 8;

/// An MLP whose weights and biases live in one flat vector: layer l holds
/// W_l (out × in, column-major) then b_l. h_0 = [x; sin(t' ω_k); cos(t' ω_k)],
/// h_l = silu(W_l h_{l−1} + b_l), ε̂ = W_L h_{L−1} + b_L; t' = t · 1000/T.
class flat_mlp {
public:
    flat_mlp(std::vector<int> widths, double time_scale) : m_widths(std::move(widths)), m_time_scale(time_scale) {}

    [[nodiscard]] std::size_t num_parameters() const {
        std::size_t n = 0;
        for (std::size_t l = 1; l < m_widths.size(); ++l)
            n += static_cast<std::size_t>(m_widths[l]) * static_cast<std::size_t>(m_widths[l - 1] + 1);
        return n;
    }

    /// PyTorch's nn.Linear default: U(−1/√fan_in, 1/√fan_in).
    void initialise(std::span<float> p, examples::normal_rng& rng) const {
        std::size_t at = 0;
        for (std::size_t l = 1; l < m_widths.size(); ++l) {
            const double bound = 1 / std::sqrt(static_cast<double>(m_widths[l - 1]));
            const auto n = static_cast<std::size_t>(m_widths[l]) * static_cast<std::size_t>(m_widths[l - 1] + 1);
            for (std::size_t k = 0; k < n; ++k) p[at + k] = static_cast<float>((2 * rng.uniform() - 1) * bound);
            at += n;
        }
    }

    /// ε̂ (2 × B) for x (2 × B) at timesteps t.
    const matrix& forward(std::span<const float> p, const Eigen::Ref<const matrix>& x, std::span<const ddpm::timestep_t> t) {
        const auto B = static_cast<Eigen::Index>(t.size());
        const std::size_t L = m_widths.size() - 1;
        m_pre.resize(L);
        m_act.resize(L + 1);
        m_act[0].resize(m_widths[0], B);
        m_act[0].topRows(static_cast<Eigen::Index>(D)) = x;
        for (Eigen::Index b = 0; b < B; ++b)
            for (int k = 0; k < frequencies; ++k) {
                const double a = static_cast<double>(t[static_cast<std::size_t>(b)]) * m_time_scale *
                                 std::pow(10000.0, -static_cast<double>(k) / frequencies);
                m_act[0](static_cast<Eigen::Index>(D) + k, b) = static_cast<float>(std::sin(a));
                m_act[0](static_cast<Eigen::Index>(D) + frequencies + k, b) = static_cast<float>(std::cos(a));
            }
        std::size_t at = 0;
        for (std::size_t l = 0; l < L; ++l) {
            const auto [w, bias] = layer(p, at, l);
            m_pre[l].noalias() = w * m_act[l];
            m_pre[l].colwise() += bias;
            m_act[l + 1] = l + 1 < L ? matrix(m_pre[l].unaryExpr([](float z) { return z / (1 + std::exp(-z)); }))
                                     : m_pre[l];
            at += static_cast<std::size_t>(w.size() + bias.size());
        }
        return m_act[L];
    }

    /// ∂(loss)/∂p into `grad` (same layout as p), given ∂(loss)/∂ε̂ (2 × B) of the last forward().
    void backward(std::span<const float> p, const matrix& d_out, std::span<float> grad) {
        const std::size_t L = m_widths.size() - 1;
        std::vector<std::size_t> offsets(L);
        for (std::size_t l = 0, at = 0; l < L; ++l) {
            offsets[l] = at;
            at += static_cast<std::size_t>(m_widths[l + 1]) * static_cast<std::size_t>(m_widths[l] + 1);
        }
        m_delta = d_out;
        for (std::size_t l = L; l-- > 0;) {
            const auto [w, bias] = layer(p, offsets[l], l);
            Eigen::Map<matrix> gw(grad.data() + offsets[l], w.rows(), w.cols());
            Eigen::Map<Eigen::VectorXf> gb(grad.data() + offsets[l] + w.size(), bias.size());
            gw.noalias() = m_delta * m_act[l].transpose();
            gb = m_delta.rowwise().sum();
            if (l == 0) break;
            const matrix back = w.transpose() * m_delta;
            m_delta = back.cwiseProduct(m_pre[l - 1].unaryExpr([](float z) {
                const float s = 1 / (1 + std::exp(-z));
                return s * (1 + z * (1 - s));
            }));
        }
    }

private:
    struct view {
        Eigen::Map<const matrix> w;
        Eigen::Map<const Eigen::VectorXf> b;
    };
    [[nodiscard]] view layer(std::span<const float> p, std::size_t at, std::size_t l) const {
        const int out = m_widths[l + 1], in = m_widths[l];
        return {Eigen::Map<const matrix>(p.data() + at, out, in),
                Eigen::Map<const Eigen::VectorXf>(p.data() + at + static_cast<std::size_t>(out) * in, out)};
    }

    std::vector<int> m_widths;
    double m_time_scale;
    std::vector<matrix> m_pre, m_act;
    matrix m_delta;
};

/// Adam (Kingma & Ba 2015) on a flat vector.
struct adam {
    std::vector<float> m, v;
    long t = 0;
    void step(std::span<float> p, std::span<const float> g, float lr) {
        constexpr float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
        m.resize(p.size());
        v.resize(p.size());
        ++t;
        const float c1 = 1 - std::pow(b1, static_cast<float>(t)), c2 = 1 - std::pow(b2, static_cast<float>(t));
        for (std::size_t k = 0; k < p.size(); ++k) {
            m[k] = b1 * m[k] + (1 - b1) * g[k];
            v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k];
            p[k] -= lr * (m[k] / c1) / (std::sqrt(v[k] / c2) + eps);
        }
    }
};

struct options {
    std::size_t batch = 256;
    long iters = 3000;
    bool importance = false;
    bool check = false;
    std::uint64_t seed = 3;
    std::filesystem::path out = ".";
};

struct result {
    std::vector<double> loss;   ///< the global minibatch's mean L_simple per iteration
    std::vector<float> params;
    double seconds = 0;
};

/// Trains over `comm` (MPI_COMM_SELF: one process with the whole batch).
result train(MPI_Comm comm, const options& opt, std::span<const float> data) {
    constexpr std::int64_t T = 200;
    const ddpm::noise_schedule schedule{ddpm::schedule_config{.num_train_timesteps = T,
                                                              .schedule = ddpm::beta_schedule::squaredcos_cap_v2}};
    flat_mlp net({static_cast<int>(D) + 2 * frequencies, 64, 64, static_cast<int>(D)}, 1000.0 / T);
    // Every rank starts from the same parameters: the same seed on every rank.
    result r{std::vector<double>(static_cast<std::size_t>(opt.iters)), std::vector<float>(net.num_parameters()), 0};
    examples::normal_rng init_rng(opt.seed);
    net.initialise(r.params, init_rng);
    dist::fingerprint f;
    f.add("T", T).add("the noise schedule", schedule).add("seed", opt.seed).add("the global batch", opt.batch)
        .add("iterations", opt.iters).add("importance sampling", opt.importance ? 1 : 0)
        .add_hash("the initial parameters", std::span<const float>(r.params));
    dist::check_consistent(comm, f, "mpi_train_2d");

    const dist::shard mine = dist::shard_of(comm, opt.batch);
    const auto seeds = dist::training_seeds::from(opt.seed);
    const auto B = static_cast<Eigen::Index>(mine.count);
    const ddpm::uniform_timestep_sampler uniform(schedule);
    ddpm::loss_second_moment_sampler importance(schedule);
    std::vector<std::size_t> index(mine.count);
    std::vector<ddpm::timestep_t> t(mine.count);
    std::vector<double> weights(mine.count), per_example(mine.count);
    matrix x0(D, B), xt(D, B), eps(D, B), d_out(D, B);
    std::vector<float> grad(r.params.size());
    adam optimiser;
    MPI_Barrier(comm);
    const double t0 = MPI_Wtime();
    for (long it = 0; it < opt.iters; ++it) {
        const auto step = static_cast<std::uint32_t>(it);
        // Algorithm 1 on this rank's examples, addressed by their global index.
        dist::draw_indices(seeds.data, step, mine.first, data.size() / D, index);
        for (std::size_t b = 0; b < mine.count; ++b)
            x0.col(static_cast<Eigen::Index>(b)) = Eigen::Map<const Eigen::Vector2f>(data.data() + index[b] * D);
        if (opt.importance) dist::draw_timesteps(importance, seeds.timestep, step, mine.first, t, weights);
        else dist::draw_timesteps(uniform, seeds.timestep, step, mine.first, t, weights);
        std::fill(grad.begin(), grad.end(), 0.0f);
        double local_loss = 0;
        if (mine.count > 0) {
            ddpm::q_sample(schedule, x0, t, dist::training_noise(seeds, step, mine), xt, eps);
            const matrix& pred = net.forward(r.params, xt, t);
            const std::vector<double> ones(mine.count, 1.0);
            ddpm::weighted_mse(pred, eps, ones, mine.count, per_example); // L_simple of each example
            for (std::size_t b = 0; b < mine.count; ++b) local_loss += per_example[b];
            // ∂/∂ε̂ of the GLOBAL mean (1/G) Σ_g w_g mean_d (ε̂ − ε)², this rank's share.
            for (std::size_t b = 0; b < mine.count; ++b) {
                const auto c = static_cast<Eigen::Index>(b);
                d_out.col(c) = (pred.col(c) - eps.col(c)) *
                               static_cast<float>(2 * weights[b] / static_cast<double>(opt.batch * D));
            }
            net.backward(r.params, d_out, grad);
        }
        // The data-parallel step: one all-reduce of the flat gradient vector.
        MPI_Allreduce(MPI_IN_PLACE, grad.data(), static_cast<int>(grad.size()), MPI_FLOAT, MPI_SUM, comm);
        double global_loss = 0;
        MPI_Allreduce(&local_loss, &global_loss, 1, MPI_DOUBLE, MPI_SUM, comm);
        r.loss[static_cast<std::size_t>(it)] = global_loss / static_cast<double>(opt.batch);
        if (opt.importance) dist::update_all(comm, importance, t, per_example);
        const double progress = static_cast<double>(it) / static_cast<double>(opt.iters);
        optimiser.step(r.params, grad, static_cast<float>(2e-5 + 0.5 * (3e-3 - 2e-5) * (1 + std::cos(std::numbers::pi * progress))));
    }
    r.seconds = MPI_Wtime() - t0;
    // The ranks applied the same updates: their parameters must agree.
    dist::fingerprint end;
    end.add_hash("the trained parameters", std::span<const float>(r.params));
    dist::check_consistent(comm, end, "mpi_train_2d (after training)");
    return r;
}

std::vector<double> smooth(std::span<const double> v) {
    std::vector<double> s(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) s[i] = i == 0 ? v[0] : 0.98 * s[i - 1] + 0.02 * v[i];
    return s;
}

examples::canvas draw_loss(std::span<const double> ranks_loss, std::span<const double> one_loss, int ranks,
                           std::size_t batch) {
    examples::canvas c(760, 420, {255, 255, 255});
    const auto a = smooth(ranks_loss), b = smooth(one_loss);
    std::vector<double> xs(a.size());
    for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<double>(i + 1);
    double hi = 0;
    for (const double v : a) hi = std::max(hi, v);
    const examples::line_chart chart{80, 40, 650, 320, 0, static_cast<double>(a.size()), 0.0, std::ceil(hi * 11) / 10,
                                     false};
    chart.draw_axes(c, "iteration", "L_simple of the global minibatch (moving average)");
    const std::string k = std::to_string(ranks) + (ranks == 1 ? " rank" : " ranks") + ", global batch " +
                          std::to_string(batch);
    chart.polyline(c, xs, a, {30, 100, 200}, 3.0);
    chart.legend(c, 0, k, {30, 100, 200});
    if (!b.empty()) {
        chart.polyline(c, xs, b, {230, 110, 20}, 1.2);
        chart.legend(c, 1, "1 rank, batch " + std::to_string(batch), {230, 110, 20});
    }
    return c;
}

int run(const options& opt) {
    const dist::rank_info me = dist::ranks_of(MPI_COMM_WORLD);
    // The training set: 4000 points of a ring of 8 Gaussians, the same on every rank.
    const examples::gaussian_mixture mix = examples::ring_of_gaussians();
    examples::normal_rng data_rng(opt.seed + 100);
    const std::vector<float> data = mix.sample<float>(4000, data_rng);

    const result mine = train(MPI_COMM_WORLD, opt, data);
    if (me.rank != 0) return 0;
    std::printf("data-parallel DDPM training: %d rank%s, global batch %zu (%zu..%zu per rank), %ld iterations, %s timesteps\n",
                me.size, me.size == 1 ? "" : "s", opt.batch, dist::shard_of(opt.batch, me.size - 1, me.size).count,
                dist::shard_of(opt.batch, 0, me.size).count, opt.iters,
                opt.importance ? "importance-sampled" : "uniform");
    std::printf("trained in %.2f s; the parameters agree on every rank (hash checked)\n", mine.seconds);

    result alone;
    if (opt.check) {
        alone = train(MPI_COMM_SELF, opt, data);
        std::printf("one rank with the whole batch: %.2f s\n", alone.seconds);
    }
    const auto a = smooth(mine.loss), b = opt.check ? smooth(alone.loss) : std::vector<double>{};
    std::printf("\n%10s %22s%s\n", "iteration", "loss (moving average)", opt.check ? "   1 rank, same global batch" : "");
    const long every = std::max(1L, opt.iters / 10);
    for (long it = 0; it < opt.iters; ++it) {
        if ((it + 1) % every != 0 && it != 0) continue;
        const auto i = static_cast<std::size_t>(it);
        if (opt.check) std::printf("%10ld %22.5f %28.5f\n", it + 1, a[i], b[i]);
        else std::printf("%10ld %22.5f\n", it + 1, a[i]);
    }
    if (opt.check) {
        double worst = 0, worst_p = 0;
        for (std::size_t i = 0; i < mine.loss.size(); ++i)
            worst = std::max(worst, std::abs(mine.loss[i] - alone.loss[i]) / std::abs(alone.loss[i]));
        for (std::size_t i = 0; i < mine.params.size(); ++i)
            worst_p = std::max(worst_p, static_cast<double>(std::abs(mine.params[i] - alone.params[i])));
        std::printf("largest relative difference of the per-iteration losses: %.3g; of the parameters (absolute): %.3g\n"
                    "(the only difference: the order of the floating-point sums of the gradient)\n",
                    worst, worst_p);
    }

    std::filesystem::create_directories(opt.out);
    std::ofstream csv(opt.out / "mpi_train_2d.csv");
    csv << "iteration,loss" << (opt.check ? ",loss_one_rank\n" : "\n");
    for (std::size_t i = 0; i < mine.loss.size(); ++i) {
        csv << i + 1 << ',' << mine.loss[i];
        if (opt.check) csv << ',' << alone.loss[i];
        csv << '\n';
    }
    const auto path = (opt.out / "mpi_train_2d_loss.png").string();
    const auto pic = draw_loss(mine.loss, alone.loss, me.size, opt.batch);
    examples::write_png(path, pic.width(), pic.height(), pic.pixels());
    std::printf("wrote %s and %s\n", path.c_str(), (opt.out / "mpi_train_2d.csv").string().c_str());
    return 0;
}

void usage(std::FILE* to) {
    std::fputs("usage: mpirun -np K mpi_train_2d [--batch G] [--iters N] [--importance] [--check] [--seed N]\n"
               "                                 [--small] [--out DIR]\n"
               "  --batch G     the global minibatch, split across the ranks (default 256)\n"
               "  --iters N     iterations (default 3000; --small: 300)\n"
               "  --importance  loss-second-moment timestep sampling, synchronised across ranks\n"
               "  --check       rank 0 also trains alone with the whole batch and compares the curves\n",
               to);
}

} // namespace

int main(int argc, char** argv) {
    options opt;
    bool small = false, iters_given = false;
    const auto parse = [&](std::string_view flag, const char* value) -> int {
        if (flag == "--small") return small = true, 1;
        if (flag == "--check") return opt.check = true, 1;
        if (flag == "--importance") return opt.importance = true, 1;
        if (flag == "--batch") return examples::parse_count(value, opt.batch) && opt.batch > 0 ? 2 : 0;
        if (flag == "--iters") return examples::parse_count(value, opt.iters) && opt.iters > 0 ? (iters_given = true, 2) : 0;
        if (flag == "--seed") return examples::parse_count(value, opt.seed) ? 2 : 0;
        if (flag == "--out" && value) return opt.out = value, 2;
        return 0;
    };
    return examples::mpi_main(argc, argv, "mpi_train_2d", usage, parse, [&] {
        if (small && !iters_given) opt.iters = 300;
        return run(opt);
    });
}
