// The gateway's names for the shared logger (runtime/log.h), for the sources that still include
// this header.
// TODO: remove once control_session.cc includes runtime/log.h; it is being rewritten, and a
// forwarding header keeps the move out of its way until then.
#pragma once

#include "runtime/log.h"

namespace camtunnel::gateway {

using runtime::Kv;
using runtime::LogEvent;
using runtime::LogLevel;
using runtime::SuppressedLogLines;

}  // namespace camtunnel::gateway
