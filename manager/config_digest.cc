// See config_digest.h.
#include "manager/config_digest.h"

#include <span>

#include "proto/crypto.h"
#include "proto/encoding.h"

namespace camtunnel::manager {

std::string ConfigDigest(const std::vector<StreamerConfig>& streamers,
                         const std::set<std::string>& operators,
                         const std::vector<std::string>& manager_urls, uint64_t key_validity_s) {
  std::vector<uint8_t> m;
  auto text = [&m](std::string_view s) { proto::AppendLengthPrefixed(m, proto::AsBytes(s)); };
  text("camtunnel/1 manager-config");
  text(std::to_string(key_validity_s));
  for (const StreamerConfig& s : streamers) {
    text(s.url);
    text(s.key_id);
    proto::AppendLengthPrefixed(m, s.streamer_key);
    text(s.admin_url);
    text(s.frontend_url);
  }
  text("operators");
  for (const std::string& op : operators) {  // a std::set: sorted, order-independent
    text(op);
  }
  text("managers");
  for (const std::string& url : manager_urls) {
    text(url);
  }
  const proto::Digest d = proto::Sha256(m);
  return proto::HexEncode(std::span<const uint8_t>(d.data(), 8));
}

}  // namespace camtunnel::manager
