// systemd readiness protocol (sd_notify, Type=notify): READY=1 once the listeners are up,
// RELOADING=1 ... READY=1 around a SIGHUP reload, STOPPING=1 when a drain begins, and a STATUS=
// line systemctl shows. Outside systemd (no NOTIFY_SOCKET) every call does nothing.
#pragma once

#include <string_view>

namespace camtunnel::gateway {

void NotifyReady(std::string_view status);
void NotifyReloading();
void NotifyStopping(std::string_view status);
void NotifyStatus(std::string_view status);

}  // namespace camtunnel::gateway
