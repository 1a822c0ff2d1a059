// Tiny helpers shared by the native kernel tests: CHECK that counts failures, random fills, relative norms.
#pragma once
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

static int g_failures = 0;
#define CHECK(cond, ...)                                  \
  do {                                                    \
    if (!(cond)) {                                        \
      std::printf("FAIL %s:%d: ", __FILE__, __LINE__);    \
      std::printf(__VA_ARGS__);                           \
      std::printf("\n");                                  \
      g_failures++;                                       \
    }                                                     \
  } while (0)

inline std::vector<float> randn(std::mt19937& rng, size_t n, float sd = 1.f, float mean = 0.f) {
  std::normal_distribution<float> nd(mean, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// ||a - b|| / ||b|| (b the reference), in double.
template <typename A, typename B>
inline double rel_err(const A* a, const B* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    const double d = (double)a[i] - (double)b[i];
    num += d * d;
    den += (double)b[i] * (double)b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}
inline double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = std::max(m, std::fabs((double)a[i] - (double)b[i]));
  return m;
}
