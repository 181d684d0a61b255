// A small HDR-style histogram of microseconds: exact below 16, then 16 linear sub-buckets per
// power of two, so any percentile is within 6.25% of the true value across 1 us .. hours, in
// 8 KiB of counters and O(1) per sample. One per measured quantity; single-threaded like the
// shard that fills it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "nlohmann/json.hpp"

namespace camtunnel::agentsim {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 4;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = (64 - kSubBits + 1) * kSub;

  void Record(uint64_t us);
  void Merge(const LatencyHistogram& other);
  void Reset() { *this = LatencyHistogram(); }

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0 : static_cast<double>(sum_) / count_; }
  // The value at quantile q in [0, 1] (upper edge of its bucket, never above max()); 0 if empty.
  uint64_t Percentile(double q) const;
  // Samples <= us (exact at bucket edges; used for Prometheus buckets).
  uint64_t CountAtOrBelow(uint64_t us) const;

  // The whole state, buckets as [index, count] pairs (only non-empty ones), so histograms of
  // several processes merge exactly (coordinator.h); percentiles alone would not.
  nlohmann::json ToJson() const;
  // Null when `j` is not what ToJson makes (counts must add up).
  static std::optional<LatencyHistogram> FromJson(const nlohmann::json& j);

  static int BucketOf(uint64_t us);
  static uint64_t BucketUpper(int bucket);

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace camtunnel::agentsim
