// See streamer_pool.h.
#include "manager/streamer_pool.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "manager/admin_call.h"
#include "proto/encoding.h"
#include "proto/streamer_key_file.h"
#include "proto/url.h"
#include "runtime/read_file.h"

namespace camtunnel::manager {
namespace {

// rtsp://host[:port] or http://host[:port] (proto/url.h), as the gateway's relocation table
// accepts it (only an authority: the gateway re-points each request's own path there).
bool IsFrontendUrl(std::string_view text) {
  constexpr size_t kMaxFrontendUrl = 255;  // the gateway's Relocations::kMaxFrontendBytes
  if (text.size() > kMaxFrontendUrl) {
    return false;
  }
  const std::optional<proto::Url> url = proto::ParseUrl(text);
  return url && (url->scheme == "rtsp" || url->scheme == "http");
}

}  // namespace

absl::StatusOr<StreamerConfig> ParseStreamerSpec(std::string_view spec_view) {
  const std::string spec(spec_view);
  std::vector<std::string> all = absl::StrSplit(spec, ',');
  std::vector<std::string> parts;
  std::string frontend;
  constexpr std::string_view kFrontend = "frontend=";
  for (size_t i = 0; i < all.size(); ++i) {
    if (i >= 3 && all[i].starts_with(kFrontend)) {
      frontend = all[i].substr(kFrontend.size());
    } else {
      parts.push_back(all[i]);
    }
  }
  if (parts.size() < 3 || parts.size() > 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("--streamer '", spec,
                     "': expected URL,KEYID,KEYFILE[,ADMIN_URL[,TOKEN_FILE]][,frontend=URL]"));
  }
  StreamerConfig c{.url = parts[0], .key_id = parts[1], .frontend_url = frontend};
  if (!frontend.empty() && !IsFrontendUrl(frontend)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--streamer: frontend= must be rtsp://host:port, not '", frontend, "'"));
  }
  if (!proto::IsValidStreamerUrl(c.url)) {
    return absl::InvalidArgumentError(absl::StrCat("--streamer: bad URL '", c.url, "'"));
  }
  if (!proto::IsValidKeyId(c.key_id)) {
    return absl::InvalidArgumentError(absl::StrCat("--streamer: bad key id '", c.key_id, "'"));
  }
  if (parts.size() >= 4) {
    c.admin_url = parts[3];
    // Checked here, not only where it is used: an admin URL the health checker cannot use would
    // leave the Streamer unchecked and its denylist unpushed, silently.
    if (!ParseAdminUrl(c.admin_url)) {
      return absl::InvalidArgumentError(
          "--streamer: ADMIN_URL must be http://IP:port (an address: the manager does not "
          "resolve names)");
    }
  }
  if (parts.size() == 5) {
    auto token = runtime::ReadWholeFile(parts[4]);
    std::vector<std::string> words;
    if (token.ok()) {
      words = absl::StrSplit(*token, absl::ByAnyChar(" \t\r\n"), absl::SkipEmpty());
    }
    if (words.empty()) {
      return absl::NotFoundError("--streamer: cannot read admin token file " + parts[4]);
    }
    c.admin_token = std::move(words[0]);
  }
  auto text = runtime::ReadWholeFile(parts[2]);
  if (!text.ok()) {
    return absl::NotFoundError(absl::StrCat("--streamer: cannot read keys file ", parts[2]));
  }
  std::string error;
  auto keys = proto::ParseStreamerKeys(*text, &error);
  if (!keys) {
    return absl::InvalidArgumentError(absl::StrCat("--streamer: ", parts[2], ": ", error));
  }
  for (proto::StreamerKeyEntry& k : *keys) {
    if (k.key_id == c.key_id) {
      c.streamer_key = std::move(k.key);
      return c;
    }
  }
  return absl::NotFoundError(absl::StrCat("--streamer: no key ", c.key_id, " in ", parts[2]));
}

StreamerPool::StreamerPool(std::vector<StreamerConfig> streamers, uint64_t key_validity_s)
    : streamers_(std::move(streamers)),
      healthy_(streamers_.size(), true),
      key_validity_s_(key_validity_s) {}

void StreamerPool::Replace(std::vector<StreamerConfig> streamers) {
  std::vector<bool> healthy(streamers.size(), true);
  for (size_t i = 0; i < streamers.size(); ++i) {
    if (std::optional<size_t> old = Find(streamers[i].url)) {
      healthy[i] = healthy_[*old];
    }
  }
  streamers_ = std::move(streamers);
  healthy_ = std::move(healthy);
}

std::optional<size_t> StreamerPool::Find(std::string_view url) const {
  for (size_t i = 0; i < streamers_.size(); ++i) {
    if (streamers_[i].url == url) {
      return i;
    }
  }
  return std::nullopt;
}

bool StreamerPool::any_healthy() const {
  return std::find(healthy_.begin(), healthy_.end(), true) != healthy_.end();
}

std::vector<proto::AssignedStreamer> StreamerPool::Assign(std::string_view agent_id,
                                                          uint64_t now_unix_s, const LoadFn& load,
                                                          std::string_view preferred) const {
  std::vector<size_t> order(streamers_.size());
  std::iota(order.begin(), order.end(), 0);
  std::vector<size_t> loads(streamers_.size());
  for (size_t i = 0; i < streamers_.size(); ++i) {
    loads[i] = load(streamers_[i].url);
  }
  // Stable: equal loads keep the configured order, so a fresh fleet fills the first Streamer's
  // peers evenly rather than at random.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const bool pa = healthy_[a] && streamers_[a].url == preferred;
    const bool pb = healthy_[b] && streamers_[b].url == preferred;
    if (pa != pb) {
      return pa;
    }
    if (healthy_[a] != healthy_[b]) {
      return static_cast<bool>(healthy_[a]);
    }
    return loads[a] < loads[b];
  });
  // A whole hour, or the validity itself when that is shorter (tests, aggressive rotation).
  const uint64_t step = std::max<uint64_t>(1, std::min<uint64_t>(3600, key_validity_s_));
  const uint64_t expiry = (now_unix_s + key_validity_s_ + step - 1) / step * step;
  std::vector<proto::AssignedStreamer> out;
  for (size_t i : order) {
    if (out.size() == proto::kMaxAssignedStreamers) {
      break;
    }
    proto::AssignedStreamer a{.url = streamers_[i].url, .key_ref = {streamers_[i].key_id, expiry}};
    a.agent_key = proto::DeriveAgentKey(streamers_[i].streamer_key, agent_id, a.key_ref);
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace camtunnel::manager
