// Compile-only check of the CUDA route of ddpm::torch_denoiser (the pointer
// call of the CUDA sampler with DDPM_TORCH_CUDA=1, which makes the sampler's
// stream current for the module through c10::cuda::CUDAStreamGuard). Built by
// the ctest torch.cuda_route.compile against the c10/cuda headers that ship
// with LibTorch; nothing here runs (no CUDA LibTorch, no GPU).
#include <ddpm/adapters/torch.hpp>

#include <cuda_runtime_api.h>

void ddpm_torch_cuda_route(ddpm::torch_denoiser& net, const float* x, const ddpm::timestep_t* t, float* out, int B,
                           int D, cudaStream_t stream) {
    net(x, t, out, B, D, stream);
}
