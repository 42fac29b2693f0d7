// The public port on a network: TLS (--tls_cert / --tls_key) and API keys (--api_key,
// --api_key_file; "authorization: Bearer <key>"), with health checks left open. The certificate is
// made here with openssl, for localhost.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/e2e_util.h"

namespace pagedllm::testing {
namespace {

namespace v1 = pagedllm::v1;
using ::testing::HasSubstr;

std::string ModelDir() { return SourceDir() + "/models/pagedllm-tiny-py"; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(absl::StrCat(::testing::TempDir(), "/pagedllm-tls-", getpid()));
    const std::string command =
        absl::StrCat("mkdir -p ", *dir_,
                     " && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "
                     "/CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout ",
                     *dir_, "/key.pem -out ", *dir_, "/cert.pem 2>&1");
    auto made = RunCommand({"/bin/sh", "-c", command}, 60000);
    ASSERT_TRUE(made.ok() && made->first == 0) << (made.ok() ? made->second : "");
    std::ofstream(*dir_ + "/keys.txt") << "# keys, one per line\n\nsecond-key\n";
    ClusterOptions options(ModelDir(), 1);
    options.http = true;  // the OpenAI HTTP port: the same certificate and keys
    options.extra_flags = {"--tls_cert=" + *dir_ + "/cert.pem", "--tls_key=" + *dir_ + "/key.pem",
                           "--api_key=first-key", "--api_key_file=" + *dir_ + "/keys.txt"};
    auto cluster = Cluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
    port_ = cluster_->address().substr(cluster_->address().rfind(':') + 1);
  }
  static void TearDownTestSuite() {
    if (cluster_ != nullptr) {
      EXPECT_TRUE(cluster_->Stop().ok()) << cluster_->ReadLog();
      delete cluster_;
    }
    delete dir_;
  }

  static std::shared_ptr<grpc::Channel> SecureChannel() {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ReadFile(*dir_ + "/cert.pem");
    return grpc::CreateChannel("localhost:" + port_, grpc::SslCredentials(options));
  }
  static grpc::Status GenerateWith(const std::shared_ptr<grpc::Channel>& channel,
                                   const std::string& key, std::vector<int32_t>* tokens) {
    auto stub = v1::Generation::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    if (!key.empty()) context.AddMetadata("authorization", "Bearer " + key);
    auto reader = stub->Generate(&context, GreedyRequest({0, 476, 290}, 4));
    v1::GenerateResponse response;
    while (reader->Read(&response)) {
      for (const v1::Choice& choice : response.choices()) {
        tokens->insert(tokens->end(), choice.token_ids().begin(), choice.token_ids().end());
      }
    }
    return reader->Finish();
  }

  static std::string* dir_;
  static Cluster* cluster_;
  static std::string port_;
};

std::string* SecurityTest::dir_ = nullptr;
Cluster* SecurityTest::cluster_ = nullptr;
std::string SecurityTest::port_;

// The HTTP port speaks TLS with the same certificate, and wants the same keys.
TEST_F(SecurityTest, TheHttpPortSpeaksTlsAndWantsTheSameKeys) {
  const std::string url = absl::StrCat("https://localhost:", cluster_->http_port(), "/v1/models");
  auto curl = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {"curl", "-sS",       "--cacert", *dir_ + "/cert.pem",
                                     "-o",   "/dev/null", "-w",       "%{http_code}"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(url);
    auto result = RunCommand(argv, 30000);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->second : "";
  };
  EXPECT_EQ(curl({"-H", "Authorization: Bearer first-key"}), "200");
  EXPECT_EQ(curl({"-H", "Authorization: Bearer second-key"}), "200");
  EXPECT_EQ(curl({"-H", "Authorization: Bearer third-key"}), "401");
  EXPECT_EQ(curl({}), "401");
  // Plain HTTP to the TLS port gets no answer.
  auto plain = RunCommand({"curl", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}",
                           absl::StrCat("http://localhost:", cluster_->http_port(), "/health")},
                          30000);
  ASSERT_TRUE(plain.ok());
  EXPECT_NE(plain->second, "200") << plain->second;
}

TEST_F(SecurityTest, TlsAndApiKeysGuardEveryCallButHealth) {
  const std::shared_ptr<grpc::Channel> channel = SecureChannel();
  std::vector<int32_t> tokens;
  grpc::Status status = GenerateWith(channel, "", &tokens);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("authorization: Bearer"));
  status = GenerateWith(channel, "wrong-key", &tokens);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_TRUE(tokens.empty());
  for (const char* key : {"first-key", "second-key"}) {
    tokens.clear();
    status = GenerateWith(channel, key, &tokens);
    ASSERT_TRUE(status.ok()) << key << ": " << status.error_message();
    EXPECT_EQ(tokens.size(), 4u) << key;
  }
  // Tokenize and GetStats want the key too.
  auto stub = v1::Generation::NewStub(channel);
  grpc::ClientContext stats_context;
  v1::ServerStats stats;
  EXPECT_EQ(stub->GetStats(&stats_context, v1::GetStatsRequest(), &stats).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext tokenize_context;
  v1::TokenizeRequest tokenize;
  tokenize.set_text("def");
  v1::TokenizeResponse ids;
  EXPECT_EQ(stub->Tokenize(&tokenize_context, tokenize, &ids).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Health stays open (load balancers probe it without keys), over TLS.
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext health_context;
  grpc::health::v1::HealthCheckResponse serving;
  ASSERT_TRUE(
      health->Check(&health_context, grpc::health::v1::HealthCheckRequest(), &serving).ok());
  EXPECT_EQ(serving.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  // Plaintext gets nowhere.
  tokens.clear();
  status =
      GenerateWith(grpc::CreateChannel("localhost:" + port_, grpc::InsecureChannelCredentials()),
                   "first-key", &tokens);
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(tokens.empty());
}

TEST(SecurityFlagsTest, BadCertificatesAndKeyFilesStopStartUp) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/pagedllm-badtls-", getpid());
  auto made = RunCommand(
      {"/bin/sh", "-c",
       "mkdir -p " + dir + " && echo junk > " + dir + "/junk.pem && : > " + dir + "/empty.txt"},
      10000);
  ASSERT_TRUE(made.ok() && made->first == 0);
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--tls_cert=" + dir + "/junk.pem"}, "--tls_cert and --tls_key go together"},
      {{"--tls_cert=" + dir + "/junk.pem", "--tls_key=" + dir + "/junk.pem"},
       "not a readable PEM certificate"},
      {{"--tls_cert=/nonexistent.pem", "--tls_key=/nonexistent.pem"}, "/nonexistent.pem"},
      {{"--api_key_file=" + dir + "/empty.txt"}, "holds no key"},
      {{"--api_key_file=/nonexistent-keys"}, "--api_key_file /nonexistent-keys: unreadable"},
  };
  for (const auto& [flags, message] : cases) {
    std::vector<std::string> argv = {BinDir() + "/pagedllm-coordinator", "--model", ModelDir(),
                                     "--port", "0"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto result = RunCommand(argv, 10000);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->first, 2) << result->second;
    EXPECT_THAT(result->second, HasSubstr(message));
  }
}

}  // namespace
}  // namespace pagedllm::testing
