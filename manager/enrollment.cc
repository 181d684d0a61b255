// See enrollment.h.
#include "manager/enrollment.h"

#include <openssl/crypto.h>

namespace camtunnel::manager {

EnrollResult Enroll(StateStore& store, const EnrollRequest& request, int64_t now_ms) {
  auto existing = store.FindAgent(request.serial);
  if (!existing.ok()) {
    return {.status = 500, .result = "internal", .error = "state database error"};
  }
  // A secret never used on a manager link may not have reached its camera (an answer lost on
  // the way, or one the camera could not use): the admitted camera gets a fresh one, which
  // voids the old. Once the agent has linked, its secret is never issued again.
  const bool unused = existing->has_value() && (*existing)->last_seen_ms == 0;
  if (existing->has_value() && (*existing)->state == AgentState::kActive &&
      !(unused && !request.agent_proof)) {
    // Activated once already: the secret exists and is never issued again. Only its holder may
    // ask where its manager is now.
    if (!request.agent_proof) {
      return {.status = 409,
              .result = "already_active",
              .error = "serial already activated: reactivation needs agent_proof"};
    }
    const proto::Digest want = proto::ReactivationProof((*existing)->secret, request.serial);
    if (!proto::ConstantTimeEqual(want, *request.agent_proof)) {
      return {.status = 409,
              .result = "bad_agent_proof",
              .error = "agent_proof does not match this serial's secret"};
    }
    return {.status = 200, .result = "reactivated"};
  }
  AgentRecord record{.agent_id = request.serial,
                     .state = AgentState::kActive,
                     .operator_id = request.operator_id,
                     .activated_at_ms = now_ms};
  proto::RandomBytes(record.secret);
  const bool stored = store.PutAgent(record).ok();
  const bool reissued = existing->has_value() && (*existing)->state == AgentState::kActive;
  EnrollResult out{
      .status = 200, .result = reissued ? "reissued" : "activated", .secret = record.secret};
  OPENSSL_cleanse(record.secret.data(), record.secret.size());
  if (!stored) {
    OPENSSL_cleanse(out.secret->data(), out.secret->size());
    return {.status = 500, .result = "internal", .error = "state database error"};
  }
  return out;
}

}  // namespace camtunnel::manager
