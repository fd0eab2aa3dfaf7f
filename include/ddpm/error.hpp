// ddpm/error.hpp — the exception hierarchy.
//
// Every exception ddpm throws derives from ddpm::error *and* from the standard
// exception that fits it, so callers can catch either:
//
//   ddpm::error              (mixin; what() is the message)
//   ├── ddpm::invalid_argument : std::invalid_argument   bad configuration or input
//   ├── ddpm::numerical_error  : std::runtime_error      non-finite values found by a check
//   ├── ddpm::allocation_error : std::bad_alloc          a table or buffer could not be allocated
//   └── ddpm::cuda_error       : std::runtime_error      a CUDA call failed (see ddpm/cuda.cuh)
//
// ddpm::error deliberately does not derive from std::exception itself, so that
// `catch (const std::exception&)` stays unambiguous.
#pragma once

#include "ddpm/config.hpp"

#include <memory>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace ddpm {

/// Base of every ddpm exception. Catch by `const ddpm::error&`.
class error {
public:
    virtual ~error() = default;
    [[nodiscard]] virtual const char* what() const noexcept = 0;

protected:
    error() = default;
    error(const error&) = default;
    error& operator=(const error&) = default;
};

/// Bad configuration or input: the message names the parameter, the value and
/// what was expected.
class invalid_argument : public std::invalid_argument, public error {
public:
    explicit invalid_argument(const std::string& message) : std::invalid_argument(message) {}
    [[nodiscard]] const char* what() const noexcept override { return std::invalid_argument::what(); }
};

/// A finite-value check failed (for example a network that wrote NaN).
class numerical_error : public std::runtime_error, public error {
public:
    explicit numerical_error(const std::string& message) : std::runtime_error(message) {}
    [[nodiscard]] const char* what() const noexcept override { return std::runtime_error::what(); }
};

/// Memory for a table or buffer could not be allocated (std::bad_alloc or
/// std::length_error inside ddpm). Still a std::bad_alloc for callers that
/// catch that; the message names the call and what was being allocated.
class allocation_error : public std::bad_alloc, public error {
public:
    explicit allocation_error(const std::string& message)
        : m_message(std::make_shared<const std::string>(message)) {}
    [[nodiscard]] const char* what() const noexcept override { return m_message->c_str(); }

private:
    std::shared_ptr<const std::string> m_message; // shared: copying an exception must not throw
};

/// A CUDA runtime call failed; the message carries cudaGetErrorString.
class cuda_error : public std::runtime_error, public error {
public:
    explicit cuda_error(const std::string& message) : std::runtime_error(message) {}
    [[nodiscard]] const char* what() const noexcept override { return std::runtime_error::what(); }
};

namespace detail {

/// Builds "<where>: <parameter> = <value>; expected <expectation>".
template <class Value>
[[nodiscard]] std::string describe(std::string_view where, std::string_view parameter, const Value& value,
                                   std::string_view expected) {
    std::ostringstream os;
    os.precision(17);
    os << where << ": " << parameter << " = " << value << "; expected " << expected;
    return os.str();
}

/// Throws ddpm::invalid_argument with a message built by describe().
template <class Value>
[[noreturn]] void throw_invalid(std::string_view where, std::string_view parameter, const Value& value,
                                std::string_view expected) {
    DDPM_THROW(ddpm::invalid_argument(describe(where, parameter, value, expected)));
#if DDPM_NO_EXCEPTIONS
    std::abort();
#endif
}

/// Calls f() and turns an allocation failure inside it (std::bad_alloc,
/// std::length_error) into ddpm::allocation_error naming `where` and
/// describe() (the thing being allocated; called only on failure, so a call
/// that allocates nothing builds no message either). Other exceptions pass
/// through unchanged.
template <class Describe, class F>
decltype(auto) guard_allocation_with(std::string_view where, Describe&& describe, F&& f) {
#if DDPM_NO_EXCEPTIONS
    (void)where;
    (void)describe;
    return f();
#else
    const auto fail = [&](const char* why) {
        return ddpm::allocation_error(std::string(where) + ": cannot allocate " + std::string(describe()) + " (" +
                                      why + ")");
    };
    try {
        return f();
    } catch (const ddpm::error&) {
        throw;
    } catch (const std::bad_alloc& e) {
        throw fail(e.what());
    } catch (const std::length_error& e) {
        throw fail(e.what());
    }
#endif
}

/// guard_allocation_with, naming `what`.
template <class F>
decltype(auto) guard_allocation(std::string_view where, std::string_view what, F&& f) {
    return guard_allocation_with(where, [what] { return what; }, std::forward<F>(f));
}

} // namespace detail
} // namespace ddpm
