// Invariant checks that every part of camtunnel shares (docs/internals.md, "Errors").
//
//   CT_CHECK(cond)  always on, Release included: a broken invariant whose violation would corrupt
//                   memory or state (a stream freed with ring operations in flight, a null from
//                   an allocation). Logs file:line and the condition to stderr, then aborts.
//   CT_DCHECK(cond) debug builds only (NDEBUG unset, as for assert()): a cheap-to-skip check on a
//                   hot path, or one whose violation the code after it already survives. In
//                   Release the condition is compiled (so it stays valid) but never evaluated.
//   CT_FATAL(what)  an unconditional fatal error with a message: a caller asked for something
//                   that cannot be encoded, or the crypto library failed where it cannot.
//
// Untrusted input and environment failures are never checked this way: they are handled,
// answered and counted.
//
// Why proto/: proto/ is the root of the dependency graph (runtime/, gateway/, manager/,
// agentsim/ and the agent, which depends on proto/ only, all build on it, and it depends on
// nothing of ours), so every part can include this header without a dependency pointing the
// wrong way. It is header-only and needs no library, so tests, fuzz targets and benchmarks can
// use it too. A separate base/ folder would add a node to the graph for one header.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace camtunnel::check_internal {

// Out of line and cold, so a check costs its callers a compare and a branch, not the call setup.
[[noreturn]] [[gnu::cold]] [[gnu::noinline]] inline void Fail(const char* file, int line,
                                                              const char* kind, const char* what) {
  std::fprintf(stderr, "%s:%d: %s: %s\n", file, line, kind, what);
  std::fflush(stderr);
  std::abort();
}

}  // namespace camtunnel::check_internal

#define CT_CHECK(cond)                                                              \
  do {                                                                              \
    if (!(cond)) [[unlikely]] {                                                     \
      ::camtunnel::check_internal::Fail(__FILE__, __LINE__, "check failed", #cond); \
    }                                                                               \
  } while (0)

#define CT_FATAL(what) ::camtunnel::check_internal::Fail(__FILE__, __LINE__, "fatal", (what))

#ifdef NDEBUG
#define CT_DCHECK(cond)        \
  do {                         \
    if (false) {               \
      static_cast<void>(cond); \
    }                          \
  } while (0)
#else
#define CT_DCHECK(cond) CT_CHECK(cond)
#endif
