// See gateway_admin_call.h.
#include "manager/gateway_admin_call.h"

#include <unistd.h>

#include <cerrno>

#include "proto/http_head.h"
#include "runtime/connector.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::manager {
namespace {

// Frees itself in OnStreamClosed (the stream's last call).
class AdminCall final : public runtime::StreamHandler {
 public:
  AdminCall(std::shared_ptr<bool> alive, std::function<void(int)> done)
      : alive_(std::move(alive)), done_(std::move(done)) {}

  void Begin(runtime::Shard& shard, int fd, const GatewayAdminRequest& r) {
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
    stream_->Write(req + "\r\n" + r.body);
  }

  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override {
    if (reported_) {
      return;
    }
    head_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    proto::ResponseHead head;
    const proto::HeadResult r = proto::ParseResponseHead(head_, &head);
    if (r == proto::HeadResult::kNeedMore) {
      return;
    }
    Report(r == proto::HeadResult::kComplete ? head.status : 0);
    stream.Close(0);
  }
  void OnStreamEof(runtime::Stream& stream) override { stream.Close(0); }
  void OnStreamClosed(runtime::Stream& stream, int /*error*/) override {
    stream.shard().timers().Cancel(deadline_);
    Report(0);
    delete this;
  }

 private:
  void Report(int status) {
    if (!reported_ && *alive_) {
      done_(status);
    }
    reported_ = true;
  }

  std::shared_ptr<bool> alive_;
  std::function<void(int)> done_;
  runtime::Stream* stream_ = nullptr;
  runtime::Timer deadline_;
  std::string head_;
  bool reported_ = false;
};

}  // namespace

void CallGatewayAdmin(runtime::Shard& shard, const GatewayAdminRequest& request,
                      std::shared_ptr<bool> alive, std::function<void(int status)> done) {
  runtime::Connector::Start(shard, request.to, std::nullopt, request.timeout_ms,
                            [&shard, request, alive, done = std::move(done)](int fd) {
                              if (!*alive) {
                                if (fd >= 0) {
                                  close(fd);
                                }
                                return;
                              }
                              if (fd < 0) {
                                done(0);
                                return;
                              }
                              (new AdminCall(alive, done))->Begin(shard, fd, request);
                            });
}

}  // namespace camtunnel::manager
