// See manager_order.h.
#include "proto/manager_order.h"

#include <algorithm>
#include <utility>

#include "proto/crypto.h"
#include "proto/encoding.h"

namespace camtunnel::proto {

uint64_t ManagerOrderScore(std::string_view agent_id, std::string_view url) {
  std::vector<uint8_t> message;
  AppendLengthPrefixed(message, AsBytes("camtunnel/1 manager-order"));
  AppendLengthPrefixed(message, AsBytes(agent_id));
  AppendLengthPrefixed(message, AsBytes(url));
  const Digest d = Sha256(message);
  uint64_t score = 0;
  for (size_t i = 0; i < 8; ++i) {
    score = (score << 8) | d[i];
  }
  return score;
}

std::vector<std::string> OrderManagers(std::string_view agent_id,
                                       std::span<const std::string> urls) {
  std::vector<std::pair<uint64_t, std::string>> scored;
  for (const std::string& url : urls) {
    scored.emplace_back(ManagerOrderScore(agent_id, url), url);
  }
  std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<std::string> out;
  for (auto& [score, url] : scored) {
    if (out.empty() || out.back() != url) {
      out.push_back(std::move(url));
    }
  }
  return out;
}

std::vector<std::string> SplitManagerList(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const size_t space = text.find(' ');
    const std::string_view item = text.substr(0, space);
    if (!item.empty()) {
      out.emplace_back(item);
    }
    if (space == std::string_view::npos) {
      break;
    }
    text.remove_prefix(space + 1);
  }
  return out;
}

std::string JoinManagerList(std::span<const std::string> urls) {
  std::string out;
  for (const std::string& url : urls) {
    if (!out.empty()) {
      out += ' ';
    }
    out += url;
  }
  return out;
}

}  // namespace camtunnel::proto
