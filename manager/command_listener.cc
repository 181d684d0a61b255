// See command_listener.h.
#include "manager/command_listener.h"

#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <optional>
#include <random>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "manager/postgres_connection.h"
#include "runtime/log.h"

namespace camtunnel::manager {
namespace {

// LISTEN's answer, on a session that has just connected.
constexpr int kListenTimeoutMs = 10000;

struct PgConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using PgConnPtr = std::unique_ptr<PGconn, PgConnDeleter>;

enum class Wait { kReady, kTimeout, kStop };

// Waits for `events` on `fd` or for the wake eventfd, at most `timeout_ms` (-1: no limit). Once
// written, the wake eventfd stays readable: every later wait says kStop too.
Wait WaitFor(int fd, short events, int wake_fd, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    pollfd fds[2] = {{.fd = fd, .events = events, .revents = 0},
                     {.fd = wake_fd, .events = POLLIN, .revents = 0}};
    int wait_ms = timeout_ms;
    if (timeout_ms >= 0) {
      wait_ms = static_cast<int>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                   std::chrono::steady_clock::now())
                 .count()));
    }
    const int n = poll(fds, 2, wait_ms);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (fds[1].revents != 0) {
      return Wait::kStop;
    }
    // A poll that fails otherwise (ENOMEM) gives up on this wait; the session is made again.
    return n > 0 ? Wait::kReady : Wait::kTimeout;
  }
}

// A notification's payload names a command: a positive id in decimal, nothing else (no sign, no
// spaces, no leading zero).
bool ParseCommandId(std::string_view payload, int64_t* id) {
  if (payload.empty() || payload.size() > 19 || payload[0] == '0') {
    return false;
  }
  for (char c : payload) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  const auto [end, ec] = std::from_chars(payload.data(), payload.data() + payload.size(), *id);
  return ec == std::errc() && end == payload.data() + payload.size() && *id > 0;
}

// A message the server sends outside a query (the FATAL of a terminated session) reaches the
// notice processor; libpq would print it on stderr.
void LogNotice(void* /*arg*/, const char* message) {
  runtime::LogEvent(runtime::LogLevel::kDebug, "command_listener_notice",
                    {runtime::Kv("message", absl::StripTrailingAsciiWhitespace(
                                                message == nullptr ? "" : message))});
}

std::string ErrorOf(PGconn* conn) {
  return std::string(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn)));
}

// Connects as the store's sessions do (PQconnectdbParams with the same parameters): libpq's
// connect_timeout per host and its failover over a host list (target_session_attrs) hold here
// too. That call cannot be interrupted: a stop while it runs waits for it, as the store's
// workers wait for theirs. Null when it failed (*error).
PgConnPtr Connect(const PgConnectParams& params, std::string* error) {
  const std::vector<const char*> keywords = params.keyword_array();
  const std::vector<const char*> values = params.value_array();
  PgConnPtr conn(PQconnectdbParams(keywords.data(), values.data(), 0));
  if (conn == nullptr) {
    *error = "cannot allocate a PostgreSQL connection";
    return nullptr;
  }
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    *error = ErrorOf(conn.get());
    return nullptr;
  }
  PQsetNoticeProcessor(conn.get(), LogNotice, nullptr);
  return conn;
}

// Sends LISTEN and waits for its answer. Notifications that arrive with it stay queued in libpq.
bool Listen(PGconn* conn, int wake_fd, std::string* error) {
  const std::string sql = absl::StrCat("LISTEN ", PostgresConnection::kCommandChannel);
  if (PQsendQuery(conn, sql.c_str()) == 0) {
    *error = ErrorOf(conn);
    return false;
  }
  bool ok = true;
  for (;;) {
    while (PQisBusy(conn) != 0) {
      const Wait w = WaitFor(PQsocket(conn), POLLIN, wake_fd, kListenTimeoutMs);
      if (w != Wait::kReady) {
        *error = w == Wait::kStop ? "stopping" : "LISTEN not answered";
        return false;
      }
      if (PQconsumeInput(conn) == 0) {
        *error = ErrorOf(conn);
        return false;
      }
    }
    PGresult* r = PQgetResult(conn);
    if (r == nullptr) {
      return ok;
    }
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      *error = std::string(absl::StripTrailingAsciiWhitespace(PQresultErrorMessage(r)));
      ok = false;
    }
    PQclear(r);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<CommandListener>> CommandListener::Start(
    runtime::Shard& shard, const std::string& conninfo, Handlers handlers,
    CommandListenerBackoff backoff) {
  absl::StatusOr<PgConnectParams> params = PgConnectParams::Parse(conninfo);
  if (!params.ok()) {
    return params.status();
  }
  const int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    return absl::ErrnoToStatus(errno, "command listener eventfd");
  }
  std::unique_ptr<CommandListener> listener(
      new CommandListener(shard, std::move(*params), std::move(handlers), backoff, wake_fd));
  listener->thread_ = std::thread([l = listener.get()] { l->Loop(); });
  return listener;
}

CommandListener::CommandListener(runtime::Shard& shard, PgConnectParams params, Handlers handlers,
                                 CommandListenerBackoff backoff, int wake_fd)
    : shard_(shard),
      params_(std::move(params)),
      handlers_(std::move(handlers)),
      backoff_(backoff),
      wake_fd_(wake_fd) {}

CommandListener::~CommandListener() {
  alive_->store(false);
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = write(wake_fd_, &one, sizeof(one));
  thread_.join();
  close(wake_fd_);
}

CommandListenerCounters CommandListener::counters() const {
  return {.notifications = notifications_.load(std::memory_order_relaxed),
          .bad_payloads = bad_payloads_.load(std::memory_order_relaxed),
          .reconnects = reconnects_.load(std::memory_order_relaxed),
          .up = up_.load(std::memory_order_relaxed)};
}

void CommandListener::Post(std::function<void()> fn) {
  shard_.Post([alive = alive_, fn = std::move(fn)] {
    if (alive->load()) {
      fn();
    }
  });
}

std::optional<std::string> CommandListener::Receive(PGconn* conn) {
  for (;;) {
    TakeNotifications(conn);
    if (PQstatus(conn) != CONNECTION_OK) {
      return ErrorOf(conn);
    }
    const Wait w = WaitFor(PQsocket(conn), POLLIN, wake_fd_, -1);
    if (w == Wait::kStop) {
      return std::nullopt;
    }
    if (w != Wait::kReady) {
      return "poll failed";
    }
    if (PQconsumeInput(conn) == 0) {
      TakeNotifications(conn);  // what arrived before the loss
      return ErrorOf(conn);
    }
  }
}

// Whatever one read brought (any number of notifications) goes to the shard in one message.
void CommandListener::TakeNotifications(PGconn* conn) {
  std::vector<int64_t> ids;
  while (PGnotify* n = PQnotifies(conn)) {
    notifications_.fetch_add(1, std::memory_order_relaxed);
    int64_t id = 0;
    if (ParseCommandId(n->extra, &id)) {
      ids.push_back(id);
    } else {
      bad_payloads_.fetch_add(1, std::memory_order_relaxed);
      runtime::LogEvent(runtime::LogLevel::kWarning, "command_notification_malformed",
                        {runtime::Kv("bytes", std::string_view(n->extra).size()),
                         runtime::Kv("sender_pid", n->be_pid)});
    }
    PQfreemem(n);
  }
  if (!ids.empty()) {
    Post([this, ids = std::move(ids)] {
      for (int64_t id : ids) {
        handlers_.command(id);
      }
    });
  }
}

void CommandListener::Loop() {
  std::minstd_rand jitter(std::random_device{}());
  uint64_t backoff_ms = backoff_.first_ms;
  bool listened_before = false;
  for (;;) {
    std::string error;
    PgConnPtr conn = Connect(params_, &error);
    if (conn != nullptr && Listen(conn.get(), wake_fd_, &error)) {
      up_.store(true, std::memory_order_relaxed);
      if (listened_before) {
        reconnects_.fetch_add(1, std::memory_order_relaxed);
      }
      runtime::LogEvent(runtime::LogLevel::kInfo, "command_listener_up",
                        {runtime::Kv("again", listened_before ? "yes" : "no")});
      listened_before = true;
      backoff_ms = backoff_.first_ms;
      Post([this] { handlers_.listening(); });
      std::optional<std::string> lost = Receive(conn.get());
      up_.store(false, std::memory_order_relaxed);
      if (!lost.has_value()) {
        return;  // stopping
      }
      error = std::move(*lost);
    }
    if (!alive_->load()) {
      return;
    }
    runtime::LogEvent(runtime::LogLevel::kWarning, "command_listener_down",
                      {runtime::Kv("error", error), runtime::Kv("retry_ms", backoff_ms)});
    // A random wait in [backoff/2, backoff]: managers that lost the database together do not
    // come back in step.
    const uint64_t wait_ms = backoff_ms / 2 + jitter() % (backoff_ms / 2 + 1);
    if (WaitFor(-1, 0, wake_fd_, static_cast<int>(wait_ms)) == Wait::kStop) {
      return;
    }
    backoff_ms = std::min(backoff_ms * 2, backoff_.max_ms);
  }
}

}  // namespace camtunnel::manager
