// Monotonic and wall clocks in milliseconds. One place so tests and timers agree on units.
#pragma once

#include <cstdint>
#include <ctime>

namespace camtunnel::runtime {

inline uint64_t MonotonicMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

inline uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// The clock proto::ControlLink runs on in the io_uring programs: microseconds, so a heartbeat's
// round trip is measured below a millisecond, and signed like the link's deadlines.
inline int64_t MonotonicUs() { return static_cast<int64_t>(MonotonicNs() / 1000); }

// Milliseconds from now until `due_us` (a MonotonicUs time), rounded up; 0 once it is past.
inline uint64_t MsUntil(int64_t due_us) {
  const int64_t left = due_us - MonotonicUs();
  return left > 0 ? static_cast<uint64_t>((left + 999) / 1000) : 0;
}

inline uint64_t WallMs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

}  // namespace camtunnel::runtime
