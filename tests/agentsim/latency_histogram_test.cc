#include "agentsim/latency_histogram.h"

#include <gtest/gtest.h>

namespace camtunnel::agentsim {
namespace {

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 0; v < 16; ++v) {
    h.Record(v);
  }
  EXPECT_EQ(h.count(), 16u);
  EXPECT_EQ(h.Percentile(0.5), 7u);
  EXPECT_EQ(h.Percentile(1.0), 15u);
  EXPECT_EQ(h.min(), 0u);
}

TEST(LatencyHistogramTest, PercentilesWithinBucketError) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100000; ++v) {
    h.Record(v);
  }
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const double exact = q * 100000;
    const double got = static_cast<double>(h.Percentile(q));
    EXPECT_GE(got, exact) << q;
    EXPECT_LE(got, exact * 1.0625 + 1) << q;
  }
  EXPECT_EQ(h.Percentile(1.0), 100000u);
}

TEST(LatencyHistogramTest, BucketsCoverEveryValueInOrder) {
  int last = -1;
  for (uint64_t v : {0ull, 15ull, 16ull, 31ull, 32ull, 1000ull, 1ull << 40, ~0ull}) {
    const int b = LatencyHistogram::BucketOf(v);
    EXPECT_GT(b, last);
    EXPECT_LT(b, LatencyHistogram::kBuckets);
    EXPECT_GE(LatencyHistogram::BucketUpper(b), v);
    last = b;
  }
}

TEST(LatencyHistogramTest, MergeAddsCountsAndCountAtOrBelowIsCumulative) {
  LatencyHistogram a;
  LatencyHistogram b;
  a.Record(1000);
  b.Record(3000);
  a.Merge(b);
  EXPECT_EQ(a.count(), 2u);
  EXPECT_EQ(a.max(), 3000u);
  EXPECT_EQ(a.CountAtOrBelow(2000), 1u);
  EXPECT_EQ(a.CountAtOrBelow(1u << 20), 2u);
}

TEST(LatencyHistogramTest, JsonRoundTripKeepsEveryBucket) {
  LatencyHistogram a;
  for (uint64_t v : {3u, 900u, 1500u, 1501u, 250000u}) {
    a.Record(v);
  }
  const auto b = LatencyHistogram::FromJson(a.ToJson());
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->ToJson(), a.ToJson());
  EXPECT_EQ(b->count(), 5u);
  EXPECT_EQ(b->min(), 3u);
  EXPECT_EQ(b->max(), 250000u);
  EXPECT_EQ(b->Percentile(0.5), a.Percentile(0.5));
}

TEST(LatencyHistogramTest, FromJsonRejectsCountsThatDoNotAddUp) {
  LatencyHistogram a;
  a.Record(10);
  nlohmann::json j = a.ToJson();
  j["count"] = 2;
  EXPECT_FALSE(LatencyHistogram::FromJson(j).has_value());
  EXPECT_FALSE(LatencyHistogram::FromJson(nlohmann::json::object()).has_value());
  j = a.ToJson();
  j["buckets"][0][0] = LatencyHistogram::kBuckets;
  EXPECT_FALSE(LatencyHistogram::FromJson(j).has_value());
}

}  // namespace
}  // namespace camtunnel::agentsim
