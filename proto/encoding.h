// Byte encodings used on the wire: unpadded base64url and lowercase hex.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace camtunnel::proto {

// RFC 4648 section 5 without padding. Decoding rejects padding, other alphabets, and
// non-canonical trailing bits.
std::string Base64UrlEncode(std::span<const uint8_t> bytes);
std::optional<std::vector<uint8_t>> Base64UrlDecode(std::string_view text);

std::string HexEncode(std::span<const uint8_t> bytes);
// Accepts upper and lower case; rejects odd lengths and other characters.
std::optional<std::vector<uint8_t>> HexDecode(std::string_view text);
// 0..15 for a hex digit of either case, else -1.
int HexDigitValue(char c);

inline std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace camtunnel::proto
