#include "agentsim/sim_stats.h"

namespace camtunnel::agentsim {

uint64_t MediaStats::opens_total() const {
  uint64_t n = 0;
  for (const auto& [result, count] : opens) {
    n += count;
  }
  return n;
}

uint64_t MediaStats::opens_failed() const {
  auto it = opens.find("ok");
  return opens_total() - (it == opens.end() ? 0 : it->second);
}

}  // namespace camtunnel::agentsim
