#include "agentsim/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace camtunnel::agentsim {

int LatencyHistogram::BucketOf(uint64_t us) {
  if (us < static_cast<uint64_t>(kSub)) {
    return static_cast<int>(us);
  }
  const int e = 63 - std::countl_zero(us);  // >= kSubBits
  const int shift = e - kSubBits;
  const int sub = static_cast<int>(us >> shift) - kSub;  // 0 .. kSub-1
  return (e - kSubBits + 1) * kSub + sub;
}

uint64_t LatencyHistogram::BucketUpper(int bucket) {
  if (bucket < kSub) {
    return static_cast<uint64_t>(bucket);
  }
  const int e = bucket / kSub + kSubBits - 1;
  const int sub = bucket % kSub;
  const int shift = e - kSubBits;
  const uint64_t lower = static_cast<uint64_t>(kSub + sub) << shift;
  return lower + ((uint64_t{1} << shift) - 1);
}

void LatencyHistogram::Record(uint64_t us) {
  ++counts_[static_cast<size_t>(BucketOf(us))];
  ++count_;
  sum_ += us;
  min_ = std::min(min_, us);
  max_ = std::max(max_, us);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) {
    counts_[i] += other.counts_[i];
  }
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

uint64_t LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) {
    return 0;
  }
  q = std::clamp(q, 0.0, 1.0);
  // The rank of the sample at quantile q, 1-based (the nearest-rank definition).
  const auto rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * count_)));
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += counts_[static_cast<size_t>(b)];
    if (seen >= rank) {
      return std::min(BucketUpper(b), max_);
    }
  }
  return max_;
}

uint64_t LatencyHistogram::CountAtOrBelow(uint64_t us) const {
  uint64_t n = 0;
  for (int b = 0; b < kBuckets && BucketUpper(b) <= us; ++b) {
    n += counts_[static_cast<size_t>(b)];
  }
  return n;
}

nlohmann::json LatencyHistogram::ToJson() const {
  nlohmann::json buckets = nlohmann::json::array();
  for (size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] != 0) {
      buckets.push_back({i, counts_[i]});
    }
  }
  return {{"count", count_}, {"sum", sum_}, {"min", min()}, {"max", max_}, {"buckets", buckets}};
}

std::optional<LatencyHistogram> LatencyHistogram::FromJson(const nlohmann::json& j) {
  LatencyHistogram h;
  uint64_t total = 0;
  try {
    for (const auto& b : j.at("buckets")) {
      const auto i = b.at(0).get<uint64_t>();
      if (i >= static_cast<uint64_t>(kBuckets)) {
        return std::nullopt;
      }
      h.counts_[i] += b.at(1).get<uint64_t>();
      total += b.at(1).get<uint64_t>();
    }
    h.count_ = j.at("count").get<uint64_t>();
    h.sum_ = j.at("sum").get<uint64_t>();
    h.min_ = h.count_ == 0 ? UINT64_MAX : j.at("min").get<uint64_t>();
    h.max_ = j.at("max").get<uint64_t>();
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // report files are read at the end of a run, never on the data path
  }
  if (total != h.count_) {
    return std::nullopt;
  }
  return h;
}

}  // namespace camtunnel::agentsim
