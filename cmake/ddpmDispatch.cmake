# ddpm_add_dispatch_objects(<interface-target> <include-dir> <out-var>)
#
# Run-time dispatch of ddpm's SIMD kernels (include/ddpm/dispatch/isa.hpp).
# Adds an OBJECT library `ddpm_dispatch_avx2` that compiles
# <include-dir>/ddpm/dispatch/arch_avx2.cpp once with -mavx2 -mfma
# -ffp-contract=off -O3, and makes <interface-target> (ddpm::xsimd) link its
# object into every consumer, so the kernels can use AVX2+FMA at run time
# whatever flags the consumer compiles with. <out-var> is set to TRUE when
# that was done; FALSE (and nothing added) when DDPM_DISPATCH is OFF, the
# target processor is not x86-64, or the compiler is not GCC or Clang.
#
# Used by ddpm's CMakeLists.txt (build tree, add_subdirectory, FetchContent)
# and by the installed ddpmConfig.cmake (find_package), where the object
# library is created in the consumer's project from the installed source.
function(ddpm_add_dispatch_objects target include_dir out_var)
    set(${out_var} FALSE PARENT_SCOPE)
    if(DEFINED DDPM_DISPATCH AND NOT DDPM_DISPATCH)
        return()
    endif()
    if(NOT CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
        return()
    endif()
    if(NOT CMAKE_CXX_COMPILER_ID MATCHES "^(GNU|Clang|AppleClang)$")
        return()
    endif()
    if(NOT TARGET ddpm_dispatch_avx2)
        add_library(ddpm_dispatch_avx2 OBJECT ${include_dir}/ddpm/dispatch/arch_avx2.cpp)
        target_include_directories(ddpm_dispatch_avx2 PRIVATE ${include_dir})
        target_link_libraries(ddpm_dispatch_avx2 PRIVATE xsimd)
        target_compile_features(ddpm_dispatch_avx2 PRIVATE cxx_std_20)
        target_compile_definitions(ddpm_dispatch_avx2 PRIVATE DDPM_HAS_XSIMD=1)
        # -ffp-contract=off: no multiply-add may be fused, so these kernels give
        # the bits of the SSE2 / scalar code (the noise uses explicit FMAs).
        target_compile_options(ddpm_dispatch_avx2 PRIVATE -mavx2 -mfma -ffp-contract=off -O3)
        set_target_properties(ddpm_dispatch_avx2 PROPERTIES POSITION_INDEPENDENT_CODE ON)
    endif()
    set_property(TARGET ${target} APPEND PROPERTY INTERFACE_SOURCES
        "$<BUILD_INTERFACE:$<TARGET_OBJECTS:ddpm_dispatch_avx2>>")
    set(${out_var} TRUE PARENT_SCOPE)
endfunction()
