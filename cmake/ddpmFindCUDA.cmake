# CUDA detection for ddpm's CUDA tests, example and benchmark.
#
# ddpm_nvcc_candidates(<out-var> <why-var>)
#   The nvcc to try, in order: CMAKE_CUDA_COMPILER or the CUDACXX environment
#   variable when set (the user's choice, as CMake itself honours it), nvcc on
#   PATH, then $CUDA_HOME/bin/nvcc, $CUDA_PATH/bin/nvcc and
#   /usr/local/cuda/bin/nvcc. <out-var> is the first that exists (empty if
#   none); <why-var> says where it came from, or where was looked when none
#   was found. No side effects: the ctest cuda_find_nvcc runs it in script mode.
#
# ddpm_enable_cuda(<mode> <out-var>)
#   mode AUTO/ON/OFF. Finds nvcc as above, lets check_language(CUDA) try it
#   (a test project that must compile), enables the CUDA language, and prints
#   which nvcc was taken — or, with AUTO, why CUDA is off (ON: a fatal error).
#   Default architectures when CMAKE_CUDA_ARCHITECTURES is not set:
#   75-real;80-real;90 — SASS for Turing (T4), Ampere (A100) and Hopper, and
#   PTX for compute_90 so that newer GPUs can JIT it. sm_75 is nvcc 13's
#   oldest target.
function(ddpm_nvcc_candidates out why)
    set(found "")
    set(from "")
    set(looked "PATH")
    if(CMAKE_CUDA_COMPILER)
        set(found "${CMAKE_CUDA_COMPILER}")
        set(from "CMAKE_CUDA_COMPILER")
    elseif(DEFINED ENV{CUDACXX} AND NOT "$ENV{CUDACXX}" STREQUAL "")
        set(found "$ENV{CUDACXX}")
        set(from "the CUDACXX environment variable")
    else()
        find_program(_ddpm_nvcc_on_path nvcc NO_CACHE)
        if(_ddpm_nvcc_on_path)
            set(found "${_ddpm_nvcc_on_path}")
            set(from "PATH (or the system program directories)")
        endif()
    endif()
    foreach(var IN ITEMS CUDA_HOME CUDA_PATH)
        if(found)
            break()
        endif()
        if(DEFINED ENV{${var}} AND NOT "$ENV{${var}}" STREQUAL "")
            set(candidate "$ENV{${var}}/bin/nvcc")
            if(EXISTS "${candidate}" AND NOT IS_DIRECTORY "${candidate}")
                set(found "${candidate}")
                set(from "${var}=$ENV{${var}}")
            else()
                string(APPEND looked ", ${var}=$ENV{${var}} (no bin/nvcc)")
            endif()
        else()
            string(APPEND looked ", ${var} (not set)")
        endif()
    endforeach()
    if(NOT found)
        if(EXISTS "/usr/local/cuda/bin/nvcc")
            set(found "/usr/local/cuda/bin/nvcc")
            set(from "/usr/local/cuda")
        else()
            string(APPEND looked ", /usr/local/cuda/bin")
            set(from "no nvcc on ${looked}")
        endif()
    endif()
    set(${out} "${found}" PARENT_SCOPE)
    set(${why} "${from}" PARENT_SCOPE)
endfunction()

macro(ddpm_enable_cuda mode out)
    set(${out} OFF)
    if("${mode}" STREQUAL "OFF")
        message(STATUS "ddpm: CUDA off (DDPM_ENABLE_CUDA=OFF)")
    else()
        # A NOTFOUND cached by an earlier configure (before nvcc was installed): look again.
        if(DEFINED CMAKE_CUDA_COMPILER AND NOT CMAKE_CUDA_COMPILER)
            unset(CMAKE_CUDA_COMPILER CACHE)
        endif()
        ddpm_nvcc_candidates(_ddpm_nvcc _ddpm_nvcc_from)
        if(_ddpm_nvcc)
            if(NOT DEFINED CMAKE_CUDA_COMPILER)
                # check_language and enable_language read CUDACXX in their test project.
                set(ENV{CUDACXX} "${_ddpm_nvcc}")
            endif()
            include(CheckLanguage)
            check_language(CUDA)
        endif()
        if(_ddpm_nvcc AND CMAKE_CUDA_COMPILER)
            if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
                set(CMAKE_CUDA_ARCHITECTURES "75-real;80-real;90" CACHE STRING
                    "CUDA architectures (ddpm default: SASS for sm_75, sm_80, sm_90 and PTX for compute_90)")
            endif()
            enable_language(CUDA)
            set(${out} ON)
            message(STATUS "ddpm: CUDA on — nvcc ${CMAKE_CUDA_COMPILER} (${CMAKE_CUDA_COMPILER_VERSION}, from "
                           "${_ddpm_nvcc_from}), architectures ${CMAKE_CUDA_ARCHITECTURES}")
        else()
            if(_ddpm_nvcc)
                set(_ddpm_cuda_why "${_ddpm_nvcc} (from ${_ddpm_nvcc_from}) failed CMake's CUDA test project "
                                   "(see CMakeFiles/CMakeOutput.log and CMakeError.log)")
            else()
                set(_ddpm_cuda_why "${_ddpm_nvcc_from}; set CMAKE_CUDA_COMPILER, CUDACXX or CUDA_HOME")
            endif()
            if("${mode}" STREQUAL "ON")
                message(FATAL_ERROR "ddpm: DDPM_ENABLE_CUDA=ON but CUDA cannot be enabled: ${_ddpm_cuda_why}")
            endif()
            message(STATUS "ddpm: CUDA off — ${_ddpm_cuda_why}")
        endif()
    endif()
endmacro()
