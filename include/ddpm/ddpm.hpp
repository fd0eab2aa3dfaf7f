// ddpm/ddpm.hpp — the umbrella header.
//
// Includes the standard-library-only parts of ddpm: schedules, the maths on a
// batch, the counter-based generator, the CPU kernels (SIMD when xsimd is
// available), samplers and the denoiser concept. Adapters (Eigen, xtensor) and
// CUDA (ddpm/cuda.cuh) are included explicitly by the user.
#pragma once

#include "ddpm/config.hpp"
#include "ddpm/error.hpp"
#include "ddpm/version.hpp"

#include "ddpm/schedule/beta_schedule.hpp"
#include "ddpm/schedule/noise_schedule.hpp"
#include "ddpm/schedule/profile.hpp"
