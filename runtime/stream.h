// A byte stream over one socket on one shard: multishot receive into the shard's provided
// buffers, a send queue, optional server-side TLS through the ring BIO, half-close, pause/resume
// for backpressure, and a teardown that waits for every in-flight ring operation before the fd
// is closed and the object freed.
//
// Life: kHandshaking (TLS only) -> kOpen -> [kLingering] -> kClosing -> kClosed. The handler
// gets OnStreamReady once (after the TLS handshake, or at Start() for plain), then data, EOF and
// writable events while open, and always exactly one OnStreamClosed, after which the Stream is
// freed by the shard and must not be touched.
#pragma once

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/functional/any_invocable.h"
#include "runtime/byte_queue.h"
#include "runtime/shard.h"
#include "runtime/timer_wheel.h"
#include "runtime/tls_bio.h"

namespace camtunnel::runtime {

class Stream;

class StreamHandler {
 public:
  virtual void OnStreamReady(Stream& /*stream*/) {}
  // Plaintext bytes, valid only during the call.
  virtual void OnStreamData(Stream& stream, std::span<const uint8_t> bytes) = 0;
  // The peer finished sending (FIN, or TLS close_notify). Writing is still allowed.
  virtual void OnStreamEof(Stream& stream) = 0;
  // The send queue fell below the low watermark after having been above the high one.
  virtual void OnStreamWritable(Stream& /*stream*/) {}
  // A relay that passes this stream's plaintext on unchanged names the stream it goes to; if
  // that one is plain and open, a TLS source's records are decrypted straight into its send
  // queue and a plain source's receives of kHandOverMinBytes or more become chunks of it (no
  // copy at all), and OnStreamRelayed reports how many bytes went. Asked before each record or
  // receive, so the answer may change (null: deliver through OnStreamData).
  virtual Stream* RelayTarget(Stream& /*stream*/) { return nullptr; }
  virtual void OnStreamRelayed(Stream& /*stream*/, size_t /*bytes*/) {}
  // Last call. `error` is 0 after an orderly close, else a positive errno-style code.
  virtual void OnStreamClosed(Stream& stream, int error) = 0;

 protected:
  ~StreamHandler() = default;
};

enum class StreamState : uint8_t { kHandshaking, kOpen, kLingering, kClosing, kClosed };

struct StreamStats {
  uint64_t bytes_in = 0;   // plaintext received
  uint64_t bytes_out = 0;  // plaintext accepted for sending
};

class Stream final : public IoObject {
 public:
  // Send-queue watermarks for backpressure (bytes of ciphertext or plaintext queued).
  static constexpr size_t kHighWatermark = size_t{256} * 1024;
  static constexpr size_t kLowWatermark = size_t{64} * 1024;
  // A plain receive at least this long is handed to a relay target whole, not copied.
  static constexpr size_t kHandOverMinBytes = size_t{8} * 1024;
  // How long Finish() waits for the peer's FIN after our own.
  static constexpr uint64_t kLingerMs = 2000;
  // How often a stream closing with a reset checks that the peer acknowledged its last bytes.
  static constexpr uint64_t kDeliveryPollMs = 1;
  // Chunks of the send queue one send hands the kernel (16 KiB each): bulk goes out in large
  // segments, so loopback and real NICs carry fewer, bigger packets.
  static constexpr size_t kSendChunks = 8;

  // Takes ownership of `fd` (non-blocking not required: the ring does the I/O). With a
  // non-null `server_ctx` the stream is the server side of a TLS connection.
  static Stream* Create(Shard& shard, int fd, SSL_CTX* server_ctx, StreamHandler* handler);
  // The client side of a TLS connection on a connected socket: the handshake starts at
  // Start(). `server_name` is sent as SNI and, unless empty, checked against the certificate
  // when the context verifies peers.
  // `resume`: a session from an earlier connection to the same server to resume (a new
  // reference is taken), or null for a full handshake.
  static Stream* CreateTlsClient(Shard& shard, int fd, SSL_CTX* client_ctx,
                                 const std::string& server_name, StreamHandler* handler,
                                 SSL_SESSION* resume = nullptr);

  void set_handler(StreamHandler* handler) { handler_ = handler; }
  // Starts receiving (and the TLS handshake).
  void Start();

  void Write(std::span<const uint8_t> bytes);
  void Write(std::string_view text) {
    Write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  }
  // Sends everything queued, then our FIN (after close_notify with TLS). Reading goes on.
  void ShutdownWrite();
  // Closes now. A non-zero error resets the connection (RST) so the peer sees an error, not EOF.
  // No callback runs inside Close(): OnStreamClosed comes later, from the shard's loop.
  void Close(int error);
  // Graceful end for an error answer: flush, FIN, discard input until the peer's FIN or
  // kLingerMs, then close. The handler gets only OnStreamClosed from here on.
  void Finish();
  // The end of a relay whose other side failed: sends what is queued (every byte received
  // from the other side is delivered), then closes with `error` (a reset when non-zero). Gives
  // up after kLingerMs. The handler gets only OnStreamClosed from here on.
  void CloseAfterFlush(int error);

  void PauseRead();
  void ResumeRead();
  bool read_paused() const { return paused_; }

  size_t queued_bytes() const { return tx_.size(); }
  bool over_high_watermark() const { return tx_.size() >= kHighWatermark; }
  StreamState state() const { return state_; }
  bool open() const { return state_ == StreamState::kOpen; }
  bool tls() const { return ssl_ != nullptr; }
  // The kernel encrypts what this stream sends (kernel_tls_send.h).
  bool kernel_encrypts() const { return kernel_send_ != nullptr && kernel_send_->keys_given; }
  // After the handshake: whether it resumed a session (no certificate, no signature).
  bool tls_resumed() const { return ssl_ != nullptr && SSL_session_reused(ssl_) == 1; }
  // Client side: a new reference to this connection's session if a ticket made it resumable
  // (TLS 1.3 tickets arrive after the handshake), else null. The caller frees it.
  SSL_SESSION* ResumableSession() const;
  bool read_eof() const { return read_eof_; }
  const StreamStats& stats() const { return stats_; }
  Shard& shard() { return *shard_; }
  int fd() const { return fd_; }
  // "host:port" ("[v6]:port"), made when asked: it is only read for logs and admin answers,
  // and every idle connection would otherwise hold the string.
  std::string peer_text() const;

  // Moving to another shard (docs/runtime.md, "Moving a stream"). Detach() stops the stream's
  // ring operations: the receive is cancelled, a send in flight completes, nothing new is
  // submitted (Write still queues). Bytes that arrive meanwhile still go to the current handler.
  // Once nothing is in flight, `done(this)` runs from this shard's loop (never inside Detach)
  // and the stream belongs to no shard: pass it through a CrossShardQueue and Attach() it on
  // the target's thread. Only an open stream not shut down for writing detaches (false
  // otherwise, nothing changes). If it fails meanwhile it closes as usual (OnStreamClosed) and
  // `done` never runs.
  using DetachDone = absl::AnyInvocable<void(Stream*) &&>;
  bool Detach(DetachDone done);
  // On the target shard's thread: the stream continues there with `handler`. Receiving resumes
  // unless the handler had paused it before Detach; queued bytes go out; plaintext OpenSSL
  // still holds is delivered from the loop, never inside Attach.
  void Attach(Shard& shard, StreamHandler* handler);
  bool detaching() const { return detach_ != nullptr; }

  // RFC 5705 exporter of this TLS connection; false in plain mode or before the handshake.
  bool ExportKeyingMaterial(std::string_view label, std::span<uint8_t> out) const;

  void OnCompletion(uint8_t op, int32_t res, uint32_t flags) override;
  void OnShutdown() override { Close(ECONNABORTED); }

 private:
  enum Op : uint8_t { kRecv = 1, kSend = 2, kCancel = 3, kShutdown = 4 };

  Stream(Shard& shard, int fd, StreamHandler* handler);
  ~Stream();

  // Lets the kernel encrypt what this stream sends when `ctx` asks for kernel TLS.
  void OfferKernelTls(SSL_CTX* ctx);
  void ArmRecv();
  void OnRecv(int32_t res, uint32_t flags);
  void OnSend(int32_t res);
  void OnBytes(std::span<const uint8_t> bytes);
  void DoHandshake();
  void ReadTls();
  void Deliver(std::span<const uint8_t> bytes);
  void OnPeerEof();
  void FlushTx();
  // The handler's relay target if bytes can go straight into its send queue (plain, open,
  // still writing), else null.
  Stream* PlainRelayTarget();
  // Plain source: a receive buffer of `n` bytes handed whole to the relay target's send queue
  // (the ring gets a spare chunk for it); false when it must be delivered instead.
  bool HandOver(uint16_t id, size_t n);
  // Plaintext read straight into `target`'s send queue; false if nothing could be read.
  bool ReadTlsInto(Stream& target);
  void Queued();
  void MaybeCloseWhenDone();
  void CloseWhenDelivered();
  void OnLingerTimer();
  void MaybeFinishClose();
  void MaybeFinishDetach();
  bool receiving() const {
    return state_ == StreamState::kHandshaking || state_ == StreamState::kOpen ||
           state_ == StreamState::kLingering;
  }

  Shard* shard_;
  StreamHandler* handler_;
  int fd_;
  uint32_t slot_;
  StreamState state_ = StreamState::kOpen;
  uint8_t in_flight_ = 0;  // ring operations whose final completion has not arrived
  bool recv_armed_ = false;
  bool send_in_flight_ = false;
  bool paused_ = false;
  bool read_eof_ = false;
  bool write_shutdown_requested_ = false;
  bool write_shutdown_submitted_ = false;
  bool write_done_ = false;
  bool above_high_ = false;
  bool close_when_flushed_ = false;
  bool paused_before_detach_ = false;  // the handler's own pause, restored by Attach
  int linger_error_ = 0;               // the close error when lingering ends
  uint64_t linger_deadline_ms_ = 0;    // CloseAfterFlush gives up waiting for delivery here
  int close_error_ = 0;
  SSL* ssl_ = nullptr;
  TlsBioState bio_state_;
  ByteQueue tx_;
  std::unique_ptr<DetachDone> detach_;  // set while detaching (a pointer: idle streams stay small)
  struct Gather;
  std::unique_ptr<Gather> gather_;  // a gathering send's message, while more than a chunk waits
  // Where the kernel may encrypt what this TLS stream sends (kernel_tls_send.h): the context
  // had SSL_OP_ENABLE_KTLS, which the gateway sets only where the kernel has kTLS.
  std::unique_ptr<KernelTlsSend> kernel_send_;
  Timer linger_timer_;
  StreamStats stats_;
  // The peer's address, read once at creation (after a reset getpeername fails): the compact
  // form of sockaddr_storage, which is 128 bytes per connection.
  union {
    sockaddr sa;
    sockaddr_in v4;
    sockaddr_in6 v6;
  } peer_{};
};

}  // namespace camtunnel::runtime
