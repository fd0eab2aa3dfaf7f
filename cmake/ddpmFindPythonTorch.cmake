# ddpm_find_python_torch(<var>): sets <var> to a Python interpreter that can
# `import torch`, or to "" when none is found. Tries DDPM_PYTHON (a cache
# variable), then /usr/bin/python3 (Debian's python3-torch), then python3 on
# PATH.
function(ddpm_find_python_torch var)
    set(DDPM_PYTHON "" CACHE FILEPATH "Python with torch, for the LibTorch tests and examples (default: search)")
    set(_candidates ${DDPM_PYTHON} /usr/bin/python3)
    find_program(_ddpm_python3 NAMES python3)
    if(_ddpm_python3)
        list(APPEND _candidates ${_ddpm_python3})
    endif()
    foreach(py IN LISTS _candidates)
        if(EXISTS ${py})
            execute_process(COMMAND ${py} -c "import torch" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
            if(rc EQUAL 0)
                set(${var} ${py} PARENT_SCOPE)
                return()
            endif()
        endif()
    endforeach()
    set(${var} "" PARENT_SCOPE)
endfunction()
