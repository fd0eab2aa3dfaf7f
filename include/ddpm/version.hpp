// ddpm/version.hpp — library version.
#pragma once

#define DDPM_VERSION_MAJOR 0
#define DDPM_VERSION_MINOR 1
#define DDPM_VERSION_PATCH 0

namespace ddpm {
inline constexpr int version_major = DDPM_VERSION_MAJOR;
inline constexpr int version_minor = DDPM_VERSION_MINOR;
inline constexpr int version_patch = DDPM_VERSION_PATCH;
} // namespace ddpm
