// camtunnel-relaybench: a plain TCP relay on one runtime shard, for choosing the mechanism of
// the gateway's plain relay by measurement (bench/plain_relay.py drives it against haproxy and
// socat). Every accepted connection is relayed to --to both ways, by:
//   copy      runtime::Stream on both sides: multishot recv into provided buffers, each receive
//             copied into the other side's send queue;
//   handover  the same, but a receive of 8 KiB or more goes over whole: the filled ring buffer
//             becomes a chunk of the other side's queue (StreamHandler::RelayTarget; what the
//             gateway's relay does today);
//   splice    runtime::SplicePump per direction: readiness from the ring, then splice(2)
//             socket -> pipe -> socket, no user-space copy.
// Half-close travels through in every mode. Runs until SIGINT/SIGTERM.
//
//   camtunnel-relaybench --listen 127.0.0.1:PORT --to 127.0.0.1:PORT --mode copy|handover|splice
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "runtime/listener.h"
#include "runtime/shard.h"
#include "runtime/splice_pump.h"
#include "runtime/stream.h"

namespace {

using camtunnel::runtime::Listener;
using camtunnel::runtime::Shard;
using camtunnel::runtime::SplicePump;
using camtunnel::runtime::SplicePumpHandler;
using camtunnel::runtime::Stream;
using camtunnel::runtime::StreamHandler;

Shard* g_shard = nullptr;
void OnSignal(int) { g_shard->Stop(); }

// Copy and hand-over modes: two Streams writing into each other, with backpressure and
// half-close.
class CopyRelay {
 public:
  CopyRelay(Shard& shard, int a, int b, bool hand_over) : hand_over_(hand_over) {
    a_ = Stream::Create(shard, a, nullptr, &side_a_);
    b_ = Stream::Create(shard, b, nullptr, &side_b_);
    a_->Start();
    b_->Start();
  }

 private:
  class Side final : public StreamHandler {
   public:
    Side(CopyRelay* r, bool is_a) : r_(r), is_a_(is_a) {}
    Stream* self() { return is_a_ ? r_->a_ : r_->b_; }
    Stream* other() { return is_a_ ? r_->b_ : r_->a_; }
    bool other_closed() { return is_a_ ? r_->b_closed_ : r_->a_closed_; }
    void OnStreamData(Stream& s, std::span<const uint8_t> bytes) override {
      if (other_closed()) {
        return;
      }
      other()->Write(bytes);
      if (other()->over_high_watermark()) {
        s.PauseRead();
      }
    }
    Stream* RelayTarget(Stream& /*s*/) override {
      return r_->hand_over_ && !other_closed() ? other() : nullptr;
    }
    void OnStreamRelayed(Stream& s, size_t /*bytes*/) override {
      if (other()->over_high_watermark()) {
        s.PauseRead();
      }
    }
    void OnStreamEof(Stream& /*s*/) override {
      if (!other_closed()) {
        other()->ShutdownWrite();
      }
    }
    void OnStreamWritable(Stream& /*s*/) override {
      if (!other_closed()) {
        other()->ResumeRead();
      }
    }
    void OnStreamClosed(Stream& /*s*/, int error) override {
      (is_a_ ? r_->a_closed_ : r_->b_closed_) = true;
      if (!other_closed()) {
        if (error != 0) {
          other()->CloseAfterFlush(error);
        } else if (!other()->read_eof()) {
          other()->ShutdownWrite();
        }
      }
      if (r_->a_closed_ && r_->b_closed_) {
        delete r_;
      }
    }

   private:
    CopyRelay* r_;
    bool is_a_;
  };

  Stream* a_ = nullptr;
  Stream* b_ = nullptr;
  Side side_a_{this, true};
  Side side_b_{this, false};
  bool a_closed_ = false;
  bool b_closed_ = false;
  bool hand_over_;
};

// Splice mode: one pump per direction; the sockets close when both pumps are done.
class SpliceRelay final : public SplicePumpHandler {
 public:
  SpliceRelay(Shard& shard, int a, int b) : a_(a), b_(b) {
    int error = 0;
    SplicePump* up = SplicePump::Create(shard, a, b, this, &error);
    SplicePump* down = up != nullptr ? SplicePump::Create(shard, b, a, this, &error) : nullptr;
    if (up == nullptr || down == nullptr) {
      std::fprintf(stderr, "relaybench: pipe: %s\n", std::strerror(error));
      if (up != nullptr) {
        up->Cancel();
        ++done_;  // the missing pump
      } else {
        done_ = 2;
        Close(error);
        return;
      }
    } else {
      pumps_[0] = up;
      pumps_[1] = down;
      down->Start();
    }
    up->Start();
  }
  void OnPumpDone(SplicePump& pump, int error) override {
    if (error != 0) {
      // An error on one direction ends the other too (a reset tells both peers).
      for (SplicePump* p : pumps_) {
        if (p != nullptr && p != &pump) {
          p->Cancel();
        }
      }
      error_ = error_ != 0 ? error_ : error;
    }
    for (SplicePump*& p : pumps_) {
      if (p == &pump) {
        p = nullptr;
      }
    }
    if (++done_ == 2) {
      Close(error_ == ECANCELED ? 0 : error_);
    }
  }

 private:
  void Close(int error) {
    for (int fd : {a_, b_}) {
      if (error != 0) {
        linger lg{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
      }
      close(fd);
    }
    delete this;
  }

  int a_;
  int b_;
  SplicePump* pumps_[2] = {nullptr, nullptr};
  int done_ = 0;
  int error_ = 0;
};

bool ParseAddress(const std::string& text, sockaddr_in* out) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    return false;
  }
  *out = {};
  out->sin_family = AF_INET;
  out->sin_port = htons(static_cast<uint16_t>(std::stoi(text.substr(colon + 1))));
  return inet_pton(AF_INET, text.substr(0, colon).c_str(), &out->sin_addr) == 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen_at, to, mode = "copy";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    (k == "--listen" ? listen_at : k == "--to" ? to : mode) = argv[i + 1];
  }
  sockaddr_in target{};
  if (listen_at.empty() || !ParseAddress(to, &target) ||
      (mode != "copy" && mode != "handover" && mode != "splice")) {
    std::fprintf(stderr,
                 "usage: %s --listen HOST:PORT --to HOST:PORT --mode copy|handover|splice\n",
                 argv[0]);
    return 2;
  }
  Shard shard;
  if (int r = shard.Init({}); r < 0) {
    std::fprintf(stderr, "relaybench: io_uring: %s\n", std::strerror(-r));
    return 1;
  }
  g_shard = &shard;
  signal(SIGPIPE, SIG_IGN);  // splice(2) has no MSG_NOSIGNAL
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  auto listener = Listener::Open(shard, listen_at, [&](int client) {
    // A blocking connect is fine here: loopback, and the bench opens a few connections only.
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&target), sizeof(target)) != 0) {
      close(fd);
      close(client);
      return;
    }
    if (mode == "splice") {
      new SpliceRelay(shard, client, fd);
    } else {
      new CopyRelay(shard, client, fd, mode == "handover");
    }
  });
  if (!listener.ok()) {
    std::fprintf(stderr, "relaybench: %s\n", std::string(listener.status().message()).c_str());
    return 1;
  }
  std::printf("ready port=%u mode=%s\n", (*listener)->port(), mode.c_str());
  std::fflush(stdout);
  shard.Run();
  listener->reset();
  shard.Shutdown(1000);
  return 0;
}
