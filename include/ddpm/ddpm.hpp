// ddpm/ddpm.hpp — the umbrella header.
//
// Includes the standard-library-only parts of ddpm: schedules, the maths on a
// batch, the counter-based generator, the CPU kernels (SIMD when xsimd is
// available), samplers and the denoiser concept. Adapters (Eigen, xtensor),
// the scheduler_config.json loader (nlohmann_json) and CUDA (ddpm/cuda.cuh)
// are included explicitly by the user.
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/config.hpp"
#include "ddpm/error.hpp"
#include "ddpm/version.hpp"

#include "ddpm/schedule/beta_schedule.hpp"
#include "ddpm/schedule/noise_schedule.hpp"
#include "ddpm/schedule/profile.hpp"

#include "ddpm/core/clipping.hpp"
#include "ddpm/core/coefficients.hpp"
#include "ddpm/core/forward.hpp"
#include "ddpm/core/likelihood.hpp"
#include "ddpm/core/p_mean_variance.hpp"
#include "ddpm/core/parameterization.hpp"
#include "ddpm/core/posterior.hpp"
#include "ddpm/core/training.hpp"
#include "ddpm/core/types.hpp"

#include "ddpm/random/counter_noise.hpp"
#include "ddpm/random/normal.hpp"
#include "ddpm/random/normal_simd.hpp"
#include "ddpm/random/philox.hpp"
#include "ddpm/random/philox_simd.hpp"

#include "ddpm/kernels/combine.hpp"
#include "ddpm/kernels/fused.hpp"
#include "ddpm/kernels/scalar.hpp"
#include "ddpm/parallel.hpp"

#include "ddpm/denoiser.hpp"
#include "ddpm/samplers/chain.hpp"
#include "ddpm/samplers/ddim.hpp"
#include "ddpm/samplers/ddpm.hpp"
#include "ddpm/samplers/dpm_solver.hpp"
#include "ddpm/samplers/euler.hpp"
#include "ddpm/samplers/heun.hpp"
#include "ddpm/samplers/likelihood.hpp"
#include "ddpm/samplers/multistep.hpp"
#include "ddpm/samplers/noise.hpp"
#include "ddpm/samplers/sigmas.hpp"
#include "ddpm/samplers/timesteps.hpp"
#include "ddpm/samplers/unipc.hpp"
#include "ddpm/schedule/scheduler_config.hpp"
