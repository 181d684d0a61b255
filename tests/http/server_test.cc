// The HTTP request server (http/server.h) over real loopback sockets: routing, the bearer
// token, JSON errors, bounded heads and bodies, keep-alive, answers given later, a client that
// leaves first, static files and server-sent events.
#include "http/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "http/event_stream.h"
#include "http/static_files.h"
#include "runtime/listener.h"
#include "runtime/shard.h"

namespace camtunnel::http {
namespace {

// Connects, sends each piece (40 ms apart, so they arrive as separate reads), and reads until
// `done(received)` says enough, EOF, or 5 s.
std::string Talk(uint16_t port, std::vector<std::string> pieces,
                 std::function<bool(const std::string&)> done = nullptr) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (i > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(40));
      }
      send(fd, pieces[i].data(), pieces[i].size(), MSG_NOSIGNAL);
    }
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[4096];
    while (!(done && done(out))) {
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return out;
}

size_t Count(const std::string& text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(shard_.Init({}), 0); }

  void Start(Router router, ServerOptions options = {}) {
    if (!options.on_answer) {
      options.on_answer = [this](int status) { statuses_.push_back(status); };
    }
    server_ = std::make_unique<Server>(shard_, std::move(router), std::move(options));
    auto l =
        runtime::Listener::Open(shard_, "127.0.0.1:0", [this](int fd) { server_->Accept(fd); });
    ASSERT_TRUE(l.ok()) << l.status();
    listener_ = std::move(*l);
  }

  // Runs the shard until the client on another thread is done; returns what it received.
  std::string Run(std::vector<std::string> pieces,
                  std::function<bool(const std::string&)> done = nullptr) {
    const uint16_t port = listener_->port();
    auto answer = std::async(std::launch::async, [port, pieces = std::move(pieces), done] {
      return Talk(port, pieces, done);
    });
    shard_.RunUntil(
        [&] { return answer.wait_for(std::chrono::seconds(0)) == std::future_status::ready; },
        10000);
    return answer.get();
  }

  void TearDown() override {
    listener_.reset();
    shard_.Shutdown(1000);
  }

  runtime::Shard shard_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<runtime::Listener> listener_;
  std::vector<int> statuses_;
};

Router Items() {
  Router r;
  r.Add("GET", "/healthz", [](Exchange& ex) { ex.Respond(200, "text/plain", "ok\n"); },
        {.public_route = true});
  r.Add("GET", "/items/{id}", [](Exchange& ex) {
    ex.Json(200, "{\"id\":\"" + std::string(ex.param("id")) + "\",\"query\":\"" +
                     std::string(ex.raw_query()) + "\"}");
  });
  r.Add("DELETE", "/items/{id}", [](Exchange& ex) { ex.Json(200, "{\"deleted\":true}"); });
  r.Add("GET", "/items/{id}/parts/{part}", [](Exchange& ex) {
    ex.Json(200, std::string(ex.param("id")) + "/" + std::string(ex.param("part")));
  });
  return r;
}

TEST_F(ServerTest, RoutesByMethodAndPatternWithCaptures) {
  Start(Items(), {.keep_alive = false});
  std::string a = Run({"GET /items/cam-1?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"});
  EXPECT_EQ(a.rfind("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n", 0), 0u) << a;
  EXPECT_NE(a.find("Connection: close\r\n"), std::string::npos) << a;
  EXPECT_TRUE(a.ends_with(R"({"id":"cam-1","query":"x=1"})")) << a;
  a = Run({"GET /items/a/parts/b HTTP/1.1\r\nHost: x\r\n\r\n"});
  EXPECT_TRUE(a.ends_with("a/b")) << a;
  a = Run({"DELETE /items/a HTTP/1.1\r\nHost: x\r\n\r\n"});
  EXPECT_TRUE(a.ends_with(R"({"deleted":true})")) << a;
}

TEST_F(ServerTest, UnknownPathIsAJson404) {
  Start(Items(), {.keep_alive = false});
  for (const char* path : {"/nothing", "/items", "/items/", "/items//parts/b", "/items/a/"}) {
    const std::string a = Run({"GET " + std::string(path) + " HTTP/1.1\r\nHost: x\r\n\r\n"});
    EXPECT_EQ(a.rfind("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n", 0), 0u)
        << path << "\n"
        << a;
    EXPECT_TRUE(a.ends_with("{\"error\":\"not found\"}\n")) << a;
  }
}

TEST_F(ServerTest, WrongMethodIs405WithAllow) {
  Start(Items(), {.keep_alive = false});
  const std::string a = Run({"PUT /items/a HTTP/1.1\r\nHost: x\r\n\r\n"});
  EXPECT_EQ(a.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0u) << a;
  EXPECT_NE(a.find("\r\nAllow: GET, DELETE\r\n"), std::string::npos) << a;
  EXPECT_NE(a.find("{\"error\":"), std::string::npos) << a;
}

TEST_F(ServerTest, BearerTokenGuardsEveryRouteButPublicOnes) {
  int refused = 0;
  Start(Items(), {.keep_alive = false,
                  .bearer_token = [] { return std::string_view("tok-0123456789abcdef"); },
                  .on_unauthorized = [&refused] { ++refused; }});
  EXPECT_EQ(Run({"GET /items/a HTTP/1.1\r\nHost: x\r\n\r\n"}).rfind("HTTP/1.1 401 Unauthorized", 0),
            0u);
  EXPECT_EQ(Run({"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"}).rfind("HTTP/1.1 401", 0), 0u);
  EXPECT_EQ(Run({"GET /items/a HTTP/1.1\r\nAuthorization: Bearer tok-0123456789abcdeX\r\n\r\n"})
                .rfind("HTTP/1.1 401", 0),
            0u);
  EXPECT_EQ(Run({"GET /items/a HTTP/1.1\r\nAuthorization: Bearer tok-0123456789abcdef\r\n\r\n"})
                .rfind("HTTP/1.1 200 OK", 0),
            0u);
  EXPECT_EQ(Run({"GET /healthz HTTP/1.1\r\n\r\n"}),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
            "Connection: close\r\n\r\nok\n");
  EXPECT_EQ(refused, 3);
}

TEST_F(ServerTest, KeepAliveServesPipelinedAndLaterRequestsOnOneConnection) {
  Start(Items());
  const std::string a =
      Run({"GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /items/2 HTTP/1.1\r\nHost: x\r\n\r\n",
           "GET /items/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"});
  EXPECT_EQ(Count(a, "HTTP/1.1 200 OK"), 3u) << a;
  EXPECT_EQ(Count(a, "Connection: keep-alive"), 2u) << a;
  EXPECT_EQ(Count(a, "Connection: close"), 1u) << a;
  EXPECT_LT(a.find("\"id\":\"1\""), a.find("\"id\":\"2\""));
  EXPECT_LT(a.find("\"id\":\"2\""), a.find("\"id\":\"3\""));
}

TEST_F(ServerTest, ABadSecondRequestOnAKeptConnectionIsStillAnswered) {
  Start(Items());
  const std::string a = Run({"GET /items/1 HTTP/1.1\r\n\r\n", "GET /items/2 HTTP/1.1\nX: y\n\n"});
  EXPECT_EQ(Count(a, "HTTP/1.1 200 OK"), 1u) << a;
  EXPECT_NE(a.find("HTTP/1.1 400 Bad Request"), std::string::npos) << a;
  EXPECT_TRUE(a.ends_with("{\"error\":\"malformed request\"}\n")) << a;
}

TEST_F(ServerTest, Http10KeepsAliveOnlyWhenAsked) {
  Start(Items());
  const std::string a = Run({"GET /items/1 HTTP/1.0\r\n\r\n", "GET /items/2 HTTP/1.0\r\n\r\n"});
  EXPECT_EQ(Count(a, "HTTP/1.1 200 OK"), 1u) << a;
  EXPECT_NE(a.find("Connection: close"), std::string::npos) << a;
}

TEST_F(ServerTest, IdleKeptAliveConnectionEndsAtTheDeadline) {
  Start(Items(), {.request_timeout_ms = 200});
  const auto start = std::chrono::steady_clock::now();
  const std::string a = Run({"GET /items/1 HTTP/1.1\r\n\r\n"});
  EXPECT_EQ(Count(a, "HTTP/1.1 200 OK"), 1u) << a;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST_F(ServerTest, OversizedHeadIs431AndMalformedIs400) {
  Start(Items());
  std::string a = Run({"GET /items/1 HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n"});
  EXPECT_EQ(a.rfind("HTTP/1.1 431 Request Header Fields Too Large\r\n", 0), 0u) << a;
  EXPECT_TRUE(a.ends_with("{\"error\":\"request head too large\"}\n")) << a;
  EXPECT_NE(a.find("Connection: close"), std::string::npos);
  a = Run({"GET /items/1 HTTP/1.1\nHost: x\n\n"});
  EXPECT_EQ(a.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << a;
  EXPECT_TRUE(a.ends_with("{\"error\":\"malformed request\"}\n")) << a;
}

Router Echo() {
  Router r;
  r.Add("PUT", "/echo", [](Exchange& ex) {
    ex.ReadBody(16, [](Exchange& e, std::string_view body) {
      e.Respond(200, "text/plain", "got " + std::string(body));
    });
  });
  return r;
}

TEST_F(ServerTest, BodyIsReadWhenAllOfItHasArrived) {
  Start(Echo());
  const std::string a =
      Run({"PUT /echo HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello", " world",
           "PUT /echo HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"});
  EXPECT_EQ(Count(a, "HTTP/1.1 200 OK"), 2u) << a;
  EXPECT_NE(a.find("got hello world"), std::string::npos) << a;
  EXPECT_TRUE(a.ends_with("got ok")) << a;
}

TEST_F(ServerTest, HeadAndCapturesStayValidWhileALargeBodyArrives) {
  Router r;
  r.Add("PUT", "/things/{id}", [](Exchange& ex) {
    ex.ReadBody(size_t{1} << 20, [](Exchange& e, std::string_view body) {
      e.Respond(200, "text/plain",
                std::string(e.param("id")) + " " + std::string(*e.head().headers.Find("X-Tag")) +
                    " " + std::to_string(body.size()) + " " + std::string(body.substr(0, 3)));
    });
  });
  Start(std::move(r), {.keep_alive = false});
  const std::string body = "abc" + std::string(60000, 'x');
  const std::string a = Run({"PUT /things/cam-7 HTTP/1.1\r\nX-Tag: tagged\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body.substr(0, 10),
                             body.substr(10, 30000), body.substr(30010)});
  EXPECT_TRUE(a.ends_with("cam-7 tagged 60003 abc")) << a.substr(0, 200);
}

TEST_F(ServerTest, OversizedBodyIs413OnTheHeadAlone) {
  Start(Echo());
  const std::string a = Run({"PUT /echo HTTP/1.1\r\nContent-Length: 17\r\n\r\n"});
  EXPECT_EQ(a.rfind("HTTP/1.1 413 Content Too Large\r\n", 0), 0u) << a;
  EXPECT_TRUE(a.ends_with("{\"error\":\"body over 16 bytes\"}\n")) << a;
}

TEST_F(ServerTest, ChunkedOrUnframedBodyIs411) {
  Start(Echo());
  std::string a = Run({"PUT /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"});
  EXPECT_EQ(a.rfind("HTTP/1.1 411 Length Required\r\n", 0), 0u) << a;
  a = Run({"PUT /echo HTTP/1.1\r\n\r\n"});
  EXPECT_EQ(a.rfind("HTTP/1.1 411 Length Required\r\n", 0), 0u) << a;
}

TEST_F(ServerTest, AnswerGivenLaterThroughAReply) {
  Router r;
  std::vector<Reply> waiting;
  r.Add("GET", "/slow", [&waiting](Exchange& ex) { waiting.push_back(ex.Later()); });
  Start(std::move(r));
  runtime::Timer later([&waiting] {
    for (Reply& reply : waiting) {
      reply.Json(202, "{\"late\":true}");
      reply.Json(500, "{}");  // a second answer is ignored
    }
  });
  shard_.timers().Arm(later, shard_.now_ms(), 100);
  const std::string a = Run({"GET /slow HTTP/1.1\r\nConnection: close\r\n\r\n"});
  EXPECT_EQ(a.rfind("HTTP/1.1 202 Accepted\r\n", 0), 0u) << a;
  EXPECT_TRUE(a.ends_with("{\"late\":true}")) << a;
  EXPECT_EQ(statuses_, std::vector<int>({202}));
}

TEST_F(ServerTest, ClientLeavingBeforeTheAnswerAbortsAndTheReplyGoesNowhere) {
  Router r;
  Reply reply;
  bool aborted = false;
  r.Add("GET", "/slow", [&](Exchange& ex) {
    reply = ex.Later();
    ex.OnAbort([&aborted] { aborted = true; });
  });
  Start(std::move(r));
  const std::string a = Run({"GET /slow HTTP/1.1\r\n\r\n"}, [](const std::string&) {
    return true;  // hang up at once
  });
  shard_.RunUntil([&] { return aborted; }, 5000);
  EXPECT_TRUE(aborted);
  EXPECT_FALSE(reply.alive());
  reply.Json(200, "{}");  // nothing to answer any more, and no crash
  EXPECT_TRUE(statuses_.empty());
}

class StaticFilesTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    char tmpl[] = "/tmp/http-static-XXXXXX";
    base_ = mkdtemp(tmpl);
    root_ = base_ / "www";
    std::filesystem::create_directories(root_ / "css");
    std::ofstream(root_ / "index.html") << "<h1>console</h1>";
    std::ofstream(root_ / "css" / "app.css") << "body{}";
    std::ofstream(root_ / ".secret") << "hidden";
    std::ofstream(base_ / "outside.txt") << "outside";
    std::filesystem::create_symlink(base_ / "outside.txt", root_ / "link.txt");
    Router r;
    r.Add("GET", "/console/{file...}", StaticFiles(root_.string()));
    Start(std::move(r), {.keep_alive = false});
  }
  void TearDown() override {
    ServerTest::TearDown();
    std::filesystem::remove_all(base_);
  }
  std::string Get(std::string_view path) {
    return Run({"GET " + std::string(path) + " HTTP/1.1\r\n\r\n"});
  }

  std::filesystem::path base_;
  std::filesystem::path root_;
};

TEST_F(StaticFilesTest, ServesFilesWithTheirContentType) {
  std::string a = Get("/console/index.html");
  EXPECT_EQ(a.rfind("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n", 0), 0u) << a;
  EXPECT_TRUE(a.ends_with("<h1>console</h1>")) << a;
  a = Get("/console/css/app.css");
  EXPECT_NE(a.find("Content-Type: text/css; charset=utf-8"), std::string::npos) << a;
  EXPECT_TRUE(a.ends_with("body{}")) << a;
}

TEST_F(StaticFilesTest, RefusesEveryWayOutOfTheDirectory) {
  for (const char* path :
       {"/console/../outside.txt", "/console/css/../../outside.txt", "/console/%2e%2e/outside.txt",
        "/console/link.txt", "/console/.secret", "/console/css", "/console/css/",
        "/console/./index.html", "/console/missing.html", "/console//index.html"}) {
    const std::string a = Get(path);
    EXPECT_EQ(a.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u) << path << "\n" << a;
    EXPECT_EQ(a.find("outside"), std::string::npos) << path;
    EXPECT_EQ(a.find("hidden"), std::string::npos) << path;
  }
}

TEST(StaticFilesPathTest, PlainSegmentsOnly) {
  EXPECT_TRUE(IsSafeRelativePath("index.html"));
  EXPECT_TRUE(IsSafeRelativePath("css/app.css"));
  for (const char* bad : {"", "..", "a/..", "a//b", "/a", "a/", ".hidden", "a\\b", "a%2fb"}) {
    EXPECT_FALSE(IsSafeRelativePath(bad)) << bad;
  }
  EXPECT_EQ(ContentTypeFor("app.JS"), "text/javascript; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("blob"), "application/octet-stream");
}

TEST_F(ServerTest, ServerSentEventsArePushedUntilTheClientLeaves) {
  Router r;
  std::unique_ptr<EventStream> events;
  bool closed = false;
  r.Add("GET", "/events", [&](Exchange& ex) {
    events = ex.OpenEventStream();
    events->set_on_closed([&closed] { closed = true; });
    events->Send("hello");
  });
  Start(std::move(r), {.request_timeout_ms = 100});  // no deadline once streaming
  runtime::Timer push([&] {
    if (events) {
      events->Send("line 1\nline 2", "status");
      events->KeepAlive();
    }
  });
  shard_.timers().Arm(push, shard_.now_ms(), 300);
  const std::string a = Run({"GET /events HTTP/1.1\r\n\r\n"}, [](const std::string& got) {
    return got.find("data: line 2\n\n:\n\n") != std::string::npos;
  });
  EXPECT_EQ(
      a.rfind("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n", 0), 0u)
      << a;
  EXPECT_EQ(a.find("Content-Length"), std::string::npos) << a;
  EXPECT_NE(a.find("\r\n\r\ndata: hello\n\nevent: status\ndata: line 1\ndata: line 2\n\n:\n\n"),
            std::string::npos)
      << a;
  shard_.RunUntil([&] { return closed; }, 5000);
  EXPECT_TRUE(closed);
  EXPECT_FALSE(events->alive());
  events->Send("nobody listens");  // does nothing
}

TEST_F(ServerTest, ServerEndsAnEventStream) {
  Router r;
  r.Add("GET", "/events", [](Exchange& ex) {
    std::unique_ptr<EventStream> events = ex.OpenEventStream();
    events->Send("only");
    events->Close();
  });
  Start(std::move(r));
  const std::string a = Run({"GET /events HTTP/1.1\r\n\r\n"});
  EXPECT_TRUE(a.ends_with("data: only\n\n")) << a;
}

TEST_F(ServerTest, UpgradeTakesTheStreamWithTheBytesAfterTheHead) {
  Router r;
  struct Echo final : runtime::StreamHandler {
    void OnStreamData(runtime::Stream& s, std::span<const uint8_t> b) override { s.Write(b); }
    void OnStreamEof(runtime::Stream& s) override { s.ShutdownWrite(); }
    void OnStreamClosed(runtime::Stream&, int) override { delete this; }
  };
  r.Add("GET", "/upgrade", [](Exchange& ex) {
    Exchange::Taken t = ex.TakeStream();
    t.stream->set_handler(new Echo);
    t.stream->Write("HTTP/1.1 101 Switching Protocols\r\n\r\n" + t.rest);
  });
  Start(std::move(r));
  const std::string a = Run({"GET /upgrade HTTP/1.1\r\n\r\nearly", "late"},
                            [](const std::string& got) { return got.ends_with("late"); });
  EXPECT_EQ(a, "HTTP/1.1 101 Switching Protocols\r\n\r\nearlylate");
}

}  // namespace
}  // namespace camtunnel::http
