// See handover_enroller.h.
#include "manager/handover_enroller.h"

#include <openssl/crypto.h>

#include <array>
#include <nlohmann/json.hpp>

#include "proto/encoding.h"

namespace camtunnel::manager {
namespace {

using nlohmann::json;

EnrollResult Unavailable(std::string_view why) {
  return {.status = 503,
          .result = "handover_failed",
          .error = "managing server unavailable (" + std::string(why) + "); retry later",
          .retry_after_ms = HandoverEnroller::kRetryAfterMs};
}

}  // namespace

HandoverEnroller::HandoverEnroller(runtime::Shard& shard, AdminTarget managing,
                                   const proto::HandoverKeys& keys, uint64_t timeout_ms)
    : shard_(shard),
      managing_(std::move(managing)),
      keys_(keys),
      timeout_ms_(timeout_ms),
      alive_(std::make_shared<bool>(true)) {}

HandoverEnroller::~HandoverEnroller() { *alive_ = false; }

void HandoverEnroller::Start(const EnrollRequest& request, int64_t now_ms,
                             std::function<void(EnrollResult)> done) {
  std::array<uint8_t, proto::kHandoverNonceBytes> nonce;
  proto::RandomBytes(nonce);
  json doc{{"serial", request.serial},
           {"operator", request.operator_id},
           {"ts_ms", now_ms},
           {"nonce", proto::HexEncode(nonce)}};
  if (request.agent_proof) {
    doc["agent_proof"] = proto::HexEncode(*request.agent_proof);
  }
  const std::string body = doc.dump();
  AdminRequest call{.to = managing_.to,
                    .host = managing_.host,
                    .headers = std::string(proto::kHandoverMacHeader) + ": " +
                               proto::HexEncode(proto::HandoverRequestMac(keys_, body)) + "\r\n",
                    .method = "POST",
                    .path = std::string(proto::kHandoverPath),
                    .body = body,
                    .timeout_ms = timeout_ms_};
  CallAdmin(shard_, call, alive_,
            [this, request, nonce, done = std::move(done)](int status, const std::string& reply) {
              done(Interpret(request, nonce, status, reply));
            });
}

EnrollResult HandoverEnroller::Interpret(const EnrollRequest& request,
                                         std::span<const uint8_t> nonce, int status,
                                         const std::string& body) {
  if (status == 0) {
    ++counts_["unreachable"];
    return Unavailable("no answer");
  }
  if (status == 401) {
    ++counts_["refused_auth"];
    return Unavailable("hand-over key or clock mismatch");
  }
  const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  const std::string result = doc.is_object() && doc.contains("result") && doc["result"].is_string()
                                 ? doc["result"].get<std::string>()
                                 : "";
  // The managing server's refusals under section 10.1's rules reach the camera as they are.
  if ((status == 409 || status == 403) && !result.empty()) {
    ++counts_["answered"];
    const std::string error = doc.contains("error") && doc["error"].is_string()
                                  ? doc["error"].get<std::string>()
                                  : result;
    return {.status = status, .result = result, .error = error};
  }
  if (status != 200) {
    ++counts_["failed"];
    return Unavailable("HTTP " + std::to_string(status));
  }
  if (result == "reactivated" && request.agent_proof) {
    ++counts_["answered"];
    return {.status = 200, .result = result};
  }
  if ((result == "activated" || result == "reissued") && doc.contains("sealed_secret") &&
      doc["sealed_secret"].is_string()) {
    auto sealed = proto::HexDecode(doc["sealed_secret"].get<std::string>());
    if (sealed) {
      if (auto secret = proto::OpenHandoverSecret(keys_, request.serial, nonce, *sealed)) {
        ++counts_["answered"];
        EnrollResult r{.status = 200, .result = result, .secret = *secret};
        OPENSSL_cleanse(secret->data(), secret->size());
        return r;
      }
    }
  }
  ++counts_["bad_answer"];
  return Unavailable("answer did not check out");
}

}  // namespace camtunnel::manager
