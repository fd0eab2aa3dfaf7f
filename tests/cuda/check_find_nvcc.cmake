# tests/cuda/check_find_nvcc.cmake — the ctest cuda_find_nvcc (label
# cuda_host; every build): ddpm_nvcc_candidates (cmake/ddpmFindCUDA.cmake)
# finds nvcc in CUDA_HOME, CUDA_PATH and /usr/local/cuda when it is not on
# PATH (issue 14, item 2), prefers CUDACXX, and says where it looked otherwise.
#
#   cmake -DROOT=<repository> -DWORK=<scratch dir> -P check_find_nvcc.cmake
include(${ROOT}/cmake/ddpmFindCUDA.cmake)
set(fails "")
macro(expect what got want)
    if(NOT "${got}" STREQUAL "${want}")
        string(APPEND fails "\n  ${what}: got '${got}', expected '${want}'")
    endif()
endmacro()

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/home/bin ${WORK}/path/bin ${WORK}/empty)
file(WRITE ${WORK}/home/bin/nvcc "#!/bin/sh\n")
file(WRITE ${WORK}/path/bin/nvcc "#!/bin/sh\n")
set(ENV{PATH} "${WORK}/empty")
unset(ENV{CUDACXX})
unset(ENV{CUDA_HOME})
unset(ENV{CUDA_PATH})

set(ENV{CUDA_HOME} ${WORK}/home)
set(ENV{CUDA_PATH} ${WORK}/path)
ddpm_nvcc_candidates(nvcc why)
expect("CUDA_HOME first" "${nvcc}" "${WORK}/home/bin/nvcc")
expect("CUDA_HOME reason" "${why}" "CUDA_HOME=${WORK}/home")

set(ENV{CUDA_HOME} ${WORK}/empty)
ddpm_nvcc_candidates(nvcc why)
expect("CUDA_PATH when CUDA_HOME has none" "${nvcc}" "${WORK}/path/bin/nvcc")

set(ENV{CUDACXX} /opt/my/nvcc)
ddpm_nvcc_candidates(nvcc why)
expect("CUDACXX wins" "${nvcc}" "/opt/my/nvcc")
unset(ENV{CUDACXX})

unset(ENV{CUDA_HOME})
unset(ENV{CUDA_PATH})
ddpm_nvcc_candidates(nvcc why)
if(EXISTS /usr/local/cuda/bin/nvcc)
    expect("/usr/local/cuda when nothing else" "${nvcc}" "/usr/local/cuda/bin/nvcc")
else()
    expect("nothing found" "${nvcc}" "")
    if(NOT why MATCHES "CUDA_HOME \\(not set\\).*CUDA_PATH \\(not set\\).*/usr/local/cuda/bin")
        string(APPEND fails "\n  reason when nothing is found does not name the places looked: '${why}'")
    endif()
endif()
message(STATUS "no CUDA_HOME/CUDA_PATH: '${nvcc}' (${why})")

file(REMOVE_RECURSE ${WORK})
if(fails)
    message(FATAL_ERROR "ddpm_nvcc_candidates:${fails}")
endif()
message(STATUS "ddpm_nvcc_candidates finds nvcc in CUDACXX, CUDA_HOME, CUDA_PATH, /usr/local/cuda")
