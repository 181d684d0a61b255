// See activation.h. Error answers are deliberately coarse where detail would help an attacker:
// an unknown serial and a wrong factory secret both get 401 "bad factory secret".
#include "manager/activation.h"

#include <openssl/crypto.h>

#include <nlohmann/json.hpp>

#include "manager/claims.h"
#include "manager/json_fields.h"
#include "proto/encoding.h"
#include "proto/identifiers.h"
#include "proto/manager_link.h"
#include "proto/manager_order.h"

namespace camtunnel::manager {
namespace {

using nlohmann::json;

ActivationAnswer Error(int status, std::string_view result, std::string_view message) {
  return {.status = status,
          .body = json{{"error", std::string(message)}}.dump(),
          .result = std::string(result)};
}

}  // namespace

ActivationService::ActivationService(Store& store, Enroller& enroller, ActivationOptions options)
    : store_(store),
      enroller_(enroller),
      options_(std::move(options)),
      limiter_(options_.rate_burst, options_.rate_refill_ms) {}

void ActivationService::Handle(std::string_view body, std::string_view source, int64_t now_ms,
                               std::function<void(ActivationAnswer)> done) {
  std::string serial;
  EnrollRequest request;
  if (auto refused = Admit(body, source, now_ms, &serial, &request)) {
    Record(*refused, serial, source, now_ms);
    done(std::move(*refused));
    return;
  }
  store_.Run<absl::StatusOr<std::optional<ClaimRecord>>>(
      serial, [serial](StoreConnection& c) { return c.FindClaim(serial); },
      [this, request, serial, source = std::string(source), now_ms,
       done = std::move(done)](absl::StatusOr<std::optional<ClaimRecord>> claim) mutable {
        if (auto refused = BindOperator(claim, &request)) {
          Record(*refused, serial, source, now_ms);
          done(std::move(*refused));
          return;
        }
        enroller_.Start(
            request, now_ms,
            [this, serial, source, now_ms, done = std::move(done)](EnrollResult result) {
              ActivationAnswer answer = Answer(serial, std::move(result));
              Record(answer, serial, source, now_ms);
              done(std::move(answer));
            });
      });
}

void ActivationService::Record(const ActivationAnswer& answer, const std::string& serial,
                               std::string_view source, int64_t now_ms) {
  ++counts_[answer.result];
  // Rate-limited attempts are counted but not written: a flood must not fill the disk.
  if (answer.result != "rate_limited") {
    store_.Write("activation_attempt", serial,
                 [attempt = ActivationEntry{.serial = serial,
                                            .source = std::string(source),
                                            .result = answer.result,
                                            .at_ms = now_ms},
                  entry = AuditEntry{.at_ms = now_ms,
                                     .actor = "activation",
                                     .action = answer.result,
                                     .subject = serial,
                                     .detail = std::string(source)}](StoreConnection& c) {
                   return c.Transaction([&]() -> absl::Status {
                     if (absl::Status st = c.RecordActivation(attempt); !st.ok()) {
                       return st;
                     }
                     return c.Audit(entry);
                   });
                 });
  }
}

ActivationAnswer ActivationService::Answer(const std::string& serial, EnrollResult result) const {
  if (result.status != 200) {
    ActivationAnswer a = Error(result.status, result.result, result.error);
    a.retry_after_ms = result.retry_after_ms;
    return a;
  }
  json body{{"agent_id", serial}, {"manager_url", options_.manager_url}};
  if (!options_.manager_urls.empty()) {
    body["manager_urls"] = proto::JoinManagerList(options_.manager_urls);
  }
  if (result.secret) {
    body["agent_secret"] = proto::HexEncode(*result.secret);
    OPENSSL_cleanse(result.secret->data(), result.secret->size());
  }
  return {.status = 200, .body = body.dump(), .result = result.result};
}

std::optional<ActivationAnswer> ActivationService::Admit(std::string_view body,
                                                         std::string_view source, int64_t now_ms,
                                                         std::string* serial,
                                                         EnrollRequest* request) {
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
  auto factory = HexBytes<32>(doc, "factory_secret");
  if (!factory) {
    return Error(400, "bad_request", "factory_secret must be 64 hex characters");
  }
  auto op_it = doc.find("operator");
  if (op_it == doc.end() || !op_it->is_string()) {
    return Error(400, "bad_request", "operator must be a string");
  }
  std::optional<proto::Digest> agent_proof;
  if (doc.contains("agent_proof")) {
    agent_proof = HexBytes<32>(doc, "agent_proof");
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
  request->serial = *serial;
  request->operator_id = op_it->get<std::string>();  // presented: BindOperator decides
  request->agent_proof = agent_proof;
  return std::nullopt;
}

std::optional<ActivationAnswer> ActivationService::BindOperator(
    const absl::StatusOr<std::optional<ClaimRecord>>& claim, EnrollRequest* request) const {
  if (!claim.ok()) {
    const EnrollResult e = StoreError(claim.status());
    ActivationAnswer a = Error(e.status, e.result, e.error);
    a.retry_after_ms = e.retry_after_ms;
    return a;
  }
  // The operator field holds an operator id (from the firmware) or the claim token from the
  // device label. A serial an operator claimed binds only with its token, to that operator.
  const std::string presented = std::move(request->operator_id);
  if (claim->has_value()) {
    if (!ClaimTokenMatches(**claim, presented)) {
      return Error(403, "bad_claim_token", "claim token does not match this serial's claim");
    }
    request->operator_id = (*claim)->operator_id;
  } else if (options_.operators.count(presented) == 0) {
    return Error(403, "unknown_operator", "unknown operator or claim token");
  } else {
    request->operator_id = presented;
  }
  return std::nullopt;
}

}  // namespace camtunnel::manager
