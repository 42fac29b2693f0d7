// CudaDevice::CaptureGraph: records the device work of a callback into a CUDA graph.
#include <utility>
#include <vector>

#include "common/logging.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_device.h"

namespace pagedllm::kernels {
namespace {

// An instantiated graph. Replays on the device's stream; its memory is the device's graph pool.
class CudaGraph final : public DeviceGraph {
 public:
  CudaGraph(CudaDevice* device, cudaGraph_t graph, cudaGraphExec_t exec)
      : device_(device), graph_(graph), exec_(exec) {}
  ~CudaGraph() override {
    cudaStreamSynchronize(device_->stream());  // replays still queued
    cudaGraphExecDestroy(exec_);
    cudaGraphDestroy(graph_);
  }
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  absl::Status Replay() override {
    PAGEDLLM_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(exec_, device_->stream()));
    return absl::OkStatus();
  }

 private:
  CudaDevice* device_;
  cudaGraph_t graph_;
  cudaGraphExec_t exec_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<DeviceGraph>> CudaDevice::CaptureGraph(
    std::function<absl::Status()> body) {
  PAGEDLLM_CHECK(!capturing_, name_, ": CaptureGraph is not reentrant");
  PAGEDLLM_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  capturing_ = true;
  // Relaxed: the caching allocator may still cudaMalloc while capturing.
  PAGEDLLM_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
  const absl::Status recorded = body();
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
  capturing_ = false;
  absl::Status status = recorded;
  if (status.ok()) status = CudaStatus(ended, "cudaStreamEndCapture");
  cudaGraphExec_t exec = nullptr;
  if (status.ok())
    status = CudaStatus(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
  if (!status.ok()) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();
    return status;  // the blocks it took stay in the pool, free for the next capture
  }
  return std::unique_ptr<DeviceGraph>(new CudaGraph(this, graph, exec));
}

}  // namespace pagedllm::kernels
