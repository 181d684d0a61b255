// The data connection's upgrade head (PROTOCOL.md section 8): the data proof over a tunnel id
// and its nonce, bound to the exporter of the very connection it travels on. Shared by tunnels
// dialed on OPEN and by spare data connections dialed on SPARE (section 8.1).
#pragma once

#include <string>

#include "agent/identity.h"
#include "agent/upgrade_dialer.h"
#include "proto/identifiers.h"

namespace camtunnel::agent {

// A builder for UpgradeDialer::Start. `identity` must outlive the dial.
UpgradeDialer::BuildRequest DataUpgrade(const AgentIdentity& identity, std::string host_header,
                                        proto::TunnelId id, const proto::Nonce& nonce);

}  // namespace camtunnel::agent
