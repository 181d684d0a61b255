// The newest resumable TLS session of each simulated agent, so its data connections and
// reconnects resume as the real agent's do (agent/openssl_transport.cc keeps one ticket per
// gateway): a fleet that did full handshakes only would make the gateway look busier per open
// and per reconnect than it is. --notls_resume turns it off (the storm bench's full-handshake
// cost). One per process, on the shard's thread.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>

#include "absl/container/flat_hash_map.h"

namespace camtunnel::agentsim {

class TlsSessions {
 public:
  TlsSessions() = default;
  TlsSessions(const TlsSessions&) = delete;
  TlsSessions& operator=(const TlsSessions&) = delete;
  ~TlsSessions() {
    for (auto& [index, session] : sessions_) {
      SSL_SESSION_free(session);
    }
  }

  // Borrowed (the stream takes its own reference); null when the agent has none yet.
  SSL_SESSION* Find(uint32_t agent_index) const {
    auto it = sessions_.find(agent_index);
    return it == sessions_.end() ? nullptr : it->second;
  }
  // Keeps `session` (owned; null is ignored) in place of the agent's older one.
  void Keep(uint32_t agent_index, SSL_SESSION* session) {
    if (session == nullptr) {
      return;
    }
    SSL_SESSION*& slot = sessions_[agent_index];
    if (slot != nullptr) {
      SSL_SESSION_free(slot);
    }
    slot = session;
  }

 private:
  absl::flat_hash_map<uint32_t, SSL_SESSION*> sessions_;
};

}  // namespace camtunnel::agentsim
