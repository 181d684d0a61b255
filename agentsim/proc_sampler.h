// CPU and resident memory of a process, from /proc/<pid>/stat and /proc/<pid>/statm, sampled
// once a second: the gateway's (soak, --gateway_pid) and agentsim's own (how many agents one
// core sustains).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace camtunnel::agentsim {

struct ProcSample {
  double t_s = 0;          // seconds since the sampler started
  double cpu_percent = 0;  // over the last interval; 100 = one core
  uint64_t rss_bytes = 0;
};

// utime + stime of the process so far, in seconds; nullopt if it cannot be read.
std::optional<double> ProcessCpuSeconds(pid_t pid);

class ProcSampler {
 public:
  explicit ProcSampler(pid_t pid);

  // Reads the process now; nullopt once it has gone (or was never readable).
  std::optional<ProcSample> Sample(uint64_t now_ms);
  bool alive() const { return alive_; }
  pid_t pid() const { return pid_; }

  // Samples kept with Keep() (the soak report's time series).
  void Keep(const ProcSample& s) { series_.push_back(s); }
  const std::vector<ProcSample>& series() const { return series_; }

  // Average CPU and peak RSS over every sample since ResetSummary().
  void ResetSummary();
  double mean_cpu_percent() const { return samples_ == 0 ? 0 : cpu_sum_ / samples_; }
  double max_cpu_percent() const { return cpu_max_; }
  uint64_t max_rss_bytes() const { return rss_max_; }
  uint64_t last_rss_bytes() const { return rss_last_; }

 private:
  pid_t pid_;
  bool alive_ = true;
  uint64_t start_ms_ = 0;
  uint64_t last_ms_ = 0;
  uint64_t last_ticks_ = 0;
  std::vector<ProcSample> series_;
  uint64_t samples_ = 0;
  double cpu_sum_ = 0;
  double cpu_max_ = 0;
  uint64_t rss_max_ = 0;
  uint64_t rss_last_ = 0;
};

}  // namespace camtunnel::agentsim
