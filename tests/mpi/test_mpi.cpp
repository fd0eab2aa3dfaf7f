// ddpm/distributed/mpi.hpp under mpirun -np 1, 2 and 3 (tests/mpi/CMakeLists.txt).
//
// Every rank also runs the one-process reference itself (the batches are
// small), so each rank checks its own shard and the root checks the gathered
// batch, bit for bit. Checks after a collective use CHECK, never REQUIRE, so a
// failure on one rank cannot leave the others waiting in the next collective.
#define CATCH_CONFIG_RUNNER
#include <ddpm/ddpm.hpp>
#include <ddpm/distributed/mpi.hpp>

#include <catch2/catch.hpp>

#include <mpi.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace dist = ddpm::distributed;

namespace {

dist::rank_info world() { return dist::ranks_of(MPI_COMM_WORLD); }

/// A network that treats samples independently (as the bit-identity needs):
/// ε̂[b, d] = tanh(0.7 x[b, d]) (0.5 + t/T) + 0.05 x[b, (d + 1) mod D].
template <class T, class Tv = ddpm::timestep_t>
struct row_model {
    std::size_t dim;
    double num_timesteps;
    void operator()(std::span<const T> x, std::span<const Tv> t, std::span<T> out) const {
        for (std::size_t b = 0; b < t.size(); ++b) {
            const T scale = static_cast<T>(0.5 + static_cast<double>(t[b]) / num_timesteps);
            for (std::size_t d = 0; d < dim; ++d)
                out[b * dim + d] = std::tanh(T(0.7) * x[b * dim + d]) * scale + T(0.05) * x[b * dim + (d + 1) % dim];
        }
    }
};

/// row_model for a scheduler with real-valued timesteps (the Euler family).
template <class T>
using row_model_continuous = row_model<T, T>;

template <class T>
bool same_bits(std::span<const T> a, std::span<const T> b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

/// Runs `scheduler` sharded over MPI_COMM_WORLD (each rank with rank + 1
/// threads) and checks the local shard and the gathered batch against the
/// one-process run, bit for bit.
template <class T, class Scheduler, class OneProcess, template <class...> class Model = row_model>
void check_sharded(const Scheduler& scheduler, std::size_t global, std::size_t dim, std::uint64_t seed,
                   OneProcess one_process) {
    const Model<T> model{dim, static_cast<double>(scheduler.schedule().size())};
    std::vector<T> reference(global * dim);
    one_process(model, ddpm::counter_noise(seed, dim), reference, ddpm::sampler_options{.batch = global});

    const dist::rank_info me = world();
    ddpm::sampler_options opt;
    opt.exec.threads = static_cast<unsigned>(me.rank % 2 + 1); // results do not depend on it
    std::vector<T> local;
    const dist::shard s = dist::sample_shard(MPI_COMM_WORLD, scheduler, model, seed, global, dim, local, opt);
    CHECK(s == dist::shard_of(global, me.rank, me.size));
    CHECK(local.size() == s.count * dim);
    CHECK(same_bits<T>(local, std::span<const T>(reference).subspan(s.first * dim, s.count * dim)));

    std::vector<T> gathered;
    const int root = me.size - 1; // not always rank 0
    dist::gather_shards<T>(MPI_COMM_WORLD, root, global, dim, local, gathered);
    if (me.rank == root) {
        CHECK(gathered.size() == global * dim);
        CHECK(same_bits<T>(gathered, reference));
    } else {
        CHECK(gathered.empty());
    }
}

} // namespace

TEST_CASE("sharded DDPM sampling is bit-identical to one process, uneven shards and empty ones included") {
    const ddpm::noise_schedule schedule{ddpm::schedule_config{.num_train_timesteps = 40}};
    const ddpm::ddpm_scheduler<float> scheduler(schedule);
    const auto one = [&](auto& model, const ddpm::counter_noise& noise, std::vector<float>& out,
                         const ddpm::sampler_options& o) { ddpm::sample(scheduler, model, noise, out, o); };
    // D = 70: a sample's elements cross a 64-element noise group.
    check_sharded<float>(scheduler, 7, 70, 11, one);  // 7 over 2 or 3 ranks: uneven
    check_sharded<float>(scheduler, 2, 3, 12, one);   // over 3 ranks one shard is empty
    check_sharded<float>(scheduler, 1, 5, 13, one);
}

TEST_CASE("sharded DDPM sampling with a strided chain and dynamic thresholding, in double") {
    const ddpm::noise_schedule schedule{ddpm::schedule_config{.num_train_timesteps = 100}};
    ddpm::ddpm_scheduler<double> scheduler(schedule, ddpm::model_options{.clip = ddpm::clip_options::dynamic()});
    scheduler.set_timesteps(10);
    const auto one = [&](auto& model, const ddpm::counter_noise& noise, std::vector<double>& out,
                         const ddpm::sampler_options& o) { ddpm::sample(scheduler, model, noise, out, o); };
    check_sharded<double>(scheduler, 5, 9, 21, one);
}

TEST_CASE("sharded DDIM sampling (eta = 0 and eta = 0.7) is bit-identical to one process") {
    const ddpm::noise_schedule schedule{ddpm::schedule_config{.num_train_timesteps = 200}};
    for (const double eta : {0.0, 0.7}) {
        ddpm::ddim_scheduler<float> scheduler(schedule, {}, ddpm::ddim_options{.eta = eta});
        scheduler.set_timesteps(12);
        const auto one = [&](auto& model, const ddpm::counter_noise& noise, std::vector<float>& out,
                             const ddpm::sampler_options& o) { ddpm::ddim_sample(scheduler, model, noise, out, o); };
        check_sharded<float>(scheduler, 8, 33, 31, one);
        check_sharded<float>(scheduler, 5, 130, 32, one);
    }
}

TEST_CASE("sharded DPM-Solver (SDE, with noise) and UniPC sampling are bit-identical to one process") {
    const ddpm::noise_schedule schedule{ddpm::schedule_config{.num_train_timesteps = 200}};
    ddpm::dpm_solver_multistep_scheduler<float> dpm(schedule, {},
                                                    ddpm::dpm_solver_options{.algorithm = ddpm::dpm_algorithm::sde_dpmsolver_pp});
    dpm.set_timesteps(10);
    check_sharded<float>(dpm, 7, 70, 41,
                         [&](auto& model, const ddpm::counter_noise& noise, std::vector<float>& out,
                             const ddpm::sampler_options& o) { ddpm::dpm_solver_sample(dpm, model, noise, out, o); });
    ddpm::unipc_scheduler<double> unipc(schedule, {}, ddpm::unipc_options{.solver_order = 3});
    unipc.set_timesteps(8);
    check_sharded<double>(unipc, 5, 33, 42,
                          [&](auto& model, const ddpm::counter_noise& noise, std::vector<double>& out,
                              const ddpm::sampler_options& o) { ddpm::unipc_sample(unipc, model, noise, out, o); });
}

TEST_CASE("sharded Euler ancestral sampling (real-valued timesteps, noise every step) equals one process") {
    const ddpm::noise_schedule schedule{ddpm::schedule_config{.num_train_timesteps = 200}};
    ddpm::euler_ancestral_scheduler<float> euler(schedule);
    euler.set_timesteps(9);
    const auto one = [&](auto& model, const ddpm::counter_noise& noise, std::vector<float>& out,
                         const ddpm::sampler_options& o) { ddpm::sample(euler, model, noise, out, o); };
    check_sharded<float, ddpm::euler_ancestral_scheduler<float>, decltype(one), row_model_continuous>(euler, 7, 70,
                                                                                                       51, one);
}

TEST_CASE("sharded sampling from the caller's x_T (start_from_input) equals one process") {
    constexpr std::size_t global = 7, D = 5;
    const ddpm::noise_schedule schedule{ddpm::schedule_config{.num_train_timesteps = 100}};
    ddpm::ddim_scheduler<float> scheduler(schedule, {}, ddpm::ddim_options{.eta = 0.5});
    scheduler.set_timesteps(6);
    const row_model<float> model{D, 100.0};
    std::vector<float> x_T(global * D);
    for (std::size_t i = 0; i < x_T.size(); ++i) x_T[i] = std::sin(static_cast<float>(i)) * 1.5f;
    std::vector<float> reference = x_T;
    ddpm::ddim_sample(scheduler, model, ddpm::counter_noise(3, D), reference,
                      ddpm::sampler_options{.batch = global, .start_from_input = true});

    const dist::shard s = dist::shard_of(MPI_COMM_WORLD, global);
    std::vector<float> local(x_T.begin() + static_cast<std::ptrdiff_t>(s.first * D),
                             x_T.begin() + static_cast<std::ptrdiff_t>(s.end() * D));
    dist::sample_shard(MPI_COMM_WORLD, scheduler, model, 3u, global, D, local,
                       ddpm::sampler_options{.start_from_input = true});
    CHECK(same_bits<float>(local, std::span<const float>(reference).subspan(s.first * D, s.count * D)));

    // The local x_T must hold exactly the shard: a wrong size throws on every rank.
    std::vector<float> wrong(s.count * D + 1, 0.0f);
    CHECK_THROWS_AS(dist::sample_shard(MPI_COMM_WORLD, scheduler, model, 3u, global, D, wrong,
                                       ddpm::sampler_options{.start_from_input = true}),
                    ddpm::error);
    CHECK(wrong == std::vector<float>(s.count * D + 1, 0.0f));
}

TEST_CASE("the generic sample_shard runs any one-process sampler on the rank's slice") {
    // A stand-in for a scheduler ddpm does not know: x_0 = 2 z + global index.
    const dist::rank_info me = world();
    constexpr std::size_t global = 10, D = 4;
    std::vector<double> local;
    const dist::shard s = dist::sample_shard<double>(
        MPI_COMM_WORLD, 7, global, D, local,
        [&](std::span<double> out, const ddpm::counter_noise& noise, const dist::shard& slice) {
            CHECK(slice == dist::shard_of(global, me.rank, me.size));
            CHECK(out.size() == slice.count * D);
            noise.fill_rows(out, 0, D);
            for (auto& v : out) v *= 2;
        });
    CHECK(s == dist::shard_of(global, me.rank, me.size));
    bool ok = local.size() == s.count * D;
    for (std::size_t b = 0; ok && b < s.count; ++b)
        for (std::size_t d = 0; d < D; ++d)
            ok = ok && local[b * D + d] ==
                           2.0 * static_cast<double>(ddpm::random::normal_at_v2(7, static_cast<std::uint32_t>(s.first + b), 0, d, D));
    CHECK(ok);
}

TEST_CASE("the importance sampler is identical on every rank and equal to one process with the global batch") {
    const dist::rank_info me = world();
    constexpr std::int64_t T = 20;
    constexpr std::size_t global = 11;
    const auto seeds = dist::training_seeds::from(99);
    ddpm::loss_second_moment_sampler sampler(T, 3), reference(T, 3);
    const dist::shard s = dist::shard_of(global, me.rank, me.size);
    // A deterministic "loss" of example g at timestep t.
    const auto loss_of = [](ddpm::timestep_t t, std::size_t g, std::uint32_t step) {
        return 0.1 + static_cast<double>(t) * 0.05 + 0.01 * static_cast<double>((g * 7 + step) % 5);
    };
    bool draws_equal = true;
    for (std::uint32_t step = 0; step < 40; ++step) {
        std::vector<ddpm::timestep_t> t(s.count), t_all(global);
        std::vector<double> w(s.count), w_all(global), l(s.count), l_all(global);
        dist::draw_timesteps(sampler, seeds.timestep, step, s.first, t, w);
        dist::draw_timesteps(reference, seeds.timestep, step, 0, t_all, w_all);
        for (std::size_t b = 0; b < s.count; ++b) {
            draws_equal = draws_equal && t[b] == t_all[s.first + b] && w[b] == w_all[s.first + b];
            l[b] = loss_of(t[b], s.first + b, step);
        }
        for (std::size_t g = 0; g < global; ++g) l_all[g] = loss_of(t_all[g], g, step);
        dist::update_all(MPI_COMM_WORLD, sampler, t, l);
        reference.update(t_all, l_all);
    }
    CHECK(draws_equal);
    CHECK(sampler.warmed_up());
    CHECK(dist::state_hash(sampler) == dist::state_hash(reference));
    bool same = true;
    for (std::size_t t = 0; t < static_cast<std::size_t>(T); ++t)
        same = same && sampler.probabilities()[t] == reference.probabilities()[t];
    CHECK(same);
    // Every rank holds the same state: a fingerprint of it passes the check.
    dist::fingerprint f;
    f.add("the importance sampler's state", dist::state_hash(sampler));
    CHECK_NOTHROW(dist::check_consistent(MPI_COMM_WORLD, f, "test"));
}

TEST_CASE("update_all: a size mismatch on one rank throws the same error on every rank") {
    const dist::rank_info me = world();
    ddpm::loss_second_moment_sampler sampler(10, 2);
    const std::vector<ddpm::timestep_t> t{1, 2};
    const std::vector<double> l = me.rank == me.size - 1 ? std::vector<double>{0.5} : std::vector<double>{0.5, 0.25};
    const std::string expected = "rank " + std::to_string(me.size - 1) + " passed timesteps and losses of different sizes";
    CHECK_THROWS_AS(dist::update_all(MPI_COMM_WORLD, sampler, t, l), dist::mismatch_error);
    CHECK_THROWS_WITH(dist::update_all(MPI_COMM_WORLD, sampler, t, l), Catch::Contains(expected));
    CHECK(sampler.history(1).empty()); // nothing recorded
    // A non-finite loss (on any rank) throws from update on every rank.
    const std::vector<double> bad = me.rank == 0 ? std::vector<double>{0.5, std::nan("")} : std::vector<double>{0.5, 0.25};
    CHECK_THROWS_WITH(dist::update_all(MPI_COMM_WORLD, sampler, t, bad), Catch::Contains("a finite number"));
    // Samplers built differently on one rank.
    if (me.size > 1) {
        ddpm::loss_second_moment_sampler other(10, 2, me.rank == me.size - 1 ? 0.25 : 0.5);
        const std::vector<double> ok{0.5, 0.25};
        CHECK_THROWS_WITH(dist::update_all(MPI_COMM_WORLD, other, t, ok),
                          Catch::Contains("the ranks disagree on uniform_prob: rank 0 has 0.5, rank " +
                                          std::to_string(me.size - 1) + " has 0.25"));
    }
}

TEST_CASE("options that differ across ranks throw the same clear error on every rank") {
    const dist::rank_info me = world();
    const bool odd_one = me.size > 1 && me.rank == me.size - 1;
    const std::string last = std::to_string(me.size - 1);
    const ddpm::noise_schedule schedule{ddpm::schedule_config{.num_train_timesteps = 30}};
    const ddpm::ddpm_scheduler<float> scheduler(schedule);
    const row_model<float> model{4, 30.0};
    std::vector<float> local{1, 2, 3};

    // The seed.
    if (me.size > 1) {
        CHECK_THROWS_WITH(dist::sample_shard(MPI_COMM_WORLD, scheduler, model, odd_one ? 43u : 42u, 6, 4, local),
                          Catch::Contains("the ranks disagree on seed: rank 0 has 42, rank " + last + " has 43"));
        CHECK(local == std::vector<float>{1, 2, 3}); // untouched
    } else {
        CHECK_NOTHROW(dist::sample_shard(MPI_COMM_WORLD, scheduler, model, 42u, 6, 4, local));
    }

    // T and the schedule.
    const ddpm::noise_schedule other{ddpm::schedule_config{.num_train_timesteps = odd_one ? 31 : 30}};
    const ddpm::ddpm_scheduler<float> s2(other);
    if (me.size > 1)
        CHECK_THROWS_WITH(dist::sample_shard(MPI_COMM_WORLD, s2, model, 1u, 6, 4, local),
                          Catch::Contains("the ranks disagree on num_train_timesteps (T): rank 0 has 30, rank " + last +
                                          " has 31"));
    // The same T, another schedule: caught by the schedule hash.
    const ddpm::noise_schedule cosine{ddpm::schedule_config{
        .num_train_timesteps = 30,
        .schedule = odd_one ? ddpm::beta_schedule::squaredcos_cap_v2 : ddpm::beta_schedule::linear}};
    if (me.size > 1)
        CHECK_THROWS_WITH(dist::sample_shard(MPI_COMM_WORLD, ddpm::ddpm_scheduler<float>(cosine), model, 1u, 6, 4, local),
                          Catch::Contains("the ranks disagree on the noise schedule: rank 0 has hash 0x"));
    // The batch.
    if (me.size > 1)
        CHECK_THROWS_WITH(dist::sample_shard(MPI_COMM_WORLD, scheduler, model, 1u, odd_one ? 7u : 6u, 4, local),
                          Catch::Contains("the ranks disagree on the global batch (N): rank 0 has 6, rank " + last +
                                          " has 7"));
    // gather_shards with a wrong local size on one rank.
    std::vector<float> part(dist::shard_of(MPI_COMM_WORLD, 5).count * 2 + (me.rank == me.size - 1 ? 1 : 0));
    std::vector<float> out;
    CHECK_THROWS_AS(dist::gather_shards<float>(MPI_COMM_WORLD, 0, 5, 2, part, out), dist::mismatch_error);
    // Bad values, the same everywhere: invalid_argument on every rank.
    CHECK_THROWS_WITH(dist::sample_shard(MPI_COMM_WORLD, scheduler, model, 1u, 0, 4, local),
                      Catch::Contains("global_batch = 0"));
}

TEST_CASE("a throw inside one rank's sampler throws on every rank instead of hanging") {
    const dist::rank_info me = world();
    const ddpm::noise_schedule schedule{ddpm::schedule_config{.num_train_timesteps = 10}};
    const ddpm::ddpm_scheduler<float> scheduler(schedule);
    const int bad_rank = me.size - 1;
    const auto model = [&](std::span<const float>, std::span<const ddpm::timestep_t>, std::span<float> out) {
        if (me.rank == bad_rank) throw std::runtime_error("network failed on purpose");
        for (auto& v : out) v = 0;
    };
    std::vector<float> local;
    if (me.rank == bad_rank)
        CHECK_THROWS_WITH(dist::sample_shard(MPI_COMM_WORLD, scheduler, model, 1u, 6, 2, local),
                          "network failed on purpose");
    else
        CHECK_THROWS_WITH(dist::sample_shard(MPI_COMM_WORLD, scheduler, model, 1u, 6, 2, local),
                          Catch::Contains("rank " + std::to_string(bad_rank) + " failed"));
}

TEST_CASE("shared_seed gives every rank the root's seed") {
    const dist::rank_info me = world();
    CHECK(dist::shared_seed(MPI_COMM_WORLD, 1000u + static_cast<unsigned>(me.rank)) == 1000u);
    CHECK(dist::shared_seed(MPI_COMM_WORLD, 5000u + static_cast<unsigned>(me.rank), me.size - 1) ==
          5000u + static_cast<unsigned>(me.size - 1));
    const std::uint64_t fresh = dist::shared_seed(MPI_COMM_WORLD);
    dist::fingerprint f;
    f.add("seed", fresh);
    CHECK_NOTHROW(dist::check_consistent(MPI_COMM_WORLD, f, "test"));
}

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    const int failed = Catch::Session().run(argc, argv);
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any == 0 ? 0 : 1;
}
