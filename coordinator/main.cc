// pagedllm-coordinator: the public gRPC frontend, the scheduler and the global block table.
// By default it also launches the workers (`mpirun -np <tp> pagedllm-worker ...`), restarts them
// when one dies or hangs (WorkerSupervisor), and stops them on SIGINT/SIGTERM; with
// --launch_workers=false it waits for workers started elsewhere.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/flags_usage.h"
#include "common/logging.h"
#include "common/read_file.h"
#include "common/status.h"
#include "coordinator/engine/engine.h"
#include "coordinator/frontend/generation_service.h"
#include "coordinator/frontend/request_intake.h"
#include "coordinator/http/http_server.h"
#include "coordinator/launcher/cluster_config.h"
#include "coordinator/metrics/serving_metrics.h"
#include "coordinator/openai/chat_prompt.h"
#include "coordinator/openai/openai_api.h"
#include "coordinator/worker_link/grpc_step_executor.h"
#include "coordinator/worker_link/worker_hub.h"
#include "coordinator/worker_link/worker_supervisor.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "text/chat_template/chat_template_load.h"
#include "text/tokenizer/tokenizer.h"

ABSL_FLAG(std::string, config, "", "cluster description (YAML, see cluster-configs/)");
ABSL_FLAG(std::string, model, "", "Hugging Face model directory (passed to the workers)");
ABSL_FLAG(std::string, tokenizer, "",
          "directory with tokenizer.json (default: --model; without one, only token ids are "
          "served); \"none\" serves token ids only");
ABSL_FLAG(std::string, chat_template, "",
          "a Jinja chat template file for /v1/chat/completions, instead of the model's own "
          "(chat_template.jinja or tokenizer_config.json)");
ABSL_FLAG(int, tp, 1, "tensor-parallel size: number of worker processes");
ABSL_FLAG(std::string, device, "cpu", "worker device: cpu or cuda");
ABSL_FLAG(std::string, host, "0.0.0.0", "address the public gRPC server listens on");
ABSL_FLAG(int, port, 50051, "public gRPC port (0 picks a free one; see --port_file)");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain: the public port speaks TLS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, api_key, "",
          "calls must carry \"authorization: Bearer <key>\" (health checks stay open)");
ABSL_FLAG(std::string, api_key_file, "",
          "file of API keys, one per line (with or beside --api_key)");
ABSL_FLAG(std::string, port_file, "", "write the public port here once serving");
ABSL_FLAG(int, http_port, 8000,
          "OpenAI-compatible HTTP port on --host (0: no HTTP server), with --tls_cert and "
          "--api_key as the gRPC port");
ABSL_FLAG(std::string, http_port_file, "", "write the HTTP port here once serving");
ABSL_FLAG(int, http_threads, 4, "threads serving every HTTP connection");
ABSL_FLAG(std::string, served_model_name, "",
          "the model's id in the OpenAI API (default: the model directory's name)");
ABSL_FLAG(int, worker_port, 0, "port the workers dial (0 picks a free one)");
ABSL_FLAG(std::string, advertise_host, "127.0.0.1", "host name the workers use to reach us");
ABSL_FLAG(bool, launch_workers, true, "start the workers with mpirun");
ABSL_FLAG(std::string, mpirun, "mpirun", "the mpirun program");
ABSL_FLAG(std::string, mpirun_args, "", "extra mpirun arguments, space separated");
ABSL_FLAG(std::string, hostfile, "", "mpirun hostfile (multi-node)");
ABSL_FLAG(std::string, worker_bin, "", "pagedllm-worker path (default: next to this binary)");
ABSL_FLAG(std::string, worker_env, "", "K=V,... exported to every worker");
ABSL_FLAG(int, block_size, 16, "tokens per KV cache block");
ABSL_FLAG(int, num_kv_blocks, 0, "KV blocks per worker (0: size from memory)");
ABSL_FLAG(double, cpu_kv_cache_gib, 1.0, "CPU backend: GiB of KV cache per worker");
ABSL_FLAG(double, swap_space_gib, 0.0,
          "GiB of pinned host memory per worker for swapped-out KV blocks (0: none)");
ABSL_FLAG(int, max_num_seqs, 0,
          "most sequences in one step (0: 1024 with --device cuda, 256 on CPU)");
ABSL_FLAG(bool, enable_prefix_caching, true,
          "reuse the KV blocks of cached prompt prefixes (automatic prefix caching)");
ABSL_FLAG(bool, async_scheduling, true,
          "send each decode step to the workers before the previous step's tokens are back, so "
          "the GPU does not wait for the coordinator between steps (not for beam search or "
          "requests with n > 1 before they fork)");
ABSL_FLAG(bool, kv_usage_stats, false,
          "GetStats reports KV slots allocated and filled, summed over steps (KV waste); costs a "
          "walk of the block tables every step");
ABSL_FLAG(std::string, preemption_mode, "auto",
          "when KV blocks run out: auto (swap groups of several sequences, recompute single "
          "ones), swap or recompute; swapping needs --swap_space_gib");
ABSL_FLAG(int, max_num_batched_tokens, 0,
          "most tokens computed in one step (0: 8192 with --device cuda, 2048 on CPU)");
ABSL_FLAG(int, max_waiting, 1024, "most queued requests; more is RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_model_len, 0, "longest sequence (0: the model's max_position_embeddings)");
ABSL_FLAG(int, step_timeout_s, 120, "a step with no result by then makes the cluster unavailable");
ABSL_FLAG(std::string, log_format, "text",
          "text or json (one object a line); the workers log the same way");
ABSL_FLAG(int, drain_timeout_s, 30,
          "on SIGTERM / SIGINT, calls in flight finish for up to this long (new ones are refused)");
ABSL_FLAG(int, worker_start_timeout_s, 300, "workers must all connect within this");
ABSL_FLAG(int, max_restarts, 5,
          "restarts of the workers after one dies or hangs (back-off 1 s, 2 s, ... 30 s; 10 "
          "minutes of serving forgives earlier ones); past it the coordinator exits with status "
          "3, for systemd or Kubernetes to take over. 0: exit at the first failure");
ABSL_FLAG(std::string, dtype, "auto", "auto, float32, bfloat16 or float16 (CPU: float32)");
ABSL_FLAG(std::string, load_format, "auto", "auto (the checkpoint) or dummy (random weights)");
ABSL_FLAG(double, gpu_memory_utilization, 0.9, "CUDA: fraction of each GPU a worker may use");
ABSL_FLAG(std::string, decode_graphs, "auto",
          "workers run decode steps through captured graphs: auto (on for CUDA), on, off");
ABSL_FLAG(std::string, launch_ahead, "auto",
          "workers launch a step sent ahead (--async_scheduling) behind the one before it, before "
          "that one's tokens are read back: auto (when it arrives while the step before runs on "
          "the device), always, never");

namespace pagedllm::coordinator {
namespace {

std::string SelfDir() {
  char path[4096];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return ".";
  std::string exe(path, n);
  return exe.substr(0, exe.rfind('/'));
}

// Workers may start in another directory (mpirun on other hosts): pass them absolute paths.
std::string AbsolutePath(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char cwd[4096];
  if (getcwd(cwd, sizeof(cwd)) == nullptr) return path;
  return std::string(cwd) + "/" + path;
}

// The served tokenizer: --tokenizer's directory, else --model's. Null (token ids only) when the
// model directory has no tokenizer.json or --tokenizer is "none"; an error when a directory named
// by --tokenizer has none, or when tokenizer.json is malformed or uses what is not supported.
absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> LoadTokenizer() {
  const std::string named = absl::GetFlag(FLAGS_tokenizer);
  if (named == "none") return nullptr;
  const std::string dir = named.empty() ? absl::GetFlag(FLAGS_model) : named;
  if (dir.empty()) return nullptr;
  absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> loaded = tokenizer::Tokenizer::Load(dir);
  if (loaded.ok()) {
    PAGEDLLM_LOG(INFO) << "tokenizer: " << dir << "/tokenizer.json (" << (*loaded)->vocab_size()
                       << " ids)";
    return loaded;
  }
  if (absl::IsNotFound(loaded.status()) && named.empty()) {
    PAGEDLLM_LOG(INFO) << "no tokenizer.json in " << dir << ": serving token ids only";
    return nullptr;
  }
  return absl::Status(loaded.status().code(),
                      absl::StrCat("--tokenizer: ", loaded.status().message()));
}

// The chat template of /v1/chat/completions: --chat_template, else the tokenizer directory's
// (parsed now, so that a template using what is not supported stops start-up naming it). Null
// when the model has none: chat requests are then refused, saying so.
absl::StatusOr<std::unique_ptr<chat_template::LoadedChatTemplate>> LoadChatTemplate() {
  const std::string override_file = absl::GetFlag(FLAGS_chat_template);
  const std::string named = absl::GetFlag(FLAGS_tokenizer);
  const std::string dir = named.empty() || named == "none" ? absl::GetFlag(FLAGS_model) : named;
  if (dir.empty() && override_file.empty()) return nullptr;
  absl::StatusOr<chat_template::LoadedChatTemplate> loaded =
      chat_template::LoadChatTemplate(dir, override_file);
  if (loaded.ok()) {
    PAGEDLLM_LOG(INFO) << "chat template: " << (override_file.empty() ? dir : override_file) << " ("
                       << loaded->templates().size() << " template"
                       << (loaded->templates().size() == 1 ? "" : "s") << ")";
    return std::make_unique<chat_template::LoadedChatTemplate>(*std::move(loaded));
  }
  if (absl::IsNotFound(loaded.status()) && override_file.empty()) {
    PAGEDLLM_LOG(INFO) << "no chat template in " << dir << ": /v1/chat/completions is refused";
    return nullptr;
  }
  return absl::Status(loaded.status().code(),
                      absl::StrCat("--chat_template: ", loaded.status().message()));
}

// The step budgets: the flags, or the device's defaults, chosen by measurement on an H100
// (benchmarks/RESULTS.md, "Choosing the defaults": 1,024 / 8,192 gave 12% more throughput than
// 256 / 2,048, as vLLM's H100 defaults); the CPU backend keeps the smaller ones.
int MaxNumSeqs() {
  const int given = absl::GetFlag(FLAGS_max_num_seqs);
  return given > 0 ? given : absl::GetFlag(FLAGS_device) == "cuda" ? 1024 : 256;
}
int MaxNumBatchedTokens() {
  const int given = absl::GetFlag(FLAGS_max_num_batched_tokens);
  return given > 0 ? given : absl::GetFlag(FLAGS_device) == "cuda" ? 8192 : 2048;
}

std::vector<std::string> WorkerCommand(int worker_port) {
  std::vector<std::string> argv = {absl::GetFlag(FLAGS_mpirun)};
  if (geteuid() == 0) argv.push_back("--allow-run-as-root");
  argv.insert(argv.end(), {"-np", absl::StrCat(absl::GetFlag(FLAGS_tp))});
  if (!absl::GetFlag(FLAGS_hostfile).empty()) {
    argv.insert(argv.end(), {"--hostfile", absl::GetFlag(FLAGS_hostfile)});
  }
  for (absl::string_view var :
       absl::StrSplit(absl::GetFlag(FLAGS_worker_env), ',', absl::SkipEmpty())) {
    argv.insert(argv.end(), {"-x", std::string(var)});
  }
  // Every PAGEDLLM_* setting (log level, GPU sharing, kernel switches such as
  // PAGEDLLM_CUDA_PDL) reaches the workers on every host, not only on this one.
  // The worker secret is set in mpirun's environment by each launch (never on a command line).
  argv.insert(argv.end(), {"-x", "PAGEDLLM_WORKER_SECRET"});
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const absl::string_view variable(*entry);
    const absl::string_view name = variable.substr(0, variable.find('='));
    if (!absl::StartsWith(name, "PAGEDLLM_") || name == "PAGEDLLM_WORKER_SECRET") continue;
    argv.insert(argv.end(), {"-x", std::string(name)});
  }
  // CPU workers on one host share its cores: give each its share of kernel threads unless the
  // user chose (each worker would otherwise start a thread per core and oversubscribe).
  if (absl::GetFlag(FLAGS_device) == "cpu" && absl::GetFlag(FLAGS_hostfile).empty() &&
      absl::GetFlag(FLAGS_worker_env).find("PAGEDLLM_CPU_THREADS") == std::string::npos &&
      getenv("PAGEDLLM_CPU_THREADS") == nullptr) {
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    const int threads = std::max(1, cores / absl::GetFlag(FLAGS_tp));
    argv.insert(argv.end(), {"-x", absl::StrCat("PAGEDLLM_CPU_THREADS=", threads)});
  } else if (getenv("PAGEDLLM_CPU_THREADS") != nullptr) {
    argv.insert(argv.end(), {"-x", "PAGEDLLM_CPU_THREADS"});
  }
  for (absl::string_view arg :
       absl::StrSplit(absl::GetFlag(FLAGS_mpirun_args), ' ', absl::SkipEmpty())) {
    argv.emplace_back(arg);
  }
  std::string worker_bin = absl::GetFlag(FLAGS_worker_bin);
  if (worker_bin.empty()) worker_bin = SelfDir() + "/pagedllm-worker";
  argv.insert(argv.end(), {worker_bin,
                           "--coordinator",
                           absl::StrCat(absl::GetFlag(FLAGS_advertise_host), ":", worker_port),
                           "--model",
                           AbsolutePath(absl::GetFlag(FLAGS_model)),
                           "--device",
                           absl::GetFlag(FLAGS_device),
                           "--block_size",
                           absl::StrCat(absl::GetFlag(FLAGS_block_size)),
                           "--num_kv_blocks",
                           absl::StrCat(absl::GetFlag(FLAGS_num_kv_blocks)),
                           "--cpu_kv_cache_gib",
                           absl::StrCat(absl::GetFlag(FLAGS_cpu_kv_cache_gib)),
                           "--swap_space_gib",
                           absl::StrCat(absl::GetFlag(FLAGS_swap_space_gib)),
                           "--dtype",
                           absl::GetFlag(FLAGS_dtype),
                           "--load_format",
                           absl::GetFlag(FLAGS_load_format),
                           "--gpu_memory_utilization",
                           absl::StrCat(absl::GetFlag(FLAGS_gpu_memory_utilization)),
                           "--max_num_batched_tokens",
                           absl::StrCat(MaxNumBatchedTokens()),
                           "--max_num_seqs",
                           absl::StrCat(MaxNumSeqs()),
                           "--decode_graphs",
                           absl::GetFlag(FLAGS_decode_graphs),
                           "--launch_ahead",
                           absl::GetFlag(FLAGS_launch_ahead)});
  return argv;
}

// The public port's credentials: TLS from --tls_cert / --tls_key, or plaintext.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> PublicCredentials() {
  const std::string cert_path = absl::GetFlag(FLAGS_tls_cert);
  const std::string key_path = absl::GetFlag(FLAGS_tls_key);
  if (cert_path.empty() != key_path.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together: give both or neither");
  }
  if (cert_path.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  absl::StatusOr<std::string> cert = ReadFile(cert_path);
  if (!cert.ok() || cert->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_cert ", cert_path, ": not a readable PEM certificate"));
  }
  pair.cert_chain = *std::move(cert);
  absl::StatusOr<std::string> key = ReadFile(key_path);
  if (key.ok()) pair.private_key = *std::move(key);
  if (!key.ok() || pair.private_key.find("PRIVATE KEY-----") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_key ", key_path, ": not a readable PEM private key"));
  }
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back(std::move(pair));
  return grpc::SslServerCredentials(options);
}

// --api_key and the lines of --api_key_file (blank lines and # comments skipped).
absl::StatusOr<std::vector<std::string>> ApiKeys() {
  std::vector<std::string> keys;
  if (!absl::GetFlag(FLAGS_api_key).empty()) keys.push_back(absl::GetFlag(FLAGS_api_key));
  const std::string path = absl::GetFlag(FLAGS_api_key_file);
  if (path.empty()) return keys;
  const absl::StatusOr<std::string> contents = ReadFile(path);
  if (!contents.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--api_key_file ", path, ": unreadable"));
  }
  for (absl::string_view line : absl::StrSplit(*contents, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    keys.emplace_back(line);
  }
  if (keys.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--api_key_file ", path, ": holds no key"));
  }
  return keys;
}

// Every flag's value, checked before any worker is launched: the first wrong one, by name.
// Writes `port` to `path` atomically (a reader never sees half a number).
void WritePortFile(const std::string& path, int port) {
  if (path.empty()) return;
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << port << "\n";
  std::rename(tmp.c_str(), path.c_str());
}

// The model's id in the OpenAI API: --served_model_name, else the model directory's last name.
std::string ServedModelName(const std::string& hello_name) {
  if (!absl::GetFlag(FLAGS_served_model_name).empty())
    return absl::GetFlag(FLAGS_served_model_name);
  std::string dir = absl::GetFlag(FLAGS_model);
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.rfind('/');
  const std::string base = slash == std::string::npos ? dir : dir.substr(slash + 1);
  return base.empty() ? hello_name : base;
}

absl::Status ValidateFlags() {
  const auto at_least = [](const char* name, int64_t value, int64_t low) {
    return value >= low ? absl::OkStatus()
                        : absl::InvalidArgumentError(
                              absl::StrCat("--", name, " must be >= ", low, ", got ", value));
  };
  // Generic: an integer flag's bounds print as integers (1048576, not 1.04858e+06).
  const auto in_range = [](const char* name, auto value, auto low, auto high) {
    return value >= low && value <= high
               ? absl::OkStatus()
               : absl::InvalidArgumentError(
                     absl::StrCat("--", name, " must be in [", low, ", ", high, "], got ", value));
  };
  const auto one_of = [](const char* name, const std::string& value,
                         std::initializer_list<const char*> allowed) {
    for (const char* ok : allowed) {
      if (value == ok) return absl::OkStatus();
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, " must be one of ", absl::StrJoin(allowed, ", "), "; got \"", value, "\""));
  };
  PAGEDLLM_RETURN_IF_ERROR(at_least("tp", absl::GetFlag(FLAGS_tp), 1));
  PAGEDLLM_RETURN_IF_ERROR(one_of("device", absl::GetFlag(FLAGS_device), {"cpu", "cuda"}));
  PAGEDLLM_RETURN_IF_ERROR(in_range("port", absl::GetFlag(FLAGS_port), 0, 65535));
  PAGEDLLM_RETURN_IF_ERROR(in_range("worker_port", absl::GetFlag(FLAGS_worker_port), 0, 65535));
  PAGEDLLM_RETURN_IF_ERROR(in_range("http_port", absl::GetFlag(FLAGS_http_port), 0, 65535));
  PAGEDLLM_RETURN_IF_ERROR(in_range("http_threads", absl::GetFlag(FLAGS_http_threads), 1, 256));
  PAGEDLLM_RETURN_IF_ERROR(in_range("block_size", absl::GetFlag(FLAGS_block_size), 1, 1024));
  PAGEDLLM_RETURN_IF_ERROR(at_least("num_kv_blocks", absl::GetFlag(FLAGS_num_kv_blocks), 0));
  PAGEDLLM_RETURN_IF_ERROR(
      in_range("cpu_kv_cache_gib", absl::GetFlag(FLAGS_cpu_kv_cache_gib), 1e-6, 1024));
  PAGEDLLM_RETURN_IF_ERROR(
      in_range("swap_space_gib", absl::GetFlag(FLAGS_swap_space_gib), 0, 1024));
  // Upper bounds far past any GPU's step, so that a typo cannot make a worker try to profile a
  // step of a billion tokens.
  PAGEDLLM_RETURN_IF_ERROR(in_range("max_num_seqs", absl::GetFlag(FLAGS_max_num_seqs), 0, 65536));
  PAGEDLLM_RETURN_IF_ERROR(
      in_range("max_num_batched_tokens", absl::GetFlag(FLAGS_max_num_batched_tokens), 0, 1 << 20));
  PAGEDLLM_RETURN_IF_ERROR(at_least("max_waiting", absl::GetFlag(FLAGS_max_waiting), 1));
  PAGEDLLM_RETURN_IF_ERROR(at_least("max_model_len", absl::GetFlag(FLAGS_max_model_len), 0));
  PAGEDLLM_RETURN_IF_ERROR(at_least("step_timeout_s", absl::GetFlag(FLAGS_step_timeout_s), 1));
  PAGEDLLM_RETURN_IF_ERROR(
      at_least("worker_start_timeout_s", absl::GetFlag(FLAGS_worker_start_timeout_s), 1));
  PAGEDLLM_RETURN_IF_ERROR(at_least("drain_timeout_s", absl::GetFlag(FLAGS_drain_timeout_s), 0));
  PAGEDLLM_RETURN_IF_ERROR(at_least("max_restarts", absl::GetFlag(FLAGS_max_restarts), 0));
  PAGEDLLM_RETURN_IF_ERROR(
      one_of("dtype", absl::GetFlag(FLAGS_dtype), {"auto", "float32", "bfloat16", "float16"}));
  PAGEDLLM_RETURN_IF_ERROR(
      one_of("load_format", absl::GetFlag(FLAGS_load_format), {"auto", "dummy"}));
  PAGEDLLM_RETURN_IF_ERROR(
      one_of("decode_graphs", absl::GetFlag(FLAGS_decode_graphs), {"auto", "on", "off"}));
  PAGEDLLM_RETURN_IF_ERROR(
      one_of("launch_ahead", absl::GetFlag(FLAGS_launch_ahead), {"auto", "always", "never"}));
  PAGEDLLM_RETURN_IF_ERROR(one_of("log_format", absl::GetFlag(FLAGS_log_format), {"text", "json"}));
  PAGEDLLM_RETURN_IF_ERROR(one_of("preemption_mode", absl::GetFlag(FLAGS_preemption_mode),
                                  {"auto", "swap", "recompute"}));
  const double utilization = absl::GetFlag(FLAGS_gpu_memory_utilization);
  if (!(utilization > 0.0 && utilization <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--gpu_memory_utilization must be in (0, 1], got ", utilization));
  }
  return absl::OkStatus();
}

int Run() {
  // Block the stop signals in every thread; the main thread waits for them with sigwait. A
  // parent that ignored them (a shell's background job ignores SIGINT) must not make them vanish:
  // an ignored signal is discarded even while blocked.
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  if (const absl::Status flags = ValidateFlags(); !flags.ok()) {
    PAGEDLLM_LOG(ERROR) << flags.message();
    return 2;
  }
  // The workers inherit it through mpirun's environment (PAGEDLLM_* variables are forwarded).
  setenv("PAGEDLLM_LOG_FORMAT", absl::GetFlag(FLAGS_log_format).c_str(), 1);
  SetLogFormat(absl::GetFlag(FLAGS_log_format) == "json" ? LogFormat::kJson : LogFormat::kText);
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> public_credentials = PublicCredentials();
  absl::StatusOr<std::vector<std::string>> api_keys = ApiKeys();
  for (const absl::Status& status : {public_credentials.status(), api_keys.status()}) {
    if (status.ok()) continue;
    PAGEDLLM_LOG(ERROR) << status.message();
    return 2;
  }
  const int tp = absl::GetFlag(FLAGS_tp);
  if (absl::GetFlag(FLAGS_launch_workers) && absl::GetFlag(FLAGS_model).empty()) {
    PAGEDLLM_LOG(ERROR) << "--model is required (a Hugging Face model directory)";
    return 2;
  }

  absl::StatusOr<PreemptionMode> preemption_mode =
      ParsePreemptionMode(absl::GetFlag(FLAGS_preemption_mode));
  if (!preemption_mode.ok()) {
    PAGEDLLM_LOG(ERROR) << preemption_mode.status();
    return 2;
  }

  // The tokenizer first: a malformed or unsupported tokenizer.json stops start-up before any
  // worker is launched.
  absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> tokenizer = LoadTokenizer();
  if (!tokenizer.ok()) {
    PAGEDLLM_LOG(ERROR) << tokenizer.status();
    return 2;
  }
  absl::StatusOr<std::unique_ptr<chat_template::LoadedChatTemplate>> chat = LoadChatTemplate();
  if (!chat.ok()) {
    PAGEDLLM_LOG(ERROR) << chat.status();
    return 2;
  }

  // Workers prove they belong to this launch with a secret that only the job's environment
  // carries to them (mpirun forwards it with -x, by name): a new one per launch, unless the
  // operator set one (workers started elsewhere must carry it).
  std::string fixed_secret;
  if (const char* given = std::getenv("PAGEDLLM_WORKER_SECRET"); given != nullptr && *given) {
    fixed_secret = given;
  } else if (!absl::GetFlag(FLAGS_launch_workers)) {
    PAGEDLLM_LOG(ERROR) << "--launch_workers=false: set PAGEDLLM_WORKER_SECRET to the same value "
                           "in the coordinator's and every worker's environment";
    return 2;
  }
  // Until the first launch, no hello can match: a random secret nobody was given.
  WorkerHub hub(tp, absl::StrCat(std::random_device()(), "-", std::random_device()(), "-",
                                 std::random_device()(), "-", std::random_device()()));
  // The handshake: a worker of another build, protocol or model (config.json), or one that
  // connects from a host outside the hostfile, is refused at connect naming its host.
  absl::StatusOr<HandshakeExpectations> handshake =
      CoordinatorHandshake(AbsolutePath(absl::GetFlag(FLAGS_model)), absl::GetFlag(FLAGS_hostfile),
                           absl::GetFlag(FLAGS_advertise_host));
  if (!handshake.ok()) {
    PAGEDLLM_LOG(ERROR) << handshake.status().message();
    return 2;
  }
  hub.ExpectHandshake(*std::move(handshake));
  int worker_port = 0;
  grpc::ServerBuilder control_builder;
  // Only the address the workers dial (loopback unless --advertise_host says otherwise).
  control_builder.AddListeningPort(
      absl::StrCat(absl::GetFlag(FLAGS_advertise_host), ":", absl::GetFlag(FLAGS_worker_port)),
      grpc::InsecureServerCredentials(), &worker_port);
  control_builder.RegisterService(&hub);
  control_builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  control_builder.SetMaxReceiveMessageSize(256 << 20);
  control_builder.SetMaxSendMessageSize(256 << 20);
  std::unique_ptr<grpc::Server> control_server = control_builder.BuildAndStart();
  if (control_server == nullptr || worker_port == 0) {
    PAGEDLLM_LOG(ERROR) << "cannot listen for workers on " << absl::GetFlag(FLAGS_advertise_host)
                        << ":" << absl::GetFlag(FLAGS_worker_port);
    return 1;
  }
  PAGEDLLM_LOG(INFO) << "waiting for " << tp << " workers on port " << worker_port;

  SupervisorOptions supervision;
  if (absl::GetFlag(FLAGS_launch_workers)) supervision.command = WorkerCommand(worker_port);
  supervision.fixed_secret = fixed_secret;
  supervision.max_restarts = absl::GetFlag(FLAGS_max_restarts);
  supervision.start_timeout = absl::Seconds(absl::GetFlag(FLAGS_worker_start_timeout_s));
  WorkerSupervisor supervisor(&hub, supervision);
  const auto stop_control = [&] {
    control_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  };

  absl::StatusOr<pagedllm::worker::v1::WorkerHello> hello = supervisor.Start();
  if (!hello.ok()) {
    PAGEDLLM_LOG(ERROR) << "workers did not start: " << hello.status();
    supervisor.Stop("start-up failed");
    stop_control();
    return 1;
  }

  ModelLimits limits;
  limits.vocab_size = hello->model().vocab_size();
  limits.max_model_len = absl::GetFlag(FLAGS_max_model_len) > 0
                             ? absl::GetFlag(FLAGS_max_model_len)
                             : hello->model().max_position_embeddings();
  if (limits.max_model_len > hello->model().max_position_embeddings()) {
    PAGEDLLM_LOG(ERROR) << "--max_model_len " << limits.max_model_len
                        << " exceeds the model's max_position_embeddings "
                        << hello->model().max_position_embeddings();
    supervisor.Stop("bad --max_model_len");
    stop_control();
    return 2;
  }
  limits.eos_token_ids.assign(hello->model().eos_token_ids().begin(),
                              hello->model().eos_token_ids().end());

  SchedulerConfig scheduler_config;
  scheduler_config.max_num_batched_tokens = MaxNumBatchedTokens();
  scheduler_config.max_num_seqs = MaxNumSeqs();
  scheduler_config.max_model_len = limits.max_model_len;
  scheduler_config.max_waiting = absl::GetFlag(FLAGS_max_waiting);
  scheduler_config.blocks.num_blocks = hello->num_kv_blocks();
  scheduler_config.blocks.block_size = hello->block_size();
  scheduler_config.blocks.num_host_blocks = hello->num_swap_blocks();
  scheduler_config.enable_prefix_caching = absl::GetFlag(FLAGS_enable_prefix_caching);
  scheduler_config.preemption_mode = *preemption_mode;
  scheduler_config.measure_kv_usage = absl::GetFlag(FLAGS_kv_usage_stats);
  scheduler_config.async_scheduling = absl::GetFlag(FLAGS_async_scheduling);
  PAGEDLLM_LOG(INFO) << "KV cache: " << hello->num_kv_blocks() << " blocks of "
                     << hello->block_size() << " tokens, " << hello->num_swap_blocks()
                     << " host swap blocks; prefix caching "
                     << (scheduler_config.enable_prefix_caching ? "on" : "off") << ", preemption "
                     << PreemptionModeName(*preemption_mode) << ", async scheduling "
                     << (scheduler_config.async_scheduling ? "on" : "off");

  GrpcStepExecutor executor(&hub, absl::Seconds(absl::GetFlag(FLAGS_step_timeout_s)));
  ServingMetricsOptions metrics_options;  // /metrics on the HTTP port
  metrics_options.model_name = ServedModelName(hello->model().name());
  metrics_options.max_model_len = limits.max_model_len;
  metrics_options.worker_health = [&hub] {
    return WorkerHealth{hub.health().ok(), hub.connected_ranks()};
  };
  ServingMetrics metrics(metrics_options);  // the engine's observer: declared first, outlives it
  Engine engine(scheduler_config, limits, &executor, &metrics);
  metrics.set_engine(&engine);
  engine.Start();
  hub.MarkReady();

  ValidationLimits validation;
  validation.vocab_size = limits.vocab_size;
  validation.max_model_len = limits.max_model_len;
  validation.max_text_bytes = MaxTextBytes(limits.max_model_len, tokenizer->get());
  pagedllm::v1::ServerStats info;
  info.set_block_size(hello->block_size());
  info.set_tp_size(tp);
  info.set_model(hello->model().name());
  info.set_max_model_len(limits.max_model_len);
  info.set_vocab_size(limits.vocab_size);
  info.set_weight_bytes_per_worker(hello->weight_bytes());
  info.set_kv_bytes_per_token_per_worker(hello->kv_bytes_per_token());
  info.set_num_swap_blocks(hello->num_swap_blocks());
  info.set_prefix_caching(scheduler_config.enable_prefix_caching);
  info.set_preemption_mode(PreemptionModeName(scheduler_config.preemption_mode));
  info.set_max_num_seqs(scheduler_config.max_num_seqs);
  info.set_max_num_batched_tokens(scheduler_config.max_num_batched_tokens);
  info.set_async_scheduling(scheduler_config.async_scheduling);
  info.set_device(hello->device());
  if (*tokenizer != nullptr && (*tokenizer)->vocab_size() > limits.vocab_size) {
    PAGEDLLM_LOG(WARNING) << "the tokenizer knows " << (*tokenizer)->vocab_size()
                          << " ids, the model " << limits.vocab_size
                          << ": prompts that use the others are refused";
  }
  RequestIntake intake(&engine, validation, tokenizer->get());
  intake.set_api_keys(*api_keys);
  GenerationService service(&intake, info);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::StrCat(absl::GetFlag(FLAGS_host), ":", absl::GetFlag(FLAGS_port)),
                           *public_credentials, &port);
  builder.RegisterService(&service);
  // gRPC sets SO_REUSEPORT by default: a second coordinator on a port in use would start and
  // take some of the first one's connections. Refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Big enough that an oversized prompt gets a field error naming it, not the transport's.
  builder.SetMaxReceiveMessageSize(64 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    PAGEDLLM_LOG(ERROR) << "cannot listen on " << absl::GetFlag(FLAGS_host) << ":"
                        << absl::GetFlag(FLAGS_port);
    supervisor.Stop("start-up failed");
    engine.Stop();
    stop_control();
    return 1;
  }
  // The OpenAI-compatible HTTP API, on the same engine, keys and TLS.
  std::atomic<bool> workers_serving{true};
  std::unique_ptr<http::HttpServer> http_server;
  std::unique_ptr<openai::OpenAiApi> openai_api;
  if (absl::GetFlag(FLAGS_http_port) != 0) {
    openai::OpenAiApiOptions api_options;
    api_options.served_model = ServedModelName(hello->model().name());
    api_options.max_model_len = limits.max_model_len;
    api_options.serving = [&workers_serving] { return workers_serving.load(); };
    api_options.version = "pagedllm 0.1";
    api_options.metrics = [&metrics] { return metrics.Render(); };
    if (*chat != nullptr) {
      api_options.render_chat = [loaded = chat->get()](const openai::OpenAiRequest& request) {
        return openai::RenderChatPrompt(*loaded, request);
      };
    }
    openai_api = std::make_unique<openai::OpenAiApi>(&intake, std::move(api_options));
    http::HttpServerOptions http_options;
    http_options.host = absl::GetFlag(FLAGS_host);
    http_options.port = absl::GetFlag(FLAGS_http_port);
    http_options.num_threads = absl::GetFlag(FLAGS_http_threads);
    http_options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
    http_options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
    absl::StatusOr<std::unique_ptr<http::HttpServer>> started = http::HttpServer::Start(
        http_options, [api = openai_api.get()](http::HttpRequest request,
                                               std::shared_ptr<http::HttpExchange> exchange) {
          api->Handle(std::move(request), std::move(exchange));
        });
    if (!started.ok()) {
      PAGEDLLM_LOG(ERROR) << "--http_port: " << started.status().message();
      server->Shutdown(std::chrono::system_clock::now());
      supervisor.Stop("start-up failed");
      engine.Stop();
      stop_control();
      return 1;
    }
    http_server = *std::move(started);
    WritePortFile(absl::GetFlag(FLAGS_http_port_file), http_server->port());
    PAGEDLLM_LOG(INFO) << "OpenAI API on " << (http_server->tls() ? "https" : "http") << "://"
                       << absl::GetFlag(FLAGS_host) << ":" << http_server->port() << "/v1 (model \""
                       << ServedModelName(hello->model().name()) << "\")";
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  WritePortFile(absl::GetFlag(FLAGS_port_file), port);
  PAGEDLLM_LOG(INFO) << "serving " << hello->model().name() << " (tp=" << tp << ", "
                     << hello->num_kv_blocks() << " KV blocks of " << hello->block_size()
                     << " tokens, max_model_len " << limits.max_model_len << ") on port " << port;

  // Health follows the workers: NOT_SERVING while they are lost and restarting. Past
  // --max_restarts the supervisor gives up: the coordinator stops with status 3.
  std::mutex outcome_mutex;
  absl::Status given_up;  // guarded by outcome_mutex
  std::atomic<bool> draining{false};
  SupervisorCallbacks callbacks;
  callbacks.set_serving = [&](bool serving) {
    workers_serving = serving;
    if (!draining.load()) server->GetHealthCheckService()->SetServingStatus(serving);
  };
  callbacks.restarted = [&](const pagedllm::worker::v1::WorkerHello& restarted,
                            const absl::Status& why) {
    BlockManagerConfig blocks = scheduler_config.blocks;
    blocks.num_blocks = restarted.num_kv_blocks();
    blocks.num_host_blocks = restarted.num_swap_blocks();
    engine.Reconfigure(blocks, why);
  };
  callbacks.give_up = [&](const absl::Status& why) {
    {
      std::lock_guard<std::mutex> lock(outcome_mutex);
      given_up = why;
    }
    kill(getpid(), SIGTERM);  // wakes the sigwait below
  };
  supervisor.Watch(std::move(callbacks));

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  draining = true;
  server->GetHealthCheckService()->SetServingStatus(false);
  intake.StartDraining();
  absl::Status stop_reason = absl::UnavailableError("the server is shutting down");
  bool gave_up = false;
  {
    std::lock_guard<std::mutex> lock(outcome_mutex);
    gave_up = !given_up.ok();
    if (gave_up) stop_reason = given_up;
  }
  if (!gave_up) {
    // Drain: new calls UNAVAILABLE at once; the calls in flight finish for up to
    // --drain_timeout_s (a second signal ends that at once); the rest fail with UNAVAILABLE.
    const absl::Duration drain = absl::Seconds(absl::GetFlag(FLAGS_drain_timeout_s));
    PAGEDLLM_LOG(INFO) << "received signal " << signal_number << ": draining "
                       << intake.active_calls() << " calls for up to "
                       << absl::FormatDuration(drain) << " (a second signal stops at once)";
    const absl::Time drain_end = absl::Now() + drain;
    bool second_signal = false;
    while (intake.active_calls() > 0 && absl::Now() < drain_end && !second_signal) {
      const timespec poll = {0, 50 * 1000 * 1000};
      second_signal = sigtimedwait(&stop_signals, nullptr, &poll) > 0;
    }
    PAGEDLLM_LOG(INFO) << (second_signal ? "second signal" : "drained") << ": shutting down with "
                       << intake.active_calls() << " calls still in flight";
  }
  // The workers first: a step in flight ends at once, failing its requests; then the engine
  // fails the ones still waiting.
  supervisor.Stop("coordinator shutting down");
  engine.Stop(stop_reason);
  if (http_server != nullptr) http_server->Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  stop_control();
  if (gave_up) {
    PAGEDLLM_LOG(ERROR) << "stopped: " << stop_reason.message();
    return 3;
  }
  PAGEDLLM_LOG(INFO) << "stopped";
  return 0;
}

}  // namespace
}  // namespace pagedllm::coordinator

int main(int argc, char** argv) {
  pagedllm::SetFlagsUsage("pagedllm-coordinator --model DIR --tp N [--device cpu|cuda] [--port P]");
  const absl::flat_hash_set<std::string> given =
      pagedllm::coordinator::FlagsOnCommandLine(argc, argv);
  absl::ParseCommandLine(argc, argv);
  pagedllm::SetLogPrefix("coordinator");
  if (!absl::GetFlag(FLAGS_config).empty()) {
    const absl::Status applied =
        pagedllm::coordinator::ApplyClusterConfig(absl::GetFlag(FLAGS_config), given, "/tmp");
    if (!applied.ok()) {
      PAGEDLLM_LOG(ERROR) << applied;
      return 2;
    }
  }
  return pagedllm::coordinator::Run();
}
