// examples/common/mpi_example.hpp — what the MPI examples (mpi_sampling,
// mpi_train_2d) share: their data (a ring of Gaussians), number parsing, and
// a main() that initialises MPI, parses the arguments on every rank, runs the
// example and reports errors per rank.
#pragma once

#include "common/mixture.hpp"

#include <mpi.h>

#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdio>
#include <exception>
#include <numbers>
#include <string_view>
#include <system_error>

namespace examples {

/// `k` Gaussians of standard deviation `std` evenly spaced on the circle of
/// radius `radius`, equal weights (2-D).
inline gaussian_mixture ring_of_gaussians(int k = 8, double radius = 1.6, double std = 0.12) {
    gaussian_mixture mix;
    mix.dim = 2;
    for (int j = 0; j < k; ++j) {
        const double a = 2 * std::numbers::pi * j / k;
        mix.weights.push_back(1.0 / k);
        mix.means.push_back(radius * std::cos(a));
        mix.means.push_back(radius * std::sin(a));
        mix.stds.push_back(std);
    }
    mix.validate();
    return mix;
}

/// A whole decimal number into `out` (no sign for unsigned types, no trailing characters).
template <std::integral I>
bool parse_count(const char* s, I& out) {
    if (s == nullptr) return false;
    const std::string_view v(s);
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    return ec == std::errc{} && end == v.data() + v.size();
}

/// The main() of an MPI example. Every rank parses the arguments:
/// `parse(flag, next)` gets each flag and the argument after it (nullptr at
/// the end) and returns how many it used (1 or 2), or 0 for a bad flag; --help
/// prints `usage`. Then `run()` runs on every rank; an exception is printed
/// with the rank (a collective ddpm error throws the same on every rank).
template <class Parse, class Run>
int mpi_main(int argc, char** argv, const char* name, void (*usage)(std::FILE*), Parse parse, Run run) {
    MPI_Init(&argc, &argv);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int status = 0;
    for (int i = 1; i < argc && status == 0; ++i) {
        const std::string_view flag = argv[i];
        if (flag == "--help" || flag == "-h") {
            if (rank == 0) usage(stdout);
            MPI_Finalize();
            return 0;
        }
        const int used = parse(flag, i + 1 < argc ? argv[i + 1] : nullptr);
        if (used == 0) {
            if (rank == 0) {
                std::fprintf(stderr, "%s: bad argument '%s'\n", name, argv[i]);
                usage(stderr);
            }
            status = 2;
        } else {
            i += used - 1;
        }
    }
    if (status == 0) {
        try {
            status = run();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "%s (rank %d): %s\n", name, rank, e.what());
            status = 1;
        }
    }
    MPI_Finalize();
    return status;
}

} // namespace examples
