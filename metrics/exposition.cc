#include "metrics/exposition.h"

#include <prometheus/text_serializer.h>

#include <iterator>
#include <limits>

namespace camtunnel::metrics {

FamilyBuilder::FamilyBuilder(std::string name, std::string help, prometheus::MetricType type) {
  family_.name = std::move(name);
  family_.help = std::move(help);
  family_.type = type;
}

prometheus::ClientMetric& FamilyBuilder::Add(const Labels& labels) {
  prometheus::ClientMetric& m = family_.metric.emplace_back();
  for (const auto& [k, v] : labels) {
    m.label.push_back(prometheus::ClientMetric::Label{k, v});
  }
  return m;
}

FamilyBuilder& FamilyBuilder::Counter(const Labels& labels, double value) {
  Add(labels).counter.value = value;
  return *this;
}

FamilyBuilder& FamilyBuilder::Gauge(const Labels& labels, double value) {
  Add(labels).gauge.value = value;
  return *this;
}

FamilyBuilder& FamilyBuilder::Histogram(const Labels& labels, const std::vector<double>& bounds,
                                        const std::vector<uint64_t>& counts, double sum) {
  prometheus::ClientMetric& m = Add(labels);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds.size(); ++i) {
    cumulative += counts[i];
    m.histogram.bucket.push_back({cumulative, bounds[i]});
  }
  cumulative += counts[bounds.size()];
  m.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = sum;
  return *this;
}

std::string RenderText(const std::vector<prometheus::MetricFamily>& families) {
  return prometheus::TextSerializer().Serialize(families);
}

std::string Scrape(std::span<const prometheus::Collectable* const> collectables) {
  std::vector<prometheus::MetricFamily> families;
  for (const prometheus::Collectable* c : collectables) {
    std::vector<prometheus::MetricFamily> more = c->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
  }
  return RenderText(families);
}

}  // namespace camtunnel::metrics
