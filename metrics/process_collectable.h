// The camtunnel_process_* families (memory, CPU, descriptors, start time), read from the kernel
// when a scrape collects them: prometheus-cpp's Collectable model for facts nobody updates. They
// are not instruments in a prometheus::Registry because a Registry's Counter can only be
// incremented, and these are read, not counted.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <string>
#include <utility>
#include <vector>

namespace camtunnel::metrics {

class ProcessCollectable final : public prometheus::Collectable {
 public:
  // `binary` names the process in the help texts ("gateway": "... of the gateway process").
  explicit ProcessCollectable(std::string binary) : binary_(std::move(binary)) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::string binary_;
};

}  // namespace camtunnel::metrics
