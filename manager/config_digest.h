// What the managers of one deployment must agree on (the Streamers they assign, with their keys,
// the operators they accept, the manager list they announce, the key validity), as a short
// digest each manager exports (camtunnel_manager_config_info{sha256=...}): an alert fires when
// two managers sharing a database export different ones. Key bytes enter SHA-256 only, and only
// 8 bytes of it are shown.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "manager/streamer_pool.h"

namespace camtunnel::manager {

std::string ConfigDigest(const std::vector<StreamerConfig>& streamers,
                         const std::set<std::string>& operators,
                         const std::vector<std::string>& manager_urls, uint64_t key_validity_s);

}  // namespace camtunnel::manager
