// camtunnel-agent: dials out to a camtunnel gateway and serves reverse tunnels to the camera's
// local services. See agent/agent.h for the top level and `camtunnel-agent --help` for usage.
#include <openssl/crypto.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "agent/agent.h"
#include "agent/cert_time.h"
#include "agent/config.h"
#include "agent/event_loop.h"
#include "agent/log.h"
#include "agent/managed_agent.h"
#include "agent/tls_transport.h"

namespace {

camtunnel::agent::EventLoop* g_loop = nullptr;

void OnStopSignal(int) {
  if (g_loop != nullptr) {
    g_loop->RequestStop();  // async-signal-safe: one write(2) to the loop's self-pipe
  }
}

void InstallStopSignals(camtunnel::agent::EventLoop& loop) {
  signal(SIGPIPE, SIG_IGN);
  g_loop = &loop;
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

// Managed mode (--state_file): activation, manager link, Streamers from ASSIGN. Exit status 0
// after SIGTERM or DEACTIVATE; RESTART re-executes this binary with the same arguments.
int RunManaged(camtunnel::agent::Config& config, char** argv) {
  using namespace camtunnel::agent;
  std::string error;
  ManagedOptions options{.state_file = config.manage.state_file,
                         .activation_url = config.manage.activation_url,
                         .serial = config.manage.serial,
                         .operator_id = config.manage.operator_id,
                         .reactivate_after_ms = config.manage.reactivate_after_ms};
  if (!LoadKeyFile(config.manage.factory_secret_file, &options.factory_secret, &error)) {
    std::fprintf(stderr, "camtunnel-agent: factory secret: %s\n", error.c_str());
    return 2;
  }
  if (config.insecure) {
    LOG_WARNING(
        "--insecure: no certificate is verified (activation, manager, Streamers). "
        "DEVELOPMENT ONLY; never deploy.");
  }
  // One trust for every https URL the lifecycle meets; the host name checked is the URL's.
  Agent::FactoryMaker make_factory =
      [&config](const GatewayUrl& url) -> std::unique_ptr<TransportFactory> {
    if (!url.tls) {
      LOG_WARNING("plain Streamer %s: frames are MACed but streams travel unencrypted",
                  url.text.c_str());
      return MakePlainTransportFactory();
    }
    std::string err;
    TlsTrust trust{config.ca_file, config.pins, url.host, config.insecure};
    auto factory = MakeOpenSslTransportFactory(trust, &err, config.kernel_tls);
    if (!factory) {
      LOG_ERROR("TLS setup for %s: %s", url.text.c_str(), err.c_str());
    }
    return factory;
  };
  EventLoop loop;
  InstallStopSignals(loop);
  ManagedAgent::Exit exit;
  int rc;
  {
    ManagedAgent agent(loop, std::move(options), config.services, make_factory,
                       AgentOptions{.proxy = config.proxy});
    LOG_INFO("starting managed agent serial=%s state=%s services=%zu", config.manage.serial.c_str(),
             config.manage.state_file.c_str(), config.services.size());
    agent.Start();
    rc = loop.Run();
    exit = agent.exit();
    agent.Shutdown();
  }
  g_loop = nullptr;
  if (rc != 0) {
    LOG_ERROR("event loop failed: errno %d", -rc);
    return 1;
  }
  if (exit == ManagedAgent::Exit::kRestart) {
    LOG_INFO("re-executing for RESTART");
    execv("/proc/self/exe", argv);
    execvp(argv[0], argv);  // no /proc: try the name we were started with
    LOG_ERROR("re-exec failed: %s", std::strerror(errno));
    return 1;
  }
  if (exit == ManagedAgent::Exit::kDeactivated) {
    LOG_INFO("deactivated: state wiped, exiting");
  }
  return 0;
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
    case ParseOutcome::kVersion:
      std::printf("camtunnel-agent build_time=%lld\n", static_cast<long long>(BuildTimeUnixS()));
      return 0;
    case ParseOutcome::kError:
      std::fprintf(stderr, "camtunnel-agent: %s (see --help)\n", error.c_str());
      return 2;
    case ParseOutcome::kOk:
      break;
  }
  SetLogLevel(config.log_level);
  for (const std::string& warning : config.deprecation_warnings) {
    LOG_WARNING("%s", warning.c_str());
  }
  if (config.proxy) {
    LOG_INFO("every server connection goes through proxy %s%s", config.proxy->text.c_str(),
             config.proxy->authorization.empty() ? "" : " (with credentials)");
  }
  if (config.managed) {
    return RunManaged(config, argv);
  }
  if (!LoadKeyFile(config.key_file, &config.agent_key, &error)) {
    std::fprintf(stderr, "camtunnel-agent: %s\n", error.c_str());
    return 2;
  }

  std::unique_ptr<TransportFactory> factory;
  if (config.gateway.tls) {
    TlsTrust trust{config.ca_file, config.pins, config.server_name, config.insecure};
    factory = MakeOpenSslTransportFactory(trust, &error, config.kernel_tls);
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
    Agent agent(loop, config, std::move(factory), AgentOptions{.proxy = config.proxy});
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
