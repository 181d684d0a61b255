// See handover_service.h.
#include "manager/handover_service.h"

#include <openssl/crypto.h>

#include <nlohmann/json.hpp>

#include "manager/enrollment.h"
#include "manager/json_fields.h"
#include "proto/encoding.h"
#include "proto/identifiers.h"

namespace camtunnel::manager {
namespace {

using nlohmann::json;

HandoverAnswer Refuse(int status, std::string_view result, std::string_view message) {
  return {.status = status,
          .body = json{{"result", std::string(result)}, {"error", std::string(message)}}.dump(),
          .result = std::string(result)};
}

}  // namespace

void HandoverService::Handle(std::string_view mac_hex, std::string_view body, int64_t now_ms,
                             std::function<void(HandoverAnswer)> done) {
  EnrollRequest request;
  std::string nonce;
  if (auto refused = Admit(mac_hex, body, now_ms, &request, &nonce)) {
    Finish(*refused, request.serial, now_ms);
    done(std::move(*refused));
    return;
  }
  store_.Run<EnrollResult>(
      request.serial, [request, now_ms](StoreConnection& c) { return Enroll(c, request, now_ms); },
      [this, serial = request.serial, nonce, now_ms, done = std::move(done)](EnrollResult r) {
        HandoverAnswer answer = Answer(serial, nonce, std::move(r));
        Finish(answer, serial, now_ms);
        done(std::move(answer));
      });
}

void HandoverService::Finish(const HandoverAnswer& answer, const std::string& serial,
                             int64_t now_ms) {
  ++counts_[answer.result];
  // Forged requests are counted, not written: without the key a flood must not fill the disk.
  if (!serial.empty()) {
    store_.Write("audit", serial,
                 [entry = AuditEntry{.at_ms = now_ms,
                                     .actor = "handover",
                                     .action = answer.result,
                                     .subject = serial,
                                     .detail = ""}](StoreConnection& c) { return c.Audit(entry); });
  }
}

std::optional<HandoverAnswer> HandoverService::Admit(std::string_view mac_hex,
                                                     std::string_view body, int64_t now_ms,
                                                     EnrollRequest* request,
                                                     std::string* nonce_out) {
  auto mac = mac_hex.size() == 64 ? proto::HexDecode(mac_hex) : std::nullopt;
  const proto::Digest want = proto::HandoverRequestMac(keys_, body);
  if (!mac || !proto::ConstantTimeEqual(want, *mac)) {
    return Refuse(401, "bad_mac", "Camtunnel-Handover-Mac missing or wrong");
  }
  const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Refuse(400, "bad_request", "body is not a JSON object");
  }
  auto serial_it = doc.find("serial");
  auto op_it = doc.find("operator");
  auto ts_it = doc.find("ts_ms");
  auto nonce = HexBytes<proto::kHandoverNonceBytes>(doc, "nonce");
  if (serial_it == doc.end() || !serial_it->is_string() ||
      !proto::IsCanonicalAgentId(serial_it->get_ref<const std::string&>()) || op_it == doc.end() ||
      !op_it->is_string() || op_it->get_ref<const std::string&>().empty() || ts_it == doc.end() ||
      !ts_it->is_number_integer() || !nonce) {
    return Refuse(400, "bad_request", "need serial, operator, ts_ms and a 32-hex nonce");
  }
  std::optional<proto::Digest> proof;
  if (doc.contains("agent_proof")) {
    proof = HexBytes<32>(doc, "agent_proof");
    if (!proof) {
      return Refuse(400, "bad_request", "agent_proof must be 64 hex characters");
    }
  }
  const int64_t ts = ts_it->get<int64_t>();
  if (ts < now_ms - proto::kHandoverWindowMs || ts > now_ms + proto::kHandoverWindowMs) {
    return Refuse(401, "stale", "ts_ms is outside the hand-over window (check the clocks)");
  }
  bool full = false;
  if (!Remember(std::string(nonce->begin(), nonce->end()), now_ms, &full)) {
    return full ? Refuse(503, "busy", "too many hand-overs in the window")
                : Refuse(409, "replayed", "this request was already handled");
  }
  *request = {.serial = serial_it->get<std::string>(),
              .operator_id = op_it->get<std::string>(),
              .agent_proof = proof};
  *nonce_out = std::string(nonce->begin(), nonce->end());
  return std::nullopt;
}

HandoverAnswer HandoverService::Answer(const std::string& serial, const std::string& nonce_bytes,
                                       EnrollResult r) {
  if (r.status != 200) {
    return Refuse(r.status, r.result, r.error);
  }
  json out{{"result", r.result}};
  if (r.secret) {
    uint8_t seal_nonce[proto::kAeadNonceBytes];
    proto::RandomBytes(seal_nonce);
    out["sealed_secret"] = proto::HexEncode(proto::SealHandoverSecret(
        keys_, serial,
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(nonce_bytes.data()),
                                 nonce_bytes.size()),
        *r.secret, seal_nonce));
    OPENSSL_cleanse(r.secret->data(), r.secret->size());
  }
  return {.status = 200, .body = out.dump(), .result = r.result};
}

bool HandoverService::Remember(const std::string& nonce, int64_t now_ms, bool* full) {
  if (seen_.size() >= kMaxRememberedNonces) {
    absl::erase_if(seen_, [now_ms](const auto& entry) { return entry.second < now_ms; });
  }
  if (auto it = seen_.find(nonce); it != seen_.end() && it->second >= now_ms) {
    return false;
  }
  if (seen_.size() >= kMaxRememberedNonces) {
    *full = true;
    return false;
  }
  // A request is accepted while its ts_ms is within the window of now; its nonce must outlive
  // that: ts_ms + window <= now + 2 * window.
  seen_[nonce] = now_ms + 2 * proto::kHandoverWindowMs;
  return true;
}

}  // namespace camtunnel::manager
