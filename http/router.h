// The routing table of an HTTP server (server.h): method + path pattern -> handler. A pattern is
// literal segments and `{name}` captures, each capture exactly one non-empty segment
// ("/api/v1/agents/{id}/probe"), and a last `{name...}` that captures the rest of the path (one
// or more segments, slashes included: "/console/{file...}"); the path is matched as sent (no
// decoding, no normalising), so
// "/a//b" or "/a/" never match "/a/{x}" by accident. The first route added that matches wins.
// A path that matches a route of another method is answered 405 with Allow, not 404.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace camtunnel::http {

class Exchange;
using Handler = std::function<void(Exchange&)>;

struct RouteOptions {
  // Served without the bearer token (health and readiness probes, MACed hand-overs).
  bool public_route = false;
};

struct Route {
  std::string method;  // empty: any method
  std::vector<std::string> segments;
  Handler handler;
  RouteOptions options;
};

using PathParams = std::vector<std::pair<std::string_view, std::string_view>>;

struct RouteMatch {
  const Route* route = nullptr;  // null: no route for this method and path
  PathParams params;             // views into the route's names and the request path
  std::string allow;             // methods the path has other routes for ("GET, DELETE")
  bool public_path = false;      // some route of this path is public
};

class Router {
 public:
  // `pattern` starts with '/'. `method` is exact ("GET"), or empty for every method.
  Router& Add(std::string_view method, std::string_view pattern, Handler handler,
              RouteOptions options = {});
  RouteMatch Find(std::string_view method, std::string_view path) const;
  bool empty() const { return routes_.empty(); }

 private:
  std::vector<Route> routes_;
};

}  // namespace camtunnel::http
