// Deterministic random numbers that are the same on every platform and independent of thread count:
// a counter-based generator (splitmix64 of seed and index) and Box–Muller normals. Element i of a
// stream depends only on (seed, i), so initialisation can be split across threads or ranks freely.
#pragma once

#include <cmath>
#include <cstdint>

namespace ratplus {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in (0, 1): 53 random bits, never exactly 0.
inline double uniform_open01(uint64_t seed, uint64_t index) {
  const uint64_t bits = splitmix64(splitmix64(seed) ^ index) >> 11;
  return (static_cast<double>(bits) + 0.5) * 0x1.0p-53;
}

// Standard normal number `index` of stream `seed`.
inline double normal(uint64_t seed, uint64_t index) {
  const double u1 = uniform_open01(seed, 2 * index);
  const double u2 = uniform_open01(seed, 2 * index + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace ratplus
