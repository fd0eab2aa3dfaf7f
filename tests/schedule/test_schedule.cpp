#include <catch2/catch.hpp>
#include <ddpm/schedule/noise_schedule.hpp>
TEST_CASE("placeholder") { CHECK(ddpm::noise_schedule(ddpm::schedule_config{}).size() == 1000); }
