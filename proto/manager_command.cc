// See manager_command.h.
#include "proto/manager_command.h"

namespace camtunnel::proto {

FrameBuilder BuildCommand(FrameType type, std::string_view text, uint64_t command_id,
                          std::string_view redirect) {
  FrameBuilder f(type);
  if (type == FrameType::kSwitch) {
    f.AddText(Tag::kRedirect, redirect);
  }
  f.AddText(Tag::kText, text);
  if (command_id != 0) {
    f.AddU64(Tag::kCommandId, command_id);
  }
  return f;
}

uint64_t CommandIdOf(const Frame& frame) { return frame.U64(Tag::kCommandId).value_or(0); }

FrameBuilder BuildAck(uint64_t command_id, std::string_view outcome) {
  FrameBuilder f(FrameType::kAck);
  f.AddU64(Tag::kCommandId, command_id).AddText(Tag::kText, outcome);
  return f;
}

std::optional<CommandAck> ParseAck(const Frame& frame) {
  const std::optional<uint64_t> id = frame.U64(Tag::kCommandId);
  if (frame.type() != static_cast<uint8_t>(FrameType::kAck) || !id || *id == 0) {
    return std::nullopt;
  }
  return CommandAck{.command_id = *id, .outcome = std::string(frame.Text(Tag::kText).value_or(""))};
}

}  // namespace camtunnel::proto
