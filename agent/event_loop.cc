// See event_loop.h.
#include "agent/event_loop.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <vector>

#include "proto/check.h"

namespace camtunnel::agent {

EventLoop::EventLoop() {
  // The self-pipe turns a signal (or another thread's stop request) into a readable descriptor,
  // so a stop can never slip in between a flag check and poll(2).
  if (::pipe2(wake_pipe_, O_NONBLOCK | O_CLOEXEC) != 0) {
    wake_pipe_[0] = wake_pipe_[1] = -1;  // RequestStop() then degrades to a no-op
    return;
  }
  Watch(wake_pipe_[0], POLLIN, [this](short) {
    char drain[64];
    while (::read(wake_pipe_[0], drain, sizeof(drain)) > 0) {
    }
    stopping_ = true;
  });
}

EventLoop::~EventLoop() {
  for (int fd : wake_pipe_) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
}

int64_t EventLoop::NowMs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void EventLoop::Watch(int fd, short events, FdCallback callback) {
  CT_DCHECK(fd >= 0);
  auto it = watches_.find(fd);
  if (it != watches_.end()) {
    it->second->active = false;  // a pending dispatch for the old watch is dropped
  }
  watches_[fd] = std::make_shared<WatchEntry>(WatchEntry{fd, events, true, std::move(callback)});
}

void EventLoop::SetEvents(int fd, short events) {
  auto it = watches_.find(fd);
  CT_DCHECK(it != watches_.end());
  if (it != watches_.end()) {
    it->second->events = events;
  }
}

void EventLoop::Unwatch(int fd) {
  auto it = watches_.find(fd);
  if (it == watches_.end()) {
    return;
  }
  it->second->active = false;
  watches_.erase(it);
}

EventLoop::TimerKey EventLoop::AddTimer(int64_t delay_ms, TimerCallback callback) {
  TimerKey key{NowMs() + (delay_ms < 0 ? 0 : delay_ms), next_timer_seq_++};
  timers_.emplace(key, std::move(callback));
  return key;
}

void EventLoop::CancelTimer(const TimerKey& key) { timers_.erase(key); }

void EventLoop::RunDueTimers() {
  const int64_t now = NowMs();
  // Timers added by a callback (even with delay 0) wait for the next iteration: a callback that
  // re-arms itself can never starve descriptor events.
  const uint64_t seq_limit = next_timer_seq_;
  for (auto it = timers_.begin(); it != timers_.end() && it->first.first <= now;) {
    if (it->first.second >= seq_limit) {
      ++it;
      continue;
    }
    TimerCallback callback = std::move(it->second);
    timers_.erase(it);
    callback();
    it = timers_.begin();  // the callback may have changed the map
  }
}

int EventLoop::PollTimeoutMs() const {
  if (timers_.empty()) {
    return -1;
  }
  int64_t delta = timers_.begin()->first.first - NowMs();
  if (delta <= 0) {
    return 0;
  }
  return delta > INT_MAX ? INT_MAX : static_cast<int>(delta);
}

int EventLoop::Run() {
  stopping_ = false;
  std::vector<pollfd> fds;
  std::vector<std::shared_ptr<WatchEntry>> entries;
  while (!stopping_) {
    fds.clear();
    entries.clear();
    for (const auto& [fd, entry] : watches_) {
      // A negative fd makes poll(2) skip the slot entirely (no POLLHUP either).
      fds.push_back(pollfd{entry->events != 0 ? fd : -1, entry->events, 0});
      entries.push_back(entry);
    }
    int n = ::poll(fds.data(), fds.size(), PollTimeoutMs());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return -errno;
    }
    for (size_t i = 0; n > 0 && i < fds.size() && !stopping_; ++i) {
      if (fds[i].revents == 0) {
        continue;
      }
      --n;
      // `entries` keeps the watch (and its callback) alive even if the callback removes it.
      if (entries[i]->active) {
        entries[i]->callback(fds[i].revents);
      }
    }
    if (!stopping_) {
      RunDueTimers();
    }
  }
  return 0;
}

void EventLoop::RequestStop() {
  if (wake_pipe_[1] >= 0) {
    char byte = 1;
    ssize_t ignored = ::write(wake_pipe_[1], &byte, 1);
    (void)ignored;
  }
}

void Timer::Start(EventLoop& loop, int64_t delay_ms, EventLoop::TimerCallback callback) {
  Cancel();
  loop_ = &loop;
  key_ = loop.AddTimer(delay_ms, [this, cb = std::move(callback)]() {
    loop_ = nullptr;  // fired: nothing left to cancel (the callback may restart it)
    cb();
  });
}

void Timer::Cancel() {
  if (loop_ != nullptr) {
    loop_->CancelTimer(key_);
    loop_ = nullptr;
  }
}

void IoWatch::Start(EventLoop& loop, int fd, short events, EventLoop::FdCallback callback) {
  Stop();
  loop_ = &loop;
  fd_ = fd;
  events_ = events;
  loop.Watch(fd, events, std::move(callback));
}

void IoWatch::SetEvents(short events) {
  if (loop_ != nullptr && events != events_) {
    events_ = events;
    loop_->SetEvents(fd_, events);
  }
}

void IoWatch::Stop() {
  if (loop_ != nullptr) {
    loop_->Unwatch(fd_);
    loop_ = nullptr;
    fd_ = -1;
    events_ = 0;
  }
}

}  // namespace camtunnel::agent
