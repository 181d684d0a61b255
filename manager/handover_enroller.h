// The activation server's side of the hand-over (PROTOCOL.md section 10.4), for split roles:
// each admitted camera is enrolled by the managing server (POST /api/v1/handover on its admin
// listener, MACed with the hand-over key); the agent secret comes back sealed. This process
// never stores an agent secret. A managing server that cannot be reached, answers late, or
// answers anything that does not check out gives the camera 503 with Retry-After: the camera
// retries, and nothing was issued that it does not hold.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "manager/admin_call.h"
#include "manager/enrollment.h"
#include "proto/handover.h"
#include "runtime/shard.h"

namespace camtunnel::manager {

class HandoverEnroller final : public Enroller {
 public:
  static constexpr int64_t kRetryAfterMs = 5000;

  HandoverEnroller(runtime::Shard& shard, AdminTarget managing, const proto::HandoverKeys& keys,
                   uint64_t timeout_ms);
  ~HandoverEnroller() override;
  HandoverEnroller(const HandoverEnroller&) = delete;
  HandoverEnroller& operator=(const HandoverEnroller&) = delete;

  void Start(const EnrollRequest& request, int64_t now_ms,
             std::function<void(EnrollResult)> done) override;

  // Calls by outcome: answered (the managing server decided), unreachable, refused_auth (it
  // refused our MAC or clock: a configuration error), bad_answer (malformed, or a secret that
  // does not open), failed (any other status).
  const std::map<std::string, uint64_t>& counts() const { return counts_; }

 private:
  EnrollResult Interpret(const EnrollRequest& request, std::span<const uint8_t> nonce, int status,
                         const std::string& body);

  runtime::Shard& shard_;
  const AdminTarget managing_;
  const proto::HandoverKeys keys_;
  const uint64_t timeout_ms_;
  std::shared_ptr<bool> alive_;
  std::map<std::string, uint64_t> counts_;
};

}  // namespace camtunnel::manager
