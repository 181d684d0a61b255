// See splice_pump.h.
#include "runtime/splice_pump.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "proto/check.h"

namespace camtunnel::runtime {

SplicePump* SplicePump::Create(Shard& shard, int src_fd, int dst_fd, SplicePumpHandler* handler,
                               int* error) {
  // splice(2) waits on a socket unless the socket itself is non-blocking (SPLICE_F_NONBLOCK
  // covers only the pipe). Ring operations on the same sockets do not mind either way.
  for (int fd : {src_fd, dst_fd}) {
    const int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
      *error = errno;
      return nullptr;
    }
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
    *error = errno;
    return nullptr;
  }
  // The pipe's capacity is the bound on bytes in flight for this direction. The default is
  // already 64 KiB; an unprivileged process over its pipe quota gets one page, which still
  // works (smaller moves).
  fcntl(p[1], F_SETPIPE_SZ, kPipeBytes);
  const int capacity = fcntl(p[1], F_GETPIPE_SZ);
  return new SplicePump(shard, src_fd, dst_fd, p[0], p[1], capacity > 0 ? capacity : 4096, handler);
}

SplicePump::SplicePump(Shard& shard, int src_fd, int dst_fd, int pipe_read, int pipe_write,
                       int pipe_capacity, SplicePumpHandler* handler)
    : shard_(&shard),
      handler_(handler),
      src_fd_(src_fd),
      dst_fd_(dst_fd),
      pipe_read_(pipe_read),
      pipe_write_(pipe_write),
      pipe_capacity_(pipe_capacity),
      slot_(shard.Register(this)) {}

SplicePump::~SplicePump() {
  CT_CHECK(notified_ && in_flight_ == 0);
  close(pipe_read_);
  close(pipe_write_);
}

void SplicePump::Start() { Pump(); }

void SplicePump::Cancel() { Finish(ECANCELED); }

void SplicePump::ArmPoll(int fd, uint32_t events, Op op) {
  io_uring_sqe* sqe = shard_->GetSqe();
  io_uring_prep_poll_add(sqe, fd, events);
  io_uring_sqe_set_data64(sqe, shard_->Tag(slot_, op));
  ++in_flight_;
}

void SplicePump::Pump() {
  // Move until both ends would block: fill the pipe from the source, empty it into the
  // destination, repeat (a pipe's worth per round keeps the syscalls per byte low).
  bool src_blocked = src_poll_armed_;
  bool dst_blocked = dst_poll_armed_;
  while (!done_) {
    bool moved = false;
    if (!src_eof_ && !src_blocked && in_pipe_ < pipe_capacity_) {
      const ssize_t n =
          splice(src_fd_, nullptr, pipe_write_, nullptr,
                 static_cast<size_t>(pipe_capacity_ - in_pipe_), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        in_pipe_ += static_cast<int>(n);
        moved = true;
      } else if (n == 0) {
        src_eof_ = true;
      } else if (errno == EAGAIN) {
        src_blocked = true;
      } else if (errno != EINTR) {
        // What the source sent before its error is still delivered, then the error.
        src_eof_ = true;
        error_ = errno;
      }
    }
    if (in_pipe_ > 0 && !dst_blocked) {
      const ssize_t n = splice(pipe_read_, nullptr, dst_fd_, nullptr, static_cast<size_t>(in_pipe_),
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        in_pipe_ -= static_cast<int>(n);
        bytes_out_ += static_cast<uint64_t>(n);
        moved = true;
      } else if (n < 0 && errno == EAGAIN) {
        dst_blocked = true;
      } else if (n < 0 && errno != EINTR) {
        Finish(errno);
        return;
      }
    }
    if (src_eof_ && in_pipe_ == 0) {
      // Everything the source sent is delivered. A source error is passed on as such (the
      // owner resets the destination); a clean end as a half-close.
      if (error_ == 0 && shutdown(dst_fd_, SHUT_WR) != 0 && errno != ENOTCONN) {
        Finish(errno);
        return;
      }
      Finish(error_);
      return;
    }
    if (!moved) {
      break;
    }
  }
  if (done_) {
    return;
  }
  // Wait for the end that stopped us: the source only while the pipe has room.
  if (src_blocked && !src_poll_armed_ && !src_eof_ && in_pipe_ < pipe_capacity_) {
    ArmPoll(src_fd_, POLLIN | POLLRDHUP, kSourceReady);
    src_poll_armed_ = true;
  }
  if (dst_blocked && !dst_poll_armed_ && in_pipe_ > 0) {
    ArmPoll(dst_fd_, POLLOUT, kDestinationReady);
    dst_poll_armed_ = true;
  }
}

void SplicePump::OnCompletion(uint8_t op, int32_t /*res*/, uint32_t /*flags*/) {
  --in_flight_;
  // A poll result (readable, writable, or an error condition) only says "try again": the
  // splice itself reports what happened.
  if (op == kSourceReady) {
    src_poll_armed_ = false;
  } else if (op == kDestinationReady) {
    dst_poll_armed_ = false;
  }
  Pump();
  MaybeFree();
}

void SplicePump::Finish(int error) {
  if (done_) {
    return;
  }
  done_ = true;
  error_ = error;
  for (const auto& [armed, op] :
       {std::pair{src_poll_armed_, kSourceReady}, std::pair{dst_poll_armed_, kDestinationReady}}) {
    if (armed) {
      io_uring_sqe* sqe = shard_->GetSqe();
      io_uring_prep_cancel64(sqe, shard_->Tag(slot_, op), 0);
      io_uring_sqe_set_data64(sqe, shard_->Tag(slot_, kCancelOp));
      ++in_flight_;
    }
  }
  // Never call the handler from inside a call it made (Cancel).
  shard_->Defer([this] {
    notified_ = true;
    handler_->OnPumpDone(*this, error_);
    MaybeFree();
  });
}

void SplicePump::MaybeFree() {
  if (!notified_ || in_flight_ > 0) {
    return;
  }
  if (freeing_) {
    return;
  }
  freeing_ = true;
  shard_->Unregister(slot_);
  shard_->Defer([this] { delete this; });
}

}  // namespace camtunnel::runtime
