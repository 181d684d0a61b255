// A simulated agent's reading of the server's answer to its upgrade (a gateway's control
// connection or a manager link, PROTOCOL.md sections 4 and 10.2): the head is gathered until
// complete, then either the 101 (nonce, proof, the TLS exporter, the bytes after the head) or
// why the link cannot go on. Shared by SimAgent and SimManagerLink, which differ only in the
// credentials they hand the control link.
#pragma once

#include <array>
#include <span>
#include <string>

#include "proto/crypto.h"
#include "proto/http_head.h"
#include "proto/upgrade.h"
#include "runtime/stream.h"

namespace camtunnel::agentsim {

struct UpgradeAnswer {
  enum class Kind { kNeedMore, kFailed, kAccepted };
  Kind kind = Kind::kNeedMore;
  // kFailed: the reason counted, the errno (0 for an HTTP refusal) and the answer's head (its
  // status, Retry-After) when it was a complete non-101 answer.
  std::string reason;
  int error = 0;
  proto::ResponseHead head;
  // kAccepted.
  proto::ControlAccept accept;
  std::array<uint8_t, proto::kExporterBytes> exporter{};
  bool tls = false;
  std::string rest;  // bytes after the head: the server's first frames

  std::span<const uint8_t> exporter_view() const {
    return tls ? std::span<const uint8_t>(exporter) : std::span<const uint8_t>();
  }
};

// Appends `bytes` to `head_buffer` and reads the answer; on kAccepted the buffer is released
// (idle agents keep no handshake buffer).
UpgradeAnswer ReadUpgradeAnswer(std::string& head_buffer, std::span<const uint8_t> bytes,
                                runtime::Stream& stream);

}  // namespace camtunnel::agentsim
