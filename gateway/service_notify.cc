#include "gateway/service_notify.h"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <string>

namespace camtunnel::gateway {
namespace {

void Send(const std::string& message) {
  // 0: keep NOTIFY_SOCKET in the environment, so every later state change can be sent too.
  sd_notify(0, message.c_str());
}

std::string StatusLine(std::string_view status) {
  return status.empty() ? std::string() : "\nSTATUS=" + std::string(status);
}

}  // namespace

void NotifyReady(std::string_view status) { Send("READY=1" + StatusLine(status)); }

void NotifyReloading() {
  // MONOTONIC_USEC lets systemd (253+, Type=notify-reload) tell this reload from an older one;
  // earlier versions ignore it.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const unsigned long long usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
                                  static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
  Send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + StatusLine("reloading"));
}

void NotifyStopping(std::string_view status) { Send("STOPPING=1" + StatusLine(status)); }

void NotifyStatus(std::string_view status) { Send("STATUS=" + std::string(status)); }

}  // namespace camtunnel::gateway
