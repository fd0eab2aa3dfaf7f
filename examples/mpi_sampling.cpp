// mpi_sampling — one global batch of 2-D samples split across MPI ranks, the
// shards gathered, and the result checked to be the one-process batch bit for
// bit (ddpm/distributed/mpi.hpp, docs/distributed.md).
//
// The data is a ring of 8 Gaussians; its exact ε-network is the analytic
// mixture predictor (examples/common/mixture.hpp), so no training is needed
// and every sample can be scored. Rank r samples its contiguous slice of the N
// samples (DDPM over T = 1000 steps, or DDIM) with counter noise addressed by
// the global sample index, the root gathers the slices in rank order, prints
// each rank's time and the sample quality, and writes mpi_sampling.png (the
// samples coloured by the rank that drew them | a fresh target sample). With
// --check the root also runs the one-process sampler and compares every bit.
//
//   mpirun -np 2 mpi_sampling [--n N] [--sampler ddpm|ddim] [--steps S] [--threads K]
//                             [--seed N] [--check] [--small] [--out DIR] [--help]
//   (as root, or with more ranks than cores, Open MPI also needs
//    --allow-run-as-root / --oversubscribe). Also runs without mpirun (1 rank).
#include <ddpm/ddpm.hpp>
#include <ddpm/distributed/mpi.hpp>

#include "common/metrics.hpp"
#include "common/mixture.hpp"
#include "common/mpi_example.hpp"
#include "common/plot.hpp"
#include "common/png.hpp"
#include "common/random.hpp"
#include "common/text.hpp"

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace dist = ddpm::distributed;
constexpr std::size_t D = 2;

const examples::rgb rank_colours[] = {{30, 100, 200}, {230, 110, 20}, {40, 160, 70},  {200, 40, 120},
                                      {120, 80, 190}, {20, 160, 170}, {150, 120, 30}, {90, 90, 90}};

struct options {
    std::size_t n = 20000;
    std::string sampler = "ddpm";
    std::int64_t steps = 50;
    unsigned threads = 1;
    std::uint64_t seed = 7;
    bool check = false;
    std::filesystem::path out = ".";
};

void usage(std::FILE* to) {
    std::fputs("usage: mpirun -np K mpi_sampling [--n N] [--sampler ddpm|ddim] [--steps S] [--threads K]\n"
               "                                 [--seed N] [--check] [--small] [--out DIR]\n"
               "  --n N        global batch (default 20000; --small: 2000)\n"
               "  --sampler    ddpm: ancestral, all T = 1000 steps (default); ddim: eta = 0, --steps steps\n"
               "  --threads K  threads per rank for the step kernels (default 1)\n"
               "  --check      the root also samples the whole batch alone and compares every bit\n",
               to);
}

examples::canvas draw(std::span<const float> xs, std::span<const float> target, int ranks, std::size_t n,
                      const std::string& title) {
    const int panel = 360, margin = 14, top = 34;
    examples::canvas c(margin + 2 * (panel + margin), top + panel + margin + 14, {255, 255, 255});
    const examples::scatter_panel left{margin, top, panel, -2.4, 2.4}, right{margin + panel + margin, top, panel, -2.4, 2.4};
    examples::draw_label_centred(c, left.x + panel / 2, 10, title, {30, 30, 30}, 2);
    examples::draw_label_centred(c, right.x + panel / 2, 10, "target (fresh sample)", {30, 30, 30}, 2);
    left.draw_frame(c);
    right.draw_frame(c);
    left.scatter(c, xs, [&](std::size_t k) {
        // The rank that drew sample k.
        int r = 0;
        while (r + 1 < ranks && dist::shard_of(n, r + 1, ranks).first <= k) ++r;
        return rank_colours[static_cast<std::size_t>(r) % std::size(rank_colours)];
    }, 1.1, 0.5f);
    right.scatter(c, target, [](std::size_t) { return examples::rgb{90, 90, 90}; }, 1.1, 0.5f);
    examples::draw_label(c, margin, top + panel + 6, "left: colour = the rank that drew the sample", {90, 90, 90});
    return c;
}

int run(const options& opt) {
    const dist::rank_info me = dist::ranks_of(MPI_COMM_WORLD);
    const examples::gaussian_mixture mix = examples::ring_of_gaussians();
    const ddpm::noise_schedule schedule{ddpm::schedule_config{}}; // the paper's: linear, T = 1000
    examples::mixture_denoiser<float> model(mix, schedule);
    ddpm::ddpm_scheduler<float> ddpm_s(schedule);
    ddpm::ddim_scheduler<float> ddim_s(schedule);
    const bool use_ddim = opt.sampler == "ddim";
    if (use_ddim) ddim_s.set_timesteps(opt.steps);
    ddpm::sampler_options so;
    so.exec.threads = opt.threads;

    // Each rank samples its slice; the clock runs from a common barrier.
    std::vector<float> local;
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    const dist::shard mine = use_ddim ? dist::sample_shard(MPI_COMM_WORLD, ddim_s, model, opt.seed, opt.n, D, local, so)
                                      : dist::sample_shard(MPI_COMM_WORLD, ddpm_s, model, opt.seed, opt.n, D, local, so);
    const double local_s = MPI_Wtime() - t0;
    MPI_Barrier(MPI_COMM_WORLD);
    const double all_done_s = MPI_Wtime() - t0;
    std::vector<float> xs;
    dist::gather_shards<float>(MPI_COMM_WORLD, 0, opt.n, D, local, xs);
    const double gathered_s = MPI_Wtime() - t0;
    std::vector<double> times(static_cast<std::size_t>(me.size));
    MPI_Gather(&local_s, 1, MPI_DOUBLE, times.data(), 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (me.rank != 0) return 0;
    (void)mine;

    const std::string what = use_ddim ? "DDIM, " + std::to_string(opt.steps) + " steps (eta = 0)"
                                      : std::string("DDPM, 1000 steps");
    std::printf("%s: %zu samples of a ring of 8 Gaussians on %d rank%s, %u thread%s each, seed %llu\n\n",
                what.c_str(), opt.n, me.size, me.size == 1 ? "" : "s", opt.threads, opt.threads == 1 ? "" : "s",
                static_cast<unsigned long long>(opt.seed));
    std::printf("%6s %18s %10s %14s\n", "rank", "samples", "time (s)", "samples/s");
    for (int r = 0; r < me.size; ++r) {
        const dist::shard s = dist::shard_of(opt.n, r, me.size);
        const double t = times[static_cast<std::size_t>(r)];
        std::printf("%6d %8zu..%-8zu %10.3f %14.0f\n", r, s.first, s.end(), t, t > 0 ? s.count / t : 0.0);
    }
    std::printf("all ranks done after %.3f s; gathered on rank 0 after %.3f s\n", all_done_s, gathered_s);

    examples::normal_rng rng(opt.seed + 1000);
    const auto target = mix.sample<float>(opt.n, rng);
    const auto reference = mix.sample<float>(opt.n, rng);
    std::printf("\nsliced W1 to a fresh target sample: %.4f (another target sample: %.4f)\n",
                examples::sliced_wasserstein(std::span<const float>(xs), std::span<const float>(target), D),
                examples::sliced_wasserstein(std::span<const float>(reference), std::span<const float>(target), D));

    int status = 0;
    if (opt.check) {
        std::vector<float> alone(opt.n * D);
        const ddpm::counter_noise noise(opt.seed, D);
        ddpm::sampler_options one = so;
        one.batch = opt.n;
        if (use_ddim) ddpm::ddim_sample(ddim_s, model, noise, alone, one);
        else ddpm::sample(ddpm_s, model, noise, alone, one);
        const bool same = std::memcmp(alone.data(), xs.data(), alone.size() * sizeof(float)) == 0;
        std::printf("bit-identical to the one-process run: %s (%zu floats compared)\n", same ? "yes" : "NO",
                    alone.size());
        status = same ? 0 : 1;
    }

    std::filesystem::create_directories(opt.out);
    const auto path = (opt.out / "mpi_sampling.png").string();
    const auto pic = draw(xs, target, me.size, opt.n, what + ", " + std::to_string(me.size) + (me.size == 1 ? " rank" : " ranks"));
    examples::write_png(path, pic.width(), pic.height(), pic.pixels());
    std::printf("wrote %s (%dx%d)\n", path.c_str(), pic.width(), pic.height());
    return status;
}

} // namespace

int main(int argc, char** argv) {
    options opt;
    bool small = false, n_given = false;
    const auto parse = [&](std::string_view flag, const char* value) -> int {
        if (flag == "--small") return small = true, 1;
        if (flag == "--check") return opt.check = true, 1;
        if (flag == "--n") return examples::parse_count(value, opt.n) && opt.n > 0 ? (n_given = true, 2) : 0;
        if (flag == "--steps") return examples::parse_count(value, opt.steps) && opt.steps > 0 ? 2 : 0;
        if (flag == "--threads") return examples::parse_count(value, opt.threads) ? 2 : 0;
        if (flag == "--seed") return examples::parse_count(value, opt.seed) ? 2 : 0;
        if (flag == "--sampler" && value && (std::string_view(value) == "ddpm" || std::string_view(value) == "ddim"))
            return opt.sampler = value, 2;
        if (flag == "--out" && value) return opt.out = value, 2;
        return 0;
    };
    return examples::mpi_main(argc, argv, "mpi_sampling", usage, parse, [&] {
        if (small && !n_given) opt.n = 2000;
        return run(opt);
    });
}
