// The activation server's decision (PROTOCOL.md section 10.1): one POST /api/v1/activate body
// in, one HTTP status and JSON body out. No I/O besides the state store, so every rule (one
// secret per device, ever; reactivation only with proof of the existing secret; per-source
// rate limit; audit) is tested without sockets.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "manager/rate_limiter.h"
#include "manager/state_store.h"

namespace camtunnel::manager {

inline constexpr size_t kMaxActivationBody = 4096;

struct ActivationOptions {
  std::vector<uint8_t> factory_master;  // derives each device's factory secret
  std::set<std::string> operators;      // accepted operator ids / claim tokens
  std::string manager_url;              // where activated agents connect (handed out)
  uint32_t rate_burst = 5;
  int64_t rate_refill_ms = 10000;
};

struct ActivationAnswer {
  int status = 500;
  std::string body;  // JSON
  int64_t retry_after_ms = -1;
  std::string result;  // counter label: activated, reactivated, bad_request, ...
};

class ActivationService {
 public:
  ActivationService(StateStore& store, ActivationOptions options);

  ActivationAnswer Handle(std::string_view body, std::string_view source, int64_t now_ms);

  // Attempts by result (for /metrics).
  const std::map<std::string, uint64_t>& counts() const { return counts_; }

 private:
  ActivationAnswer Decide(std::string_view body, std::string_view source, int64_t now_ms,
                          std::string* serial);

  StateStore& store_;
  ActivationOptions options_;
  RateLimiter limiter_;
  std::map<std::string, uint64_t> counts_;
};

}  // namespace camtunnel::manager
