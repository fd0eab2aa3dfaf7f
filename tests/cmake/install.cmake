# cmake -DBUILD_DIR=<ddpm build> -DPREFIX=<dir> [-DCONFIG=<cfg>] -P install.cmake
#
# Installs the ddpm build tree into a fresh PREFIX (the fixture that the
# find_package consumer tests need) and checks the files a user relies on.
foreach(var IN ITEMS BUILD_DIR PREFIX)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "install.cmake: ${var} is not set")
    endif()
endforeach()

file(REMOVE_RECURSE "${PREFIX}")
set(_config)
if(CONFIG)
    set(_config --config "${CONFIG}")
endif()
execute_process(
    COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}" ${_config}
    RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "cmake --install failed (${_rc})")
endif()

foreach(file IN ITEMS
        include/ddpm/ddpm.hpp
        include/ddpm/config.hpp
        share/cmake/ddpm/ddpmConfig.cmake
        share/cmake/ddpm/ddpmConfigVersion.cmake
        share/cmake/ddpm/ddpmTargets.cmake
        share/cmake/ddpm/ddpmFindXsimd.cmake)
    if(NOT EXISTS "${PREFIX}/${file}")
        message(FATAL_ERROR "install.cmake: ${PREFIX}/${file} was not installed")
    endif()
endforeach()
message(STATUS "installed ddpm into ${PREFIX}")
