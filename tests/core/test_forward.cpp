#include <catch2/catch.hpp>
TEST_CASE("forward placeholder") {}
