// See relocations.h.
#include "gateway/relocations.h"

#include "proto/url.h"

namespace camtunnel::gateway {
namespace {

// "scheme://authority/rest" -> "/rest" ("" when there is nothing after the authority); an
// origin-form target ("/rest") is returned as it is.
std::string_view PathOf(std::string_view target) {
  const size_t scheme_end = target.find("://");
  if (scheme_end == std::string_view::npos) {
    return target;
  }
  const size_t slash = target.find('/', scheme_end + 3);
  return slash == std::string_view::npos ? std::string_view() : target.substr(slash);
}

absl::string_view Key(std::string_view id) { return absl::string_view(id.data(), id.size()); }

}  // namespace

std::optional<std::string> FrontendAuthority(std::string_view frontend) {
  if (frontend.size() > Relocations::kMaxFrontendBytes) {
    return std::nullopt;
  }
  // proto/url.h's grammar: nothing that could end the Location header, start a path, or carry
  // userinfo.
  const std::optional<proto::Url> url = proto::ParseUrl(frontend);
  if (!url || (url->scheme != "rtsp" && url->scheme != "http")) {
    return std::nullopt;
  }
  return url->port == 0 ? url->host : url->host + ":" + std::to_string(url->port);
}

Relocations::PutResult Relocations::Put(std::string_view agent_id, std::string_view frontend,
                                        uint64_t sessions, uint64_t now_ms) {
  std::optional<std::string> authority = FrontendAuthority(frontend);
  if (!authority) {
    return PutResult::kBadFrontend;
  }
  auto it = entries_.find(Key(agent_id));
  if (it == entries_.end()) {
    if (entries_.size() >= capacity_) {
      DropExpired(now_ms);
    }
    if (entries_.size() >= capacity_) {
      return PutResult::kFull;  // the manager retries; live entries are never evicted early
    }
    it = entries_.try_emplace(std::string(agent_id)).first;
  }
  it->second = Entry{
      .authority = std::move(*authority), .sessions = sessions, .expires_ms = now_ms + ttl_ms_};
  return PutResult::kOk;
}

bool Relocations::Erase(std::string_view agent_id) { return entries_.erase(Key(agent_id)) > 0; }

std::optional<std::string> Relocations::Find(std::string_view agent_id, uint64_t sessions,
                                             uint64_t now_ms) {
  auto it = entries_.find(Key(agent_id));
  if (it == entries_.end()) {
    return std::nullopt;
  }
  if (now_ms >= it->second.expires_ms || sessions > it->second.sessions) {
    entries_.erase(it);
    return std::nullopt;
  }
  return it->second.authority;
}

void Relocations::DropExpired(uint64_t now_ms) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (now_ms >= it->second.expires_ms) {
      entries_.erase(it++);
    } else {
      ++it;
    }
  }
}

std::optional<std::string> RelocatedUrl(const FrontendRoute& route, const proto::RequestHead& head,
                                        std::string_view authority) {
  const std::string_view path = PathOf(head.target);
  if (!path.empty() && path.front() != '/') {
    return std::nullopt;  // "*" (OPTIONS *): nothing to re-point
  }
  std::string scheme;
  switch (route.form) {
    case FrontendForm::kRtspHost:
    case FrontendForm::kRtspPath:
      scheme = "rtsp://";
      break;
    case FrontendForm::kHttpHost:
    case FrontendForm::kHttpPath:
      scheme = "http://";
      break;
    case FrontendForm::kConnect:
    case FrontendForm::kRtspOverHttp:
      return std::nullopt;
  }
  std::string url = scheme + std::string(authority);
  const bool host_form =
      route.form == FrontendForm::kRtspHost || route.form == FrontendForm::kHttpHost;
  if (host_form) {
    url.append("/").append(route.agent_id);
  }
  url.append(path);
  return url;
}

}  // namespace camtunnel::gateway
