// camtunnel-agent: dials out to a camtunnel gateway and serves reverse tunnels to the camera's
// local services. See agent/agent.h for the top level and `camtunnel-agent --help` for usage.
#include <openssl/crypto.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/event_loop.h"
#include "agent/log.h"
#include "agent/tls_transport.h"

namespace {

camtunnel::agent::EventLoop* g_loop = nullptr;

void OnStopSignal(int) {
  if (g_loop != nullptr) {
    g_loop->RequestStop();  // async-signal-safe: one write(2) to the loop's self-pipe
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace camtunnel::agent;
  Config config;
  std::string error;
  switch (ParseCommandLine(argc, argv, &config, &error)) {
    case ParseOutcome::kHelp:
      std::fputs(UsageText().c_str(), stdout);
      return 0;
    case ParseOutcome::kError:
      std::fprintf(stderr, "camtunnel-agent: %s (see --help)\n", error.c_str());
      return 2;
    case ParseOutcome::kOk:
      break;
  }
  SetLogLevel(config.log_level);
  if (!LoadKeyFile(config.key_file, &config.agent_key, &error)) {
    std::fprintf(stderr, "camtunnel-agent: %s\n", error.c_str());
    return 2;
  }

  std::unique_ptr<TransportFactory> factory;
  if (config.gateway.tls) {
    TlsTrust trust{config.ca_file, config.pins, config.server_name, config.insecure};
    factory = MakeOpenSslTransportFactory(trust, &error);
    if (!factory) {
      std::fprintf(stderr, "camtunnel-agent: %s\n", error.c_str());
      return 2;
    }
    if (config.insecure) {
      LOG_WARNING("**************************************************************************");
      LOG_WARNING("--insecure: the gateway certificate is NOT verified. Anyone on the network");
      LOG_WARNING("path can pose as the gateway's TLS endpoint. DEVELOPMENT ONLY; never deploy.");
      LOG_WARNING("**************************************************************************");
    }
  } else {
    LOG_WARNING("plain gateway %s: frames are MACed but camera streams travel unencrypted",
                config.gateway.text.c_str());
    factory = MakePlainTransportFactory();
  }

  // A peer closing mid-write must surface as EPIPE, not kill the camera's agent (OpenSSL's
  // socket BIO uses write(2), which cannot pass MSG_NOSIGNAL).
  signal(SIGPIPE, SIG_IGN);
  EventLoop loop;
  g_loop = &loop;
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  int rc;
  {
    Agent agent(loop, config, std::move(factory));
    OPENSSL_cleanse(config.agent_key.data(), config.agent_key.size());
    LOG_INFO("starting agent=%s gateway=%s services=%zu", config.agent_id.c_str(),
             config.gateway.text.c_str(), config.services.size());
    agent.Start();
    rc = loop.Run();
    agent.Shutdown();
  }
  g_loop = nullptr;
  if (rc != 0) {
    LOG_ERROR("event loop failed: errno %d", -rc);
    return 1;
  }
  return 0;
}
