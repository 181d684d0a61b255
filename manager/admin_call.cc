// See gateway_admin_call.h.
#include "manager/admin_call.h"

#include <unistd.h>

#include <cerrno>
#include <optional>

#include "proto/http_head.h"
#include "proto/url.h"
#include "runtime/connector.h"
#include "runtime/listener.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::manager {
namespace {

// Frees itself in OnStreamClosed (the stream's last call).
class AdminCall final : public runtime::StreamHandler {
 public:
  AdminCall(std::shared_ptr<bool> alive, std::function<void(int, std::string)> done)
      : alive_(std::move(alive)), done_(std::move(done)) {}

  void Begin(runtime::Shard& shard, int fd, const AdminRequest& r) {
    stream_ = runtime::Stream::Create(shard, fd, nullptr, this);
    deadline_.set_callback([this] { stream_->Close(ETIMEDOUT); });
    shard.timers().Arm(deadline_, shard.now_ms(), r.timeout_ms);
    stream_->Start();
    std::string req = r.method + " " + r.path + " HTTP/1.1\r\nHost: " + r.host +
                      "\r\nConnection: close\r\nContent-Length: " + std::to_string(r.body.size()) +
                      "\r\n";
    if (!r.body.empty()) {
      req += "Content-Type: application/json\r\n";
    }
    if (!r.token.empty()) {
      req += "Authorization: Bearer " + r.token + "\r\n";
    }
    req += r.headers;
    stream_->Write(req + "\r\n" + r.body);
  }

  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override {
    if (reported_) {
      return;
    }
    reply_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (status_ == 0) {
      proto::ResponseHead head;
      const proto::HeadResult r = proto::ParseResponseHead(reply_, &head);
      if (r == proto::HeadResult::kNeedMore) {
        return;
      }
      std::optional<uint64_t> length;
      if (r == proto::HeadResult::kComplete) {
        auto text = head.headers.Find("Content-Length");
        length = text ? proto::ParseContentLength(*text) : std::optional<uint64_t>(0);
      }
      if (!length || *length > kMaxAdminReplyBody) {
        Report(0, {});
        stream.Close(0);
        return;
      }
      status_ = head.status;
      body_bytes_ = *length;
      reply_.erase(0, head.head_bytes);
    }
    if (reply_.size() >= body_bytes_) {
      reply_.resize(body_bytes_);
      Report(status_, std::move(reply_));
      stream.Close(0);
    }
  }
  void OnStreamEof(runtime::Stream& stream) override { stream.Close(0); }
  void OnStreamClosed(runtime::Stream& stream, int /*error*/) override {
    stream.shard().timers().Cancel(deadline_);
    Report(0, {});
    delete this;
  }

 private:
  void Report(int status, std::string body) {
    if (!reported_ && *alive_) {
      done_(status, std::move(body));
    }
    reported_ = true;
  }

  std::shared_ptr<bool> alive_;
  std::function<void(int, std::string)> done_;
  runtime::Stream* stream_ = nullptr;
  runtime::Timer deadline_;
  std::string reply_;  // the head until it parses, then the body
  int status_ = 0;     // once the head parsed
  uint64_t body_bytes_ = 0;
  bool reported_ = false;
};

}  // namespace

std::optional<AdminTarget> ParseAdminUrl(std::string_view url) {
  const std::optional<proto::Url> parsed = proto::ParseUrl(url);
  if (!parsed || parsed->scheme != "http" || parsed->port == 0) {
    return std::nullopt;
  }
  // An address, not a name: the manager connects from its loop thread and never resolves.
  std::string host = parsed->host + ":" + std::to_string(parsed->port);
  auto addr = runtime::ParseListenAddress(host);
  if (!addr.ok()) {
    return std::nullopt;
  }
  return AdminTarget{.to = *addr, .host = std::move(host)};
}

void CallAdmin(runtime::Shard& shard, const AdminRequest& request, std::shared_ptr<bool> alive,
               std::function<void(int status, std::string body)> done) {
  runtime::Connector::Start(
      shard, request.to, std::nullopt, request.timeout_ms,
      [&shard, request, alive = std::move(alive), done = std::move(done)](int fd) {
        if (!*alive) {
          if (fd >= 0) {
            close(fd);
          }
          return;
        }
        if (fd < 0) {
          done(0, {});
          return;
        }
        (new AdminCall(alive, done))->Begin(shard, fd, request);
      });
}

}  // namespace camtunnel::manager
