// The activation server's decision (PROTOCOL.md section 10.1): one POST /api/v1/activate body
// in, one HTTP status and JSON body out. It admits the camera itself (per-source rate limit,
// factory secret, operator or claim token) and leaves the agent's record to an Enroller (one
// secret per device, ever; reactivation only with proof of the existing secret): the shared
// database, or the managing server over the hand-over of section 10.4. Every attempt is counted
// and audited. Tested without sockets.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "manager/enrollment.h"
#include "manager/rate_limiter.h"
#include "manager/store.h"

namespace camtunnel::manager {

inline constexpr size_t kMaxActivationBody = 4096;

struct ActivationOptions {
  std::vector<uint8_t> factory_master;  // derives each device's factory secret
  std::set<std::string> operators;      // accepted operator ids / claim tokens
  std::string manager_url;              // where activated agents connect (handed out)
  // Every manager of the deployment (PROTOCOL.md 10.5), handed out beside manager_url; empty:
  // manager_url alone.
  std::vector<std::string> manager_urls;
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
  // `store` keeps claims, attempts and the audit; `enroller` decides on the agent's record.
  ActivationService(Store& store, Enroller& enroller, ActivationOptions options);

  // `done` runs once: now, or once the managing server has answered (split roles).
  void Handle(std::string_view body, std::string_view source, int64_t now_ms,
              std::function<void(ActivationAnswer)> done);

  // SIGHUP: the operators accepted from the next attempt on.
  void set_operators(std::set<std::string> operators) { options_.operators = std::move(operators); }

  // Attempts by result (for /metrics).
  const std::map<std::string, uint64_t>& counts() const { return counts_; }

 private:
  // The checks that need no agent record. nullopt: admitted, `*request` filled.
  std::optional<ActivationAnswer> Admit(std::string_view body, std::string_view source,
                                        int64_t now_ms, std::string* serial,
                                        EnrollRequest* request);
  // The claim on the serial (read on a store worker) decides the operator: a refusal, or the
  // request's operator_id set from the claim or the presented operator id.
  std::optional<ActivationAnswer> BindOperator(
      const absl::StatusOr<std::optional<ClaimRecord>>& claim, EnrollRequest* request) const;
  ActivationAnswer Answer(const std::string& serial, EnrollResult result) const;
  void Record(const ActivationAnswer& answer, const std::string& serial, std::string_view source,
              int64_t now_ms);

  Store& store_;
  Enroller& enroller_;
  ActivationOptions options_;
  RateLimiter limiter_;
  std::map<std::string, uint64_t> counts_;
};

}  // namespace camtunnel::manager
