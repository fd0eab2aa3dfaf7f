// tests/inspect/run_inspect.hpp — runs the built ddpm_inspect binary
// (DDPM_INSPECT_EXE) without a shell and captures its output, for the CLI tests.
#pragma once

#include <catch2/catch.hpp>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace ddpm_test {

struct inspect_result {
    int exit_code = -1;
    std::string out;
    std::string err;
};

namespace detail {
inline std::string read_and_remove(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    ::unlink(path.c_str());
    return s.str();
}
} // namespace detail

/// Runs ddpm_inspect with `args`, capturing stdout and stderr.
inline inspect_result run_inspect(const std::vector<std::string>& args) {
    const std::string tmp = std::filesystem::temp_directory_path().string();
    std::string out_path = tmp + "/ddpm_inspect_out_XXXXXX";
    std::string err_path = tmp + "/ddpm_inspect_err_XXXXXX";
    const int out_fd = ::mkstemp(out_path.data());
    const int err_fd = ::mkstemp(err_path.data());
    REQUIRE(out_fd >= 0);
    REQUIRE(err_fd >= 0);
    std::vector<std::string> storage;
    storage.emplace_back(DDPM_INSPECT_EXE);
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(out_fd, STDOUT_FILENO);
        ::dup2(err_fd, STDERR_FILENO);
        ::execv(argv[0], argv.data());
        _exit(127);
    }
    ::close(out_fd);
    ::close(err_fd);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    inspect_result r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = detail::read_and_remove(out_path);
    r.err = detail::read_and_remove(err_path);
    return r;
}

} // namespace ddpm_test
