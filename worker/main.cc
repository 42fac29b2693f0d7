// pagedllm-worker: one tensor-parallel rank, started by mpirun (one process per GPU, or per
// CPU share). Loads its shard of the model, sizes its KV cache slice (all ranks agree on the
// smallest block count), dials the coordinator and runs the steps it is sent.
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/build_info.h"
#include "common/flags_usage.h"
#include "common/logging.h"
#include "common/read_file.h"
#include "common/status.h"
#include "kernels/device.h"
#include "parallel/mpi_session.h"
#include "parallel/rank_setup.h"
#include "proto/worker_protocol.h"
#include "worker/control_loop.h"
#include "worker/kv_cache_sizing.h"
#include "worker/model/kv_swap_space.h"
#include "worker/model/model_loader.h"
#include "worker/model_runner.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:50052", "the coordinator's worker address");
ABSL_FLAG(std::string, model, "", "Hugging Face model directory");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda");
ABSL_FLAG(int, block_size, 16, "tokens per KV cache block");
ABSL_FLAG(int, num_kv_blocks, 0, "KV blocks (0: size from --cpu_kv_cache_gib)");
ABSL_FLAG(double, cpu_kv_cache_gib, 1.0, "CPU backend: GiB of KV cache for this rank");
ABSL_FLAG(double, swap_space_gib, 0.0,
          "GiB of pinned host memory per rank for swapped-out KV blocks (0: none)");
ABSL_FLAG(int, connect_timeout_s, 60, "give up reaching the coordinator after this");
ABSL_FLAG(std::string, dtype, "auto", "auto, float32, bfloat16 or float16 (CPU: float32)");
ABSL_FLAG(std::string, load_format, "auto", "auto (the checkpoint) or dummy (random weights)");
ABSL_FLAG(double, gpu_memory_utilization, 0.9, "CUDA: fraction of the GPU for this worker");
ABSL_FLAG(int, max_num_batched_tokens, 2048, "CUDA: the largest step, profiled for memory");
ABSL_FLAG(std::string, decode_graphs, "auto",
          "run decode steps through captured graphs: auto (on for CUDA), on, off");
ABSL_FLAG(std::string, launch_ahead, "auto",
          "launch a step behind the one before it, before that one's result is read: auto (when "
          "its instruction comes while the step before runs on the device), always, never");
ABSL_FLAG(int, max_num_seqs, 256, "most sequences in a step (the largest decode graph)");

namespace pagedllm::worker {
namespace {

// --decode_graphs (checked at the start of Run): on, off, or auto (on for CUDA).
bool UseDecodeGraphs(const kernels::Device& device) {
  const std::string graphs = absl::GetFlag(FLAGS_decode_graphs);
  return graphs == "on" || (graphs == "auto" && device.type() == kernels::DeviceType::kCuda);
}

absl::Status Run(parallel::MpiSession& mpi) {
  const int rank = mpi.rank();
  if (const std::string graphs = absl::GetFlag(FLAGS_decode_graphs);
      graphs != "auto" && graphs != "on" && graphs != "off") {
    return absl::InvalidArgumentError("--decode_graphs must be auto, on or off, got " + graphs);
  }
  PAGEDLLM_ASSIGN_OR_RETURN(const LaunchAhead launch_ahead,
                            ParseLaunchAhead(absl::GetFlag(FLAGS_launch_ahead)));
  PAGEDLLM_ASSIGN_OR_RETURN(std::unique_ptr<kernels::Device> device,
                            parallel::OpenRankDevice(mpi, absl::GetFlag(FLAGS_device)));
  PAGEDLLM_ASSIGN_OR_RETURN(std::unique_ptr<parallel::Communicator> comm,
                            parallel::OpenCommunicator(mpi, *device));

  LoadOptions load_options;
  load_options.dtype = absl::GetFlag(FLAGS_dtype);
  load_options.load_format = absl::GetFlag(FLAGS_load_format);
  PAGEDLLM_ASSIGN_OR_RETURN(
      LoadedModel loaded, LoadLlamaModel(absl::GetFlag(FLAGS_model), *device, *comm, load_options));
  const int block_size = absl::GetFlag(FLAGS_block_size);
  if (block_size <= 0 || block_size > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("--block_size must be in [1, 1024], got ", block_size));
  }
  const size_t bytes_per_block =
      KvCache::BytesPerBlock(loaded.cache_dtype, loaded.num_layers, block_size,
                             loaded.num_kv_heads_local, loaded.head_dim);
  int64_t num_blocks = absl::GetFlag(FLAGS_num_kv_blocks);
  if (num_blocks <= 0 && device->type() == kernels::DeviceType::kCpu) {
    num_blocks = static_cast<int64_t>(absl::GetFlag(FLAGS_cpu_kv_cache_gib) * (1ull << 30) /
                                      bytes_per_block);
  } else if (num_blocks <= 0) {
    KvSizingInput sizing_input;
    sizing_input.block_size = block_size;
    sizing_input.max_num_batched_tokens = absl::GetFlag(FLAGS_max_num_batched_tokens);
    sizing_input.max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs);
    sizing_input.reserve_graph_pool = UseDecodeGraphs(*device);
    sizing_input.world_size = mpi.world_size();
    sizing_input.vocab_size = loaded.info.vocab_size();
    sizing_input.gpu_memory_utilization = absl::GetFlag(FLAGS_gpu_memory_utilization);
    sizing_input.cache_dtype = loaded.cache_dtype;
    sizing_input.num_layers = loaded.num_layers;
    sizing_input.num_kv_heads_local = loaded.num_kv_heads_local;
    sizing_input.head_dim = loaded.head_dim;
    PAGEDLLM_ASSIGN_OR_RETURN(KvSizing sizing,
                              ProfileKvBlocks(*device, *loaded.model, sizing_input));
    num_blocks = sizing.num_blocks;
  }
  PAGEDLLM_ASSIGN_OR_RETURN(num_blocks, mpi.AllReduceMin(num_blocks));
  if (num_blocks < 1) {
    return absl::ResourceExhaustedError("no room for a single KV cache block");
  }
  PAGEDLLM_ASSIGN_OR_RETURN(
      KvCache cache,
      KvCache::Create(*device, loaded.cache_dtype, loaded.num_layers, static_cast<int>(num_blocks),
                      block_size, loaded.num_kv_heads_local, loaded.head_dim));
  PAGEDLLM_LOG(INFO) << "KV cache: " << num_blocks << " blocks of " << block_size << " tokens ("
                     << (num_blocks * bytes_per_block >> 20) << " MiB)";

  const double swap_gib = absl::GetFlag(FLAGS_swap_space_gib);
  if (!(swap_gib >= 0.0 && swap_gib <= 1024.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--swap_space_gib must be in [0, 1024], got ", swap_gib));
  }
  PAGEDLLM_ASSIGN_OR_RETURN(
      int64_t num_swap_blocks,
      mpi.AllReduceMin(static_cast<int64_t>(swap_gib * (1ull << 30) / bytes_per_block)));
  num_swap_blocks = std::min<int64_t>(num_swap_blocks, std::numeric_limits<int32_t>::max());
  PAGEDLLM_ASSIGN_OR_RETURN(std::unique_ptr<KvSwapSpace> swap_space,
                            KvSwapSpace::Create(*device, cache, num_swap_blocks));
  if (num_swap_blocks > 0) {
    PAGEDLLM_LOG(INFO) << "KV swap space: " << num_swap_blocks << " host blocks ("
                       << (num_swap_blocks * bytes_per_block >> 20) << " MiB pinned)";
  }

  pagedllm::worker::v1::WorkerHello hello;
  hello.set_rank(rank);
  hello.set_world_size(mpi.world_size());
  hello.set_hostname(parallel::Hostname());
  hello.set_pid(getpid());
  hello.set_device(device->name());
  hello.set_num_kv_blocks(static_cast<int32_t>(num_blocks));
  hello.set_block_size(block_size);
  *hello.mutable_model() = loaded.info;
  hello.set_weight_bytes(static_cast<int64_t>(loaded.weight_bytes));
  hello.set_kv_bytes_per_token(static_cast<int64_t>(bytes_per_block / block_size));
  hello.set_num_swap_blocks(static_cast<int32_t>(num_swap_blocks));
  if (const char* secret = std::getenv("PAGEDLLM_WORKER_SECRET"); secret != nullptr) {
    hello.set_secret(secret);
  }
  // The handshake: the coordinator refuses another build, protocol or model.
  hello.set_build_version(BuildVersion());
  hello.set_protocol_revision(WorkerProtocolRevision());
  hello.set_protocol_fingerprint(WorkerProtocolFingerprint());
  PAGEDLLM_ASSIGN_OR_RETURN(const std::string config_json,
                            ReadFile(absl::GetFlag(FLAGS_model) + "/config.json"));
  hello.set_model_config_hash(Fingerprint64(config_json));

  const bool use_graphs = UseDecodeGraphs(*device);
  ModelRunner runner(device.get(), comm.get(), std::move(loaded.model), std::move(cache),
                     loaded.info.max_position_embeddings(),
                     // A decode step never has more sequences than tokens.
                     use_graphs ? std::min(absl::GetFlag(FLAGS_max_num_seqs),
                                           absl::GetFlag(FLAGS_max_num_batched_tokens))
                                : 0);
  runner.set_swap_space(std::move(swap_space));
  return RunControlLoop(absl::GetFlag(FLAGS_coordinator),
                        absl::Seconds(absl::GetFlag(FLAGS_connect_timeout_s)), hello, runner,
                        launch_ahead);
}

}  // namespace
}  // namespace pagedllm::worker

int main(int argc, char** argv) {
  pagedllm::SetFlagsUsage(
      "mpirun -np N pagedllm-worker --coordinator HOST:PORT --model DIR [--device cpu|cuda]");
  absl::ParseCommandLine(argc, argv);
  return pagedllm::parallel::RunUnderMpi(&argc, &argv, "worker", pagedllm::worker::Run);
}
