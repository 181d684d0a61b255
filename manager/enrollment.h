// Who may hold an agent secret, decided on the managing server's own records (PROTOCOL.md
// section 10.1): a new or deactivated serial gets a fresh secret, once; an active one only an
// answer without a secret, and only for the proof of the secret it already has; a deactivated
// one nothing, for the proof of the secret it was deactivated with. The activation
// server calls this directly when both roles share one database (LocalEnroller) and over the
// hand-over of section 10.4 when they run as separate processes (HandoverEnroller).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "manager/store.h"
#include "manager/store_connection.h"
#include "proto/crypto.h"
#include "proto/manager_link.h"

namespace camtunnel::manager {

struct EnrollRequest {
  std::string serial;
  std::string operator_id;  // the operator the camera binds to (claims resolved already)
  std::optional<proto::Digest> agent_proof;
};

struct EnrollResult {
  int status = 500;    // 200, 403, 409, or 500/503 when the records cannot be read or reached
  std::string result;  // counter label: activated, reactivated, already_active, ...
  std::string error;   // for the camera when status != 200
  std::optional<proto::AgentSecret> secret;  // "activated" only
  int64_t retry_after_ms = -1;
};

// Decides on `store` and records a new agent (state active, fresh random secret), in one
// transaction: two managers enrolling the same serial at once issue one secret.
EnrollResult Enroll(StoreConnection& store, const EnrollRequest& request, int64_t now_ms);

// The answer when the store failed: 503 with a Retry-After when the database is unreachable,
// else 500.
EnrollResult StoreError(const absl::Status& status);

class Enroller {
 public:
  virtual ~Enroller() = default;
  // `done` runs once, on the caller's thread (now, or later for a remote call).
  virtual void Start(const EnrollRequest& request, int64_t now_ms,
                     std::function<void(EnrollResult)> done) = 0;
};

// One deployment: the shared database, on a store worker.
class LocalEnroller final : public Enroller {
 public:
  explicit LocalEnroller(Store& store) : store_(store) {}
  void Start(const EnrollRequest& request, int64_t now_ms,
             std::function<void(EnrollResult)> done) override {
    store_.Run<EnrollResult>(
        request.serial,
        [request, now_ms](StoreConnection& c) { return Enroll(c, request, now_ms); },
        std::move(done));
  }

 private:
  Store& store_;
};

}  // namespace camtunnel::manager
