// See streamer_load.h.
#include "manager/streamer_load.h"

namespace camtunnel::manager {

void StreamerLoad::Moved(std::string_view from, std::string_view to) {
  if (from == to) {
    return;
  }
  if (!from.empty()) {
    auto it = counts_.find(from);
    if (it != counts_.end() && it->second > 0) {
      --it->second;
    }
  }
  if (!to.empty()) {
    auto it = counts_.find(to);
    if (it == counts_.end()) {
      it = counts_.emplace(std::string(to), 0).first;
    }
    ++it->second;
  }
}

uint64_t StreamerLoad::Load(std::string_view url, std::string_view self_url) const {
  auto it = counts_.find(url);
  uint64_t n = it == counts_.end() ? 0 : it->second;
  if (!self_url.empty() && self_url == url && n > 0) {
    --n;
  }
  return n;
}

}  // namespace camtunnel::manager
