// multinode_fake_hello: says one WorkerHello to a coordinator's worker port, as a worker of
// another build, protocol or model would, from wherever it runs (the tests run it on a simulated
// node), and prints how the coordinator answered:
//   multinode_fake_hello HOST:PORT 'text-format WorkerHello'
// prints "code <grpc status code>: <message>" and exits 0 once the coordinator answered, 1 when it
// could not be reached.
#include <chrono>
#include <cstdio>
#include <string>

#include "google/protobuf/text_format.h"
#include "grpcpp/create_channel.h"
#include "pagedllm/worker/v1/worker.grpc.pb.h"

namespace wv1 = pagedllm::worker::v1;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s HOST:PORT 'text-format WorkerHello'\n", argv[0]);
    return 2;
  }
  wv1::WorkerMessage message;
  if (!google::protobuf::TextFormat::ParseFromString(argv[2], message.mutable_hello())) {
    std::fprintf(stderr, "not a text-format WorkerHello: %s\n", argv[2]);
    return 2;
  }
  auto channel = grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials());
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(10);
  if (!channel->WaitForConnected(deadline)) {
    std::fprintf(stderr, "cannot reach %s\n", argv[1]);
    return 1;
  }
  auto stub = wv1::WorkerControl::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(deadline);
  auto stream = stub->Connect(&context);
  stream->Write(message);
  stream->WritesDone();
  wv1::CoordinatorMessage reply;
  while (stream->Read(&reply)) {
  }
  const grpc::Status status = stream->Finish();
  std::printf("code %d: %s\n", static_cast<int>(status.error_code()),
              status.error_message().c_str());
  return 0;
}
