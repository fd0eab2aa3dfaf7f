// A user of ddpm: includes the umbrella header, builds the default schedule
// and prints what the CMake-integration tests look for.
#include <ddpm/ddpm.hpp>

#include <iostream>

int main() {
    const ddpm::noise_schedule schedule{ddpm::schedule_config{}};
    std::cout << "ddpm schedule size " << schedule.size() << '\n';
    std::cout << "DDPM_HAS_XSIMD=" << DDPM_HAS_XSIMD << '\n';
    return schedule.size() > 0 ? 0 : 1;
}
