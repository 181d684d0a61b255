// One snapshot request through the frontend, as a media server's poller makes it:
// `GET /<agent>/snapshot.jpg` (path form), then the body is hashed as it arrives and checked
// against the X-Checksum header, the known snapshot digest, and X-Agent. A wrong hash or agent
// counts as a corrupt integrity error.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <span>
#include <string>

#include "agentsim/media_session.h"
#include "runtime/stream.h"
#include "runtime/timer_wheel.h"

namespace camtunnel::agentsim {

class MediaSnapshot final : public MediaSession, public runtime::StreamHandler {
 public:
  MediaSnapshot(SimContext& ctx, MediaObserver& observer, const AgentIdentity& agent);
  ~MediaSnapshot() override;

  void Start() override;
  void Stop() override;

  void OnStreamReady(runtime::Stream& stream) override;
  void OnStreamData(runtime::Stream& stream, std::span<const uint8_t> bytes) override;
  void OnStreamEof(runtime::Stream& stream) override;
  void OnStreamClosed(runtime::Stream& stream, int error) override;

 private:
  void OnHead(std::span<const uint8_t> bytes);
  void OnBody(std::span<const uint8_t> bytes);
  void OpenResolved(std::string_view result);
  void End(std::string_view outcome, int error);
  void Finished();

  SimContext& ctx_;
  MediaObserver& observer_;
  const AgentIdentity& agent_;
  runtime::Stream* stream_ = nullptr;
  uint64_t started_us_ = 0;
  bool open_resolved_ = false;
  bool ended_ = false;
  bool in_body_ = false;
  std::string head_;
  uint64_t body_left_ = 0;
  EVP_MD_CTX* sha_ = nullptr;
  runtime::Timer timer_;
};

}  // namespace camtunnel::agentsim
