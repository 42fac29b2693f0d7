// PagedAttention over the block-table KV cache: prefill, prefill over a cached prefix,
// chunked prefill and decode, with MHA, GQA and MQA.
//
// Work is split into items (sequence, query head, chunk of query rows) run on the thread
// pool. Each query row computes its scores against cache positions [0, its position] in
// float32, then a max-subtracted softmax and the weighted sum of values.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/vec.h"
#include "kernels/op_checks.h"

namespace pagedllm::kernels::cpu {
namespace {

constexpr int64_t kRowsPerItem = 16;

struct WorkItem {
  int32_t seq;
  int32_t head;
  int64_t row_begin;  // within the sequence's query rows, [row_begin, row_end)
  int64_t row_end;
};

// Aborts unless the index tensors describe a valid batch (see the comment in kernels/ops.h).
void CheckBatch(const PagedAttentionParams& p, int64_t num_blocks, int64_t block_size) {
  constexpr const char* kOp = "PagedAttention";
  const int64_t num_seqs = p.context_lens.dim(0);
  const int64_t max_blocks = p.block_tables.dim(1);
  const int32_t* query_start = p.query_start.data<int32_t>();
  const int32_t* context_lens = p.context_lens.data<int32_t>();
  const int32_t* block_tables = p.block_tables.data<int32_t>();
  PAGEDLLM_CHECK(query_start[0] == 0, kOp, ": query_start[0] must be 0, got ", query_start[0]);
  PAGEDLLM_CHECK(query_start[num_seqs] == p.query.dim(0), kOp, ": query_start[", num_seqs,
                 "] = ", query_start[num_seqs], " must equal num_tokens = ", p.query.dim(0));
  for (int64_t s = 0; s < num_seqs; ++s) {
    const int64_t query_len = query_start[s + 1] - query_start[s];
    const int64_t context_len = context_lens[s];
    PAGEDLLM_CHECK(query_len >= 0, kOp, ": query_start is not ascending at sequence ", s, " (",
                   query_start[s], " then ", query_start[s + 1], ")");
    PAGEDLLM_CHECK(context_len >= query_len, kOp, ": sequence ", s, " has context_lens ",
                   context_len, " < its ", query_len, " query rows");
    const int64_t blocks_used = (context_len + block_size - 1) / block_size;
    PAGEDLLM_CHECK(blocks_used <= max_blocks, kOp, ": sequence ", s, " has ", context_len,
                   " tokens = ", blocks_used, " blocks of ", block_size,
                   " but block_tables has only ", max_blocks, " columns");
    for (int64_t b = 0; b < blocks_used; ++b) {
      const int32_t block = block_tables[s * max_blocks + b];
      PAGEDLLM_CHECK(block >= 0 && block < num_blocks, kOp, ": block_tables[", s, "][", b,
                     "] = ", block, " is outside the cache's ", num_blocks, " blocks");
    }
  }
}

}  // namespace

// query, output: [num_tokens, num_heads, head_dim];
// key_cache, value_cache: [num_blocks, block_size, num_kv_heads, head_dim];
// block_tables: [num_seqs, max_blocks_per_seq], query_start: [num_seqs + 1],
// context_lens: [num_seqs] (all int32).
void CpuOps::PagedAttention(const PagedAttentionParams& p) {
  constexpr const char* kOp = "PagedAttention";
  CheckTensor(kOp, "query", p.query, device_, DType::kFloat32);
  CheckTensor(kOp, "key_cache", p.key_cache, device_, DType::kFloat32);
  CheckTensor(kOp, "value_cache", p.value_cache, device_, DType::kFloat32);
  CheckTensor(kOp, "block_tables", p.block_tables, device_, DType::kInt32);
  CheckTensor(kOp, "query_start", p.query_start, device_, DType::kInt32);
  CheckTensor(kOp, "context_lens", p.context_lens, device_, DType::kInt32);
  CheckTensor(kOp, "output", p.output, device_, DType::kFloat32);
  CheckRank(kOp, "query", p.query, 3);
  CheckRank(kOp, "key_cache", p.key_cache, 4);
  CheckRank(kOp, "block_tables", p.block_tables, 2);
  CheckRank(kOp, "query_start", p.query_start, 1);
  CheckRank(kOp, "context_lens", p.context_lens, 1);
  const auto shapes = [&] {
    return DescribeTensors({{"query", &p.query},
                            {"key_cache", &p.key_cache},
                            {"value_cache", &p.value_cache},
                            {"block_tables", &p.block_tables},
                            {"query_start", &p.query_start},
                            {"context_lens", &p.context_lens},
                            {"output", &p.output}});
  };
  const int64_t num_heads = p.query.dim(1), head_dim = p.query.dim(2);
  const int64_t num_blocks = p.key_cache.dim(0), block_size = p.key_cache.dim(1);
  const int64_t num_kv_heads = p.key_cache.dim(2);
  const int64_t num_seqs = p.context_lens.dim(0);
  PAGEDLLM_CHECK(p.output.shape() == p.query.shape(), kOp, ": output must match query (", shapes(),
                 ")");
  PAGEDLLM_CHECK(p.value_cache.shape() == p.key_cache.shape() && p.key_cache.dim(3) == head_dim,
                 kOp, ": key_cache and value_cache must both be ",
                 "[num_blocks, block_size, num_kv_heads, head_dim] (", shapes(), ")");
  PAGEDLLM_CHECK(block_size > 0 && num_kv_heads > 0 && num_heads % num_kv_heads == 0, kOp,
                 ": num_heads must be a multiple of num_kv_heads (", shapes(), ")");
  PAGEDLLM_CHECK(p.block_tables.dim(0) == num_seqs && p.query_start.dim(0) == num_seqs + 1, kOp,
                 ": want block_tables: [num_seqs, max_blocks], query_start: [num_seqs + 1], ",
                 "context_lens: [num_seqs] (", shapes(), ")");
  CheckBatch(p, num_blocks, block_size);

  const int32_t* query_start = p.query_start.data<int32_t>();
  const int32_t* context_lens = p.context_lens.data<int32_t>();
  const int32_t* block_tables = p.block_tables.data<int32_t>();
  const int64_t max_blocks = p.block_tables.dim(1);
  const int64_t group = num_heads / num_kv_heads;
  const float* query = p.query.data<float>();
  const float* key_cache = p.key_cache.data<float>();
  const float* value_cache = p.value_cache.data<float>();
  float* output = p.output.data<float>();
  const float scale = p.scale;

  std::vector<WorkItem> items;
  for (int32_t s = 0; s < num_seqs; ++s) {
    const int64_t query_len = query_start[s + 1] - query_start[s];
    for (int64_t begin = 0; begin < query_len; begin += kRowsPerItem) {
      for (int32_t h = 0; h < num_heads; ++h) {
        items.push_back({s, h, begin, std::min(query_len, begin + kRowsPerItem)});
      }
    }
  }

  pool_->ParallelFor(static_cast<int64_t>(items.size()), [&](int64_t item_index) {
    const WorkItem& item = items[item_index];
    const int64_t s = item.seq, h = item.head, kv_head = h / group;
    const int64_t query_len = query_start[s + 1] - query_start[s];
    const int64_t context_len = context_lens[s];
    const int64_t first_position = context_len - query_len;
    // Element offset of (position p, kv_head) in either cache, for the positions this item reads.
    const int64_t positions_read = first_position + item.row_end;
    std::vector<int64_t> offsets(positions_read);
    for (int64_t pos = 0; pos < positions_read; ++pos) {
      const int64_t block = block_tables[s * max_blocks + pos / block_size];
      const int64_t slot = block * block_size + pos % block_size;
      offsets[pos] = (slot * num_kv_heads + kv_head) * head_dim;
    }
    std::vector<float> scores(positions_read);
    std::vector<float> accumulator(head_dim);
    for (int64_t j = item.row_begin; j < item.row_end; ++j) {
      const int64_t token = query_start[s] + j;
      const float* q = query + (token * num_heads + h) * head_dim;
      const int64_t attended = first_position + j + 1;  // causal: positions [0, position]
      float max_score = -std::numeric_limits<float>::infinity();
      for (int64_t pos = 0; pos < attended; ++pos) {
        scores[pos] = Dot(q, key_cache + offsets[pos], head_dim) * scale;
        max_score = std::max(max_score, scores[pos]);
      }
      float sum = 0.0f;
      std::fill(accumulator.begin(), accumulator.end(), 0.0f);
      for (int64_t pos = 0; pos < attended; ++pos) {
        const float weight = std::exp(scores[pos] - max_score);
        sum += weight;
        Axpy(weight, value_cache + offsets[pos], accumulator.data(), head_dim);
      }
      float* out = output + (token * num_heads + h) * head_dim;
      for (int64_t d = 0; d < head_dim; ++d) out[d] = accumulator[d] / sum;
    }
  });
}

}  // namespace pagedllm::kernels::cpu
