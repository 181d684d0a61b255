// camtunnel_process_open_fds without listing /proc/self/fd on every scrape: stat()'s exact count
// where the kernel gives it, else a listing reused for at most kListingMaxAge.
#include "metrics/open_fd_count.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <vector>

namespace camtunnel::metrics {
namespace {

constexpr int kOpened = 24;

// kOpened more descriptors for the life of the object (pipes: two each).
class OpenDescriptors {
 public:
  OpenDescriptors() {
    for (int i = 0; i < kOpened / 2; ++i) {
      int p[2];
      EXPECT_EQ(pipe(p), 0);
      fds_.push_back(p[0]);
      fds_.push_back(p[1]);
    }
  }
  ~OpenDescriptors() {
    for (int fd : fds_) {
      close(fd);
    }
  }

 private:
  std::vector<int> fds_;
};

TEST(OpenFdCountTest, StatCountsDescriptorsAtOnce) {
  OpenFdCount count(OpenFdCount::Source::kStat);
  const auto now = std::chrono::steady_clock::now();
  const int64_t before = count.Get(now);
  if (before <= 0) {
    GTEST_SKIP() << "this kernel reports no size for /proc/self/fd (before Linux 6.2)";
  }
  {
    OpenDescriptors more;
    EXPECT_EQ(count.Get(now), before + kOpened);
  }
  EXPECT_EQ(count.Get(now), before);
}

TEST(OpenFdCountTest, ListingIsReusedUntilItIsMaxAgeOld) {
  OpenFdCount count(OpenFdCount::Source::kListing);
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t before = count.Get(t0);
  ASSERT_GT(before, 0);
  OpenDescriptors more;
  EXPECT_EQ(count.Get(t0 + OpenFdCount::kListingMaxAge - std::chrono::milliseconds(1)), before);
  EXPECT_EQ(count.Get(t0 + OpenFdCount::kListingMaxAge), before + kOpened);
}

TEST(OpenFdCountTest, FirstListingIsFresh) {
  OpenDescriptors more;
  OpenFdCount listing(OpenFdCount::Source::kListing);
  OpenFdCount stat(OpenFdCount::Source::kStat);
  const auto now = std::chrono::steady_clock::now();
  const int64_t exact = stat.Get(now);
  if (exact <= 0) {
    GTEST_SKIP() << "this kernel reports no size for /proc/self/fd (before Linux 6.2)";
  }
  // The listing's own descriptor is not counted: both agree.
  EXPECT_EQ(listing.Get(now), exact);
}

TEST(OpenFdCountTest, DefaultUsesStatWhereTheKernelCounts) {
  OpenFdCount stat(OpenFdCount::Source::kStat);
  const bool kernel_counts = stat.Get(std::chrono::steady_clock::now()) > 0;
  EXPECT_EQ(OpenFdCount().source(),
            kernel_counts ? OpenFdCount::Source::kStat : OpenFdCount::Source::kListing);
}

}  // namespace
}  // namespace camtunnel::metrics
