# cmake/ddpmMPI.cmake — MPI for ddpm/distributed/mpi.hpp, its tests and the
# mpi_* examples. Optional: without it those are skipped. Sets MPI_CXX_FOUND,
# MPI::MPI_CXX, MPIEXEC_EXECUTABLE (find_package(MPI)) and
# DDPM_MPIEXEC_FLAGS: the flags every `mpiexec -n K` run gets. For Open MPI
# they default to --oversubscribe (more ranks than cores, as the tests' -np 3
# on a 2-core machine) and --allow-run-as-root (containers, CI); other MPIs
# do not know those flags, so set DDPM_MPIEXEC_FLAGS for yours. Included by
# each directory that needs it (find_package results are directory-scoped).
find_package(MPI COMPONENTS CXX QUIET)
set(_ddpm_mpiexec_default_flags)
if(MPI_CXX_FOUND AND MPIEXEC_EXECUTABLE)
    execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE _ddpm_mpiexec_version ERROR_QUIET)
    if(_ddpm_mpiexec_version MATCHES "Open MPI|OpenRTE")
        set(_ddpm_mpiexec_default_flags --oversubscribe --allow-run-as-root)
    endif()
endif()
set(DDPM_MPIEXEC_FLAGS "${_ddpm_mpiexec_default_flags}" CACHE STRING "Flags of mpiexec for the MPI tests and examples")
