// Who may hold an agent secret, decided on the managing server's own records (PROTOCOL.md
// section 10.1): a new or deactivated serial gets a fresh secret, once; an active one only an
// answer without a secret, and only for the proof of the secret it already has. The activation
// server calls this directly when both roles share one database (LocalEnroller) and over the
// hand-over of section 10.4 when they run as separate processes (HandoverEnroller).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "manager/state_store.h"
#include "proto/crypto.h"
#include "proto/manager_link.h"

namespace camtunnel::manager {

struct EnrollRequest {
  std::string serial;
  std::string operator_id;  // the operator the camera binds to (claims resolved already)
  std::optional<proto::Digest> agent_proof;
};

struct EnrollResult {
  int status = 500;    // 200, 409, or 500/503 when the records cannot be read or reached
  std::string result;  // counter label: activated, reactivated, already_active, ...
  std::string error;   // for the camera when status != 200
  std::optional<proto::AgentSecret> secret;  // "activated" only
  int64_t retry_after_ms = -1;
};

// Decides on `store` and records a new agent (state active, fresh random secret).
EnrollResult Enroll(StateStore& store, const EnrollRequest& request, int64_t now_ms);

class Enroller {
 public:
  virtual ~Enroller() = default;
  // `done` runs once, on the caller's thread (now, or later for a remote call).
  virtual void Start(const EnrollRequest& request, int64_t now_ms,
                     std::function<void(EnrollResult)> done) = 0;
};

// One deployment: the shared database.
class LocalEnroller final : public Enroller {
 public:
  explicit LocalEnroller(StateStore& store) : store_(store) {}
  void Start(const EnrollRequest& request, int64_t now_ms,
             std::function<void(EnrollResult)> done) override {
    done(Enroll(store_, request, now_ms));
  }

 private:
  StateStore& store_;
};

}  // namespace camtunnel::manager
