// The g++-compilable headers of the CUDA part, each compiled on its own (and
// twice, for the include guard): tests/headers leaves ddpm/cuda/ to this
// folder, and ddpm/cuda/host_records.hpp is plain C++ that the CPU suite uses.
#include <ddpm/cuda/host_records.hpp>
#include <ddpm/cuda/host_records.hpp>
