// The worker handshake: hosts of the hostfile, this build, this protocol, this model.
#include "coordinator/worker_link/hello_validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/build_info.h"
#include "coordinator/launcher/hostfile.h"
#include "proto/worker_protocol.h"

namespace pagedllm::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace wv1 = pagedllm::worker::v1;

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/", name, "-", getpid());
  std::ofstream(path) << text;
  return path;
}

wv1::WorkerHello HelloOf(const HandshakeExpectations& expected) {
  wv1::WorkerHello hello;
  hello.set_rank(1);
  hello.set_hostname("node2");
  hello.set_pid(77);
  hello.set_build_version(expected.build_version);
  hello.set_protocol_revision(expected.protocol_revision);
  hello.set_protocol_fingerprint(expected.protocol_fingerprint);
  hello.set_model_config_hash(expected.model_config_hash.value_or(0));
  hello.mutable_model()->set_name("tiny");
  return hello;
}

TEST(HostfileTest, HostsOfAnOpenMpiHostfile) {
  const std::string path = WriteFile(
      "hostfile", "# two nodes\nnode-a slots=8 max_slots=8\n\n  root@10.0.0.2\tslots=2 # b\n");
  auto hosts = ReadHostfileHosts(path);
  ASSERT_TRUE(hosts.ok()) << hosts.status();
  EXPECT_THAT(*hosts, ElementsAre("node-a", "10.0.0.2"));
  EXPECT_EQ(ReadHostfileHosts(WriteFile("empty", "# none\n")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadHostfileHosts("/nonexistent/hostfile").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(HostfileTest, AddressesResolveAndAnUnknownHostIsNamed) {
  auto addresses = WorkerAddressesOf(WriteFile("hostfile2", "10.0.0.2 slots=1\n::1\n"),
                                     "localhost");
  ASSERT_TRUE(addresses.ok()) << addresses.status();
  EXPECT_THAT(*addresses, ::testing::IsSupersetOf({"10.0.0.2", "::1", "127.0.0.1"}));
  auto unknown = WorkerAddressesOf(WriteFile("hostfile3", "no-such-host.invalid\n"), "127.0.0.1");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.status().message(), HasSubstr("host \"no-such-host.invalid\" does not resolve"));
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.5"));
  EXPECT_TRUE(IsLoopbackAddress("::1"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.2"));
}

TEST(HelloValidationTest, PeerAddressesFromGrpc) {
  EXPECT_EQ(PeerAddress("ipv4:10.77.0.3:41234"), "10.77.0.3");
  EXPECT_EQ(PeerAddress("ipv6:[::1]:5"), "::1");
  EXPECT_EQ(PeerAddress("ipv6:%5B::ffff:10.0.0.2%5D:7"), "10.0.0.2");
  EXPECT_EQ(PeerAddress("ipv6:[fe80::1%eth0]:7"), "fe80::1");
  EXPECT_EQ(PeerAddress("unix:/tmp/socket"), "unix:/tmp/socket");
}

TEST(HelloValidationTest, TheCoordinatorsOwnBuildProtocolAndModel) {
  const std::string model_dir = absl::StrCat(::testing::TempDir(), "/model-", getpid());
  mkdir(model_dir.c_str(), 0755);
  std::ofstream(model_dir + "/config.json") << "{\"vocab_size\": 8}";
  auto expected = CoordinatorHandshake(model_dir, "", "127.0.0.1");
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(expected->build_version, BuildVersion());
  EXPECT_EQ(expected->protocol_revision, WorkerProtocolRevision());
  EXPECT_EQ(expected->protocol_fingerprint, WorkerProtocolFingerprint());
  EXPECT_EQ(expected->model_config_hash, Fingerprint64("{\"vocab_size\": 8}"));
  EXPECT_TRUE(expected->allowed_addresses.empty());  // no hostfile: any host
  EXPECT_TRUE(CheckHandshake(HelloOf(*expected), "10.9.9.9", *expected).ok());
  // Without the model files only the ranks' agreement is checked.
  auto no_model = CoordinatorHandshake("/nonexistent", "", "127.0.0.1");
  ASSERT_TRUE(no_model.ok());
  EXPECT_FALSE(no_model->model_config_hash.has_value());
}

TEST(HelloValidationTest, RefusalsNameTheHostAndWhatDiffers) {
  HandshakeExpectations expected;
  expected.build_version = "0.1.0+gaaaa";
  expected.protocol_revision = 2;
  expected.protocol_fingerprint = 0x1234;
  expected.model_config_hash = 0x99;
  expected.model_config_path = "/models/m/config.json";
  expected.allowed_addresses = {"10.0.0.2", "10.0.0.3"};
  expected.hostfile = "/tmp/hostfile";
  const wv1::WorkerHello good = HelloOf(expected);
  EXPECT_TRUE(CheckHandshake(good, "10.0.0.3", expected).ok());
  EXPECT_TRUE(CheckHandshake(good, "127.0.0.1", expected).ok());  // loopback: a local rank

  absl::Status status = CheckHandshake(good, "10.0.0.9", expected);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr("worker rank 1 (host \"node2\" at 10.0.0.9, pid 77) "
                                          "connected from 10.0.0.9, which is not a host of this "
                                          "job (/tmp/hostfile and --advertise_host: 10.0.0.2, "
                                          "10.0.0.3)"));

  wv1::WorkerHello hello = good;
  hello.set_build_version("0.1.0+gbbbb");
  status = CheckHandshake(hello, "10.0.0.3", expected);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("at 10.0.0.3, pid 77) runs build \"0.1.0+gbbbb\", the "
                                          "coordinator build \"0.1.0+gaaaa\""));

  hello = good;
  hello.set_protocol_revision(1);
  status = CheckHandshake(hello, "10.0.0.3", expected);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("speaks worker protocol revision 1 (schema "
                                          "0x0000000000001234), the coordinator revision 2"));
  hello = good;
  hello.set_protocol_fingerprint(0x4321);
  EXPECT_EQ(CheckHandshake(hello, "10.0.0.3", expected).code(),
            absl::StatusCode::kFailedPrecondition);

  hello = good;
  hello.set_model_config_hash(0x98);
  status = CheckHandshake(hello, "10.0.0.3", expected);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(),
              HasSubstr("loaded model \"tiny\" whose config.json (hash 0x0000000000000098) "
                        "differs from the coordinator's /models/m/config.json (hash "
                        "0x0000000000000099)"));
}

TEST(HelloValidationTest, RanksMustShareTheModelConfig) {
  HandshakeExpectations expected;
  wv1::WorkerHello first = HelloOf(expected);
  first.set_rank(0);
  first.set_model_config_hash(1);
  wv1::WorkerHello second = first;
  second.set_rank(1);
  EXPECT_TRUE(CheckSameCluster(second, first).ok());
  EXPECT_TRUE(CheckSameModel(second, first).ok());
  second.set_model_config_hash(2);
  EXPECT_THAT(CheckSameCluster(second, first).message(),
              HasSubstr("has a model config.json of hash 0x0000000000000002, rank 0 has "
                        "0x0000000000000001"));
  EXPECT_EQ(CheckSameModel(second, first).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace pagedllm::coordinator
