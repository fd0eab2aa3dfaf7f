// tests/support/golden.hpp — read the peer reference files in tests/data/.
//
// Tensors are stored as {"shape": [...], "dtype": "...", "data": [...]} with
// the flat C-order data; non-finite numbers are the strings "NaN",
// "Infinity", "-Infinity" (see tests/data/README.md).
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace ddpm_test {

inline std::string data_path(const std::string& file) {
    std::string path(DDPM_TEST_DATA_DIR);
    path.push_back('/');
    path.append(file);
    return path;
}

/// Parses tests/data/<file> once and caches it for the process.
inline const nlohmann::json& golden(const std::string& file) {
    static std::map<std::string, nlohmann::json> cache;
    auto it = cache.find(file);
    if (it == cache.end()) {
        std::ifstream in(data_path(file));
        if (!in) throw std::runtime_error("cannot open golden file " + data_path(file));
        it = cache.emplace(file, nlohmann::json::parse(in)).first;
    }
    return it->second;
}

/// One number, accepting the "NaN"/"Infinity"/"-Infinity" strings.
inline double number(const nlohmann::json& j) {
    if (j.is_string()) {
        const auto s = j.get<std::string>();
        if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
        if (s == "Infinity") return std::numeric_limits<double>::infinity();
        if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
        throw std::runtime_error("unexpected string in golden data: " + s);
    }
    return j.get<double>();
}

/// A flat list of numbers, or the data of a tensor object.
template <class T = double>
std::vector<T> values(const nlohmann::json& j) {
    const nlohmann::json& data = (j.is_object() && j.contains("data")) ? j.at("data") : j;
    std::vector<T> out;
    out.reserve(data.size());
    for (const auto& v : data) out.push_back(static_cast<T>(number(v)));
    return out;
}

/// Relative difference with an absolute floor, for tolerance checks.
inline double rel_diff(double a, double b, double floor = 1e-300) {
    if (a == b) return 0.0;
    return std::abs(a - b) / std::max(std::max(std::abs(a), std::abs(b)), floor);
}

/// Largest rel_diff over two arrays (sizes must match).
template <class A, class B>
double max_rel_diff(const A& a, const B& b, double floor = 1e-300) {
    if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
    double m = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double ai = static_cast<double>(a[i]);
        const double bi = static_cast<double>(b[i]);
        if (std::isnan(ai) || std::isnan(bi)) {
            if (!(std::isnan(ai) && std::isnan(bi))) return std::numeric_limits<double>::infinity();
            continue;
        }
        m = std::max(m, rel_diff(ai, bi, floor));
    }
    return m;
}

/// Largest |a - b| over two arrays.
template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
    if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
    double m = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double ai = static_cast<double>(a[i]);
        const double bi = static_cast<double>(b[i]);
        if (std::isnan(ai) || std::isnan(bi)) {
            if (!(std::isnan(ai) && std::isnan(bi))) return std::numeric_limits<double>::infinity();
            continue;
        }
        m = std::max(m, std::abs(ai - bi));
    }
    return m;
}

} // namespace ddpm_test
