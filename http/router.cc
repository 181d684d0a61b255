// See router.h.
#include "http/router.h"

namespace camtunnel::http {
namespace {

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> out;
  if (!path.starts_with('/')) {
    return out;
  }
  path.remove_prefix(1);
  for (;;) {
    const size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) {
      return out;
    }
    path.remove_prefix(slash + 1);
  }
}

bool IsCapture(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

bool IsRest(std::string_view segment) { return IsCapture(segment) && segment.ends_with("...}"); }

// Captures into `params` only on a match. `path` is the whole path, for a rest capture.
bool Matches(const Route& route, std::string_view path, const std::vector<std::string_view>& parts,
             PathParams* params) {
  const bool rest = !route.segments.empty() && IsRest(route.segments.back());
  if (rest ? parts.size() < route.segments.size() : parts.size() != route.segments.size()) {
    return false;
  }
  PathParams found;
  for (size_t i = 0; i < route.segments.size(); ++i) {
    const std::string& seg = route.segments[i];
    if (rest && i + 1 == route.segments.size()) {
      // From this segment to the end of the path (the parts are views into it).
      const std::string_view tail = path.substr(static_cast<size_t>(parts[i].data() - path.data()));
      if (parts[i].empty()) {
        return false;
      }
      found.emplace_back(std::string_view(seg).substr(1, seg.size() - 5), tail);
    } else if (IsCapture(seg)) {
      if (parts[i].empty()) {
        return false;
      }
      found.emplace_back(std::string_view(seg).substr(1, seg.size() - 2), parts[i]);
    } else if (seg != parts[i]) {
      return false;
    }
  }
  if (params != nullptr) {
    *params = std::move(found);
  }
  return true;
}

}  // namespace

Router& Router::Add(std::string_view method, std::string_view pattern, Handler handler,
                    RouteOptions options) {
  Route r{std::string(method), {}, std::move(handler), options};
  for (std::string_view seg : Split(pattern)) {
    r.segments.emplace_back(seg);
  }
  routes_.push_back(std::move(r));
  return *this;
}

RouteMatch Router::Find(std::string_view method, std::string_view path) const {
  RouteMatch m;
  const std::vector<std::string_view> parts = Split(path);
  if (parts.empty()) {
    return m;
  }
  for (const Route& r : routes_) {
    if (!Matches(r, path, parts, nullptr)) {
      continue;
    }
    m.public_path = m.public_path || r.options.public_route;
    if (r.method.empty() || r.method == method) {
      if (m.route == nullptr) {
        m.route = &r;
        Matches(r, path, parts, &m.params);
      }
    } else if (m.allow.find(r.method) == std::string::npos) {
      m.allow.append(m.allow.empty() ? "" : ", ").append(r.method);
    }
  }
  return m;
}

}  // namespace camtunnel::http
