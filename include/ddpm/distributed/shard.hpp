// ddpm/distributed/shard.hpp — splitting a global batch across workers, and
// the noise/timestep/data addressing that makes the pieces equal the whole.
// Needs no MPI: the MPI layer (ddpm/distributed/mpi.hpp) is built on this, and
// any other transport (NCCL, Gloo, a job array writing shards to disk) can use
// it the same way.
//
// ## Why shards equal the whole
//
// Every random number ddpm draws is a pure function of (seed, sample, step,
// element) (docs/random.md). A worker that runs the samples [first, first + n)
// of a global batch of N with `counter_noise(seed, D, first)` draws exactly the
// numbers the one-process run draws for those samples, and the samplers treat
// samples independently (per-sample coefficients, clipping and thresholding;
// the network must too — see docs/distributed.md), so the concatenated shards
// are bit-identical to the one-process batch for any number of workers and
// threads.
//
// ## Training addressing: global example index × step
//
// In data-parallel training, example g of the global batch of iteration s
// (g = first + b on the worker holding [first, first + n)) gets
//
//   noise ε            normal(noise_seed, g, s, i)       (kernels::noise_stream{noise_seed, s, first})
//   timestep t         one draw of the timestep sampler from counter_engine(timestep_seed, g, s)
//   data index         uniform_below(dataset size) from counter_engine(data_seed, g, s)
//
// with the three seeds derived from one run seed by training_seeds. So the
// draws depend on (run seed, g, s) only: two workers never share a stream
// (their g differ), and K workers with a per-worker batch B draw exactly what
// one worker with the batch K·B draws.
#pragma once

#include "ddpm/core/training.hpp"
#include "ddpm/core/types.hpp"
#include "ddpm/error.hpp"
#include "ddpm/kernels/fused.hpp"
#include "ddpm/random/counter_noise.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ddpm::distributed {

/// The contiguous slice [first, first + count) of a global batch held by one worker.
struct shard {
    std::size_t first = 0;
    std::size_t count = 0;
    [[nodiscard]] constexpr std::size_t end() const noexcept { return first + count; }
    friend constexpr bool operator==(const shard&, const shard&) = default;
};

/// Worker `rank` of `workers` gets a contiguous slice of `global_batch`
/// samples: the first N mod K workers hold ⌈N/K⌉ samples, the others ⌊N/K⌋
/// (some hold none when N < K). The slices cover [0, N) in rank order.
/// @throws ddpm::invalid_argument unless workers >= 1 and 0 <= rank < workers.
[[nodiscard]] inline shard shard_of(std::size_t global_batch, int rank, int workers) {
    constexpr std::string_view where = "ddpm::distributed::shard_of";
    if (workers < 1) detail::throw_invalid(where, "workers", workers, ">= 1");
    if (rank < 0 || rank >= workers)
        detail::throw_invalid(where, "rank", rank, "in [0, " + std::to_string(workers) + ")");
    const auto k = static_cast<std::size_t>(workers), r = static_cast<std::size_t>(rank);
    const std::size_t base = global_batch / k, extra = global_batch % k;
    return {r * base + (r < extra ? r : extra), base + (r < extra ? 1 : 0)};
}

/// The counter-noise sample index of global sample `first + count − 1` must
/// fit the 32-bit sample field of the Philox counter (docs/random.md).
/// @throws ddpm::invalid_argument when first + count > 2^32.
inline void check_sample_range(std::string_view where, std::size_t first, std::size_t count) {
    if (static_cast<std::uint64_t>(first) + count > (std::uint64_t{1} << 32))
        detail::throw_invalid(where, "first + count", static_cast<std::uint64_t>(first) + count,
                              "<= 2^32 (the counter noise addresses samples with 32 bits)");
}

/// The independent seeds of data-parallel training, derived from one run
/// seed: the ε noise, the timestep draws and the data indices use different
/// Philox keys, so their streams never coincide (the same (seed, sample, step)
/// gives the same words, docs/random.md). `noise` is the run seed itself;
/// the others are two SplitMix64 outputs of it.
struct training_seeds {
    std::uint64_t noise = 0;
    std::uint64_t timestep = 0;
    std::uint64_t data = 0;

    [[nodiscard]] static constexpr training_seeds from(std::uint64_t run_seed) noexcept {
        ddpm::detail::splitmix64 mix(run_seed);
        const std::uint64_t t = mix();
        const std::uint64_t d = mix();
        return {run_seed, t, d};
    }
};

/// The fused-noising stream of training iteration `step` for the worker
/// holding `slice`: element i of local sample b gets
/// normal(seeds.noise, slice.first + b, step, i). Pass it to
/// ddpm::q_sample(…, stream, x_t, ε).
/// @throws ddpm::invalid_argument when the slice passes sample 2^32.
[[nodiscard]] inline kernels::noise_stream training_noise(const training_seeds& seeds, std::uint32_t step,
                                                          const shard& slice) {
    check_sample_range("ddpm::distributed::training_noise", slice.first, slice.count);
    return {seeds.noise, step, static_cast<std::uint32_t>(slice.first)};
}

/// Draws the timesteps of the local slice of training iteration `step`: local
/// example b (global index g = first_example + b) gets one draw of
/// `sampler.sample` from counter_engine(seed, g, step), so t_g and its weight
/// depend on (seed, g, step) and the sampler's state only — not on how the
/// global batch is split. Works with any timestep sampler with
/// `sample(G& rng, std::span<timestep_t>, std::span<double>)`
/// (uniform_timestep_sampler, loss_second_moment_sampler kept identical on
/// every worker).
/// @throws ddpm::invalid_argument when weights_out.size() != t_out.size() or
///         the slice passes sample 2^32; nothing is written then.
template <class Sampler>
void draw_timesteps(const Sampler& sampler, std::uint64_t seed, std::uint32_t step, std::size_t first_example,
                    std::span<timestep_t> t_out, std::span<double> weights_out) {
    constexpr std::string_view where = "ddpm::distributed::draw_timesteps";
    detail::check_size(where, "weights_out", weights_out.size(), t_out.size(), "(= t_out.size(), one weight per draw)");
    check_sample_range(where, first_example, t_out.size());
    for (std::size_t b = 0; b < t_out.size(); ++b) {
        random::counter_engine rng(seed, static_cast<std::uint32_t>(first_example + b), step);
        sampler.sample(rng, t_out.subspan(b, 1), weights_out.subspan(b, 1));
    }
}

/// Draws the data indices of the local slice of training iteration `step`
/// (sampling with replacement): local example b gets a uniform index in
/// [0, dataset_size) from counter_engine(seed, first_example + b, step).
/// @throws ddpm::invalid_argument when dataset_size = 0 or the slice passes
///         sample 2^32; nothing is written then.
inline void draw_indices(std::uint64_t seed, std::uint32_t step, std::size_t first_example, std::size_t dataset_size,
                         std::span<std::size_t> out) {
    constexpr std::string_view where = "ddpm::distributed::draw_indices";
    if (dataset_size == 0) detail::throw_invalid(where, "dataset_size", 0, ">= 1");
    check_sample_range(where, first_example, out.size());
    for (std::size_t b = 0; b < out.size(); ++b) {
        random::counter_engine rng(seed, static_cast<std::uint32_t>(first_example + b), step);
        out[b] = static_cast<std::size_t>(detail::uniform_below(rng, dataset_size));
    }
}

} // namespace ddpm::distributed
