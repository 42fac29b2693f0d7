// Ops: the operator interface every backend implements (kernels/cpu, kernels/cuda).
//
// All tensors passed to one call live on the Ops' device. Float tensors are the backend's
// compute dtype (float32 on CPU; bf16/fp16 on CUDA) unless a comment says otherwise; index
// tensors are int32. Shapes are in the comments: `_local` means this rank's share under
// tensor parallelism. Calls are issued in order on the device's stream and may return before
// the work is done (CUDA); a shape mismatch is a bug and aborts via PAGEDLLM_CHECK.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/sampling_params.h"
#include "kernels/tensor.h"

namespace pagedllm::kernels {

// Attention over a paged KV cache, for any mix of prefill (with or without a cached prefix),
// chunked prefill and decode in one batch.
//
// Sequence s has query rows [query_start[s], query_start[s+1]) of `query` and context_lens[s]
// tokens in the cache (its cached prefix plus this step's new tokens, already written). Its
// query row j (0-based within the sequence) sits at position
//   context_lens[s] - num_query_tokens(s) + j
// and attends causally to cache positions [0, that position]. Cache position p of sequence s
// is slot  block_tables[s][p / block_size] * block_size + p % block_size.
//
//   positions of sequence s:  [0 ........ cached ........ | new (query rows) )
//                              ^ block_tables[s][0]        ^ context_lens[s] - q_len
struct PagedAttentionParams {
  Tensor query;         // [num_tokens, num_heads_local, head_dim]
  Tensor key_cache;     // [num_blocks, block_size, num_kv_heads_local, head_dim]
  Tensor value_cache;   // [num_blocks, block_size, num_kv_heads_local, head_dim]
  Tensor block_tables;  // [num_seqs, max_blocks_per_seq] int32; unused entries are ignored
  Tensor query_start;   // [num_seqs + 1] int32, query_start[0] = 0, ascending
  Tensor context_lens;  // [num_seqs] int32, >= the sequence's query rows
  float scale = 1.0f;   // usually 1 / sqrt(head_dim)
  Tensor output;        // [num_tokens, num_heads_local, head_dim]
  // A promise, when > 0: no sequence has more query rows (a decode batch: 1). CUDA then skips
  // the prefill kernel where no sequence can need it; 0 (unknown) bounds it by the token count.
  int max_query_len = 0;
};

// Rotary embedding as Hugging Face Llama applies it ("rotate_half": dimension i pairs with
// i + head_dim/2), fused with splitting the QKV projection.
struct RopeQkvParams {
  Tensor qkv;        // [num_tokens, (num_heads_local + 2 * num_kv_heads_local) * head_dim]
  Tensor positions;  // [num_tokens] int32
  Tensor inv_freq;   // [head_dim / 2] float32 (always float32): angle = position * inv_freq[i]
  Tensor query;      // out: [num_tokens, num_heads_local, head_dim], rotated
  Tensor key;        // out: [num_tokens, num_kv_heads_local, head_dim], rotated
  Tensor value;      // out: [num_tokens, num_kv_heads_local, head_dim]
};

// Sampling on the device (SampleRows): one token per row of logits, and its logprobs.
//
// Row p's logits are spread over `num_shards` vocab shards (the rank-major all-gather of
// vocab-parallel logits): shard r holds ids [r * vocab_local, (r + 1) * vocab_local) in row
// r * P + p of `logits`; ids >= vocab_size are padding, never sampled or reported.
// Per row (a SampleRowParams): temperature 0 is the argmax (ties to the lowest id); otherwise
// p = softmax(logits / temperature), top-k, then top-p over the renormalised top-k set (a mass
// within 1e-6 of top_p counts as reaching it), then min-p (p >= min_p * p_max), each keeping a
// prefix of the order (logit descending, id ascending); NaN is never kept. The token is drawn
// from the renormalised kept set by Gumbel-max with Philox noise keyed by (seed, draw, id): a
// pure function of the row, the same on every backend (kernels/sampling_math.h). Degenerate rows
// (a +inf logit, or none above -inf) take the argmax. Logprobs are those of the raw logits.
struct SampleRowsArgs {
  Tensor logits;           // [num_shards * P, vocab_local], any float dtype the backend computes in
  int num_shards = 1;      // 1: logits is [P, vocab_local]
  int64_t vocab_size = 0;  // <= num_shards * vocab_local
  Tensor params;           // [P, kSampleRowParamWords] int32: one SampleRowParams per row
  Tensor token_ids;        // out: [P] int32
  Tensor logprobs;         // out: [P] float32, log_softmax(logits)[token]
  // out: [P, N] with N <= kMaxSampleTopLogprobs, or empty tensors for N = 0: row p's
  // params.num_top_logprobs most likely ids (most likely first, ties to the lower id) and their
  // logprobs; entries past those (or past the row's non-NaN logits) are -1 and -inf.
  Tensor top_ids;       // [P, N] int32
  Tensor top_logprobs;  // [P, N] float32
  Tensor num_kept;      // optional out: [P] int32, how many tokens the filters kept (1 if greedy)
};

class Ops {
 public:
  virtual ~Ops() = default;

  // Ops return nothing. A failure a step can survive (no memory for a workspace, a library call
  // or a kernel launch refused) is not an abort: the op records it, leaves its output unwritten,
  // and the caller that runs the step takes it here and fails the step with it. Returns the
  // first failure since the last call (OK when none) and clears it. A failed argument check is a
  // caller bug and still aborts.
  virtual absl::Status TakeFailure();

  // y = x · wᵀ, weights in Hugging Face layout.
  // x: [m, k], weight: [n, k], y: [m, n].
  virtual void Linear(const Tensor& x, const Tensor& weight, const Tensor& y) = 0;

  // Vocab-parallel embedding: rows of `table` hold token ids [vocab_begin, vocab_begin + rows).
  // Ids outside that range give zero rows (the all-reduce over ranks fills them in).
  // token_ids: [n] int32, table: [vocab_local, hidden], out: [n, hidden].
  virtual void Embedding(const Tensor& token_ids, const Tensor& table, int64_t vocab_begin,
                         const Tensor& out) = 0;

  // out = x / sqrt(mean(x²) + eps) * weight, per row. x, out: [n, hidden], weight: [hidden].
  virtual void RmsNorm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) = 0;

  // residual += x; out = RmsNorm(residual). x, residual, out: [n, hidden], weight: [hidden].
  virtual void AddRmsNorm(const Tensor& x, const Tensor& residual, const Tensor& weight, float eps,
                          const Tensor& out) = 0;

  virtual void RopeQkv(const RopeQkvParams& params) = 0;

  // out = silu(gate) * up with gate_up = [gate | up] along the last dimension.
  // gate_up: [n, 2 * intermediate_local], out: [n, intermediate_local].
  virtual void SiluAndMul(const Tensor& gate_up, const Tensor& out) = 0;

  // key_cache[slot] = key[i], value_cache[slot] = value[i] for slot = slot_mapping[i];
  // slot = block * block_size + offset. A negative slot skips the token.
  // key, value: [n, num_kv_heads_local, head_dim], slot_mapping: [n] int32,
  // caches: [num_blocks, block_size, num_kv_heads_local, head_dim].
  virtual void WriteKvCache(const Tensor& key, const Tensor& value, const Tensor& slot_mapping,
                            const Tensor& key_cache, const Tensor& value_cache) = 0;

  virtual void PagedAttention(const PagedAttentionParams& params) = 0;

  // out[i] = x[indices[i]]. x: [n, d], indices: [m] int32, out: [m, d].
  virtual void GatherRows(const Tensor& x, const Tensor& indices, const Tensor& out) = 0;

  // Copies whole blocks (copy-on-write): for each pair (src, dst) in `pairs`,
  // cache[dst] = cache[src]. cache: [num_blocks, ...], pairs: [num_pairs, 2] int32.
  virtual void CopyBlocks(const Tensor& cache, const Tensor& pairs) = 0;

  // Greedy decoding on the device: for each row, the largest of its first `num_valid_cols`
  // values (NaN counts as -inf) and its column; ties go to the lowest column. With
  // num_valid_cols <= 0 a row yields -inf and column 0.
  // logits: [rows, cols] (any float dtype), max_values: [rows] float32, argmax: [rows] int32.
  virtual void ArgmaxRows(const Tensor& logits, int64_t num_valid_cols, const Tensor& max_values,
                          const Tensor& argmax) = 0;

  // Greedy picks over a vocab split into shards (tensor parallelism): for each row p, the shard r
  // with the largest max_values[r, p] (ties go to the lowest shard, so to the lowest id, as
  // SampleRows does) gives token_ids[p] = argmax[r, p] + r * shard_cols.
  // max_values: [shards, rows] float32, argmax: [shards, rows] int32, token_ids: [rows] int32.
  virtual void PickShardArgmax(const Tensor& max_values, const Tensor& argmax, int64_t shard_cols,
                               const Tensor& token_ids) = 0;

  // The next step's inputs from the step before's samples, without a trip through the host
  // (async scheduling): token_ids[fills[f, 0]] = sampled[fills[f, 1]] for each fill f.
  // token_ids: [n] int32, fills: [num_fills, 2] int32, sampled: [m] int32.
  virtual void FillPlaceholders(const Tensor& token_ids, const Tensor& fills,
                                const Tensor& sampled) = 0;

  // Converts between float dtypes (and copies when equal). Same shape.
  virtual void Cast(const Tensor& in, const Tensor& out) = 0;

  // See SampleRowsArgs. Row params are read on the device: upload them before the call.
  virtual void SampleRows(const SampleRowsArgs& args) = 0;

 protected:
  // Keeps the first failure until TakeFailure. (Defined in ops.cc: nvcc, which reads this
  // header, warns on assigning a [[nodiscard]] absl::Status.)
  void RecordFailure(absl::Status failure);

 private:
  absl::Status failure_;
};

}  // namespace pagedllm::kernels
