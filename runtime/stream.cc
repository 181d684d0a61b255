#include "runtime/stream.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <linux/tls.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "proto/check.h"

namespace camtunnel::runtime {

struct Stream::Gather {
  msghdr message{};
  iovec parts[kSendChunks];
  // A control record's type for a kernel that encrypts (TLS_SET_RECORD_TYPE).
  alignas(cmsghdr) uint8_t control[CMSG_SPACE(1)];
};

namespace {

// Trims the first `count` iovecs to `limit` bytes in all; returns how many remain.
size_t TrimTo(iovec* parts, size_t count, size_t limit) {
  size_t total = 0;
  for (size_t i = 0; i < count; ++i) {
    if (total + parts[i].iov_len >= limit) {
      parts[i].iov_len = limit - total;
      return i + 1;
    }
    total += parts[i].iov_len;
  }
  return count;
}

}  // namespace

Stream* Stream::Create(Shard& shard, int fd, SSL_CTX* server_ctx, StreamHandler* handler) {
  auto* s = new Stream(shard, fd, handler);
  if (server_ctx != nullptr) {
    s->ssl_ = SSL_new(server_ctx);
    CT_CHECK(s->ssl_ != nullptr);
    s->bio_state_.output = &s->tx_;
    BIO* bio = NewTlsBio(&s->bio_state_);
    SSL_set_bio(s->ssl_, bio, bio);
    s->OfferKernelTls(server_ctx);
    SSL_set_accept_state(s->ssl_);
    s->state_ = StreamState::kHandshaking;
  }
  return s;
}

Stream* Stream::CreateTlsClient(Shard& shard, int fd, SSL_CTX* client_ctx,
                                const std::string& server_name, StreamHandler* handler,
                                SSL_SESSION* resume) {
  auto* s = new Stream(shard, fd, handler);
  s->ssl_ = SSL_new(client_ctx);
  CT_CHECK(s->ssl_ != nullptr);
  if (resume != nullptr) {
    SSL_set_session(s->ssl_, resume);
  }
  s->bio_state_.output = &s->tx_;
  BIO* bio = NewTlsBio(&s->bio_state_);
  SSL_set_bio(s->ssl_, bio, bio);
  s->OfferKernelTls(client_ctx);
  if (!server_name.empty()) {
    SSL_set_tlsext_host_name(s->ssl_, server_name.c_str());
    SSL_set1_host(s->ssl_, server_name.c_str());
  }
  SSL_set_connect_state(s->ssl_);
  s->state_ = StreamState::kHandshaking;
  return s;
}

std::string Stream::peer_text() const {
  char host[INET6_ADDRSTRLEN] = "?";
  char out[INET6_ADDRSTRLEN + 16];
  if (peer_.sa.sa_family == AF_INET) {
    inet_ntop(AF_INET, &peer_.v4.sin_addr, host, sizeof(host));
    std::snprintf(out, sizeof(out), "%s:%u", host, ntohs(peer_.v4.sin_port));
    return out;
  }
  if (peer_.sa.sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &peer_.v6.sin6_addr, host, sizeof(host));
    std::snprintf(out, sizeof(out), "[%s]:%u", host, ntohs(peer_.v6.sin6_port));
    return out;
  }
  return "unknown";
}

void Stream::OfferKernelTls(SSL_CTX* ctx) {
  if ((SSL_CTX_get_options(ctx) & SSL_OP_ENABLE_KTLS) == 0) {
    return;
  }
  kernel_send_ = std::make_unique<KernelTlsSend>();
  kernel_send_->fd = fd_;
  bio_state_.kernel_send = kernel_send_.get();
}

SSL_SESSION* Stream::ResumableSession() const {
  if (ssl_ == nullptr) {
    return nullptr;
  }
  SSL_SESSION* session = SSL_get1_session(ssl_);
  if (session != nullptr && SSL_SESSION_is_resumable(session) != 1) {
    SSL_SESSION_free(session);
    return nullptr;
  }
  return session;
}

Stream::Stream(Shard& shard, int fd, StreamHandler* handler)
    : shard_(&shard), handler_(handler), fd_(fd), slot_(shard.Register(this)) {
  socklen_t len = sizeof(peer_);
  if (getpeername(fd, &peer_.sa, &len) != 0 || len > sizeof(peer_)) {
    peer_.sa.sa_family = AF_UNSPEC;
  }
  const int one = 1;
  // Relayed RTSP and control frames are latency-sensitive; we coalesce in user space.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  linger_timer_.set_callback([this] { OnLingerTimer(); });
  shard.StreamCreated();
}

Stream::~Stream() {
  CT_CHECK(state_ == StreamState::kClosed && in_flight_ == 0);
  shard_->StreamFreed();
  if (ssl_ != nullptr) {
    SSL_free(ssl_);
  }
}

void Stream::Start() {
  ArmRecv();
  if (ssl_ == nullptr) {
    if (handler_ != nullptr) {
      handler_->OnStreamReady(*this);
    }
  } else if (!SSL_is_server(ssl_)) {
    DoHandshake();  // the client speaks first: ClientHello
  }
}

void Stream::ArmRecv() {
  if (recv_armed_ || paused_ || read_eof_ || !receiving()) {
    return;
  }
  io_uring_sqe* sqe = shard_->GetSqe();
  io_uring_prep_recv_multishot(sqe, fd_, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = shard_->buffers().group_id();
  io_uring_sqe_set_data64(sqe, shard_->Tag(slot_, kRecv));
  recv_armed_ = true;
  ++in_flight_;
}

void Stream::OnCompletion(uint8_t op, int32_t res, uint32_t flags) {
  switch (op) {
    case kRecv:
      OnRecv(res, flags);
      break;
    case kSend:
      OnSend(res);
      break;
    case kCancel:
      --in_flight_;
      break;
    case kShutdown:
      --in_flight_;
      write_shutdown_submitted_ = true;
      write_done_ = true;
      MaybeCloseWhenDone();
      break;
    default:
      CT_FATAL("a completion for an operation streams never submit");
  }
  MaybeFinishClose();
  MaybeFinishDetach();
}

void Stream::OnRecv(int32_t res, uint32_t flags) {
  if ((flags & IORING_CQE_F_MORE) == 0) {
    recv_armed_ = false;
    --in_flight_;
  }
  if ((flags & IORING_CQE_F_BUFFER) != 0) {
    const auto id = static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
    BufferRing& buffers = shard_->buffers();
    buffers.NoteTaken();
    // Data that was already in flight when we paused is still delivered: the overshoot is
    // bounded by the buffers of one completion batch.
    const bool delivering = res > 0 && receiving();
    // A buffer handed over went to the relay target's send queue, and the ring got another.
    if (!delivering || !HandOver(id, static_cast<size_t>(res))) {
      if (delivering) {
        OnBytes(buffers.Buffer(id, static_cast<size_t>(res)));
      }
      buffers.Recycle(id);
    }
  }
  if (res == 0) {
    if (receiving()) {
      if (ssl_ != nullptr && !read_eof_) {
        // FIN without close_notify: the TLS stream was truncated, which is an error, not EOF.
        Close(ECONNRESET);
      } else {
        OnPeerEof();
      }
    }
  } else if (res == -ENOBUFS) {
    // The ring ran dry for this batch: it publishes more, and every buffer taken comes back
    // by the batch's end.
    shard_->buffers().NoteShortage();
    shard_->Defer([this] { ArmRecv(); });
    return;
  } else if (res < 0 && res != -ECANCELED && receiving()) {
    Close(-res);
  }
  if (!recv_armed_) {
    ArmRecv();
  }
}

Stream* Stream::PlainRelayTarget() {
  Stream* target =
      state_ == StreamState::kOpen && handler_ != nullptr ? handler_->RelayTarget(*this) : nullptr;
  if (target == nullptr || target->ssl_ != nullptr || target->state_ != StreamState::kOpen ||
      target->write_shutdown_requested_) {
    return nullptr;
  }
  return target;
}

bool Stream::HandOver(uint16_t id, size_t n) {
  BufferRing& buffers = shard_->buffers();
  // A small receive is cheaper copied into the target's tail chunk than handed over in a whole
  // 16 KiB chunk of its own (memory per queued byte, chunks per gathering send).
  if (ssl_ != nullptr || n < kHandOverMinBytes ||
      buffers.buffer_bytes() != ByteQueue::kChunkBytes) {
    return false;
  }
  Stream* target = PlainRelayTarget();
  if (target == nullptr) {
    return false;
  }
  target->tx_.AppendChunk(buffers.Give(id, ByteQueue::NewChunk()), n);
  target->stats_.bytes_out += n;
  stats_.bytes_in += n;
  target->Queued();
  handler_->OnStreamRelayed(*this, n);
  return true;
}

void Stream::OnBytes(std::span<const uint8_t> bytes) {
  if (ssl_ == nullptr) {
    stats_.bytes_in += bytes.size();
    Deliver(bytes);
    return;
  }
  bio_state_.input = bytes;
  if (state_ == StreamState::kHandshaking) {
    DoHandshake();
  }
  if (state_ == StreamState::kOpen || state_ == StreamState::kLingering) {
    ReadTls();
  }
  bio_state_.input = {};
  FlushTx();
}

void Stream::DoHandshake() {
  ERR_clear_error();
  const int r = SSL_do_handshake(ssl_);
  FlushTx();
  if (r == 1) {
    state_ = StreamState::kOpen;
    if (handler_ != nullptr) {
      handler_->OnStreamReady(*this);
    }
    return;
  }
  const int err = SSL_get_error(ssl_, r);
  if (err != SSL_ERROR_WANT_READ) {
    ERR_clear_error();
    Close(EPROTO);
  }
}

void Stream::ReadTls() {
  uint8_t plain[16384];
  while (state_ == StreamState::kOpen || state_ == StreamState::kLingering) {
    if (Stream* target = PlainRelayTarget(); target != nullptr) {
      if (ReadTlsInto(*target)) {
        continue;
      }
    } else {
      ERR_clear_error();
      size_t n = 0;
      if (SSL_read_ex(ssl_, plain, sizeof(plain), &n) == 1) {
        stats_.bytes_in += n;
        Deliver({plain, n});
        continue;
      }
    }
    const int err = SSL_get_error(ssl_, 0);
    if (err == SSL_ERROR_WANT_READ) {
      break;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
      OnPeerEof();
      break;
    }
    ERR_clear_error();
    Close(EPROTO);
    break;
  }
}

bool Stream::ReadTlsInto(Stream& target) {
  const std::span<uint8_t> room = target.tx_.TailRoom();
  ERR_clear_error();
  size_t n = 0;
  if (SSL_read_ex(ssl_, room.data(), room.size(), &n) != 1) {
    target.tx_.DropUnusedTail();
    return false;
  }
  target.tx_.Commit(n);
  target.stats_.bytes_out += n;
  stats_.bytes_in += n;
  target.Queued();
  handler_->OnStreamRelayed(*this, n);
  return true;
}

void Stream::Deliver(std::span<const uint8_t> bytes) {
  if (state_ == StreamState::kOpen && handler_ != nullptr) {
    handler_->OnStreamData(*this, bytes);
  }
  // Lingering: input is read only to reach the peer's FIN, and dropped.
}

void Stream::OnPeerEof() {
  if (read_eof_) {
    return;
  }
  read_eof_ = true;
  if (state_ == StreamState::kOpen && handler_ != nullptr) {
    handler_->OnStreamEof(*this);
  }
  MaybeCloseWhenDone();
}

void Stream::Write(std::span<const uint8_t> bytes) {
  if (state_ != StreamState::kOpen || write_shutdown_requested_ || bytes.empty()) {
    return;
  }
  stats_.bytes_out += bytes.size();
  if (ssl_ == nullptr) {
    tx_.Append(bytes);
  } else {
    while (!bytes.empty()) {
      ERR_clear_error();
      size_t n = 0;
      if (SSL_write_ex(ssl_, bytes.data(), bytes.size(), &n) != 1) {
        // The ring BIO never blocks, so a failed write is a fatal TLS state.
        ERR_clear_error();
        Close(EPROTO);
        return;
      }
      bytes = bytes.subspan(n);
    }
  }
  Queued();
}

void Stream::Queued() {
  if (tx_.size() >= kHighWatermark) {
    above_high_ = true;
  }
  FlushTx();
}

void Stream::ShutdownWrite() {
  if (write_shutdown_requested_ || !receiving()) {
    return;
  }
  write_shutdown_requested_ = true;
  if (ssl_ != nullptr && state_ != StreamState::kHandshaking) {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // queues close_notify; we do not wait for the peer's
    ERR_clear_error();
  }
  FlushTx();
}

void Stream::FlushTx() {
  if (send_in_flight_ || detach_ != nullptr || state_ == StreamState::kClosing ||
      state_ == StreamState::kClosed) {
    return;
  }
  if (!tx_.empty()) {
    size_t limit = tx_.size();
    uint8_t record_type = 0;
    if (kernel_send_ != nullptr) {
      KernelTlsSend& kernel = *kernel_send_;
      // OpenSSL 3.0 gives the kernel no new keys after a KeyUpdate: end here rather than send
      // under keys the peer has dropped. A kernel that took the upper-layer protocol and then
      // refuses the keys leaves plaintext nobody may send: end too.
      if (kernel.at_key_update() || (kernel.keys_due() && !kernel.GiveKeys())) {
        Close(EPROTO);
        return;
      }
      limit = kernel.NextSend(tx_.size(), &record_type);
    }
    io_uring_sqe* sqe = shard_->GetSqe();
    const auto front = tx_.Front();
    if (front.size() < limit || record_type != 0) {
      // More than one chunk waits, or a control record goes with its type: one sendmsg. The
      // message lives until the send completes (the kernel may read it as late as when it
      // goes async).
      if (gather_ == nullptr) {
        gather_ = std::make_unique<Gather>();
      }
      msghdr& m = gather_->message;
      m = {};
      m.msg_iov = gather_->parts;
      m.msg_iovlen = TrimTo(gather_->parts, tx_.Gather(gather_->parts), limit);
      if (record_type != 0) {
        m.msg_control = gather_->control;
        m.msg_controllen = sizeof(gather_->control);
        cmsghdr* c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_TLS;
        c->cmsg_type = TLS_SET_RECORD_TYPE;
        c->cmsg_len = CMSG_LEN(1);
        *CMSG_DATA(c) = record_type;
      }
      io_uring_prep_sendmsg(sqe, fd_, &m, MSG_NOSIGNAL);
    } else {
      io_uring_prep_send(sqe, fd_, front.data(), std::min(front.size(), limit), MSG_NOSIGNAL);
    }
    io_uring_sqe_set_data64(sqe, shard_->Tag(slot_, kSend));
    send_in_flight_ = true;
    ++in_flight_;
    return;
  }
  if (write_shutdown_requested_ && !write_shutdown_submitted_) {
    io_uring_sqe* sqe = shard_->GetSqe();
    io_uring_prep_shutdown(sqe, fd_, SHUT_WR);
    io_uring_sqe_set_data64(sqe, shard_->Tag(slot_, kShutdown));
    write_shutdown_submitted_ = true;
    ++in_flight_;
  }
}

void Stream::OnSend(int32_t res) {
  --in_flight_;
  send_in_flight_ = false;
  if (state_ == StreamState::kClosing) {
    return;
  }
  if (res < 0) {
    Close(-res);
    return;
  }
  tx_.Consume(static_cast<size_t>(res));
  if (kernel_send_ != nullptr) {
    kernel_send_->Sent(static_cast<size_t>(res));
  }
  if (tx_.empty()) {
    gather_.reset();  // small and idle streams keep no message around
  }
  if (close_when_flushed_ && tx_.empty()) {
    CloseWhenDelivered();
    return;
  }
  FlushTx();
  if (above_high_ && tx_.size() <= kLowWatermark) {
    above_high_ = false;
    if (state_ == StreamState::kOpen && handler_ != nullptr) {
      handler_->OnStreamWritable(*this);
    }
  }
}

void Stream::PauseRead() {
  if (paused_) {
    return;
  }
  paused_ = true;
  if (recv_armed_) {
    io_uring_sqe* sqe = shard_->GetSqe();
    io_uring_prep_cancel64(sqe, shard_->Tag(slot_, kRecv), 0);
    io_uring_sqe_set_data64(sqe, shard_->Tag(slot_, kCancel));
    ++in_flight_;
  }
}

void Stream::ResumeRead() {
  if (!paused_) {
    return;
  }
  paused_ = false;
  ArmRecv();  // no-op while the cancelled receive has not completed; OnRecv re-arms then
}

void Stream::Finish() {
  if (!receiving()) {
    return;
  }
  if (state_ == StreamState::kHandshaking) {
    Close(0);  // nothing was said yet, so there is nothing to flush
    return;
  }
  // From here the handler gets only OnStreamClosed: Deliver and the events check kOpen.
  state_ = StreamState::kLingering;
  ShutdownWrite();
  ResumeRead();
  shard_->timers().Arm(linger_timer_, shard_->now_ms(), kLingerMs);
  MaybeCloseWhenDone();
}

void Stream::CloseAfterFlush(int error) {
  if (!receiving()) {
    return;
  }
  if (state_ == StreamState::kHandshaking) {
    Close(error);
    return;
  }
  // Like Finish(), the handler hears nothing more; unlike it, no FIN or close_notify is sent:
  // the queued bytes go out, then the reset says the stream did not end normally.
  state_ = StreamState::kLingering;
  close_when_flushed_ = true;
  linger_error_ = error;
  linger_deadline_ms_ = shard_->now_ms() + kLingerMs;
  ResumeRead();
  if (tx_.empty()) {
    CloseWhenDelivered();
  } else {
    shard_->timers().Arm(linger_timer_, shard_->now_ms(), kLingerMs);
  }
}

void Stream::CloseWhenDelivered() {
  // Every byte is in the kernel, but a reset discards what it has not delivered yet (a segment
  // held back by TCP small queues, or lost and awaiting retransmission): wait until the peer
  // has acknowledged everything, polling each tick, bounded by the linger deadline.
  int unacknowledged = 0;
  if (ioctl(fd_, SIOCOUTQ, &unacknowledged) == 0 && unacknowledged > 0 &&
      shard_->now_ms() < linger_deadline_ms_) {
    shard_->timers().Arm(linger_timer_, shard_->now_ms(), kDeliveryPollMs);
    return;
  }
  Close(linger_error_);
}

void Stream::OnLingerTimer() {
  if (close_when_flushed_ && tx_.empty() && !send_in_flight_) {
    CloseWhenDelivered();
    return;
  }
  Close(linger_error_);
}

void Stream::MaybeCloseWhenDone() {
  if (read_eof_ && write_done_ && receiving()) {
    Close(0);
  }
}

void Stream::Close(int error) {
  if (state_ == StreamState::kClosing || state_ == StreamState::kClosed) {
    return;
  }
  state_ = StreamState::kClosing;
  close_error_ = error;
  shard_->timers().Cancel(linger_timer_);
  if (in_flight_ > 0) {
    // Cancel by user_data, not by fd: the kernel finds a request by user_data through a hash,
    // while a cancel by fd scans every armed request of the ring, which makes closing n
    // connections at once cost n^2. A shutdown in flight is not cancelled; it completes at once.
    for (const auto& [armed, op] :
         {std::pair{recv_armed_, kRecv}, std::pair{send_in_flight_, kSend}}) {
      if (armed) {
        io_uring_sqe* sqe = shard_->GetSqe();
        io_uring_prep_cancel64(sqe, shard_->Tag(slot_, op), 0);
        io_uring_sqe_set_data64(sqe, shard_->Tag(slot_, kCancel));
        ++in_flight_;
      }
    }
    return;  // the last completion finishes the close, from the top of the dispatch
  }
  // Never call the handler from inside Close(): the caller (often the handler itself, or the
  // handler of the other side of a relay) may still be using this stream or itself.
  shard_->Defer([this] { MaybeFinishClose(); });
}

void Stream::MaybeFinishClose() {
  if (state_ != StreamState::kClosing || in_flight_ > 0) {
    return;
  }
  state_ = StreamState::kClosed;
  if (close_error_ != 0) {
    // An RST tells the peer this was an error, not the end of the data.
    linger lg{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  close(fd_);
  fd_ = -1;
  shard_->Unregister(slot_);
  StreamHandler* handler = handler_;
  handler_ = nullptr;
  if (handler != nullptr) {
    handler->OnStreamClosed(*this, close_error_);
  }
  shard_->Defer([this] { delete this; });
}

bool Stream::Detach(DetachDone done) {
  if (state_ != StreamState::kOpen || write_shutdown_requested_ || detach_ != nullptr) {
    return false;
  }
  detach_ = std::make_unique<DetachDone>(std::move(done));
  paused_before_detach_ = paused_;
  PauseRead();
  MaybeFinishDetach();
  return true;
}

void Stream::MaybeFinishDetach() {
  if (detach_ == nullptr || in_flight_ > 0 || state_ != StreamState::kOpen) {
    return;
  }
  // Nothing of ours is in the ring any more and no timer is armed (an open stream has none):
  // the source shard lets go. The callback runs from its loop, after the current dispatch, so
  // nothing up this stack touches the stream once it may be on another thread.
  auto done = std::make_shared<DetachDone>(std::move(*detach_));
  detach_.reset();
  Shard* from = shard_;
  from->Unregister(slot_);
  from->StreamFreed();
  shard_ = nullptr;
  from->Defer([this, done] { std::move (*done)(this); });
}

void Stream::Attach(Shard& shard, StreamHandler* handler) {
  CT_CHECK(shard_ == nullptr && in_flight_ == 0);
  shard_ = &shard;
  slot_ = shard.Register(this);
  shard.StreamCreated();
  handler_ = handler;
  paused_ = true;  // ResumeRead below re-arms unless the handler had paused
  shard.Defer([this] {
    if (state_ != StreamState::kOpen) {
      return;  // closed by its new owner before the loop came round
    }
    if (ssl_ != nullptr && SSL_pending(ssl_) > 0) {
      ReadTls();  // records decrypted before the move, not yet delivered
    }
    if (!paused_before_detach_) {
      ResumeRead();
    }
    FlushTx();
  });
}

bool Stream::ExportKeyingMaterial(std::string_view label, std::span<uint8_t> out) const {
  if (ssl_ == nullptr || state_ == StreamState::kHandshaking) {
    return false;
  }
  return SSL_export_keying_material(ssl_, out.data(), out.size(), label.data(), label.size(),
                                    nullptr, 0, 0) == 1;
}

}  // namespace camtunnel::runtime
