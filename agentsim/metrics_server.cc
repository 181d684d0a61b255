#include "agentsim/metrics_server.h"

#include "absl/strings/str_cat.h"
#include "proto/http_head.h"
#include "runtime/stream.h"

namespace camtunnel::agentsim {
namespace {

class MetricsConnection final : public runtime::StreamHandler {
 public:
  explicit MetricsConnection(const MetricsServer::Render& render) : render_(render) {}

  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override {
    if (answered_) {
      return;
    }
    head_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    proto::RequestHead head;
    const proto::HeadResult r = proto::ParseRequestHead(head_, &head);
    if (r == proto::HeadResult::kNeedMore) {
      return;
    }
    answered_ = true;
    if (r == proto::HeadResult::kComplete && head.method == "GET" && head.target == "/metrics") {
      const std::string body = render_();
      stream.Write(absl::StrCat(
          "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
          "Content-Length: ",
          body.size(), "\r\nConnection: close\r\n\r\n", body));
    } else {
      stream.Write("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    stream.Finish();
  }
  void OnStreamEof(runtime::Stream& stream) override { stream.Finish(); }
  void OnStreamClosed(runtime::Stream& stream, int /*error*/) override {
    stream.shard().Defer([this] { delete this; });
  }

 private:
  const MetricsServer::Render& render_;
  std::string head_;
  bool answered_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Open(runtime::Shard& shard,
                                                                   const std::string& address,
                                                                   Render render) {
  std::unique_ptr<MetricsServer> server(new MetricsServer(shard, std::move(render)));
  MetricsServer* s = server.get();
  auto listener = runtime::Listener::Open(shard, address, [s](int fd) {
    auto* c = new MetricsConnection(s->render_);
    runtime::Stream::Create(s->shard_, fd, nullptr, c)->Start();
  });
  if (!listener.ok()) {
    return listener.status();
  }
  server->listener_ = std::move(*listener);
  return server;
}

}  // namespace camtunnel::agentsim
