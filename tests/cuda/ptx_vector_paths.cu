// The vector path's kernels (V = 4, Full), compiled to PTX for sm_90 by the
// ctest cuda_ptx_vector_stores (check_ptx_vector_stores.cmake): every global
// store of these kernels must be one vector store, every load of the data one
// vector load (docs/cuda.md, "Kernel design"). Nothing here runs.
#include <ddpm/cuda.cuh>

namespace dc = ddpm::cuda::detail;
namespace kg = ddpm::kernels::grid;
namespace ks = ddpm::kernels::scalar;

#define DDPM_PTX_VECTOR_KERNELS(T)                                                                                    \
    template __global__ void dc::forward_kernel<4, true, T>(const kg::forward_args<T>, std::int64_t);                 \
    template __global__ void dc::reverse_kernel<4, true, T, ks::reverse_coefficients<ddpm::cuda::compute_t<T>>>(      \
        const kg::reverse_args<T, ks::reverse_coefficients<ddpm::cuda::compute_t<T>>>, std::int64_t);                 \
    template __global__ void dc::reverse_kernel<4, true, T, ks::ddim_coefficients<ddpm::cuda::compute_t<T>>>(         \
        const kg::reverse_args<T, ks::ddim_coefficients<ddpm::cuda::compute_t<T>>>, std::int64_t);

DDPM_PTX_VECTOR_KERNELS(float)
DDPM_PTX_VECTOR_KERNELS(double)
DDPM_PTX_VECTOR_KERNELS(__half)
DDPM_PTX_VECTOR_KERNELS(__nv_bfloat16)
