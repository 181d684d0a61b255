// How many descriptors this process holds open, for camtunnel_process_open_fds. A gateway holds
// one socket per agent, tunnel and waiting request: tens of thousands. Listing /proc/self/fd
// costs one directory entry per descriptor on every scrape, so the count comes from stat() of
// that directory where the kernel answers it (Linux >= 6.2 reports the number of open
// descriptors as its size, counted from the descriptor bitmap without building any entry), and
// only older kernels list it, at most once per kListingMaxAge.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace camtunnel::metrics {

class OpenFdCount {
 public:
  enum class Source : uint8_t {
    kStat,     // exact on every call, no allocation, no directory entries
    kListing,  // readdir of /proc/self/fd, cached for kListingMaxAge
  };
  // Several scrapers a second (Prometheus pairs, dashboards, an operator's curl loop) cost one
  // listing; a value at most this old is well within what a 15 s scrape interval already blurs.
  static constexpr std::chrono::steady_clock::duration kListingMaxAge = std::chrono::seconds(5);

  // kStat where this kernel supports it, else kListing.
  OpenFdCount();
  // A given source, for tests. kStat on a kernel without it yields 0.
  explicit OpenFdCount(Source source) : source_(source) {}

  Source source() const { return source_; }
  // Open descriptors at `now` (the listing's own descriptor excluded); -1 if /proc is unreadable.
  int64_t Get(std::chrono::steady_clock::time_point now);

 private:
  const Source source_;
  // Scrapes may run on any shard that accepted an admin connection, concurrently: the listing
  // cache is guarded. Scrape path only, never the data path.
  std::mutex mu_;
  bool listed_ = false;
  std::chrono::steady_clock::time_point listed_at_;
  int64_t listed_count_ = 0;
};

}  // namespace camtunnel::metrics
