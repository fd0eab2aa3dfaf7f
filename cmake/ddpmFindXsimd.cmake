# ddpm_find_xsimd(<out-var>)
#
# Finds xsimd honouring DDPM_ENABLE_XSIMD (AUTO/ON/OFF; AUTO when undefined)
# and sets <out-var> to TRUE when the imported target `xsimd` is usable.
#
# Debian 12 (xsimd 8.1.0): the installed xsimd target lists `xtl` in its link
# interface, but xsimdConfig.cmake never calls find_dependency(xtl), and
# libxsimd-dev does not depend on xtl-dev. Unless xtl's config runs first,
# linking fails with "cannot find -lxtl". So we look for xtl quietly before
# xsimd, and treat an xsimd whose `xtl` cannot be resolved as not found (AUTO)
# or as an error (ON).
function(ddpm_find_xsimd out_var)
    set(_mode AUTO)
    if(DEFINED DDPM_ENABLE_XSIMD)
        set(_mode ${DDPM_ENABLE_XSIMD})
    endif()
    set(${out_var} FALSE PARENT_SCOPE)
    if(_mode STREQUAL "OFF")
        return()
    endif()
    if(NOT TARGET xsimd)
        find_package(xtl QUIET)
        if(_mode STREQUAL "ON")
            find_package(xsimd REQUIRED)
        else()
            find_package(xsimd QUIET)
        endif()
    endif()
    if(NOT TARGET xsimd)
        return()
    endif()
    get_target_property(_links xsimd INTERFACE_LINK_LIBRARIES)
    if("xtl" IN_LIST _links AND NOT TARGET xtl)
        set(_why "xsimd's CMake target links `xtl`, but xtl was not found (Debian: apt-get install xtl-dev)")
        if(_mode STREQUAL "ON")
            message(FATAL_ERROR "ddpm: DDPM_ENABLE_XSIMD=ON: ${_why}")
        endif()
        message(STATUS "ddpm: not using xsimd: ${_why}")
        return()
    endif()
    set(${out_var} TRUE PARENT_SCOPE)
endfunction()
