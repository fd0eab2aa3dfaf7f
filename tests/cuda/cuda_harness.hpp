// tests/cuda/cuda_harness.hpp — a small test runner for the .cu tests (Catch2
// v2 through nvcc is slow to compile and has no "skipped" result).
//
//   DDPM_CUDA_TEST(name) { ... DDPM_EXPECT(cond) << "context"; ... }
//
// main(): with no usable CUDA device, prints "no CUDA device — skipped" (and
// the reason) and returns 77, which ctest reports as skipped
// (SKIP_RETURN_CODE), never as passed. Otherwise runs every test (or those
// named on the command line), catching exceptions, and returns 1 if any
// expectation failed. `--list` prints the test names; `--device` only probes
// (prints the device, exit 0; or "no CUDA device", exit 77).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace ddpm_cuda_harness {

inline constexpr int skip_code = 77;

struct test_case {
    const char* name;
    void (*fn)();
};

inline std::vector<test_case>& registry() {
    static std::vector<test_case> r;
    return r;
}

struct registrar {
    registrar(const char* name, void (*fn)()) { registry().push_back({name, fn}); }
};

inline int& failures() {
    static int f = 0;
    return f;
}
inline int& checks() {
    static int c = 0;
    return c;
}

/// Collects the message of a failed expectation and prints it when destroyed.
class failure_report {
public:
    failure_report(bool ok, const char* expr, const char* file, int line) : m_ok(ok) {
        ++checks();
        if (!ok) {
            ++failures();
            m_os << file << ":" << line << ": FAILED: " << expr;
        }
    }
    failure_report(const failure_report&) = delete;
    ~failure_report() {
        if (!m_ok) std::cerr << m_os.str() << "\n";
    }
    template <class V>
    failure_report& operator<<(const V& v) {
        if (!m_ok) m_os << (m_first ? " — " : "") << v;
        m_first = false;
        return *this;
    }

private:
    bool m_ok;
    bool m_first = true;
    std::ostringstream m_os;
};

/// A CUDA device is usable: at least one, and the runtime can talk to it.
inline bool device_available(std::string& why) {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        why = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
        (void)cudaGetLastError();
        return false;
    }
    if (n == 0) {
        why = "cudaGetDeviceCount() = 0";
        return false;
    }
    return true;
}

inline int run_all(int argc, char** argv) {
    std::vector<std::string> only;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--list") == 0) {
            for (const auto& t : registry()) std::cout << t.name << "\n";
            return 0;
        }
        if (std::strcmp(argv[i], "--device") == 0) { // the device probe of run_gpu_checks.sh
            std::string why;
            if (!device_available(why)) {
                std::cout << "no CUDA device (" << why << ")\n";
                return skip_code;
            }
            cudaDeviceProp prop{};
            const cudaError_t e = cudaGetDeviceProperties(&prop, 0);
            if (e != cudaSuccess) {
                std::cout << "no usable CUDA device (" << cudaGetErrorString(e) << ")\n";
                return skip_code;
            }
            std::cout << "device 0: " << prop.name << " (sm_" << prop.major << prop.minor << ")\n";
            return 0;
        }
        only.emplace_back(argv[i]);
    }
    std::string why;
    if (!device_available(why)) {
        std::cout << "no CUDA device — skipped (" << why << ")\n";
        return skip_code;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        std::cout << "device 0: " << prop.name << " (sm_" << prop.major << prop.minor << ")\n";
    int run = 0;
    for (const auto& t : registry()) {
        if (!only.empty() && std::find(only.begin(), only.end(), t.name) == only.end()) continue;
        const int before = failures();
        std::cout << "[ RUN  ] " << t.name << std::endl;
        try {
            t.fn();
            const cudaError_t e = cudaDeviceSynchronize();
            if (e != cudaSuccess) {
                ++failures();
                std::cerr << "  CUDA error after the test: " << cudaGetErrorString(e) << "\n";
            }
        } catch (const std::exception& ex) {
            ++failures();
            std::cerr << "  exception: " << ex.what() << "\n";
        }
        std::cout << (failures() == before ? "[  OK  ] " : "[ FAIL ] ") << t.name << std::endl;
        ++run;
    }
    std::cout << run << " test(s), " << checks() << " check(s), " << failures() << " failure(s)\n";
    if (run == 0) {
        std::cout << "no test matched\n";
        return 1;
    }
    return failures() == 0 ? 0 : 1;
}

} // namespace ddpm_cuda_harness

#define DDPM_CUDA_TEST_CAT2(a, b) a##b
#define DDPM_CUDA_TEST_CAT(a, b) DDPM_CUDA_TEST_CAT2(a, b)
#define DDPM_CUDA_TEST(name)                                                                                  \
    static void name();                                                                                       \
    static const ::ddpm_cuda_harness::registrar DDPM_CUDA_TEST_CAT(ddpm_cuda_registrar_, name)(#name, name); \
    static void name()

/// Checks a condition; stream extra context into it: DDPM_EXPECT(a == b) << "i = " << i;
#define DDPM_EXPECT(cond) ::ddpm_cuda_harness::failure_report((cond), #cond, __FILE__, __LINE__)

/// Expects `expr` to throw `Ex`.
#define DDPM_EXPECT_THROWS(expr, Ex)                                                \
    do {                                                                            \
        bool ddpm_thrown_ = false;                                                  \
        try {                                                                       \
            (void)(expr);                                                           \
        } catch (const Ex&) {                                                       \
            ddpm_thrown_ = true;                                                    \
        }                                                                           \
        DDPM_EXPECT(ddpm_thrown_) << "expected " #Ex " from " #expr;                \
    } while (false)

#define DDPM_CUDA_TEST_MAIN()                                                    \
    int main(int argc, char** argv) { return ::ddpm_cuda_harness::run_all(argc, argv); }
