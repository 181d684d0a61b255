// The simulated cameras' snapshot: one body shared by every camera (a JPEG's SOI/EOI around
// deterministic pseudo-random bytes, so nothing downstream can compress it away), with its SHA-256
// computed once. Each camera sends it with `X-Checksum: sha256=<hex>` and `X-Agent: <id>`; the
// media side hashes what it receives and checks both, so a wrong byte or a crossed tunnel shows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace camtunnel::agentsim {

struct SnapshotImage {
  std::vector<uint8_t> body;
  std::string sha256_hex;
};

SnapshotImage MakeSnapshotImage(uint64_t bytes);

}  // namespace camtunnel::agentsim
