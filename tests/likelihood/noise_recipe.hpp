// tests/likelihood/noise_recipe.hpp — the deterministic pseudo-normal noise of
// tests/data/vlb.json (meta.noise_recipe; tests/data/README.md,
// "Deterministic noise recipe").
#pragma once

#include <cstdint>
#include <vector>

namespace ddpm_test {

/// z_t[i] for i = 0..n-1, evaluated in IEEE float64 left to right with the C
/// math library, exactly as the recipe is written. Compiled with
/// -ffp-contract=off (noise_recipe.cpp): the 43758.5453 factor turns a fused
/// multiply-add's different rounding of a1/a2 into a change of z at ~1e-6.
std::vector<double> vlb_noise(std::int64_t t, std::size_t n);

} // namespace ddpm_test
