// tests/samplers/toy.hpp — the golden files' toy network and small helpers
// shared by the sampler parity tests (tests/data/README.md, "Toy model").
#pragma once

#include <ddpm/buffer.hpp>

#include <support/golden.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

namespace ddpm_test {

/// model_output(x, t) = tanh(0.7·x)·(0.5 + t/1000) + 0.05·x in precision T:
/// torch rounds 0.7, 0.05 and (0.5 + t/1000) (a Python double) to T.
template <class T>
std::vector<T> toy_model(std::span<const T> x, std::int64_t t) {
    std::vector<T> out(x.size());
    const T scale = static_cast<T>(0.5 + static_cast<double>(t) / 1000.0);
    // torch's tanh is correctly rounded here, glibc's tanhf/tanh are not
    // always: evaluate it one precision up and round (float via double,
    // double via long double), which reproduces every stored output.
    using wide = std::conditional_t<std::is_same_v<T, float>, double, long double>;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const T th = static_cast<T>(std::tanh(static_cast<wide>(T(0.7) * x[i])));
        out[i] = th * scale + T(0.05) * x[i];
    }
    return out;
}

/// Distance in units in the last place between two finite values of T.
template <class T>
std::uint64_t ulp_distance(T a, T b) {
    if (a == b) return 0;
    if (!std::isfinite(a) || !std::isfinite(b)) return std::numeric_limits<std::uint64_t>::max();
    using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    using S = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
    auto key = [](T v) {
        const auto u = std::bit_cast<U>(v);
        const auto s = static_cast<S>(u);
        // map to a monotone integer line
        return s < 0 ? static_cast<std::int64_t>(std::numeric_limits<S>::min()) - static_cast<std::int64_t>(s)
                     : static_cast<std::int64_t>(s);
    };
    const std::int64_t ka = key(a);
    const std::int64_t kb = key(b);
    return static_cast<std::uint64_t>(ka > kb ? ka - kb : kb - ka);
}

/// Worst differences between a result and a reference (rel_diff with an
/// absolute floor of 1, and ulps in T).
struct diff_stats {
    double rel = 0;
    std::uint64_t ulp = 0;
    void merge(const diff_stats& o) {
        rel = std::max(rel, o.rel);
        ulp = std::max(ulp, o.ulp);
    }
};

template <class T>
diff_stats compare(std::span<const T> got, const std::vector<double>& ref) {
    diff_stats d;
    if (got.size() != ref.size()) return {std::numeric_limits<double>::infinity(), std::numeric_limits<std::uint64_t>::max()};
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double r = ref[i];
        const double g = static_cast<double>(got[i]);
        if (std::isnan(r) || std::isnan(g)) {
            if (!(std::isnan(r) && std::isnan(g))) return {std::numeric_limits<double>::infinity(), std::numeric_limits<std::uint64_t>::max()};
            continue;
        }
        d.rel = std::max(d.rel, rel_diff(g, r, 1.0));
        d.ulp = std::max(d.ulp, ulp_distance<T>(got[i], static_cast<T>(r)));
    }
    return d;
}

} // namespace ddpm_test
