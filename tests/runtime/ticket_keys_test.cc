// Shared session ticket keys: a ticket issued by one shard's SSL_CTX resumes on another's,
// survives one rotation (and is renewed), not two, and survives a restart through the keys
// file. Handshakes run over in-memory BIO pairs: what is tested is OpenSSL's use of the keys.
#include "runtime/ticket_keys.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstdio>
#include <string>

#include "runtime/tls_context.h"
#include "tests/runtime/test_tls.h"

namespace camtunnel::runtime {
namespace {

struct Result {
  bool ok = false;
  bool resumed = false;
  SSL_SESSION* session = nullptr;  // the client's, with the server's newest ticket; owned
};

// One TLS 1.3 handshake between a fresh client and `server_ctx`, offering `session` if set;
// then one byte each way so the client processes the server's NewSessionTicket.
Result Handshake(SSL_CTX* server_ctx, SSL_CTX* client_ctx, SSL_SESSION* session) {
  Result r;
  SSL* c = SSL_new(client_ctx);
  SSL* s = SSL_new(server_ctx);
  BIO* cb = nullptr;
  BIO* sb = nullptr;
  BIO_new_bio_pair(&cb, 0, &sb, 0);
  SSL_set_bio(c, cb, cb);
  SSL_set_bio(s, sb, sb);
  SSL_set_connect_state(c);
  SSL_set_accept_state(s);
  if (session != nullptr) {
    SSL_set_session(c, session);
  }
  int done = 0;
  for (int i = 0; i < 20 && done != 3; ++i) {
    if ((done & 1) == 0 && SSL_do_handshake(c) == 1) {
      done |= 1;
    }
    if ((done & 2) == 0 && SSL_do_handshake(s) == 1) {
      done |= 2;
    }
  }
  if (done == 3) {
    uint8_t byte = 'x';
    size_t n = 0;
    SSL_write_ex(s, &byte, 1, &n);
    SSL_read_ex(c, &byte, 1, &n);  // takes the tickets, then the byte
    r.ok = n == 1;
    r.resumed = SSL_session_reused(c) == 1;
    r.session = SSL_get1_session(c);
    // An SSL freed without a close_notify marks its session not resumable: end properly.
    SSL_shutdown(c);
  }
  ERR_clear_error();
  SSL_free(c);
  SSL_free(s);
  return r;
}

class TicketKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ = TicketKeys::Generate();
    for (auto* ctx : {&shard_a_, &shard_b_}) {
      auto made = CreateServerContext({cert_.cert_file, cert_.key_file});
      ASSERT_TRUE(made.ok()) << made.status();
      *ctx = std::move(*made);
      keys_->Install(ctx->get());
    }
    client_.reset(SSL_CTX_new(TLS_client_method()));
    SSL_CTX_set_verify(client_.get(), SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_session_cache_mode(client_.get(), SSL_SESS_CACHE_CLIENT);
  }
  SSL_SESSION* FirstTicket() {
    Result r = Handshake(shard_a_.get(), client_.get(), nullptr);
    EXPECT_TRUE(r.ok);
    EXPECT_FALSE(r.resumed);
    return r.session;
  }
  bool Resumes(SSL_CTX* server, SSL_SESSION* session, SSL_SESSION** renewed = nullptr) {
    Result r = Handshake(server, client_.get(), session);
    EXPECT_TRUE(r.ok);
    if (renewed != nullptr) {
      *renewed = r.session;
    } else {
      SSL_SESSION_free(r.session);
    }
    return r.resumed;
  }

  camtunnel::testing::TestCert cert_;
  std::unique_ptr<TicketKeys> keys_;
  SslCtxPtr shard_a_;
  SslCtxPtr shard_b_;
  SslCtxPtr client_;
};

TEST_F(TicketKeysTest, TicketFromOneShardResumesOnAnother) {
  SSL_SESSION* ticket = FirstTicket();
  EXPECT_TRUE(Resumes(shard_b_.get(), ticket));
  SSL_SESSION_free(ticket);
}

TEST_F(TicketKeysTest, OneRotationStillResumesAndRenewsTwoDoNot) {
  SSL_SESSION* ticket = FirstTicket();
  SSL_SESSION* again = FirstTicket();
  keys_->Rotate(TicketKey::Random());
  SSL_SESSION* renewed = nullptr;
  EXPECT_TRUE(Resumes(shard_b_.get(), ticket, &renewed)) << "previous key still accepted";
  keys_->Rotate(TicketKey::Random());
  EXPECT_FALSE(Resumes(shard_a_.get(), again)) << "two rotations ago: full handshake";
  EXPECT_TRUE(Resumes(shard_a_.get(), renewed)) << "the renewed ticket uses the newer key";
  for (SSL_SESSION* s : {ticket, again, renewed}) {
    SSL_SESSION_free(s);
  }
}

TEST_F(TicketKeysTest, KeysFileCarriesTicketsAcrossARestart) {
  SSL_SESSION* ticket = FirstTicket();
  const std::string path = cert_.dir + "/ticket.keys";
  ASSERT_TRUE(keys_->SaveFile(path).ok());
  auto reloaded = TicketKeys::LoadFile(path);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  auto restarted = CreateServerContext({cert_.cert_file, cert_.key_file});
  ASSERT_TRUE(restarted.ok());
  (*reloaded)->Install(restarted->get());
  EXPECT_TRUE(Resumes(restarted->get(), ticket));
  // A fresh process with fresh keys cannot open it.
  auto fresh = TicketKeys::Generate();
  auto other = CreateServerContext({cert_.cert_file, cert_.key_file});
  ASSERT_TRUE(other.ok());
  fresh->Install(other->get());
  EXPECT_FALSE(Resumes(other->get(), ticket));
  SSL_SESSION_free(ticket);
  std::remove(path.c_str());
}

TEST(TicketKeysParseTest, RejectsMalformedFilesWithTheLine) {
  EXPECT_FALSE(TicketKeys::Parse("").ok());
  auto bad = TicketKeys::Parse("# comment\nabc\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("line 2"), std::string::npos);
  auto keys = TicketKeys::Generate();
  auto round = TicketKeys::Parse(keys->Serialize());
  ASSERT_TRUE(round.ok());
  EXPECT_EQ((*round)->Serialize(), keys->Serialize());
}

}  // namespace
}  // namespace camtunnel::runtime
