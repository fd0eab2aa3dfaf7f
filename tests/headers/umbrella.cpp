// The umbrella header must compile alone, with nothing but -I include:
//   g++|clang++ -std=c++20 -Wall -Wextra -Werror -pedantic -fsyntax-only -I include umbrella.cpp
#include <ddpm/ddpm.hpp>
