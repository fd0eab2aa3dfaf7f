// The MPI-free part of distributed sampling and training
// (ddpm/distributed/shard.hpp): how a global batch is split, and the
// addressing that makes the training draws of K workers equal those of one.
#include <ddpm/ddpm.hpp>
#include <ddpm/distributed/shard.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace dist = ddpm::distributed;

TEST_CASE("shard_of: contiguous slices covering the batch in rank order, sizes differing by at most one") {
    for (std::size_t n : {0, 1, 2, 7, 64, 1000}) {
        for (int k : {1, 2, 3, 5, 8}) {
            std::size_t next = 0, lo = n, hi = 0;
            for (int r = 0; r < k; ++r) {
                const dist::shard s = dist::shard_of(n, r, k);
                CHECK(s.first == next);
                next = s.end();
                lo = std::min(lo, s.count);
                hi = std::max(hi, s.count);
                // The larger slices come first.
                if (r > 0) CHECK(dist::shard_of(n, r - 1, k).count >= s.count);
            }
            CHECK(next == n);
            CHECK(hi - std::min(lo, hi) <= 1);
        }
    }
    CHECK(dist::shard_of(7, 0, 3) == dist::shard{0, 3});
    CHECK(dist::shard_of(7, 1, 3) == dist::shard{3, 2});
    CHECK(dist::shard_of(7, 2, 3) == dist::shard{5, 2});
    CHECK(dist::shard_of(2, 2, 3) == dist::shard{2, 0});
}

TEST_CASE("shard_of and the addressing helpers reject bad arguments, naming them") {
    CHECK_THROWS_WITH(dist::shard_of(5, 0, 0), Catch::Contains("workers = 0"));
    CHECK_THROWS_WITH(dist::shard_of(5, 3, 3), Catch::Contains("rank = 3") && Catch::Contains("[0, 3)"));
    CHECK_THROWS_WITH(dist::shard_of(5, -1, 3), Catch::Contains("rank = -1"));
    std::vector<std::size_t> idx(4, 99);
    CHECK_THROWS_WITH(dist::draw_indices(1, 0, 0, 0, idx), Catch::Contains("dataset_size = 0"));
    CHECK_THROWS_WITH(dist::draw_indices(1, 0, 0xFFFFFFFEu, 10, idx), Catch::Contains("first + count"));
    CHECK(idx == std::vector<std::size_t>(4, 99));
    const ddpm::uniform_timestep_sampler u(10);
    std::vector<ddpm::timestep_t> t(3, -1);
    std::vector<double> w(2, -1);
    CHECK_THROWS_WITH(dist::draw_timesteps(u, 1, 0, 0, t, w), Catch::Contains("weights_out.size() = 2"));
    CHECK(t == std::vector<ddpm::timestep_t>(3, -1));
    CHECK_THROWS_WITH(dist::training_noise(dist::training_seeds::from(1), 0, {0xFFFFFFFFu, 2}),
                      Catch::Contains("first + count"));
}

TEST_CASE("training draws depend on (seed, global example, step) only: K workers equal one") {
    constexpr std::size_t global = 13;
    const auto seeds = dist::training_seeds::from(2024);
    CHECK(seeds.noise == 2024);
    CHECK(seeds.timestep != seeds.noise);
    CHECK(seeds.data != seeds.timestep);

    const ddpm::uniform_timestep_sampler sampler(1000);
    for (std::uint32_t step : {0u, 1u, 77u}) {
        std::vector<ddpm::timestep_t> t_one(global);
        std::vector<double> w_one(global);
        std::vector<std::size_t> i_one(global);
        dist::draw_timesteps(sampler, seeds.timestep, step, 0, t_one, w_one);
        dist::draw_indices(seeds.data, step, 0, 5000, i_one);
        for (int k : {2, 3, 5}) {
            std::vector<ddpm::timestep_t> t_k(global);
            std::vector<double> w_k(global);
            std::vector<std::size_t> i_k(global);
            for (int r = 0; r < k; ++r) {
                const dist::shard s = dist::shard_of(global, r, k);
                dist::draw_timesteps(sampler, seeds.timestep, step, s.first, std::span(t_k).subspan(s.first, s.count),
                                     std::span(w_k).subspan(s.first, s.count));
                dist::draw_indices(seeds.data, step, s.first, 5000, std::span(i_k).subspan(s.first, s.count));
            }
            CHECK(t_k == t_one);
            CHECK(w_k == w_one);
            CHECK(i_k == i_one);
        }
    }

    // The draws are not constant, and differ between steps.
    std::vector<ddpm::timestep_t> a(64), b(64);
    std::vector<double> w(64);
    dist::draw_timesteps(sampler, seeds.timestep, 0, 0, a, w);
    dist::draw_timesteps(sampler, seeds.timestep, 1, 0, b, w);
    CHECK(a != b);
    CHECK(std::count(a.begin(), a.end(), a[0]) < 8);
}

TEST_CASE("training_noise: q_sample on shards equals q_sample on the global batch") {
    constexpr std::size_t global = 9, D = 70; // D > 64: elements cross a noise group
    const ddpm::noise_schedule schedule{ddpm::schedule_config{.num_train_timesteps = 100}};
    const auto seeds = dist::training_seeds::from(5);
    std::vector<float> x0(global * D);
    for (std::size_t i = 0; i < x0.size(); ++i) x0[i] = static_cast<float>(i % 17) * 0.1f - 0.8f;
    std::vector<ddpm::timestep_t> t(global);
    for (std::size_t b = 0; b < global; ++b) t[b] = static_cast<ddpm::timestep_t>((b * 37) % 100);

    std::vector<float> xt_one(global * D), eps_one(global * D);
    ddpm::q_sample(schedule, x0, t, dist::training_noise(seeds, 3, {0, global}), xt_one, eps_one);
    std::vector<float> xt_k(global * D), eps_k(global * D);
    for (int r = 0; r < 4; ++r) {
        const dist::shard s = dist::shard_of(global, r, 4);
        const auto rows = [&](auto& v) { return std::span(v).subspan(s.first * D, s.count * D); };
        ddpm::q_sample(schedule, rows(x0), std::span(t).subspan(s.first, s.count), dist::training_noise(seeds, 3, s),
                       rows(xt_k), rows(eps_k));
    }
    CHECK(xt_k == xt_one);
    CHECK(eps_k == eps_one);
    // ε of example g is normal(noise seed, g, step, i) (stream v2, the default).
    CHECK(eps_one[4 * D + 66] == ddpm::random::normal_at_v2(seeds.noise, 4, 3, 66, D));
}
