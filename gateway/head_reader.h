// Accumulates the first message head of a connection, bounded by proto::kMaxHeadBytes. Shared by
// the agent listener and the frontend, which both start with one head (the admin listener is
// served by http/server.h).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "proto/http_head.h"

namespace camtunnel::gateway {

class HeadReader {
 public:
  // Appends at most what a head may still need; the rest stays in the caller's span for later.
  void Append(std::span<const uint8_t> bytes) {
    buffer_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  proto::HeadResult Parse(proto::RequestHead* head) const {
    return proto::ParseRequestHead(buffer_, head);
  }
  std::string_view buffer() const { return buffer_; }
  // Bytes after the head (pipelined data), once Parse returned kComplete.
  std::string_view After(const proto::RequestHead& head) const {
    return std::string_view(buffer_).substr(head.head_bytes);
  }
  size_t size() const { return buffer_.size(); }
  // Everything read so far, for handing the connection to another shard.
  std::string Take() { return std::move(buffer_); }

 private:
  std::string buffer_;
};

inline std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace camtunnel::gateway
