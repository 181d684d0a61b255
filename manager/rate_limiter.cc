// See rate_limiter.h.
#include "manager/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace camtunnel::manager {

bool RateLimiter::Allow(std::string_view source, int64_t now_ms, int64_t* retry_after_ms) {
  if (buckets_.size() >= kMaxSources && buckets_.find(std::string(source)) == buckets_.end()) {
    buckets_.clear();
  }
  auto [it, fresh] = buckets_.try_emplace(std::string(source));
  Bucket& b = it->second;
  if (fresh) {
    b.tokens = burst_;
    b.updated_ms = now_ms;
  }
  const int64_t elapsed = std::max<int64_t>(0, now_ms - b.updated_ms);
  b.tokens = std::min<double>(
      burst_, b.tokens + static_cast<double>(elapsed) / static_cast<double>(refill_ms_));
  b.updated_ms = now_ms;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return true;
  }
  *retry_after_ms =
      static_cast<int64_t>(std::ceil((1.0 - b.tokens) * static_cast<double>(refill_ms_)));
  return false;
}

}  // namespace camtunnel::manager
