// FUZZ_CHECK(cond): an invariant of a fuzz target. A violation aborts, which libFuzzer reports
// as a crash with the input that caused it (asserts may be compiled out; this never is).
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)
