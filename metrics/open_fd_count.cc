#include "metrics/open_fd_count.h"

#include <dirent.h>
#include <sys/stat.h>

namespace camtunnel::metrics {
namespace {

constexpr const char* kFdDir = "/proc/self/fd";

// Size of /proc/self/fd: the number of open descriptors on Linux >= 6.2, 0 before (the kernel
// then reports no size for /proc directories), -1 if it cannot be read.
int64_t StatCount() {
  struct stat st {};
  if (stat(kFdDir, &st) != 0) {
    return -1;
  }
  return static_cast<int64_t>(st.st_size);
}

int64_t ListCount() {
  DIR* d = opendir(kFdDir);
  if (d == nullptr) {
    return -1;
  }
  int64_t n = 0;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') {
      ++n;
    }
  }
  closedir(d);
  return n - 1;  // not the descriptor opendir itself held
}

}  // namespace

// stat() opens nothing, so any process holding a descriptor (a gateway holds its rings,
// listeners and log socket) sees a size above 0 where the kernel counts; 0 means it does not.
OpenFdCount::OpenFdCount() : source_(StatCount() > 0 ? Source::kStat : Source::kListing) {}

int64_t OpenFdCount::Get(std::chrono::steady_clock::time_point now) {
  if (source_ == Source::kStat) {
    return StatCount();
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!listed_ || now - listed_at_ >= kListingMaxAge) {
    listed_count_ = ListCount();
    listed_at_ = now;
    listed_ = true;
  }
  return listed_count_;
}

}  // namespace camtunnel::metrics
