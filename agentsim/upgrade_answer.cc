// See upgrade_answer.h.
#include "agentsim/upgrade_answer.h"

#include <cerrno>

namespace camtunnel::agentsim {

UpgradeAnswer ReadUpgradeAnswer(std::string& head_buffer, std::span<const uint8_t> bytes,
                                runtime::Stream& stream) {
  head_buffer.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  UpgradeAnswer a;
  const proto::HeadResult r = proto::ParseResponseHead(head_buffer, &a.head);
  if (r == proto::HeadResult::kNeedMore) {
    return a;
  }
  a.kind = UpgradeAnswer::Kind::kFailed;
  if (r != proto::HeadResult::kComplete) {
    a.reason = "malformed_answer";
    a.error = EPROTO;
    return a;
  }
  if (a.head.status != 101) {
    a.reason = "status_" + std::to_string(a.head.status);
    return a;
  }
  const auto accept = proto::ParseControlAccept(a.head);
  if (!accept) {
    a.reason = "malformed_answer";
    a.error = EPROTO;
    return a;
  }
  a.accept = *accept;
  a.tls = stream.tls();
  if (a.tls && !stream.ExportKeyingMaterial(proto::kExporterLabel, a.exporter)) {
    a.reason = "tls_exporter";
    a.error = EPROTO;
    return a;
  }
  a.kind = UpgradeAnswer::Kind::kAccepted;
  a.rest = head_buffer.substr(a.head.head_bytes);
  head_buffer.clear();
  head_buffer.shrink_to_fit();
  return a;
}

}  // namespace camtunnel::agentsim
