// One direction of a plain relay done by the kernel: splice(2) moves bytes from a source
// socket into a pipe and from the pipe into a destination socket, so they never enter user
// space. Used where neither side is TLS (plain agent links); with TLS the bytes must pass
// through OpenSSL anyway.
//
// Mechanism: readiness from the ring (IORING_OP_POLL_ADD), then non-blocking splice(2) calls
// on the shard's thread, as HAProxy does. Not IORING_OP_SPLICE: the kernel runs it on an
// io_uring worker thread, and a splice from an idle socket waits there holding the pipe's
// lock, so the splice out of the same pipe cannot run until the source sends more: a relay
// of requests and answers stalls (SmallRequestsAndAnswersNeverStall tests that this one
// does not).
//
// At most the pipe's capacity is buffered: a slow destination stops the source
// (backpressure), memory never grows. The source's end of stream is passed on as a half-close
// (shutdown SHUT_WR) of the destination once the pipe is empty; what the source sent before an
// error is delivered, then the error is reported.
//
// splice(2) has no MSG_NOSIGNAL: a process using the pump must ignore SIGPIPE (every camtunnel
// program does), or a peer's reset kills it.
//
// The pump owns its pipe, never the sockets. Lifetime: Create, Start, then exactly one
// OnPumpDone; the pump frees itself after that call, once no operation is in flight.
#pragma once

#include <cstdint>

#include "runtime/shard.h"

namespace camtunnel::runtime {

class SplicePump;

class SplicePumpHandler {
 public:
  // error 0: the source ended and the destination was shut down for writing, every byte
  // delivered to it. Otherwise -errno semantics as a positive errno (ECANCELED after Cancel()).
  virtual void OnPumpDone(SplicePump& pump, int error) = 0;

 protected:
  ~SplicePumpHandler() = default;
};

class SplicePump final : public IoObject {
 public:
  static constexpr int kPipeBytes = 64 * 1024;

  // nullptr (and *error = errno) if no pipe could be made (descriptors exhausted).
  static SplicePump* Create(Shard& shard, int src_fd, int dst_fd, SplicePumpHandler* handler,
                            int* error);
  SplicePump(const SplicePump&) = delete;
  SplicePump& operator=(const SplicePump&) = delete;

  void Start();
  // Stops moving bytes; OnPumpDone(ECANCELED) follows from the shard's loop (never from
  // inside Cancel), unless the pump had already finished.
  void Cancel();

  uint64_t bytes() const { return bytes_out_; }

  void OnCompletion(uint8_t op, int32_t res, uint32_t flags) override;
  void OnShutdown() override { Cancel(); }

 private:
  enum Op : uint8_t { kSourceReady = 1, kDestinationReady = 2, kCancelOp = 3 };

  SplicePump(Shard& shard, int src_fd, int dst_fd, int pipe_read, int pipe_write, int pipe_capacity,
             SplicePumpHandler* handler);
  ~SplicePump();
  void Pump();
  void ArmPoll(int fd, uint32_t events, Op op);
  void Finish(int error);
  void MaybeFree();

  Shard* shard_;
  SplicePumpHandler* handler_;
  int src_fd_;
  int dst_fd_;
  int pipe_read_;
  int pipe_write_;
  int pipe_capacity_;
  uint32_t slot_;
  int in_pipe_ = 0;  // bytes spliced in and not yet out
  uint64_t bytes_out_ = 0;
  uint8_t in_flight_ = 0;
  bool src_poll_armed_ = false;
  bool dst_poll_armed_ = false;
  bool src_eof_ = false;
  bool done_ = false;      // Finish() ran: no new operations
  bool notified_ = false;  // OnPumpDone was called
  bool freeing_ = false;   // unregistered, delete deferred
  int error_ = 0;
};

}  // namespace camtunnel::runtime
