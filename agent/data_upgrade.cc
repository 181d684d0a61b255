#include "agent/data_upgrade.h"

#include <utility>
#include <vector>

#include "proto/upgrade.h"

namespace camtunnel::agent {

UpgradeDialer::BuildRequest DataUpgrade(const AgentIdentity& identity, std::string host_header,
                                        proto::TunnelId id, const proto::Nonce& nonce) {
  return [&identity, host_header = std::move(host_header), id,
          nonce](Transport& transport) -> std::string {
    std::vector<uint8_t> exporter = transport.Exporter();
    if (transport.kind() == proto::Transport::kTls && exporter.size() != proto::kExporterBytes) {
      return {};
    }
    proto::DataProofInput input{.agent_id = identity.agent_id,
                                .key_ref = &identity.key_ref,
                                .tunnel_id = id,
                                .open_nonce = nonce,
                                .transport = transport.kind(),
                                .exporter = exporter};
    proto::Digest proof = proto::DataProof(identity.agent_key, input);
    return proto::BuildDataRequest(host_header, identity.agent_id, identity.key_ref, id, proof);
  };
}

}  // namespace camtunnel::agent
