// See store_connection.h.
#include "manager/store_connection.h"

#include "manager/postgres_connection.h"
#include "manager/sqlite_connection.h"

namespace camtunnel::manager {

std::string_view AgentStateName(AgentState s) {
  return s == AgentState::kActive ? "active" : "deactivated";
}

std::optional<AgentState> ParseAgentState(std::string_view name) {
  if (name == "active") {
    return AgentState::kActive;
  }
  if (name == "deactivated") {
    return AgentState::kDeactivated;
  }
  return std::nullopt;
}

std::string_view CommandStateName(CommandState s) {
  switch (s) {
    case CommandState::kQueued:
      return "queued";
    case CommandState::kSent:
      return "sent";
    case CommandState::kAcked:
      return "acked";
    case CommandState::kFailed:
      return "failed";
    case CommandState::kExpired:
      return "expired";
  }
  return "failed";
}

std::optional<CommandState> ParseCommandState(std::string_view name) {
  for (CommandState s : {CommandState::kQueued, CommandState::kSent, CommandState::kAcked,
                         CommandState::kFailed, CommandState::kExpired}) {
    if (CommandStateName(s) == name) {
      return s;
    }
  }
  return std::nullopt;
}

bool IsPostgresSpec(std::string_view spec) {
  return spec.starts_with("postgresql://") || spec.starts_with("postgres://") ||
         spec.find('=') != std::string_view::npos;
}

absl::StatusOr<std::unique_ptr<StoreConnection>> OpenStoreConnection(const std::string& spec,
                                                                     const SecretSealer* sealer) {
  if (IsPostgresSpec(spec)) {
    auto postgres = PostgresConnection::Open(spec, sealer);
    if (!postgres.ok()) {
      return postgres.status();
    }
    return std::unique_ptr<StoreConnection>(std::move(*postgres));
  }
  std::string path = spec.starts_with("sqlite:") ? spec.substr(7) : spec;
  auto sqlite = SqliteConnection::Open(path, sealer);
  if (!sqlite.ok()) {
    return sqlite.status();
  }
  return std::unique_ptr<StoreConnection>(std::move(*sqlite));
}

}  // namespace camtunnel::manager
