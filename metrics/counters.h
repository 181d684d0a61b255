// Lock-free metric cells for the hot path. Each cell has exactly one writer (its shard's
// thread), so an increment is a relaxed load and store, not a locked read-modify-write; the
// scraper reads them from another thread with relaxed loads and sums shards at scrape time.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>

namespace camtunnel::metrics {

class Counter {
 public:
  void Add(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t Get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Add(int64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  int64_t Get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Fixed-bucket histogram of seconds. Bounds are upper bounds, ascending; +Inf is implicit.
template <size_t N>
class Histogram {
 public:
  explicit constexpr Histogram(const std::array<double, N>& bounds) : bounds_(bounds) {}

  void Observe(double seconds) {
    size_t i = 0;
    while (i < N && seconds > bounds_[i]) {
      ++i;
    }
    buckets_[i].Add(1);
    const uint64_t ns = seconds > 0 ? static_cast<uint64_t>(seconds * 1e9) : 0;
    sum_ns_.Add(ns);
  }
  const std::array<double, N>& bounds() const { return bounds_; }
  // Non-cumulative count of bucket i (i == N is +Inf).
  uint64_t Bucket(size_t i) const { return buckets_[i].Get(); }
  double SumSeconds() const { return static_cast<double>(sum_ns_.Get()) / 1e9; }

 private:
  std::array<double, N> bounds_;
  std::array<Counter, N + 1> buckets_;
  Counter sum_ns_;
};

}  // namespace camtunnel::metrics
