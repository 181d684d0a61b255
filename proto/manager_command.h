// Commands on the manager link and their acknowledgements (PROTOCOL.md section 10.6): SWITCH,
// DEACTIVATE and RESTART may carry a command id; an agent with the command-ack capability answers
// each with ACK (the id echoed, and "done", "duplicate" or "refused: <reason>").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proto/control_frame.h"

namespace camtunnel::proto {

inline constexpr std::string_view kAckDone = "done";
inline constexpr std::string_view kAckDuplicate = "duplicate";
inline constexpr std::string_view kAckRefusedPrefix = "refused: ";

// SWITCH (with `redirect`), DEACTIVATE or RESTART; `command_id` 0: none (an agent without the
// capability, or a command that is not a row).
FrameBuilder BuildCommand(FrameType type, std::string_view text, uint64_t command_id,
                          std::string_view redirect = {});
// The command id of a command frame; 0 when it has none.
uint64_t CommandIdOf(const Frame& frame);

FrameBuilder BuildAck(uint64_t command_id, std::string_view outcome);
struct CommandAck {
  uint64_t command_id = 0;
  std::string outcome;
};
// nullopt unless an ACK with a command id (the outcome text may be empty).
std::optional<CommandAck> ParseAck(const Frame& frame);

}  // namespace camtunnel::proto
