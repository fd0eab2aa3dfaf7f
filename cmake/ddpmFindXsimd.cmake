# ddpm_find_xsimd(<out-var>)
#
# Finds xsimd honouring DDPM_ENABLE_XSIMD (AUTO/ON/OFF) and sets <out-var> to
# TRUE when the imported target `xsimd` is usable.
#
# Debian 12 (xsimd 8.1.0): the installed xsimd target lists `xtl` in its link
# interface, but xsimdConfig.cmake never calls find_dependency(xtl). Unless
# xtl's config runs first, linking fails with "cannot find -lxtl". So we look
# for xtl quietly before xsimd.
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
    if(TARGET xsimd)
        set(${out_var} TRUE PARENT_SCOPE)
    endif()
endfunction()
