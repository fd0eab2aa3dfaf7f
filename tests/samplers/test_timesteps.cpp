// Timestep spacing (diffusers' set_timesteps) and improved-diffusion's
// space_timesteps. Expected values are derived by hand from the algorithms
// (numpy linspace / float arange with round-half-to-even; Python round()).
#include <catch2/catch.hpp>

#include <ddpm/samplers/timesteps.hpp>

#include <string>
#include <vector>

using ddpm::timestep_spacing;
using ts_vec = std::vector<ddpm::timestep_t>;

TEST_CASE("timestep_spacing strings are diffusers'", "[samplers][timesteps]") {
    for (const auto s : {timestep_spacing::linspace, timestep_spacing::leading, timestep_spacing::trailing})
        CHECK(ddpm::timestep_spacing_from_string(ddpm::to_string(s)) == s);
    CHECK(ddpm::to_string(timestep_spacing::linspace) == "linspace");
    CHECK(ddpm::to_string(timestep_spacing::leading) == "leading");
    CHECK(ddpm::to_string(timestep_spacing::trailing) == "trailing");
    CHECK_THROWS_AS(ddpm::timestep_spacing_from_string("Leading"), ddpm::invalid_argument);
    CHECK_THROWS_WITH(ddpm::timestep_spacing_from_string("uniform"), Catch::Contains("timestep_spacing"));
}

TEST_CASE("make_timesteps reproduces diffusers' set_timesteps", "[samplers][timesteps]") {
    SECTION("T = 10, N = 4") {
        // linspace(0, 9, 4) = 0, 3, 6, 9
        CHECK(ddpm::make_timesteps(10, 4, timestep_spacing::linspace) == ts_vec{9, 6, 3, 0});
        // r = 10 // 4 = 2
        CHECK(ddpm::make_timesteps(10, 4, timestep_spacing::leading) == ts_vec{6, 4, 2, 0});
        CHECK(ddpm::make_timesteps(10, 4, timestep_spacing::leading, 1) == ts_vec{7, 5, 3, 1});
        // arange(10, 0, −2.5) = 10, 7.5, 5, 2.5 → round half even 10, 8, 5, 2 → −1
        CHECK(ddpm::make_timesteps(10, 4, timestep_spacing::trailing) == ts_vec{9, 7, 4, 1});
        CHECK(ddpm::make_timesteps(10, 4, timestep_spacing::trailing, 3) == ts_vec{9, 7, 4, 1}); // offset ignored
        CHECK(ddpm::make_timesteps(10, 4, timestep_spacing::linspace, 3) == ts_vec{9, 6, 3, 0}); // offset ignored
    }
    SECTION("T = 1000, N = 50") {
        const auto lead = ddpm::make_timesteps(1000, 50, timestep_spacing::leading);
        REQUIRE(lead.size() == 50);
        CHECK(lead.front() == 980);
        CHECK(lead[1] == 960);
        CHECK(lead.back() == 0);
        const auto trail = ddpm::make_timesteps(1000, 50, timestep_spacing::trailing);
        REQUIRE(trail.size() == 50);
        CHECK(trail.front() == 999);
        CHECK(trail.back() == 19);
        // linspace(0, 999, 50): step 999/49 = 20.387…; 2·20.39 = 40.78 → 41, so 999 − 41 = 958
        const auto lin = ddpm::make_timesteps(1000, 50, timestep_spacing::linspace);
        REQUIRE(lin.size() == 50);
        CHECK(ts_vec(lin.begin(), lin.begin() + 4) == ts_vec{999, 979, 958, 938});
        CHECK(lin.back() == 0);
    }
    SECTION("T = 1000, N = 3 and N = 1") {
        CHECK(ddpm::make_timesteps(1000, 3, timestep_spacing::linspace) == ts_vec{999, 500, 0}); // 499.5 → 500
        CHECK(ddpm::make_timesteps(1000, 3, timestep_spacing::leading) == ts_vec{666, 333, 0});
        CHECK(ddpm::make_timesteps(1000, 3, timestep_spacing::trailing) == ts_vec{999, 666, 332});
        CHECK(ddpm::make_timesteps(1000, 1, timestep_spacing::linspace) == ts_vec{0});
        CHECK(ddpm::make_timesteps(1000, 1, timestep_spacing::leading) == ts_vec{0});
        CHECK(ddpm::make_timesteps(1000, 1, timestep_spacing::trailing) == ts_vec{999});
    }
    SECTION("N = T gives the full chain for every spacing") {
        for (const auto s : {timestep_spacing::linspace, timestep_spacing::leading, timestep_spacing::trailing}) {
            const auto ts = ddpm::make_timesteps(1000, 1000, s);
            REQUIRE(ts.size() == 1000);
            for (std::size_t i = 0; i < ts.size(); ++i) CHECK(ts[i] == 999 - static_cast<ddpm::timestep_t>(i));
        }
    }
    SECTION("bad arguments name the parameter") {
        CHECK_THROWS_WITH(ddpm::make_timesteps(1000, 1001), Catch::Contains("num_inference_steps"));
        CHECK_THROWS_AS(ddpm::make_timesteps(1000, 1001), ddpm::invalid_argument);
        CHECK_THROWS_WITH(ddpm::make_timesteps(1000, 0), Catch::Contains("num_inference_steps"));
        CHECK_THROWS_WITH(ddpm::make_timesteps(1000, 10, timestep_spacing::leading, -1), Catch::Contains("steps_offset"));
        CHECK_THROWS_WITH(ddpm::make_timesteps(1000, 10, timestep_spacing::leading, 100), Catch::Contains("steps_offset"));
        CHECK_THROWS_WITH(ddpm::make_timesteps(0, 1), Catch::Contains("num_train_timesteps"));
    }
}

TEST_CASE("custom timesteps must be strictly descending and in range", "[samplers][timesteps]") {
    CHECK_NOTHROW(ddpm::check_custom_timesteps(ts_vec{999, 500, 3, 0}, 1000));
    CHECK_THROWS_WITH(ddpm::check_custom_timesteps(ts_vec{999, 500, 500}, 1000), Catch::Contains("timesteps[2]"));
    CHECK_THROWS_WITH(ddpm::check_custom_timesteps(ts_vec{10, 20}, 1000), Catch::Contains("descending"));
    CHECK_THROWS_WITH(ddpm::check_custom_timesteps(ts_vec{1000, 20}, 1000), Catch::Contains("timesteps[0]"));
    CHECK_THROWS_WITH(ddpm::check_custom_timesteps(ts_vec{20, -1}, 1000), Catch::Contains("timesteps[1]"));
    CHECK_THROWS_AS(ddpm::check_custom_timesteps(ts_vec{}, 1000), ddpm::invalid_argument);
}

TEST_CASE("space_timesteps matches improved-diffusion", "[samplers][timesteps][respace]") {
    SECTION("ddim50: stride 20") {
        const auto k = ddpm::space_timesteps(1000, "ddim50");
        REQUIRE(k.size() == 50);
        for (std::size_t i = 0; i < 50; ++i) CHECK(k[i] == static_cast<ddpm::timestep_t>(20 * i));
    }
    SECTION("ddim25: stride 40") {
        const auto k = ddpm::space_timesteps(1000, "ddim25");
        REQUIRE(k.size() == 25);
        CHECK(k.front() == 0);
        CHECK(k[1] == 40);
        CHECK(k.back() == 960);
    }
    SECTION("ddim3: the smallest stride with ceil(1000/s) = 3 is 334") {
        CHECK(ddpm::space_timesteps(1000, "ddim3") == ts_vec{0, 334, 668});
    }
    SECTION("10,15,20: sections of 334, 333, 333 steps") {
        const auto k = ddpm::space_timesteps(1000, "10,15,20");
        REQUIRE(k.size() == 45);
        // section 0 [0, 334): stride 333/9 = 37
        for (std::size_t i = 0; i < 10; ++i) CHECK(k[i] == static_cast<ddpm::timestep_t>(37 * i));
        // section 1 [334, 667): stride 332/14 = 23.714…: 0, 23.7 → 24, 47.4 → 47, 71.1 → 71, …, 332
        CHECK(ts_vec(k.begin() + 10, k.begin() + 15) == ts_vec{334, 358, 381, 405, 429});
        CHECK(k[24] == 666);
        // section 2 [667, 1000): stride 332/19 = 17.47…: 0, 17.5 → 17, 34.9 → 35, …, 332
        CHECK(ts_vec(k.begin() + 25, k.begin() + 28) == ts_vec{667, 684, 702});
        CHECK(k.back() == 999);
    }
    SECTION("round half to even: \"5\" over 1000 keeps 0, 250, 500, 749, 999") {
        // stride 999/4 = 249.75: 499.5 rounds to 500 (even), 749.25 to 749
        CHECK(ddpm::space_timesteps(1000, "5") == ts_vec{0, 250, 500, 749, 999});
    }
    SECTION("a count of 1 keeps the section start, 0 keeps nothing") {
        CHECK(ddpm::space_timesteps(1000, "1,1") == ts_vec{0, 500});
        CHECK(ddpm::space_timesteps(100, "0,2") == ts_vec{50, 99});
    }
    SECTION("bad strings") {
        CHECK_THROWS_AS(ddpm::space_timesteps(1000, "ddim999"), ddpm::invalid_argument);
        CHECK_THROWS_WITH(ddpm::space_timesteps(1000, "ddimx"), Catch::Contains("section_counts"));
        CHECK_THROWS_WITH(ddpm::space_timesteps(1000, "10,x"), Catch::Contains("section_counts"));
        CHECK_THROWS_WITH(ddpm::space_timesteps(1000, ""), Catch::Contains("section_counts"));
        CHECK_THROWS_WITH(ddpm::space_timesteps(10, "6,1"), Catch::Contains("section_counts[0]"));
        CHECK_THROWS_WITH(ddpm::space_timesteps(10, "-1"), Catch::Contains("section_counts[0]"));
    }
}
