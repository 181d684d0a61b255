// The managing server's side of the activation hand-over (PROTOCOL.md section 10.4): a separate
// activation server, holding the same hand-over key, asks it to enrol a camera it has admitted.
// The request is checked before anything is read from it (MAC over the exact body bytes), then
// its age and its nonce (a recorded request cannot be sent again), then the agent's record
// decides (enrollment.h). A fresh secret goes back sealed to the serial and this request. No
// I/O besides the state store, so every rule is tested without sockets.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "manager/enrollment.h"
#include "manager/store.h"
#include "proto/handover.h"

namespace camtunnel::manager {

struct HandoverAnswer {
  int status = 500;
  std::string body;    // JSON
  std::string result;  // counter label
};

class HandoverService {
 public:
  // Nonces remembered at once; past this the service answers 503 until old ones expire (a
  // flood of valid requests needs the key, so this only bounds memory).
  static constexpr size_t kMaxRememberedNonces = 100000;

  HandoverService(Store& store, const proto::HandoverKeys& keys) : store_(store), keys_(keys) {}

  // `mac_hex`: the Camtunnel-Handover-Mac header (empty when absent). `done` runs once on the
  // shard's thread: at once for a refusal, after the store for an enrolment.
  void Handle(std::string_view mac_hex, std::string_view body, int64_t now_ms,
              std::function<void(HandoverAnswer)> done);

  // Requests by result (for /metrics).
  const std::map<std::string, uint64_t>& counts() const { return counts_; }

 private:
  // The checks before the store: a refusal, or the enrolment to run (nonce taken).
  std::optional<HandoverAnswer> Admit(std::string_view mac_hex, std::string_view body,
                                      int64_t now_ms, EnrollRequest* request, std::string* nonce);
  HandoverAnswer Answer(const std::string& serial, const std::string& nonce, EnrollResult r);
  void Finish(const HandoverAnswer& answer, const std::string& serial, int64_t now_ms);
  // False when the nonce was seen within the window (or too many are remembered).
  bool Remember(const std::string& nonce, int64_t now_ms, bool* full);

  Store& store_;
  const proto::HandoverKeys keys_;
  absl::flat_hash_map<std::string, int64_t> seen_;  // nonce -> forget after (ms)
  std::map<std::string, uint64_t> counts_;
};

}  // namespace camtunnel::manager
