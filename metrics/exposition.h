// Building Prometheus metric families from summed shard cells and rendering them with
// prometheus-cpp's TextSerializer (so the text format is the library's, not ours). A scrape is
// the families of a list of prometheus::Collectables (custom collectables over lock-free cells,
// a prometheus::Registry for what is set once), serialized in that order.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <span>
#include <string>
#include <utility>
#include <vector>

namespace camtunnel::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class FamilyBuilder {
 public:
  FamilyBuilder(std::string name, std::string help, prometheus::MetricType type);
  FamilyBuilder& Counter(const Labels& labels, double value);
  FamilyBuilder& Gauge(const Labels& labels, double value);
  // `bounds` upper bounds and `counts` non-cumulative per bucket, counts.size() == bounds+1.
  FamilyBuilder& Histogram(const Labels& labels, const std::vector<double>& bounds,
                           const std::vector<uint64_t>& counts, double sum);
  prometheus::MetricFamily Take() { return std::move(family_); }

 private:
  prometheus::ClientMetric& Add(const Labels& labels);
  prometheus::MetricFamily family_;
};

std::string RenderText(const std::vector<prometheus::MetricFamily>& families);

// Collects every collectable, in order, and serializes all their families: what prometheus-cpp's
// Exposer does per request, for our own admin HTTP server (which runs on a shard's ring).
std::string Scrape(std::span<const prometheus::Collectable* const> collectables);

}  // namespace camtunnel::metrics
