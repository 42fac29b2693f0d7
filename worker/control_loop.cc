#include "worker/control_loop.h"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "grpcpp/create_channel.h"
#include "pagedllm/worker/v1/worker.grpc.pb.h"
#include "worker/stream_reader.h"
#include "worker/stream_writer.h"

namespace pagedllm::worker {

namespace wv1 = pagedllm::worker::v1;

namespace {

uint64_t EnvUint(const char* name, uint64_t fallback) {
  const char* value = std::getenv(name);
  uint64_t parsed = 0;
  return value != nullptr && absl::SimpleAtoi(value, &parsed) ? parsed : fallback;
}

}  // namespace

absl::StatusOr<LaunchAhead> ParseLaunchAhead(const std::string& value) {
  if (value == "auto") return LaunchAhead::kAuto;
  if (value == "always") return LaunchAhead::kAlways;
  if (value == "never") return LaunchAhead::kNever;
  return absl::InvalidArgumentError(
      absl::StrCat("--launch_ahead must be auto, always or never, got \"", value, "\""));
}

absl::Status RunControlLoop(const std::string& coordinator_address, absl::Duration connect_timeout,
                            const wv1::WorkerHello& hello, ModelRunner& runner,
                            LaunchAhead launch_ahead) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(coordinator_address, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 absl::ToChronoNanoseconds(connect_timeout))) {
    return absl::UnavailableError(absl::StrCat("cannot reach the coordinator at ",
                                               coordinator_address, " within ",
                                               absl::FormatDuration(connect_timeout)));
  }
  std::unique_ptr<wv1::WorkerControl::Stub> stub = wv1::WorkerControl::NewStub(channel);
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<wv1::WorkerMessage, wv1::CoordinatorMessage>> stream =
      stub->Connect(&context);

  wv1::WorkerMessage hello_message;
  *hello_message.mutable_hello() = hello;
  if (!stream->Write(hello_message)) {
    return absl::UnavailableError(
        absl::StrCat("the coordinator at ", coordinator_address, " closed the stream"));
  }
  PAGEDLLM_LOG(INFO) << "connected to the coordinator at " << coordinator_address;

  const bool is_rank0 = hello.rank() == 0;
  // Heartbeats, from their own thread: they go on while this rank computes or waits in a
  // collective, and stop only if the process does.
  std::mutex write_mutex;
  std::mutex stop_mutex;
  std::condition_variable stop_beating;
  bool done = false;
  std::thread heartbeat([&] {
    wv1::WorkerMessage beat;
    beat.mutable_heartbeat()->set_rank(hello.rank());
    std::unique_lock<std::mutex> lock(stop_mutex);
    while (!stop_beating.wait_for(lock, std::chrono::milliseconds(500), [&] { return done; })) {
      std::lock_guard<std::mutex> write_lock(write_mutex);
      if (!stream->Write(beat)) break;
    }
  });
  // Results and errors go out from the writer's thread, in order: the loop goes on to the next
  // step meanwhile.
  StreamWriter writer([&](const wv1::WorkerMessage& reply) {
    std::lock_guard<std::mutex> write_lock(write_mutex);
    return stream->Write(reply);
  });
  // Fault injection for the supervision tests: this rank stops working at that step while its
  // heartbeats go on, as a rank stuck in a kernel or a collective would.
  const uint64_t hang_at_step = EnvUint("PAGEDLLM_FAULT_HANG_AT_STEP", 0);
  const bool hang_here = hang_at_step > 0 && EnvUint("PAGEDLLM_FAULT_HANG_RANK", 0) ==
                                                 static_cast<uint64_t>(hello.rank());
  wv1::CoordinatorMessage message;
  absl::Status outcome = absl::OkStatus();
  bool accepted = false;  // the coordinator sent something: the hello was taken
  // Instructions are read ahead, on the reader's thread: the next one is parsed while a step runs.
  StreamReader reader([&](wv1::CoordinatorMessage* next) { return stream->Read(next); });
  // The step whose device work runs now and whose result has not gone out.
  std::optional<ModelRunner::LaunchedStep> in_flight;
  // Sends a step's result (rank 0) or its error; false once nothing more may go out.
  const auto report = [&](uint64_t step_id, absl::StatusOr<wv1::StepResult> result) {
    wv1::WorkerMessage reply;
    if (!result.ok()) {
      outcome = result.status();
      wv1::WorkerError* error = reply.mutable_error();
      error->set_rank(hello.rank());
      error->set_step_id(step_id);
      error->set_code(static_cast<int>(outcome.code()));
      error->set_message(std::string(outcome.message()));
      writer.Send(std::move(reply));
      return false;
    }
    if (!is_rank0) return true;
    *reply.mutable_result() = *std::move(result);
    return writer.Send(std::move(reply));
  };
  const auto finish_in_flight = [&] {
    if (!in_flight.has_value()) return true;
    const uint64_t step_id = in_flight->step_id;
    absl::StatusOr<wv1::StepResult> result = runner.Finish(std::move(*in_flight));
    in_flight.reset();
    return report(step_id, std::move(result));
  };
  // The next message. With a step in flight, one that comes before the step's device work ends
  // is taken at once (its step is then queued behind it: the device never waits for the host);
  // otherwise the step's result goes out first.
  const auto next_message = [&] {
    if (in_flight.has_value() && launch_ahead != LaunchAhead::kNever) {
      while (true) {
        if (launch_ahead == LaunchAhead::kAlways && reader.TryNext(&message)) return true;
        const absl::StatusOr<bool> done = runner.Done(*in_flight);
        if (!done.ok() || *done) break;  // a failure comes out of Finish
        if (reader.TryNext(&message)) return true;
        std::this_thread::yield();
      }
    }
    if (!finish_in_flight()) return false;
    return reader.Next(&message);
  };
  while (next_message()) {
    accepted = true;
    if (message.has_shutdown()) {
      PAGEDLLM_LOG(INFO) << "shutdown: " << message.shutdown().reason();
      break;
    }
    if (!message.has_step()) continue;
    const uint64_t step_id = message.step().step_id();
    if (hang_here && step_id == hang_at_step) {
      finish_in_flight();
      PAGEDLLM_LOG(WARNING) << "PAGEDLLM_FAULT_HANG_AT_STEP: hanging at step " << hang_at_step;
      while (true) std::this_thread::sleep_for(std::chrono::hours(1));
    }
    absl::StatusOr<ModelRunner::LaunchedStep> launched = runner.Launch(message.step());
    if (!finish_in_flight()) break;  // the step before's result goes out first
    if (!launched.ok()) {
      report(step_id, launched.status());
      break;
    }
    in_flight = *std::move(launched);
  }
  finish_in_flight();  // a shutdown or the stream's end: the last result still goes out
  writer.Flush();      // the last result or the error reaches the coordinator before WritesDone
  {
    std::lock_guard<std::mutex> lock(stop_mutex);
    done = true;
  }
  stop_beating.notify_all();
  heartbeat.join();
  stream->WritesDone();
  // Nothing more is wanted from the coordinator, whose status may never come (it may be gone
  // or tearing this group down): end the call here rather than wait in Finish for good. A call
  // the coordinator ended before sending anything (a refused hello) has its status already:
  // cancelling would hide it.
  if (accepted) context.TryCancel();
  reader.Join();  // its Read has returned: the stream is ours to finish
  const grpc::Status finish = stream->Finish();
  if (!outcome.ok()) return outcome;
  if (!accepted && !finish.ok() && finish.error_code() != grpc::StatusCode::CANCELLED) {
    // Refused at the handshake (another build, protocol or model; an unexpected host; a wrong
    // secret): an error of this worker's, with the coordinator's reason.
    return absl::Status(static_cast<absl::StatusCode>(finish.error_code()),
                        absl::StrCat("the coordinator at ", coordinator_address,
                                     " refused this worker: ", finish.error_message()));
  }
  if (!finish.ok() && finish.error_code() != grpc::StatusCode::CANCELLED) {
    PAGEDLLM_LOG(WARNING) << "control stream ended: " << finish.error_message();
  }
  return absl::OkStatus();
}

}  // namespace pagedllm::worker
