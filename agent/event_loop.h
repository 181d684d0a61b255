// The agent's single-threaded event loop: poll(2) over a handful of descriptors plus one-shot
// timers. Portable to any POSIX kernel a camera runs (no epoll or io_uring needed at this scale:
// a camera has one control connection and a few tunnels, so O(n) poll is cheaper than the
// bookkeeping of anything smarter).
//
// Re-entrancy rules, relied on by every owner:
// - a callback may add, change or remove any watch or timer, including its own, and may destroy
//   the object that registered it (the loop keeps the callback alive until it returns);
// - a watch removed during an iteration gets no further events in that iteration, even if its
//   descriptor number is reused at once;
// - events are level-triggered and may be spurious: handlers retry non-blocking operations.
#pragma once

#include <poll.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <unordered_map>
#include <utility>

namespace camtunnel::agent {

class EventLoop {
 public:
  using FdCallback = std::function<void(short revents)>;
  using TimerCallback = std::function<void()>;
  // (deadline ms, sequence): unique and ordered by deadline.
  using TimerKey = std::pair<int64_t, uint64_t>;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Monotonic milliseconds.
  static int64_t NowMs();

  // Adds or replaces the watch on `fd`. `events` may be 0: the descriptor is then not polled
  // at all (not even for POLLHUP/POLLERR), which is how a relay pauses a finished or
  // backpressured side without busy-looping on a hang-up it will handle later.
  void Watch(int fd, short events, FdCallback callback);
  void SetEvents(int fd, short events);
  void Unwatch(int fd);

  TimerKey AddTimer(int64_t delay_ms, TimerCallback callback);
  void CancelTimer(const TimerKey& key);

  // Runs until Stop() or RequestStop(). Returns 0, or -errno if poll(2) fails.
  int Run();
  void Stop() { stopping_ = true; }
  // Async-signal-safe and thread-safe: wakes the loop and makes Run() return.
  void RequestStop();

  size_t watch_count() const { return watches_.size(); }
  size_t timer_count() const { return timers_.size(); }

 private:
  struct WatchEntry {
    int fd;
    short events;
    bool active;
    FdCallback callback;
  };
  void RunDueTimers();
  int PollTimeoutMs() const;

  std::unordered_map<int, std::shared_ptr<WatchEntry>> watches_;
  std::map<TimerKey, TimerCallback> timers_;
  uint64_t next_timer_seq_ = 0;
  int wake_pipe_[2] = {-1, -1};
  bool stopping_ = false;
};

// A one-shot timer owned by an object: cancelled when restarted or destroyed, so a callback
// never outlives its owner.
class Timer {
 public:
  Timer() = default;
  ~Timer() { Cancel(); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void Start(EventLoop& loop, int64_t delay_ms, EventLoop::TimerCallback callback);
  void Cancel();
  bool active() const { return loop_ != nullptr; }

 private:
  EventLoop* loop_ = nullptr;
  EventLoop::TimerKey key_{};
};

// A descriptor watch owned by an object; removed when stopped or destroyed. Declare it after
// the member that owns the descriptor so that it is destroyed (unwatched) before the close.
class IoWatch {
 public:
  IoWatch() = default;
  ~IoWatch() { Stop(); }
  IoWatch(const IoWatch&) = delete;
  IoWatch& operator=(const IoWatch&) = delete;

  void Start(EventLoop& loop, int fd, short events, EventLoop::FdCallback callback);
  void SetEvents(short events);
  void Stop();
  bool active() const { return loop_ != nullptr; }
  short events() const { return events_; }

 private:
  EventLoop* loop_ = nullptr;
  int fd_ = -1;
  short events_ = 0;
};

}  // namespace camtunnel::agent
