// Reading a small file whole: configuration, keys, tokens. Blocking, so for start-up and
// reloads only, never on a shard's loop. (The agent has its own: it does not link runtime/.)
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace camtunnel::runtime {

// The file's bytes, or an error naming the path and errno's text. A file larger than
// `max_bytes` is an error too: a path pointing at a device or a log must not fill memory.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path, size_t max_bytes = 1 << 20);

}  // namespace camtunnel::runtime
