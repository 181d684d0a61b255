// Typed reads of the members of an untrusted JSON object (activation and hand-over bodies).
#pragma once

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "proto/encoding.h"

namespace camtunnel::manager {

// The string member `name` holding exactly N bytes as hex (2N characters, either case);
// nullopt when it is missing, not a string, or anything else.
template <size_t N>
std::optional<std::array<uint8_t, N>> HexBytes(const nlohmann::json& doc, const char* name) {
  auto it = doc.find(name);
  if (it == doc.end() || !it->is_string() || it->get_ref<const std::string&>().size() != 2 * N) {
    return std::nullopt;
  }
  auto bytes = proto::HexDecode(it->get_ref<const std::string&>());
  if (!bytes || bytes->size() != N) {
    return std::nullopt;
  }
  std::array<uint8_t, N> out;
  std::copy(bytes->begin(), bytes->end(), out.begin());
  OPENSSL_cleanse(bytes->data(), bytes->size());  // factory secrets and proofs pass here
  return out;
}

}  // namespace camtunnel::manager
