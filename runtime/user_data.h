// Encoding of io_uring completion user_data: {generation:24, slot:32, op:8}. A completion whose
// generation no longer matches its slot belongs to an object that was already released: it is
// recognised and dropped instead of touching freed memory.
#pragma once

#include <cstdint>

namespace camtunnel::runtime {

struct UserData {
  uint32_t slot = 0;
  uint32_t generation = 0;  // 24 bits used
  uint8_t op = 0;

  static constexpr uint32_t kGenerationMask = (1u << 24) - 1;

  uint64_t Encode() const {
    return (uint64_t{generation & kGenerationMask} << 40) | (uint64_t{slot} << 8) | op;
  }
  static UserData Decode(uint64_t v) {
    return UserData{static_cast<uint32_t>((v >> 8) & 0xffffffffu),
                    static_cast<uint32_t>(v >> 40) & kGenerationMask, static_cast<uint8_t>(v)};
  }
};

}  // namespace camtunnel::runtime
