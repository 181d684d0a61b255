// See activation.h. Error answers are deliberately coarse where detail would help an attacker:
// an unknown serial and a wrong factory secret both get 401 "bad factory secret".
#include "manager/activation.h"

#include <openssl/crypto.h>

#include <nlohmann/json.hpp>

#include "manager/claims.h"
#include "proto/encoding.h"
#include "proto/identifiers.h"
#include "proto/manager_link.h"

namespace camtunnel::manager {
namespace {

using nlohmann::json;

ActivationAnswer Error(int status, std::string_view result, std::string_view message) {
  return {.status = status,
          .body = json{{"error", std::string(message)}}.dump(),
          .result = std::string(result)};
}

// A hex field of exactly 32 bytes, or nullopt.
std::optional<proto::Digest> HexDigest(const json& doc, const char* name) {
  auto it = doc.find(name);
  if (it == doc.end() || !it->is_string() || it->get_ref<const std::string&>().size() != 64) {
    return std::nullopt;
  }
  auto bytes = proto::HexDecode(it->get_ref<const std::string&>());
  if (!bytes || bytes->size() != 32) {
    return std::nullopt;
  }
  proto::Digest out;
  std::copy(bytes->begin(), bytes->end(), out.begin());
  return out;
}

}  // namespace

ActivationService::ActivationService(StateStore& store, ActivationOptions options)
    : store_(store),
      options_(std::move(options)),
      limiter_(options_.rate_burst, options_.rate_refill_ms) {}

ActivationAnswer ActivationService::Handle(std::string_view body, std::string_view source,
                                           int64_t now_ms) {
  std::string serial;
  ActivationAnswer answer = Decide(body, source, now_ms, &serial);
  ++counts_[answer.result];
  // Rate-limited attempts are counted but not written: a flood must not fill the disk.
  if (answer.result != "rate_limited") {
    store_.RecordActivation(serial, source, answer.result, now_ms).IgnoreError();
    store_
        .Audit({.at_ms = now_ms,
                .actor = "activation",
                .action = answer.result,
                .subject = serial,
                .detail = std::string(source)})
        .IgnoreError();
  }
  return answer;
}

ActivationAnswer ActivationService::Decide(std::string_view body, std::string_view source,
                                           int64_t now_ms, std::string* serial) {
  int64_t retry_after_ms = 0;
  if (!limiter_.Allow(source, now_ms, &retry_after_ms)) {
    ActivationAnswer a = Error(429, "rate_limited", "too many activation attempts");
    a.retry_after_ms = retry_after_ms;
    return a;
  }
  if (body.size() > kMaxActivationBody) {
    return Error(400, "bad_request", "body over 4096 bytes");
  }
  const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Error(400, "bad_request", "body is not a JSON object");
  }
  auto serial_it = doc.find("serial");
  if (serial_it == doc.end() || !serial_it->is_string() ||
      !proto::IsCanonicalAgentId(serial_it->get_ref<const std::string&>())) {
    return Error(400, "bad_request", "serial must be a string of 1..63 [a-z0-9-]");
  }
  *serial = serial_it->get<std::string>();
  auto factory = HexDigest(doc, "factory_secret");
  if (!factory) {
    return Error(400, "bad_request", "factory_secret must be 64 hex characters");
  }
  auto op_it = doc.find("operator");
  if (op_it == doc.end() || !op_it->is_string()) {
    return Error(400, "bad_request", "operator must be a string");
  }
  std::optional<proto::Digest> agent_proof;
  if (doc.contains("agent_proof")) {
    agent_proof = HexDigest(doc, "agent_proof");
    if (!agent_proof) {
      return Error(400, "bad_request", "agent_proof must be 64 hex characters");
    }
  }
  proto::Digest expected = proto::FactorySecret(options_.factory_master, *serial);
  const bool factory_ok = proto::ConstantTimeEqual(expected, *factory);
  OPENSSL_cleanse(expected.data(), expected.size());
  if (!factory_ok) {
    return Error(401, "bad_factory_secret", "bad factory secret");
  }
  // The operator field holds an operator id (from the firmware) or the claim token from the
  // device label. A serial an operator claimed binds only with its token, to that operator.
  const std::string& presented = op_it->get_ref<const std::string&>();
  auto claim = store_.FindClaim(*serial);
  if (!claim.ok()) {
    return Error(500, "internal", "state database error");
  }
  std::string operator_id;
  if (claim->has_value()) {
    if (!ClaimTokenMatches(**claim, presented)) {
      return Error(403, "bad_claim_token", "claim token does not match this serial's claim");
    }
    operator_id = (*claim)->operator_id;
  } else if (options_.operators.count(presented) == 0) {
    return Error(403, "unknown_operator", "unknown operator or claim token");
  } else {
    operator_id = presented;
  }
  auto existing = store_.FindAgent(*serial);
  if (!existing.ok()) {
    return Error(500, "internal", "state database error");
  }
  if (existing->has_value() && (*existing)->state == AgentState::kActive) {
    // Activated once already: the secret exists and is never issued again. Only its holder may
    // ask where its manager is now.
    if (!agent_proof) {
      return Error(409, "already_active",
                   "serial already activated: reactivation needs agent_proof");
    }
    const proto::Digest want = proto::ReactivationProof((*existing)->secret, *serial);
    if (!proto::ConstantTimeEqual(want, *agent_proof)) {
      return Error(409, "bad_agent_proof", "agent_proof does not match this serial's secret");
    }
    return {.status = 200,
            .body = json{{"agent_id", *serial}, {"manager_url", options_.manager_url}}.dump(),
            .result = "reactivated"};
  }
  AgentRecord record{.agent_id = *serial,
                     .state = AgentState::kActive,
                     .operator_id = operator_id,
                     .activated_at_ms = now_ms};
  proto::RandomBytes(record.secret);
  if (!store_.PutAgent(record).ok()) {
    OPENSSL_cleanse(record.secret.data(), record.secret.size());
    return Error(500, "internal", "state database error");
  }
  ActivationAnswer a{.status = 200,
                     .body = json{{"agent_id", *serial},
                                  {"manager_url", options_.manager_url},
                                  {"agent_secret", proto::HexEncode(record.secret)}}
                                 .dump(),
                     .result = "activated"};
  OPENSSL_cleanse(record.secret.data(), record.secret.size());
  return a;
}

}  // namespace camtunnel::manager
