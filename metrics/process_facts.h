// Facts about this process for /metrics, read from the kernel at scrape time: resident memory,
// CPU time, open descriptors (see open_fd_count.h) and their limit, start time. Only /proc/self
// is read, which the hardened unit's ProcSubset=pid still shows.
#pragma once

#include <cstdint>

namespace camtunnel::metrics {

struct ProcessFacts {
  double resident_memory_bytes = 0;
  double cpu_seconds = 0;  // user + system, all threads
  double open_fds = 0;
  double max_fds = 0;             // RLIMIT_NOFILE soft limit
  double start_time_seconds = 0;  // Unix time the process started
};

ProcessFacts ReadProcessFacts();

}  // namespace camtunnel::metrics
