#!/usr/bin/env python3
"""Offline throughput of Hugging Face transformers `generate` with static batching: the baseline
of the PagedAttention paper, run on the same workload file as pagedllm-bench.

The workload is JSON lines, one request a line, in the order they are served:
  {"prompt_ids": [1, 2, 3], "output_len": 17}
(pagedllm-bench --save_workload writes it). Static batching: requests go in batches of B in file
order; each batch is left-padded to its longest prompt and generates greedily, eos ignored, until
its longest output_len, so every sequence in the batch runs that many steps. Only each request's
own output_len counts as useful output; the rest is the static-batching waste the paper measures.

Without --batch_size the script looks for the best batch size that fits: it tries each size of
--batch_sizes on a prefix of the workload (at least one full batch, at most --search_time_s per
size after the first batch), stops growing at the first CUDA out-of-memory, keeps the size with
the most requests/s, then runs the whole workload at that size.

  # on the GPU node, from the repo root:
  python3 benchmarks/transformers_throughput.py --model benchmarks/models/llama-3-8b \
      --load_format dummy --workload /tmp/w.jsonl --output_json /tmp/transformers.json
  # the parts without torch (workload reader, padding and token bookkeeping, result parsing):
  python3 benchmarks/transformers_throughput.py --self_test
  # one-line comparison of a pagedllm-bench --output_json report with this script's report:
  python3 benchmarks/transformers_throughput.py --compare PAGEDLLM.json TRANSFORMERS.json \
      [--pagedllm_log BENCH.log] [--label NAME] [--output_json VS.json]

torch's cuDNN attention backend is switched off unless --cudnn_sdpa: it builds a graph for every
new shape, and decoding brings a new KV length every step, so first passes run several times
slower than repeated ones and the search would favour the shapes it had already seen.

torch and transformers are imported only where a model runs, so --self_test and --compare work on
a machine without them.
"""
import argparse
import gc
import json
import os
import re
import sys
import time

DEFAULT_BATCH_SIZES = "1,2,4,8,16,32,64,128,256"


class WorkloadError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# The parts without torch: workload, batches, bookkeeping, result parsing.

def parse_workload(lines, source="<workload>", max_requests=None):
    """Requests from JSON lines: a list of {"prompt_ids": [int], "output_len": int}. Blank lines
    are skipped; anything else that is not exactly that raises WorkloadError naming the line."""
    requests = []
    for number, line in enumerate(lines, 1):
        if max_requests is not None and len(requests) >= max_requests:
            break
        line = line.strip()
        if not line:
            continue
        where = f"{source}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise WorkloadError(f"{where}: not JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise WorkloadError(f"{where}: expected an object, got {type(record).__name__}")
        missing = [k for k in ("prompt_ids", "output_len") if k not in record]
        if missing:
            raise WorkloadError(f"{where}: missing {', '.join(missing)} (keys: {sorted(record)})")
        ids, output_len = record["prompt_ids"], record["output_len"]
        if (not isinstance(ids, list) or not ids
                or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in ids)):
            raise WorkloadError(f"{where}: prompt_ids must be a non-empty list of token ids >= 0")
        if not isinstance(output_len, int) or isinstance(output_len, bool) or output_len < 1:
            raise WorkloadError(f"{where}: output_len must be an integer >= 1, got {output_len!r}")
        requests.append({"prompt_ids": ids, "output_len": output_len})
    if not requests:
        raise WorkloadError(f"{source}: no requests")
    return requests


def read_workload(path, max_requests=None):
    if not os.path.isfile(path):
        raise WorkloadError(f"workload file not found: {path}")
    with open(path) as f:
        return parse_workload(f, path, max_requests)


def make_batches(num_requests, batch_size):
    """Index ranges [start, end) of consecutive batches in file order; the last may be short."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    return [(s, min(s + batch_size, num_requests)) for s in range(0, num_requests, batch_size)]


def plan_batch(batch, pad_id):
    """Left-padded token rows and attention mask of one batch, and its token accounting.
    Left padding keeps every prompt's last token in the last column, where decoding continues."""
    width = max(len(r["prompt_ids"]) for r in batch)
    steps = max(r["output_len"] for r in batch)
    input_ids, attention_mask = [], []
    for r in batch:
        pad = width - len(r["prompt_ids"])
        input_ids.append([pad_id] * pad + list(r["prompt_ids"]))
        attention_mask.append([0] * pad + [1] * len(r["prompt_ids"]))
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "max_new_tokens": steps,
        "requests": len(batch),
        "prompt_tokens": sum(len(r["prompt_ids"]) for r in batch),
        "padded_prompt_tokens": len(batch) * width,
        # Useful: what each request asked for. Generated: what static batching computes.
        "useful_output_tokens": sum(r["output_len"] for r in batch),
        "generated_tokens": len(batch) * steps,
    }


def summarize(plans, wall_s):
    """Totals and rates of the batches run in wall_s seconds."""
    total = {k: sum(p[k] for p in plans) for k in (
        "requests", "prompt_tokens", "padded_prompt_tokens", "useful_output_tokens",
        "generated_tokens")}
    generated = total["generated_tokens"]
    total.update({
        "batches": len(plans),
        "wall_s": wall_s,
        "requests_per_s": total["requests"] / wall_s if wall_s > 0 else 0.0,
        "output_tokens_per_s": total["useful_output_tokens"] / wall_s if wall_s > 0 else 0.0,
        "total_tokens_per_s": ((total["prompt_tokens"] + total["useful_output_tokens"]) / wall_s
                               if wall_s > 0 else 0.0),
        "generated_tokens_per_s": generated / wall_s if wall_s > 0 else 0.0,
        "wasted_output_fraction": (1.0 - total["useful_output_tokens"] / generated
                                   if generated else 0.0),
    })
    return total


def parse_batch_sizes(text):
    try:
        sizes = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise ValueError(f"--batch_sizes must be comma-separated integers, got {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise ValueError(f"--batch_sizes must be integers >= 1, got {text!r}")
    return sizes


def search_sizes(sizes, num_requests):
    """The sizes worth trying: a size at or above the request count already runs everything in
    one batch, so larger ones would repeat it."""
    kept = []
    for b in sizes:
        kept.append(b)
        if b >= num_requests:
            break
    return kept


def pick_best(rows):
    """The search row with the most requests/s among those that ran (not out of memory)."""
    ran = [r for r in rows if r.get("status") == "ok"]
    if not ran:
        return None
    return max(ran, key=lambda r: r["requests_per_s"])


# Keys that pagedllm-bench's --output_json may use for its figures (searched at any depth).
_RATE_KEYS = ("requests_per_s", "requests_per_second", "request_throughput", "req_per_s",
              "requests_per_sec")
_COUNT_KEYS = ("num_requests", "requests", "requests_sent", "num_sent")
_FAILED_KEYS = ("failed", "num_failed", "failed_requests", "requests_failed")
_OUTPUT_RATE_KEYS = ("output_tokens_per_s", "output_tokens_per_second", "output_throughput")


def _find_number(obj, keys):
    """First number under any of keys, breadth first through nested objects."""
    queue = [obj]
    while queue:
        node = queue.pop(0)
        if isinstance(node, dict):
            for k in keys:
                v = node.get(k)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    return v
            queue.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            queue.extend(v for v in node if isinstance(v, (dict, list)))
    return None


_BENCH_WALL = re.compile(r"^wall ([0-9.]+) s: ([0-9.]+) requests/s, ([0-9.]+) output tokens/s",
                         re.M)
_BENCH_COUNT = re.compile(r"(\d+) requests \((\d+) failed\)")


def pagedllm_figures(report=None, log_text=None):
    """requests/s, output tokens/s, requests and failures of a pagedllm-bench run, from its
    --output_json report, else from its printed 'wall ... requests/s' line."""
    fig = {"requests_per_s": None, "output_tokens_per_s": None, "requests": None, "failed": None,
           "source": None}
    if report is not None:
        fig["requests_per_s"] = _find_number(report, _RATE_KEYS)
        fig["output_tokens_per_s"] = _find_number(report, _OUTPUT_RATE_KEYS)
        fig["requests"] = _find_number(report, _COUNT_KEYS)
        fig["failed"] = _find_number(report, _FAILED_KEYS)
        if fig["requests_per_s"] is None:
            wall = _find_number(report, ("wall_s", "wall_seconds", "duration_s"))
            if wall and fig["requests"]:
                fig["requests_per_s"] = fig["requests"] / wall
        if fig["requests_per_s"] is not None:
            fig["source"] = "json"
    if log_text is not None:
        m = _BENCH_WALL.search(log_text)
        c = _BENCH_COUNT.search(log_text)
        if fig["requests_per_s"] is None and m:
            fig["requests_per_s"] = float(m.group(2))
            fig["output_tokens_per_s"] = float(m.group(3))
            fig["source"] = "log"
        elif m and fig["requests_per_s"]:
            fig["log_requests_per_s"] = float(m.group(2))
        if c:
            if fig["requests"] is None:
                fig["requests"] = int(c.group(1))
            if fig["failed"] is None:
                fig["failed"] = int(c.group(2))
    return fig


def compare(pagedllm_report, pagedllm_log, transformers_report, label):
    """The one-line summary and its record; raises ValueError when a figure is missing."""
    p = pagedllm_figures(pagedllm_report, pagedllm_log)
    if p["requests_per_s"] is None:
        keys = sorted(pagedllm_report) if isinstance(pagedllm_report, dict) else "none"
        raise ValueError("no requests/s in the pagedllm-bench report (top-level keys: "
                         f"{keys}) nor a 'wall ... requests/s' line in its log")
    t = transformers_report
    if not isinstance(t, dict) or "requests_per_s" not in t:
        raise ValueError("the transformers report has no requests_per_s")
    notes = []
    if p["requests"] is not None and p["requests"] != t["requests"]:
        notes.append(f"request counts differ: pagedllm {p['requests']}, "
                     f"transformers {t['requests']}")
    if p["failed"]:
        notes.append(f"pagedllm: {p['failed']} requests failed")
    if p.get("log_requests_per_s") and abs(p["log_requests_per_s"] / p["requests_per_s"] - 1) > 0.02:
        notes.append(f"pagedllm log says {p['log_requests_per_s']:.2f} requests/s")
    ratio = p["requests_per_s"] / t["requests_per_s"] if t["requests_per_s"] > 0 else float("inf")
    record = {
        "model": label,
        "requests": t["requests"],
        "pagedllm_requests_per_s": p["requests_per_s"],
        "pagedllm_output_tokens_per_s": p["output_tokens_per_s"],
        "transformers_requests_per_s": t["requests_per_s"],
        "transformers_output_tokens_per_s": t.get("output_tokens_per_s"),
        "transformers_batch_size": t.get("batch_size"),
        "ratio": ratio,
        "notes": notes,
    }
    line = (f"{label}: {t['requests']} requests: pagedllm {p['requests_per_s']:.2f} req/s, "
            f"transformers {t['requests_per_s']:.2f} req/s (static batching, batch "
            f"{t.get('batch_size')}): {ratio:.2f}x")
    if notes:
        line += " [" + "; ".join(notes) + "]"
    return line, record


def self_test():
    """Checks of the parts without torch, on in-memory examples."""
    lines = [
        '{"prompt_ids": [5, 6, 7], "output_len": 4}',
        '',
        '{"prompt_ids": [8], "output_len": 10}',
        '{"prompt_ids": [9, 10], "output_len": 1, "extra": "ignored"}',
    ]
    reqs = parse_workload(lines, "mem")
    assert [len(r["prompt_ids"]) for r in reqs] == [3, 1, 2], reqs
    assert [r["output_len"] for r in reqs] == [4, 10, 1]
    assert len(parse_workload(lines, "mem", max_requests=2)) == 2
    bad = {
        "not JSON": 'not json',
        "an object": '[1, 2]',
        "missing output_len": '{"prompt_ids": [1]}',
        "prompt_ids must be": '{"prompt_ids": [], "output_len": 3}',
        "token ids >= 0": '{"prompt_ids": [1, -2], "output_len": 3}',
        "output_len must be": '{"prompt_ids": [1], "output_len": 0}',
        "output_len must be ": '{"prompt_ids": [1], "output_len": 2.5}',
    }
    for expect, line in bad.items():
        try:
            parse_workload(['{"prompt_ids": [1], "output_len": 1}', line], "mem")
        except WorkloadError as e:
            assert expect.strip() in str(e) and "mem:2" in str(e), (expect, str(e))
        else:
            raise AssertionError(f"accepted a bad line: {line}")
    try:
        parse_workload(["", "  "], "empty")
        raise AssertionError("accepted an empty workload")
    except WorkloadError as e:
        assert "no requests" in str(e)

    assert make_batches(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert make_batches(3, 8) == [(0, 3)]
    plan = plan_batch(reqs, pad_id=0)
    assert plan["input_ids"] == [[5, 6, 7], [0, 0, 8], [0, 9, 10]], plan["input_ids"]
    assert plan["attention_mask"] == [[1, 1, 1], [0, 0, 1], [0, 1, 1]]
    assert plan["max_new_tokens"] == 10
    assert plan["prompt_tokens"] == 6 and plan["padded_prompt_tokens"] == 9
    assert plan["useful_output_tokens"] == 15 and plan["generated_tokens"] == 30

    # Two batches of 2 and 1: useful tokens are each request's own output_len.
    plans = [plan_batch(reqs[s:e], pad_id=3) for s, e in make_batches(len(reqs), 2)]
    assert plans[0]["input_ids"] == [[5, 6, 7], [3, 3, 8]]
    assert [p["generated_tokens"] for p in plans] == [20, 1]
    total = summarize(plans, wall_s=2.0)
    assert total["requests"] == 3 and total["useful_output_tokens"] == 15
    assert total["generated_tokens"] == 21 and total["batches"] == 2
    assert abs(total["requests_per_s"] - 1.5) < 1e-9
    assert abs(total["output_tokens_per_s"] - 7.5) < 1e-9
    assert abs(total["wasted_output_fraction"] - 6 / 21) < 1e-9

    assert parse_batch_sizes("4,1,2,2") == [1, 2, 4]
    for text in ("", "0,1", "a"):
        try:
            parse_batch_sizes(text)
            raise AssertionError(f"accepted --batch_sizes {text!r}")
        except ValueError:
            pass
    assert search_sizes([1, 2, 4, 8, 16], 5) == [1, 2, 4, 8]
    assert search_sizes([1, 2], 64) == [1, 2]
    rows = [{"batch_size": 1, "status": "ok", "requests_per_s": 1.0},
            {"batch_size": 2, "status": "ok", "requests_per_s": 3.0},
            {"batch_size": 4, "status": "ok", "requests_per_s": 2.0},
            {"batch_size": 8, "status": "oom"}]
    assert pick_best(rows)["batch_size"] == 2
    assert pick_best([{"batch_size": 1, "status": "oom"}]) is None

    # pagedllm-bench figures: from a JSON report (any nesting), else from the log line.
    log = ("model llama, tp 1, 100 requests (0 failed), workload sharegpt: ...\n"
           "wall 10.000 s: 10.00 requests/s, 2500.0 output tokens/s, 4000.0 total tokens/s\n")
    fig = pagedllm_figures({"summary": {"requests_per_s": 9.5, "num_requests": 100}}, log)
    assert fig["requests_per_s"] == 9.5 and fig["source"] == "json" and fig["requests"] == 100
    assert fig["failed"] == 0 and fig["log_requests_per_s"] == 10.0
    # The layout pagedllm-bench's --output_json is being given: flags, server, one row per run.
    fig = pagedllm_figures({"config": {"num_requests": 100, "concurrency": 0},
                            "server": {"model": "m"},
                            "runs": [{"num_requests": 100, "completed": 100, "failed": 0,
                                      "request_throughput": 8.25, "output_tokens_per_s": 2000.0}]},
                           None)
    assert (fig["requests_per_s"], fig["output_tokens_per_s"], fig["requests"], fig["failed"]) == (
        8.25, 2000.0, 100, 0), fig
    fig = pagedllm_figures({"unrelated": 1}, log)
    assert fig["requests_per_s"] == 10.0 and fig["source"] == "log"
    assert fig["output_tokens_per_s"] == 2500.0 and fig["requests"] == 100
    fig = pagedllm_figures({"wall_s": 4.0, "num_requests": 100}, None)
    assert fig["requests_per_s"] == 25.0
    t_report = {"requests": 100, "requests_per_s": 2.5, "output_tokens_per_s": 600.0,
                "batch_size": 32}
    line, record = compare({"requests_per_s": 10.0, "num_requests": 100, "failed": 0}, None,
                           t_report, "llama-3-8b")
    assert record["ratio"] == 4.0 and not record["notes"], record
    assert line.startswith("llama-3-8b: 100 requests: pagedllm 10.00 req/s, transformers 2.50")
    assert line.endswith(": 4.00x"), line
    _, record = compare({"requests_per_s": 10.0, "num_requests": 99, "failed": 1}, None,
                        t_report, "m")
    assert len(record["notes"]) == 2, record
    try:
        compare({"x": 1}, "nothing here", t_report, "m")
        raise AssertionError("compare accepted a report without requests/s")
    except ValueError as e:
        assert "top-level keys" in str(e)
    print("self test passed")


# ---------------------------------------------------------------------------------------------
# The parts with torch.

DTYPES = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16",
          "half": "float16", "float32": "float32", "fp32": "float32"}


def import_torch():
    try:
        import torch
        import transformers
    except ImportError as e:
        sys.exit(f"error: this needs torch and transformers ({e}); run it on the GPU node, "
                 "or use --self_test / --compare here")
    return torch, transformers


def is_oom(torch, error):
    """CUDA out of memory, whether the caching allocator or a library (cuBLAS) ran out."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text
                                                or "CUBLAS_STATUS_ALLOC_FAILED" in text)


def load_model(torch, transformers, args):
    from transformers import AutoConfig, AutoModelForCausalLM
    if not os.path.isfile(os.path.join(args.model, "config.json")):
        sys.exit(f"error: {args.model} has no config.json (--model takes a Hugging Face model "
                 "directory, e.g. benchmarks/models/llama-3-8b)")
    dtype = getattr(torch, DTYPES[args.dtype])
    # transformers >= 4.56 names the argument dtype (torch_dtype is deprecated in 5.x).
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    kwargs = {dtype_kw: dtype, "attn_implementation": args.attn_implementation}
    if not args.cudnn_sdpa:
        # cuDNN's SDPA backend builds a graph for every new shape; decoding brings a new KV length
        # every step, so first passes ran at 70-100 ms per step against 4-30 ms once built
        # (measured on an H100, torch 2.11): the timing would depend on which shapes the search
        # had already seen. The flash / memory-efficient kernels have no such cost.
        torch.backends.cuda.enable_cudnn_sdp(False)
    torch.manual_seed(args.seed)
    if args.load_format == "dummy":
        config = AutoConfig.from_pretrained(args.model)
        # Built directly on the device: random init of 8B parameters on the host takes minutes.
        with torch.device(args.device):
            model = AutoModelForCausalLM.from_config(config, **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(args.model, **kwargs)
    model = model.to(args.device).eval()
    pad_id = model.config.pad_token_id
    if pad_id is None or isinstance(pad_id, list):
        pad_id = 0  # padded positions are masked out, so any id will do
    # Every sequence must run to the batch's longest output: no eos anywhere. Set on the model's
    # own generation config, since generate() fills unset arguments from it.
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = pad_id
    return model, pad_id


def run_batch(torch, model, plan, pad_id, device):
    ids = torch.tensor(plan["input_ids"], dtype=torch.long, device=device)
    mask = torch.tensor(plan["attention_mask"], dtype=torch.long, device=device)
    steps = plan["max_new_tokens"]
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=steps,
                         min_new_tokens=steps, do_sample=False, pad_token_id=pad_id,
                         eos_token_id=None)
    if out.shape[1] != ids.shape[1] + steps:
        raise RuntimeError(f"generate returned {out.shape[1] - ids.shape[1]} new tokens, not the "
                           f"{steps} asked for: it stopped early (an eos token?), so the "
                           "timing would not be static batching")


def run_workload(torch, model, requests, batch_size, pad_id, device, time_limit_s=None):
    """Runs requests in static batches; returns summarize() of the batches run. With time_limit_s,
    stops starting new batches once that much time has passed (at least one batch runs)."""
    plans = [plan_batch(requests[s:e], pad_id) for s, e in make_batches(len(requests), batch_size)]
    done = []
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for plan in plans:
        run_batch(torch, model, plan, pad_id, device)
        done.append(plan)
        if time_limit_s is not None and time.perf_counter() - start > time_limit_s:
            break
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return summarize(done, time.perf_counter() - start)


def free_memory(torch):
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def try_size(torch, model, requests, batch_size, pad_id, args, time_limit_s=None):
    """(summary, None) or (None, the out-of-memory message). Memory is freed outside the except
    block: the exception's traceback holds the failed batch's tensors until it is gone."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    oom = None
    try:
        result = run_workload(torch, model, requests, batch_size, pad_id, args.device, time_limit_s)
    except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
        if not is_oom(torch, e):
            raise
        oom = str(e).splitlines()[0][:200]
    if oom is not None:
        free_memory(torch)
        return None, oom
    if torch.cuda.is_available():
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result, None


def benchmark(args):
    try:
        requests = read_workload(args.workload, args.max_requests)
    except WorkloadError as e:
        sys.exit(f"error: {e}")
    try:
        sizes = parse_batch_sizes(args.batch_sizes)
    except ValueError as e:
        sys.exit(f"error: {e}")
    torch, transformers = import_torch()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: --device cuda but torch sees no CUDA device")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    print(f"transformers {transformers.__version__}, torch {torch.__version__} "
          f"(CUDA {torch.version.cuda}), device {args.device} ({gpu})", flush=True)
    free_gib = None
    if torch.cuda.is_available():
        # Memory another process still holds (a server not yet gone) would shrink the batches.
        free, total = torch.cuda.mem_get_info()
        free_gib = free / 2**30
        print(f"GPU memory free at start: {free_gib:.1f} of {total / 2**30:.1f} GiB", flush=True)
    n = len(requests)
    print(f"workload {args.workload}: {n} requests, "
          f"{sum(len(r['prompt_ids']) for r in requests) / n:.1f} prompt and "
          f"{sum(r['output_len'] for r in requests) / n:.1f} output tokens per request", flush=True)

    t0 = time.perf_counter()
    model, pad_id = load_model(torch, transformers, args)
    print(f"model {args.model} ({args.load_format}, {DTYPES[args.dtype]}, "
          f"{args.attn_implementation}) ready in {time.perf_counter() - t0:.1f} s, "
          f"{sum(p.numel() for p in model.parameters()) / 1e9:.2f}B parameters", flush=True)
    max_pos = getattr(model.config, "max_position_embeddings", None)
    longest = max(len(r["prompt_ids"]) for r in requests) + max(r["output_len"] for r in requests)
    if max_pos and longest > max_pos:
        print(f"warning: a batch may reach {longest} positions, over max_position_embeddings "
              f"{max_pos}", flush=True)

    # Warm-up, untimed: first kernels, cuBLAS handles, allocator growth.
    warm = [dict(r, output_len=min(r["output_len"], 8)) for r in requests[:min(4, n)]]
    run_workload(torch, model, warm, len(warm), pad_id, args.device)

    search = []
    if args.batch_size:
        batch_size, source = args.batch_size, "--batch_size"
    else:
        prefix = min(n, args.search_requests)
        print(f"search: batch sizes {search_sizes(sizes, n)}, each on the first "
              f"max({prefix}, B) requests, at most {args.search_time_s:.0f} s after its first "
              "batch", flush=True)
        for b in search_sizes(sizes, n):
            subset = requests[:max(prefix, b)]
            result, oom = try_size(torch, model, subset, b, pad_id, args, args.search_time_s)
            if oom:
                search.append({"batch_size": b, "status": "oom", "error": oom})
                print(f"  batch {b:4d}: out of memory; stop growing", flush=True)
                break
            search.append(dict(result, batch_size=b, status="ok"))
            print(f"  batch {b:4d}: {result['requests']:4d} requests in {result['wall_s']:7.2f} s: "
                  f"{result['requests_per_s']:7.2f} requests/s, "
                  f"{result['output_tokens_per_s']:8.1f} output tokens/s, "
                  f"{100 * result['wasted_output_fraction']:4.1f}% of generated tokens wasted, "
                  f"peak {result.get('peak_memory_gib', 0):.1f} GiB", flush=True)
        best = pick_best(search)
        if best is None:
            sys.exit("error: not even the smallest batch size fits in memory")
        batch_size, source = best["batch_size"], "search"

    retries = []
    while True:
        print(f"run: {n} requests at batch size {batch_size} ({source})", flush=True)
        result, oom = try_size(torch, model, requests, batch_size, pad_id, args)
        if result is not None:
            break
        # The search saw only a prefix; a longer batch later in the file can still run out.
        retries.append({"batch_size": batch_size, "error": oom})
        print(f"  out of memory at batch size {batch_size}; halving", flush=True)
        if batch_size == 1:
            sys.exit("error: out of memory at batch size 1")
        batch_size //= 2
        source = "halved after out of memory"

    report = {
        "engine": "transformers generate, static batching",
        "model": args.model,
        "load_format": args.load_format,
        "dtype": DTYPES[args.dtype],
        "attn_implementation": args.attn_implementation,
        "cudnn_sdpa": args.cudnn_sdpa,
        "workload": args.workload,
        "batch_size": batch_size,
        "batch_size_source": source,
        **result,
        "search": search,
        "out_of_memory_retries": retries,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "gpu": gpu,
        "gpu_memory_free_at_start_gib": free_gib,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(f"transformers: {result['requests']} requests, batch size {batch_size}, "
          f"wall {result['wall_s']:.3f} s: {result['requests_per_s']:.2f} requests/s, "
          f"{result['output_tokens_per_s']:.1f} output tokens/s (useful), "
          f"{result['generated_tokens_per_s']:.1f} generated tokens/s, "
          f"{100 * result['wasted_output_fraction']:.1f}% of generated tokens wasted", flush=True)
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"report: {args.output_json}")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", help="JSON lines {prompt_ids, output_len} (pagedllm-bench "
                        "--save_workload)")
    parser.add_argument("--model", help="Hugging Face model directory (config.json)")
    parser.add_argument("--load_format", default="auto", choices=["auto", "dummy"],
                        help="dummy: random weights from config.json alone")
    parser.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--attn_implementation", default="sdpa",
                        help="sdpa, eager, flash_attention_2, ...")
    parser.add_argument("--cudnn_sdpa", action="store_true",
                        help="leave torch's cuDNN attention backend on (off by default: it "
                        "rebuilds a graph for every new sequence length)")
    parser.add_argument("--batch_size", type=int, default=0, help="skip the search, use this")
    parser.add_argument("--batch_sizes", default=DEFAULT_BATCH_SIZES,
                        help="sizes the search tries, smallest first")
    parser.add_argument("--search_requests", type=int, default=64,
                        help="each size is timed on the first max(this, B) requests")
    parser.add_argument("--search_time_s", type=float, default=20.0,
                        help="per size, no new batch starts after this many seconds")
    parser.add_argument("--max_requests", type=int, default=None, help="read at most this many")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--output_json", help="write the report here")
    parser.add_argument("--self_test", action="store_true",
                        help="check the parts without torch and exit")
    parser.add_argument("--compare", nargs=2, metavar=("PAGEDLLM_JSON", "TRANSFORMERS_JSON"),
                        help="print a one-line comparison of the two reports and exit")
    parser.add_argument("--pagedllm_log", help="--compare: pagedllm-bench's printed output "
                        "(fallback and cross-check for its figures)")
    parser.add_argument("--label", default="model", help="--compare: the model's name")
    args = parser.parse_args()

    if args.self_test:
        self_test()
        return
    if args.compare:
        reports = []
        for path in args.compare:
            try:
                with open(path) as f:
                    reports.append(json.load(f))
            except (OSError, json.JSONDecodeError) as e:
                sys.exit(f"error: cannot read the report {path}: {e}")
        log_text = None
        if args.pagedllm_log and os.path.isfile(args.pagedllm_log):
            with open(args.pagedllm_log, errors="replace") as f:
                log_text = f.read()
        try:
            line, record = compare(reports[0], log_text, reports[1], args.label)
        except ValueError as e:
            sys.exit(f"error: {e}")
        print(line)
        if args.output_json:
            with open(args.output_json, "w") as f:
                json.dump(record, f, indent=1)
        return
    if not args.workload or not args.model:
        parser.error("--workload and --model are required (or --self_test / --compare)")
    if args.batch_size < 0 or args.search_requests < 1 or args.search_time_s <= 0:
        parser.error("--batch_size >= 0, --search_requests >= 1 and --search_time_s > 0")
    benchmark(args)


if __name__ == "__main__":
    main()
