#include "kernels/sample_rows_checks.h"

#include <cmath>

#include "common/check.h"
#include "kernels/device.h"
#include "kernels/op_checks.h"
#include "kernels/sampling_math.h"

namespace pagedllm::kernels {

SampleRowsShape CheckSampleRowsArgs(const Device* device, const SampleRowsArgs& args,
                                    bool float32_logits_only) {
  constexpr const char* kOp = "SampleRows";
  if (float32_logits_only) {
    CheckTensor(kOp, "logits", args.logits, device, DType::kFloat32);
  } else {
    CheckOnDevice(kOp, "logits", args.logits, device);
    PAGEDLLM_CHECK(args.logits.dtype() != DType::kInt32, kOp,
                   ": logits must be a float tensor, got ", args.logits.ShapeString());
  }
  CheckRank(kOp, "logits", args.logits, 2);
  CheckTensor(kOp, "params", args.params, device, DType::kInt32);
  CheckTensor(kOp, "token_ids", args.token_ids, device, DType::kInt32);
  CheckTensor(kOp, "logprobs", args.logprobs, device, DType::kFloat32);
  CheckRank(kOp, "params", args.params, 2);
  const auto shapes = [&] {
    return DescribeTensors({{"logits", &args.logits},
                            {"params", &args.params},
                            {"token_ids", &args.token_ids},
                            {"logprobs", &args.logprobs}});
  };
  PAGEDLLM_CHECK(args.num_shards >= 1 && args.logits.dim(0) % args.num_shards == 0, kOp,
                 ": num_shards ", args.num_shards, " must be >= 1 and divide the logits rows (",
                 shapes(), ")");
  SampleRowsShape shape;
  shape.rows = args.logits.dim(0) / args.num_shards;
  shape.vocab_local = args.logits.dim(1);
  PAGEDLLM_CHECK(args.params.dim(0) == shape.rows && args.params.dim(1) == kSampleRowParamWords &&
                     args.token_ids.numel() == shape.rows && args.logprobs.numel() == shape.rows,
                 kOp, ": want logits: [num_shards * P, vocab_local], params: [P, ",
                 kSampleRowParamWords, "], token_ids and logprobs: [P] with num_shards ",
                 args.num_shards, " (", shapes(), ")");
  PAGEDLLM_CHECK(args.vocab_size > 0 && args.vocab_size <= args.num_shards * shape.vocab_local &&
                     args.vocab_size <= sampling::kMaxSampleVocab,
                 kOp, ": vocab_size ", args.vocab_size,
                 " must be in [1, num_shards * vocab_local = ", args.num_shards * shape.vocab_local,
                 "] and at most ", sampling::kMaxSampleVocab);
  PAGEDLLM_CHECK(args.top_ids.empty() == args.top_logprobs.empty(), kOp,
                 ": top_ids and top_logprobs must be both given or both empty");
  if (!args.top_ids.empty()) {
    CheckTensor(kOp, "top_ids", args.top_ids, device, DType::kInt32);
    CheckTensor(kOp, "top_logprobs", args.top_logprobs, device, DType::kFloat32);
    CheckRank(kOp, "top_ids", args.top_ids, 2);
    PAGEDLLM_CHECK(
        args.top_ids.dim(0) == shape.rows && args.top_logprobs.shape() == args.top_ids.shape() &&
            args.top_ids.dim(1) >= 1 && args.top_ids.dim(1) <= kMaxSampleTopLogprobs,
        kOp, ": want top_ids and top_logprobs: [P, N] with P = ", shape.rows, " and N in [1, ",
        kMaxSampleTopLogprobs, "] (",
        DescribeTensors({{"top_ids", &args.top_ids}, {"top_logprobs", &args.top_logprobs}}), ")");
    shape.num_top = static_cast<int>(args.top_ids.dim(1));
  }
  if (!args.num_kept.empty()) {
    CheckTensor(kOp, "num_kept", args.num_kept, device, DType::kInt32);
    PAGEDLLM_CHECK(args.num_kept.numel() == shape.rows, kOp,
                   ": want num_kept: [P] with P = ", shape.rows, ", got ",
                   args.num_kept.ShapeString());
  }
  return shape;
}

void CheckSampleRowParams(int64_t row, const SampleRowParams& p, int num_top) {
  constexpr const char* kOp = "SampleRows";
  PAGEDLLM_CHECK(std::isfinite(p.temperature) && p.temperature >= 0.0f, kOp, ": row ", row,
                 ": temperature must be finite and >= 0, got ", p.temperature);
  PAGEDLLM_CHECK(p.top_k >= 0, kOp, ": row ", row, ": top_k must be >= 0, got ", p.top_k);
  PAGEDLLM_CHECK(p.top_p > 0.0f && p.top_p <= 1.0f, kOp, ": row ", row,
                 ": top_p must be in (0, 1], got ", p.top_p);
  PAGEDLLM_CHECK(p.min_p >= 0.0f && p.min_p <= 1.0f, kOp, ": row ", row,
                 ": min_p must be in [0, 1], got ", p.min_p);
  PAGEDLLM_CHECK(p.num_top_logprobs >= 0 && p.num_top_logprobs <= num_top, kOp, ": row ", row,
                 ": num_top_logprobs must be in [0, ", num_top, "] (the top_ids columns), got ",
                 p.num_top_logprobs);
}

}  // namespace pagedllm::kernels
