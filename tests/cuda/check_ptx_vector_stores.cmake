# tests/cuda/check_ptx_vector_stores.cmake — the ctest cuda_ptx_vector_stores:
#
#   cmake -DPTX=<ptx_vector_paths.ptx> -DEXPECTED=<kernel count> -P check_ptx_vector_stores.cmake
#
# In the PTX of the vector-path kernels (forward_kernel<4, true, T>,
# reverse_kernel<4, true, T, …>; tests/cuda/ptx_vector_paths.cu) every global
# store must be one vector store (st.global.v2/v4) and the data must be read
# with vector loads (ld.global.v2/v4): docs/cuda.md, "Kernel design". Scalar
# loads of the coefficients and records are allowed. Fails naming each kernel
# with a scalar store. Needs only nvcc (no GPU).
if(NOT EXISTS "${PTX}")
    message(FATAL_ERROR "PTX file '${PTX}' not found (build the target ddpm_ptx_vector_paths)")
endif()
file(READ "${PTX}" ptx)
# Make the text safe as a CMake list, then one element per kernel.
string(REPLACE ";" " " ptx "${ptx}")
string(REPLACE "[" "(" ptx "${ptx}")
string(REPLACE "]" ")" ptx "${ptx}")
string(REPLACE ".entry " ";" entries "${ptx}")
list(POP_FRONT entries) # the module header
set(checked 0)
set(bad "")
foreach(entry IN LISTS entries)
    string(REGEX MATCH "^[A-Za-z0-9_]+" name "${entry}")
    if(NOT name MATCHES "(forward|reverse)_kernelILi4ELb1E")
        continue()
    endif()
    math(EXPR checked "${checked} + 1")
    string(REGEX MATCHALL "st\\.global\\.[bfsu][0-9]+" scalar_stores "${entry}")
    string(REGEX MATCHALL "st\\.global\\.v[24]\\.[bfsu][0-9]+" vector_stores "${entry}")
    string(REGEX MATCHALL "ld\\.global(\\.nc)?\\.v[24]\\.[bfsu][0-9]+" vector_loads "${entry}")
    list(LENGTH scalar_stores n_scalar)
    list(LENGTH vector_stores n_vector)
    list(LENGTH vector_loads n_loads)
    message(STATUS "${name}: ${n_vector} vector stores, ${n_scalar} scalar stores, ${n_loads} vector loads")
    if(n_scalar GREATER 0 OR n_vector EQUAL 0 OR n_loads EQUAL 0)
        string(APPEND bad "\n  ${name}: ${n_scalar} scalar stores, ${n_vector} vector stores, ${n_loads} vector loads")
    endif()
endforeach()
if(NOT checked EQUAL EXPECTED)
    message(FATAL_ERROR "found ${checked} vector-path kernels in ${PTX}, expected ${EXPECTED}")
endif()
if(bad)
    message(FATAL_ERROR "vector-path kernels with scalar global stores (or no vector access):${bad}")
endif()
message(STATUS "all ${checked} vector-path kernels store and load with vector instructions only")
