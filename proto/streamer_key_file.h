// The streamer keys file the gateway reads and the manager and agentsim read too: one key per
// line, "<key id> <64 hex chars>" (the id as IsValidKeyId defines it), blank lines and lines
// starting with '#' ignored, the first key the current one by convention. One parser, so a file
// the gateway accepts means the same keys everywhere. Pure: the caller reads the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace camtunnel::proto {

struct StreamerKeyEntry {
  std::string key_id;
  std::vector<uint8_t> key;  // 32 bytes
};

// Every key in file order, or nullopt with `*error` naming the first bad line ("line 3: ...")
// or "no keys". Never quotes a line: it may hold a key.
std::optional<std::vector<StreamerKeyEntry>> ParseStreamerKeys(std::string_view text,
                                                               std::string* error);

}  // namespace camtunnel::proto
