# tests/cuda/check_stream_ordered_copies.cmake — the ctest
# cuda_stream_ordered_copies (label cuda_host; every build, no nvcc needed):
#
#   cmake -DROOT=<repository> -P check_stream_ordered_copies.cmake
#
# Issue 14, item 4: a plain cudaMemcpy/cudaMemset runs on the legacy default
# stream, which a cudaStreamNonBlocking stream is not ordered after (and a
# pageable host-to-device cudaMemcpy may return before the data has landed).
# The library's setup copies therefore go through device_buffer::upload /
# fill_bytes and device_schedule (cudaMemcpyAsync / cudaMemsetAsync on the
# caller's stream, then cudaStreamSynchronize of it). This check fails when a
# legacy-stream copy or memset appears in the library headers
# (include/ddpm/cuda/) or in the tests' shared helpers (device_util.cuh,
# whose poison() once raced the sampler's stream).
set(files)
file(GLOB library ${ROOT}/include/ddpm/cuda/*.cuh ${ROOT}/include/ddpm/cuda/*.hpp ${ROOT}/include/ddpm/cuda.cuh)
list(APPEND files ${library} ${ROOT}/tests/cuda/device_util.cuh)
set(bad "")
set(scanned 0)
foreach(f IN LISTS files)
    if(NOT EXISTS "${f}")
        message(FATAL_ERROR "missing ${f}")
    endif()
    math(EXPR scanned "${scanned} + 1")
    file(STRINGS "${f}" lines)
    set(n 0)
    foreach(line IN LISTS lines)
        math(EXPR n "${n} + 1")
        # Comments may name the calls.
        string(REGEX REPLACE "//.*$" "" code "${line}")
        string(REGEX MATCHALL "cuda(Memcpy|Memset)[A-Za-z0-9]*[ ]*\\(" calls "${code}")
        foreach(call IN LISTS calls)
            if(NOT call MATCHES "Async[ ]*\\($")
                file(RELATIVE_PATH rel "${ROOT}" "${f}")
                string(APPEND bad "\n  ${rel}:${n}: ${call}")
            endif()
        endforeach()
    endforeach()
endforeach()
if(scanned LESS 10)
    message(FATAL_ERROR "scanned only ${scanned} files under ${ROOT}: wrong ROOT?")
endif()
if(bad)
    message(FATAL_ERROR "legacy-stream copies/memsets (use device_buffer::upload/fill_bytes or an Async call on the "
                        "caller's stream followed by cudaStreamSynchronize):${bad}")
endif()
message(STATUS "${scanned} files: every copy and memset is stream-ordered")
