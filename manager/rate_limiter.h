// Per-source token buckets for the activation endpoint: activation is the one unauthenticated
// door of the manager, so a source guessing factory secrets gets a few tries a minute, not
// thousands a second. Bounded: past kMaxSources tracked sources the table is reset (a flood from
// many sources then costs the attacker buckets, not us memory).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace camtunnel::manager {

class RateLimiter {
 public:
  static constexpr size_t kMaxSources = 65536;

  // `burst` requests at once, then one per `refill_ms`.
  RateLimiter(uint32_t burst, int64_t refill_ms) : burst_(burst), refill_ms_(refill_ms) {}

  // True if `source` may make a request now (and takes a token). Otherwise `*retry_after_ms`
  // says when the next token arrives.
  bool Allow(std::string_view source, int64_t now_ms, int64_t* retry_after_ms);

 private:
  struct Bucket {
    double tokens = 0;
    int64_t updated_ms = 0;
  };
  uint32_t burst_;
  int64_t refill_ms_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace camtunnel::manager
