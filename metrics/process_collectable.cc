#include "metrics/process_collectable.h"

#include "metrics/exposition.h"
#include "metrics/process_facts.h"

namespace camtunnel::metrics {
namespace {

prometheus::MetricFamily One(std::string name, std::string help, prometheus::MetricType type,
                             double value) {
  FamilyBuilder b(std::move(name), std::move(help), type);
  if (type == prometheus::MetricType::Counter) {
    b.Counter({}, value);
  } else {
    b.Gauge({}, value);
  }
  return b.Take();
}

}  // namespace

std::vector<prometheus::MetricFamily> ProcessCollectable::Collect() const {
  using prometheus::MetricType;
  const ProcessFacts p = ReadProcessFacts();
  const std::string process = "the " + binary_ + " process";
  std::vector<prometheus::MetricFamily> f;
  f.push_back(One("camtunnel_process_resident_memory_bytes",
                  "Resident set size of " + process + ".", MetricType::Gauge,
                  p.resident_memory_bytes));
  f.push_back(One("camtunnel_process_cpu_seconds_total",
                  "CPU time of " + process + " (user + system, all threads).", MetricType::Counter,
                  p.cpu_seconds));
  f.push_back(One("camtunnel_process_open_fds", "File descriptors " + process + " holds open.",
                  MetricType::Gauge, p.open_fds));
  f.push_back(One("camtunnel_process_max_fds",
                  "The process's descriptor limit (RLIMIT_NOFILE soft limit).", MetricType::Gauge,
                  p.max_fds));
  f.push_back(One("camtunnel_process_start_time_seconds",
                  "Start time of " + process + ", Unix seconds.", MetricType::Gauge,
                  p.start_time_seconds));
  return f;
}

}  // namespace camtunnel::metrics
