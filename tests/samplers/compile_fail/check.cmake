# Compiles one snippet and checks the outcome (run by ctest as cmake -P).
#   -DCXX=<compiler> -DINCLUDE_DIR=<include/> -DSOURCE=<snippet.cpp>
#   -DEXPECT=pass|fail -DPATTERN=<text the diagnostic must contain>
# A failing snippet must fail to compile, name PATTERN, and stay readable: at
# most a handful of "error:" lines (the static_assert at the public entry,
# not a page of template noise).
foreach(var CXX INCLUDE_DIR SOURCE EXPECT)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "check.cmake: -D${var}=... is required")
    endif()
endforeach()
execute_process(
    COMMAND ${CXX} -std=c++20 -fsyntax-only -Wall -Wextra -DDDPM_HAS_XSIMD=0 -I${INCLUDE_DIR} ${SOURCE}
    RESULT_VARIABLE rc
    OUTPUT_VARIABLE out
    ERROR_VARIABLE err)
set(log "${out}${err}")
if(EXPECT STREQUAL "pass")
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "positive control ${SOURCE} did not compile:\n${log}")
    endif()
    message(STATUS "compiled as expected: ${SOURCE}")
    return()
endif()
if(rc EQUAL 0)
    message(FATAL_ERROR "${SOURCE} compiled, but a wrong denoiser must be a compile error")
endif()
if(DEFINED PATTERN AND NOT log MATCHES "${PATTERN}")
    message(FATAL_ERROR "${SOURCE} failed to compile, but the diagnostic does not mention '${PATTERN}':\n${log}")
endif()
string(REGEX MATCHALL "error:" errors "${log}")
list(LENGTH errors n_errors)
if(n_errors GREATER 2)
    message(FATAL_ERROR "${SOURCE}: ${n_errors} errors; expected the single static_assert:\n${log}")
endif()
message(STATUS "failed as expected (${n_errors} error line(s)), naming '${PATTERN}': ${SOURCE}")
