// CudaDevice::CaptureGraph: records the device work of a callback into a CUDA graph.
#include <utility>
#include <vector>

#include "common/logging.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_device.h"

namespace pagedllm::kernels {
namespace {

// An instantiated graph and the memory its kernels use. Replays on the device's stream.
class CudaGraph final : public DeviceGraph {
 public:
  CudaGraph(CudaDevice* device, cudaGraph_t graph, cudaGraphExec_t exec, std::vector<void*> blocks)
      : device_(device), graph_(graph), exec_(exec), blocks_(std::move(blocks)) {}
  ~CudaGraph() override {
    // Replays still queued may use the blocks: finish them before the memory is reused.
    cudaStreamSynchronize(device_->stream());
    cudaGraphExecDestroy(exec_);
    cudaGraphDestroy(graph_);
    device_->ReleaseGraphBlocks(blocks_);
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
  std::vector<void*> blocks_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<DeviceGraph>> CudaDevice::CaptureGraph(
    std::function<absl::Status()> body) {
  PAGEDLLM_CHECK(capture_blocks_ == nullptr, name_, ": CaptureGraph is not reentrant");
  PAGEDLLM_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  std::vector<void*> blocks;
  capture_blocks_ = &blocks;
  // Relaxed: the caching allocator may still cudaMalloc while capturing.
  PAGEDLLM_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
  const absl::Status recorded = body();
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
  capture_blocks_ = nullptr;
  absl::Status status = recorded;
  if (status.ok()) status = CudaStatus(ended, "cudaStreamEndCapture");
  cudaGraphExec_t exec = nullptr;
  if (status.ok())
    status = CudaStatus(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
  if (!status.ok()) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();
    ReleaseGraphBlocks(blocks);
    return status;
  }
  return std::unique_ptr<DeviceGraph>(new CudaGraph(this, graph, exec, std::move(blocks)));
}

void CudaDevice::ReleaseGraphBlocks(const std::vector<void*>& blocks) {
  for (void* data : blocks) cached_.emplace(block_size_.at(data), data);
}

}  // namespace pagedllm::kernels
