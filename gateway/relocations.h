// Where agents went (DESIGN "Frontend and admin surfaces": an agent seen but offline gets 503,
// "or a redirect to the gateway that holds it, once the manager tells us"). The manager PUTs
// agent id -> frontend of the gateway that holds the agent now (PUT /api/v1/relocations/{id});
// a media request for an agent that is not online here is then answered RTSP 302 / HTTP 307 with
// the same URL re-pointed at that frontend, instead of 503/404.
//
// Bounded like every table fed from outside: at most `capacity` entries, each valid for `ttl_ms`
// after it was (re)written, and an entry is stale as soon as the agent has had a new session
// here (it came back: its requests are served here again, the redirect must not outlive that).
// Plain and single-threaded: one per GatewayShard, next to the denylist; in memory only (the
// manager pushes again after a restart).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "gateway/frontend_route.h"
#include "proto/http_head.h"

namespace camtunnel::gateway {

class Relocations {
 public:
  // 100k agents moved off one gateway is a whole large fleet; a day covers the time a media
  // server keeps retrying an old URL, and the manager re-pushes when the agent moves again.
  static constexpr size_t kDefaultCapacity = 100'000;
  static constexpr uint64_t kDefaultTtlMs = 24ull * 3600 * 1000;
  static constexpr size_t kMaxFrontendBytes = 255;

  explicit Relocations(size_t capacity = kDefaultCapacity, uint64_t ttl_ms = kDefaultTtlMs)
      : capacity_(capacity), ttl_ms_(ttl_ms) {}

  enum class PutResult { kOk, kBadFrontend, kFull };
  // `frontend`: "rtsp://host:port" or "http://host:port" (a trailing '/' is allowed). Only the
  // authority is kept: a redirect's scheme follows the request's protocol, since one frontend
  // listener serves both. `sessions`: the agent's verified sessions here so far (AgentStats), so
  // a later session marks the entry stale. When full, expired entries are dropped first.
  PutResult Put(std::string_view agent_id, std::string_view frontend, uint64_t sessions,
                uint64_t now_ms);
  bool Erase(std::string_view agent_id);
  // The authority (host:port) to send `agent_id`'s requests to, or nullopt: none, expired, or
  // stale (`sessions` grew since Put). Expired and stale entries are dropped on the way.
  std::optional<std::string> Find(std::string_view agent_id, uint64_t sessions, uint64_t now_ms);

  size_t size() const { return entries_.size(); }
  // Calls f(agent id, authority, expires_at_ms) for each entry (admin listing).
  template <typename F>
  void ForEach(F f) const {
    for (const auto& [id, e] : entries_) {
      f(std::string_view(id), std::string_view(e.authority), e.expires_ms);
    }
  }

 private:
  struct Entry {
    std::string authority;
    uint64_t sessions = 0;
    uint64_t expires_ms = 0;
  };
  void DropExpired(uint64_t now_ms);

  size_t capacity_;
  uint64_t ttl_ms_;
  absl::flat_hash_map<std::string, Entry> entries_;
};

// The authority of an "rtsp://host:port" or "http://host:port" frontend URL, or nullopt when it
// is not one (path, userinfo, control or other unexpected characters, over kMaxFrontendBytes).
std::optional<std::string> FrontendAuthority(std::string_view frontend);

// The redirect target of a routed request: its URL re-pointed at `authority`. Path forms keep
// their path; host forms become path forms ("/<agent>" prefix), since the other gateway's host
// suffix is not known here (path form and Digest: see docs). nullopt for CONNECT and RTSP over
// HTTP, which carry no URL that could be re-pointed.
std::optional<std::string> RelocatedUrl(const FrontendRoute& route, const proto::RequestHead& head,
                                        std::string_view authority);

}  // namespace camtunnel::gateway
