// ddpm/distributed/mpi.hpp — sharded sampling and data-parallel training
// helpers over MPI. Optional: include it explicitly and link MPI (CMake:
// find_package(MPI COMPONENTS CXX), MPI::MPI_CXX); the core never includes
// <mpi.h>. See docs/distributed.md.
//
//   sample_shard      every rank samples its contiguous slice of a global
//                     batch with counter noise addressed by the GLOBAL sample
//                     index: the union is bit-identical to the one-process run
//                     for any rank count and thread count, for DDPM, DDIM,
//                     DPM-Solver and UniPC (any scheduler whose one-call
//                     sampler draws its noise from a noise_source).
//   gather_shards     the slices, concatenated in rank order, on one rank.
//   update_all        a loss_second_moment_sampler fed with the losses of
//                     every rank (all-gathered in rank order = global example
//                     order), so that it is identical on every rank and equal
//                     to the one-process sampler fed the global batch.
//   shared_seed       the root's seed on every rank.
//   check_consistent  one all-gather of a fingerprint of the options (T, the
//                     schedule, the timesteps, the seed, the batch, …); a
//                     mismatch throws the same ddpm::distributed::mismatch_error
//                     on every rank instead of hanging later.
//
// Every function here is collective over its communicator: every rank must
// call it, in the same order. Argument errors are detected collectively (the
// values are exchanged first), so they throw on every rank, never on one rank
// while the others wait.
#pragma once

#include "ddpm/core/training.hpp"
#include "ddpm/core/types.hpp"
#include "ddpm/distributed/shard.hpp"
#include "ddpm/error.hpp"
#include "ddpm/samplers/chain.hpp"
#include "ddpm/samplers/ddim.hpp"
#include "ddpm/samplers/ddpm.hpp"
#include "ddpm/samplers/dpm_solver.hpp"
#include "ddpm/samplers/noise.hpp"
#include "ddpm/samplers/unipc.hpp"
#include "ddpm/schedule/noise_schedule.hpp"

#include <mpi.h>

#include <bit>
#include <climits>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <iomanip>
#include <random>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace ddpm::distributed {

/// An MPI call returned an error code (only seen when the communicator's error
/// handler returns codes; MPI's default aborts the job instead).
class mpi_error : public std::runtime_error, public ddpm::error {
public:
    explicit mpi_error(const std::string& message) : std::runtime_error(message) {}
    [[nodiscard]] const char* what() const noexcept override { return std::runtime_error::what(); }
};

/// The ranks disagree on an option, or one rank failed inside a collective
/// helper. Thrown with the same message on every rank.
class mismatch_error : public ddpm::invalid_argument {
public:
    explicit mismatch_error(const std::string& message) : ddpm::invalid_argument(message) {}
};

namespace detail {

inline void check_mpi(int code, std::string_view call) {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    DDPM_THROW(mpi_error(std::string(call) + " failed: " + std::string(text, static_cast<std::size_t>(length))));
}

template <class T>
[[nodiscard]] MPI_Datatype mpi_type() noexcept {
    if constexpr (std::is_same_v<T, float>) return MPI_FLOAT;
    else if constexpr (std::is_same_v<T, double>) return MPI_DOUBLE;
    else if constexpr (std::is_same_v<T, std::int64_t>) return MPI_INT64_T;
    else if constexpr (std::is_same_v<T, std::uint64_t>) return MPI_UINT64_T;
    else if constexpr (std::is_same_v<T, int>) return MPI_INT;
    else static_assert(sizeof(T) == 0, "ddpm::distributed: no MPI datatype for this element type");
}

/// FNV-1a style 64-bit mixing of words (for fingerprints; not cryptographic).
class hasher {
public:
    void add(std::uint64_t v) noexcept {
        for (int k = 0; k < 8; ++k) {
            m_h ^= (v >> (8 * k)) & 0xFFu;
            m_h *= 0x100000001B3ull;
        }
    }
    void add(double v) noexcept { add(std::bit_cast<std::uint64_t>(v)); }
    void add(float v) noexcept { add(std::uint64_t{std::bit_cast<std::uint32_t>(v)}); }
    template <class T>
    void add_all(std::span<const T> v) noexcept {
        add(static_cast<std::uint64_t>(v.size()));
        for (const T x : v) {
            if constexpr (std::is_floating_point_v<T>) add(x);
            else add(static_cast<std::uint64_t>(x));
        }
    }
    [[nodiscard]] std::uint64_t value() const noexcept { return m_h; }

private:
    std::uint64_t m_h = 0xCBF29CE484222325ull;
};

} // namespace detail

/// This rank's index and the number of ranks of `comm`.
struct rank_info {
    int rank = 0;
    int size = 1;
};

[[nodiscard]] inline rank_info ranks_of(MPI_Comm comm) {
    rank_info r;
    detail::check_mpi(MPI_Comm_rank(comm, &r.rank), "MPI_Comm_rank");
    detail::check_mpi(MPI_Comm_size(comm, &r.size), "MPI_Comm_size");
    return r;
}

/// This rank's slice of a global batch (ddpm::distributed::shard_of).
[[nodiscard]] inline shard shard_of(MPI_Comm comm, std::size_t global_batch) {
    const rank_info r = ranks_of(comm);
    return shard_of(global_batch, r.rank, r.size);
}

// ---------------------------------------------------------------------------
// Consistency of the options across ranks
// ---------------------------------------------------------------------------

/// Named 64-bit values every rank must agree on (integers as they are, reals
/// by their bits, tables and schedules as hashes); the error message shows
/// each kind as such.
class fingerprint {
public:
    /// How a field's 64 bits are shown in the error message.
    enum class kind { unsigned_integer, signed_integer, real, hash };
    struct field {
        std::string name;
        std::uint64_t value;
        kind shown_as;
    };

    template <class I>
        requires std::integral<I> || std::is_enum_v<I>
    fingerprint& add(std::string name, I value) {
        constexpr bool is_signed = [] {
            if constexpr (std::is_enum_v<I>) return std::is_signed_v<std::underlying_type_t<I>>;
            else return std::is_signed_v<I>;
        }();
        m_fields.push_back({std::move(name), static_cast<std::uint64_t>(value),
                            is_signed ? kind::signed_integer : kind::unsigned_integer});
        return *this;
    }
    fingerprint& add(std::string name, double value) {
        m_fields.push_back({std::move(name), std::bit_cast<std::uint64_t>(value), kind::real});
        return *this;
    }
    /// A hash of a noise schedule: T, the profile and the float64 and float32 β tables, bit for bit.
    fingerprint& add(std::string name, const noise_schedule& s) {
        detail::hasher h;
        h.add(static_cast<std::uint64_t>(s.size()));
        h.add(static_cast<std::uint64_t>(s.profile()));
        h.add_all(std::span<const double>(s.f64().betas));
        h.add_all(std::span<const float>(s.f32().betas));
        m_fields.push_back({std::move(name), h.value(), kind::hash});
        return *this;
    }
    /// A hash of a sequence of numbers (timesteps, a parameter vector, …).
    template <class T>
    fingerprint& add_hash(std::string name, std::span<const T> values) {
        detail::hasher h;
        h.add_all(values);
        m_fields.push_back({std::move(name), h.value(), kind::hash});
        return *this;
    }

    [[nodiscard]] const std::vector<field>& fields() const noexcept { return m_fields; }

private:
    std::vector<field> m_fields;
};

/// The options of a scheduler the ranks of a sharded run must share: T, the
/// noise schedule and the timesteps it visits. Works with any scheduler
/// exposing schedule() and timesteps() (ddpm_scheduler, ddim_scheduler, the
/// Euler family with real-valued timesteps, DPM-Solver, UniPC); what a
/// scheduler does not expose is left out.
template <class Scheduler>
[[nodiscard]] fingerprint scheduler_fingerprint(const Scheduler& scheduler) {
    fingerprint f;
    if constexpr (requires { { scheduler.schedule() } -> std::convertible_to<const noise_schedule&>; }) {
        const noise_schedule& s = scheduler.schedule();
        f.add("num_train_timesteps (T)", s.size());
        f.add("the noise schedule", s);
    }
    if constexpr (requires { scheduler.timesteps(); }) {
        // integer timesteps, or real ones (the Euler family)
        const auto ts = scheduler.timesteps();
        using V = std::remove_cvref_t<decltype(*ts.data())>;
        f.add_hash("the scheduler's timesteps", std::span<const V>(ts.data(), ts.size()));
    }
    return f;
}

/// One all-gather of `f` across `comm`; throws the same mismatch_error on
/// every rank when any field differs from rank 0's (or the ranks hold a
/// different number of fields), naming the field and the two values:
/// "<where>: the ranks disagree on seed: rank 0 has 42, rank 2 has 43".
/// Collective: every rank of comm must call it.
inline void check_consistent(MPI_Comm comm, const fingerprint& f, std::string_view where) {
    const rank_info me = ranks_of(comm);
    const auto k = static_cast<std::size_t>(me.size);
    const auto& fields = f.fields();
    std::vector<std::uint64_t> counts(k);
    const std::uint64_t mine = fields.size();
    detail::check_mpi(MPI_Allgather(&mine, 1, MPI_UINT64_T, counts.data(), 1, MPI_UINT64_T, comm), "MPI_Allgather");
    for (std::size_t r = 1; r < k; ++r)
        if (counts[r] != counts[0])
            DDPM_THROW(mismatch_error(std::string(where) + ": the ranks check a different number of options: rank 0 has " +
                                      std::to_string(counts[0]) + ", rank " + std::to_string(r) + " has " +
                                      std::to_string(counts[r]) + " (do all ranks run the same program?)"));
    const std::size_t n = fields.size();
    std::vector<std::uint64_t> values(n), all(n * k);
    for (std::size_t i = 0; i < n; ++i) values[i] = fields[i].value;
    if (n > 0)
        detail::check_mpi(MPI_Allgather(values.data(), static_cast<int>(n), MPI_UINT64_T, all.data(),
                                        static_cast<int>(n), MPI_UINT64_T, comm),
                          "MPI_Allgather");
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t r = 1; r < k; ++r) {
            const std::uint64_t a = all[i], b = all[r * n + i];
            if (a == b) continue;
            const auto show = [&](std::uint64_t v) {
                std::ostringstream os;
                switch (fields[i].shown_as) {
                case fingerprint::kind::unsigned_integer: os << v; break;
                case fingerprint::kind::signed_integer: os << static_cast<std::int64_t>(v); break;
                case fingerprint::kind::real: os.precision(17), os << std::bit_cast<double>(v); break;
                case fingerprint::kind::hash: os << "hash 0x" << std::hex << v; break;
                }
                return os.str();
            };
            std::ostringstream os;
            os << where << ": the ranks disagree on " << fields[i].name << ": rank 0 has " << show(a) << ", rank " << r
               << " has " << show(b) << " (every rank must pass the same options)";
            DDPM_THROW(mismatch_error(os.str()));
        }
    }
}

/// Runs `work` on every rank, then exchanges whether it threw: if any rank
/// failed, that rank rethrows its exception and every other rank throws a
/// mismatch_error naming it, so that no rank is left waiting in a later
/// collective. Collective.
template <class Work>
void run_collectively(MPI_Comm comm, std::string_view where, Work&& work) {
    std::exception_ptr failure;
    try {
        work();
    } catch (...) {
        failure = std::current_exception();
    }
    const rank_info me = ranks_of(comm);
    const int failed = failure ? 1 : 0;
    std::vector<int> all(static_cast<std::size_t>(me.size));
    detail::check_mpi(MPI_Allgather(&failed, 1, MPI_INT, all.data(), 1, MPI_INT, comm), "MPI_Allgather");
    if (failure) std::rethrow_exception(failure);
    for (std::size_t r = 0; r < all.size(); ++r)
        if (all[r])
            DDPM_THROW(mismatch_error(std::string(where) + ": rank " + std::to_string(r) +
                                      " failed (its own exception carries the reason)"));
}

/// The root's `seed` on every rank (one MPI_Bcast). Collective.
[[nodiscard]] inline std::uint64_t shared_seed(MPI_Comm comm, std::uint64_t seed, int root = 0) {
    detail::check_mpi(MPI_Bcast(&seed, 1, MPI_UINT64_T, root, comm), "MPI_Bcast");
    return seed;
}

/// A fresh seed drawn from std::random_device on the root, on every rank. Collective.
[[nodiscard]] inline std::uint64_t shared_seed(MPI_Comm comm) {
    std::uint64_t seed = 0;
    if (ranks_of(comm).rank == 0) {
        std::random_device device;
        seed = (std::uint64_t{device()} << 32) ^ device();
    }
    return shared_seed(comm, seed, 0);
}

// ---------------------------------------------------------------------------
// Sharded sampling
// ---------------------------------------------------------------------------

namespace detail {

/// Runs `scheduler` through the one loop, ddpm::sample (which every
/// scheduler's named driver — ddim_sample, dpm_solver_sample, unipc_sample —
/// is an alias of, with the same noise addressing).
template <class Scheduler, class Model, class T>
void sample_whole(const Scheduler& scheduler, Model& model, const counter_noise& noise, std::span<T> out,
                  const sampler_options& o) {
    static_assert(ddpm::detail::chain_scheduler<Scheduler>,
                  "ddpm::distributed::sample_shard: ddpm::sample does not take this scheduler; pass a callable "
                  "run(out, noise, slice) that runs its sampler instead");
    if constexpr (ddpm::detail::chain_scheduler<Scheduler>) ddpm::sample(scheduler, model, noise, out, o);
}

} // namespace detail

/// Runs this rank's slice of a global batch of `global_batch` samples of
/// `dim` elements. `run(std::span<T> out, const counter_noise& noise,
/// const shard& slice)` must run the one-process sampler on slice.count
/// samples into `out` (slice.count·dim values) with `noise`, which addresses
/// the samples by their GLOBAL index (counter_noise(seed, dim, slice.first));
/// a sampler with its own counter noise (the CUDA samplers'
/// sampling_options{seed, first_sample}) takes seed and slice.first instead. `local` is
/// resized to the shard (count·dim values) unless `keep_input` (then it must
/// already hold them: the shard's x_T for a start_from_input run). A rank
/// whose shard is empty (N < ranks) does not call `run`.
///
/// Collective: the options (seed, N, D and `extra`) are checked across ranks
/// first, and a throw inside `run` on any rank throws on every rank.
/// @return this rank's shard.
/// @throws mismatch_error when the ranks disagree or another rank failed;
///         ddpm::invalid_argument (on every rank) on N = 0, D = 0, N > 2^32, or
///         a wrong local size with keep_input; whatever `run` throws.
template <std::floating_point T, class Run>
shard sample_shard(MPI_Comm comm, std::uint64_t seed, std::size_t global_batch, std::size_t dim,
                   std::vector<T>& local, Run&& run, fingerprint extra = {}, bool keep_input = false) {
    constexpr std::string_view where = "ddpm::distributed::sample_shard";
    extra.add("seed", seed).add("the global batch (N)", global_batch).add("the sample size (D)", dim);
    check_consistent(comm, extra, where);
    if (global_batch == 0) ddpm::detail::throw_invalid(where, "global_batch", 0, ">= 1");
    if (dim == 0) ddpm::detail::throw_invalid(where, "dim", 0, ">= 1");
    check_sample_range(where, 0, global_batch);
    const shard mine = shard_of(comm, global_batch);
    run_collectively(comm, where, [&] {
        if (keep_input) ddpm::detail::check_size(where, "local", local.size(), mine.count * dim, "(this rank's shard x D)");
        else local.resize(mine.count * dim);
        if (mine.count == 0) return;
        const counter_noise noise(seed, dim, static_cast<std::uint32_t>(mine.first));
        run(std::span<T>(local), noise, mine);
    });
    return mine;
}

/// sample_shard with a scheduler: runs ddpm::sample (the loop behind
/// ddim_sample, dpm_solver_sample, unipc_sample, …) on the shard, with
/// options.batch set to the shard's count. For a scheduler ddpm::sample does
/// not take (the CUDA samplers), use the overload above with a one-line
/// callable. The fingerprint adds T, the schedule and the timesteps
/// (scheduler_fingerprint). options.exec may differ between ranks: results do
/// not depend on the thread count.
template <class Scheduler, class Model, std::floating_point T>
shard sample_shard(MPI_Comm comm, const Scheduler& scheduler, Model&& model, std::uint64_t seed,
                   std::size_t global_batch, std::size_t dim, std::vector<T>& local, sampler_options options = {}) {
    fingerprint f = scheduler_fingerprint(scheduler);
    f.add("options.start_from_input", options.start_from_input ? 1 : 0);
    return sample_shard<T>(
        comm, seed, global_batch, dim, local,
        [&](std::span<T> out, const counter_noise& noise, const shard& slice) {
            sampler_options o = options;
            o.batch = slice.count;
            detail::sample_whole(scheduler, model, noise, out, o);
        },
        std::move(f), options.start_from_input);
}

/// Concatenates the shards of a global batch on `root`, in rank order (the
/// one-process batch order). `local` must hold this rank's shard
/// (shard_of(comm, N).count · dim values); `global` is resized to N·dim on
/// the root and left alone elsewhere. One MPI_Gatherv of whole samples (a
/// contiguous datatype of dim elements), so N and D may each reach INT_MAX.
/// Collective.
/// @throws mismatch_error (on every rank) when a rank's local size is wrong
///         or the ranks disagree on N or D; ddpm::invalid_argument on N or D
///         above INT_MAX or D = 0.
template <std::floating_point T>
void gather_shards(MPI_Comm comm, int root, std::size_t global_batch, std::size_t dim, std::span<const T> local,
                   std::vector<T>& global) {
    constexpr std::string_view where = "ddpm::distributed::gather_shards";
    fingerprint f;
    f.add("the global batch (N)", global_batch).add("the sample size (D)", dim).add("root", root);
    check_consistent(comm, f, where);
    if (dim == 0) ddpm::detail::throw_invalid(where, "dim", 0, ">= 1");
    if (global_batch > static_cast<std::size_t>(INT_MAX))
        ddpm::detail::throw_invalid(where, "global_batch", global_batch, "<= INT_MAX");
    if (dim > static_cast<std::size_t>(INT_MAX)) ddpm::detail::throw_invalid(where, "dim", dim, "<= INT_MAX");
    const rank_info me = ranks_of(comm);
    if (root < 0 || root >= me.size)
        ddpm::detail::throw_invalid(where, "root", root, "in [0, " + std::to_string(me.size) + ")");
    // Every rank learns every local size, so a wrong one throws everywhere.
    const auto k = static_cast<std::size_t>(me.size);
    std::vector<std::uint64_t> sizes(k);
    const std::uint64_t mine = local.size();
    detail::check_mpi(MPI_Allgather(&mine, 1, MPI_UINT64_T, sizes.data(), 1, MPI_UINT64_T, comm), "MPI_Allgather");
    std::vector<int> counts(k), displs(k);
    for (std::size_t r = 0; r < k; ++r) {
        const shard s = shard_of(global_batch, static_cast<int>(r), me.size);
        if (sizes[r] != s.count * dim)
            DDPM_THROW(mismatch_error(std::string(where) + ": rank " + std::to_string(r) + " passed local.size() = " +
                                      std::to_string(sizes[r]) + "; expected its shard's " + std::to_string(s.count) +
                                      " samples x D = " + std::to_string(s.count * dim)));
        counts[r] = static_cast<int>(s.count);
        displs[r] = static_cast<int>(s.first);
    }
    MPI_Datatype sample_type;
    detail::check_mpi(MPI_Type_contiguous(static_cast<int>(dim), detail::mpi_type<T>(), &sample_type),
                      "MPI_Type_contiguous");
    detail::check_mpi(MPI_Type_commit(&sample_type), "MPI_Type_commit");
    if (me.rank == root) global.resize(global_batch * dim);
    const int code = MPI_Gatherv(local.data(), counts[static_cast<std::size_t>(me.rank)], sample_type,
                                 me.rank == root ? global.data() : nullptr, counts.data(), displs.data(), sample_type,
                                 root, comm);
    MPI_Type_free(&sample_type);
    detail::check_mpi(code, "MPI_Gatherv");
}

// ---------------------------------------------------------------------------
// Data-parallel training
// ---------------------------------------------------------------------------

/// Feeds every rank's (timestep, loss) pairs to `sampler` on every rank: one
/// all-gather of the counts, one of the timesteps and one of the losses, then
/// sampler.update(all timesteps, all losses) with the pairs in rank order —
/// which, for shards of one global batch, is the global example order. So
/// the sampler's history, probabilities and draws are identical on every rank
/// and equal to those of one process that sees the whole global batch.
/// Collective.
/// @throws mismatch_error (on every rank) when a rank's timesteps and losses
///         differ in size, or the ranks' samplers differ in T, history length
///         or uniform_prob; ddpm::invalid_argument (on every rank, from
///         update) on a timestep outside [0, T) or a non-finite loss; nothing
///         is recorded then.
inline void update_all(MPI_Comm comm, loss_second_moment_sampler& sampler, std::span<const timestep_t> timesteps,
                       std::span<const double> losses) {
    constexpr std::string_view where = "ddpm::distributed::update_all";
    fingerprint f;
    f.add("num_timesteps (T)", sampler.num_timesteps())
        .add("history_per_term", sampler.history_per_term())
        .add("uniform_prob", sampler.uniform_prob());
    check_consistent(comm, f, where);
    const rank_info me = ranks_of(comm);
    const auto k = static_cast<std::size_t>(me.size);
    // counts[r] = rank r's number of pairs, or UINT64_MAX for a size mismatch.
    const std::uint64_t mine = timesteps.size() == losses.size() ? timesteps.size() : UINT64_MAX;
    std::vector<std::uint64_t> counts(k);
    detail::check_mpi(MPI_Allgather(&mine, 1, MPI_UINT64_T, counts.data(), 1, MPI_UINT64_T, comm), "MPI_Allgather");
    std::vector<int> n(k), displs(k);
    std::uint64_t total = 0;
    for (std::size_t r = 0; r < k; ++r) {
        if (counts[r] == UINT64_MAX)
            DDPM_THROW(mismatch_error(std::string(where) + ": rank " + std::to_string(r) +
                                      " passed timesteps and losses of different sizes (one loss per timestep)"));
        if (total + counts[r] > static_cast<std::uint64_t>(INT_MAX))
            DDPM_THROW(mismatch_error(std::string(where) + ": more than INT_MAX pairs in one update"));
        n[r] = static_cast<int>(counts[r]);
        displs[r] = static_cast<int>(total);
        total += counts[r];
    }
    std::vector<timestep_t> all_t(total);
    std::vector<double> all_l(total);
    static_assert(std::is_same_v<timestep_t, std::int64_t>, "update_all sends timesteps as MPI_INT64_T");
    detail::check_mpi(MPI_Allgatherv(timesteps.data(), n[static_cast<std::size_t>(me.rank)], MPI_INT64_T, all_t.data(),
                                     n.data(), displs.data(), MPI_INT64_T, comm),
                      "MPI_Allgatherv");
    detail::check_mpi(MPI_Allgatherv(losses.data(), n[static_cast<std::size_t>(me.rank)], MPI_DOUBLE, all_l.data(),
                                     n.data(), displs.data(), MPI_DOUBLE, comm),
                      "MPI_Allgatherv");
    sampler.update(all_t, all_l); // the same data on every rank: the same result, or the same throw
}

/// A hash of a loss_second_moment_sampler's state (T, every timestep's
/// recorded losses and the probabilities), for checking that the ranks agree
/// (fingerprint::add(name, state_hash(s)) and check_consistent).
[[nodiscard]] inline std::uint64_t state_hash(const loss_second_moment_sampler& s) {
    detail::hasher h;
    h.add(static_cast<std::uint64_t>(s.num_timesteps()));
    for (std::int64_t t = 0; t < s.num_timesteps(); ++t) h.add_all(s.history(t));
    h.add_all(s.probabilities());
    return h.value();
}

} // namespace ddpm::distributed
