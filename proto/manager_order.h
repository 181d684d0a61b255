// The order in which an agent tries the managers of a deployment (PROTOCOL.md section 10.5):
// rendezvous hashing of its id with each URL. Agents spread evenly over the managers, and the
// agents of a manager that stops spread evenly over the survivors; nobody else moves.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace camtunnel::proto {

// First 8 bytes, big-endian, of SHA-256(LP("camtunnel/1 manager-order") LP(agent id) LP(url)).
uint64_t ManagerOrderScore(std::string_view agent_id, std::string_view url);

// `urls` by score, highest first (ties by URL), duplicates dropped.
std::vector<std::string> OrderManagers(std::string_view agent_id,
                                       std::span<const std::string> urls);

// The activation answer's "manager_urls": URLs separated by single spaces. Empty entries (a
// doubled space) are skipped; nothing else is checked here.
std::vector<std::string> SplitManagerList(std::string_view text);
std::string JoinManagerList(std::span<const std::string> urls);

}  // namespace camtunnel::proto
