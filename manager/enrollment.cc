// See enrollment.h.
#include "manager/enrollment.h"

#include <openssl/crypto.h>

namespace camtunnel::manager {

EnrollResult StoreError(const absl::Status& status) {
  // Unreachable (PostgreSQL down, failing over): the camera retries after a pause; anything
  // else is our fault.
  if (absl::IsUnavailable(status)) {
    return {.status = 503,
            .result = "store_unavailable",
            .error = "state database unavailable",
            .retry_after_ms = 5000};
  }
  return {.status = 500, .result = "internal", .error = "state database error"};
}

namespace {

EnrollResult Decide(StoreConnection& store, const EnrollRequest& request, int64_t now_ms) {
  auto existing = store.FindAgent(request.serial);
  if (!existing.ok()) {
    return StoreError(existing.status());
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
  if (existing->has_value() && (*existing)->state == AgentState::kDeactivated &&
      request.agent_proof &&
      proto::ConstantTimeEqual(proto::ReactivationProof((*existing)->secret, request.serial),
                               *request.agent_proof)) {
    // The camera still holds the secret it was deactivated with: it was away when it was
    // deactivated (a linked one wipes its state), and asks back in on its own. It stays out; a
    // camera reset to its factory state (no proof) activates like a new one.
    return {.status = 403,
            .result = "deactivated",
            .error = "serial deactivated: only a reset camera may activate it again"};
  }
  AgentRecord record{.agent_id = request.serial,
                     .state = AgentState::kActive,
                     .operator_id = request.operator_id,
                     .activated_at_ms = now_ms};
  proto::RandomBytes(record.secret);
  const absl::Status stored = store.PutAgent(record);
  const bool reissued = existing->has_value() && (*existing)->state == AgentState::kActive;
  EnrollResult out{
      .status = 200, .result = reissued ? "reissued" : "activated", .secret = record.secret};
  OPENSSL_cleanse(record.secret.data(), record.secret.size());
  if (!stored.ok()) {
    OPENSSL_cleanse(out.secret->data(), out.secret->size());
    return StoreError(stored);
  }
  return out;
}

}  // namespace

EnrollResult Enroll(StoreConnection& store, const EnrollRequest& request, int64_t now_ms) {
  EnrollResult result{.status = 0};  // 0: the body never ran (BEGIN failed)
  const absl::Status st = store.Transaction([&]() -> absl::Status {
    if (result.secret) {
      OPENSSL_cleanse(result.secret->data(), result.secret->size());  // a retried transaction
    }
    result = Decide(store, request, now_ms);
    // A failed write rolls back; a refusal (409) wrote nothing and commits nothing.
    return result.status >= 500 ? absl::AbortedError(result.error) : absl::OkStatus();
  });
  if (!st.ok() && result.status < 500) {
    // BEGIN or COMMIT failed: the answer must not claim a secret that was not stored.
    if (result.secret) {
      OPENSSL_cleanse(result.secret->data(), result.secret->size());
    }
    return StoreError(st);
  }
  return result;
}

}  // namespace camtunnel::manager
