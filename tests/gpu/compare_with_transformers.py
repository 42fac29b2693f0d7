#!/usr/bin/env python3
"""pagedllm on a GPU against Hugging Face transformers, same weights, same prompts.

Runs on the GPU node (torch + transformers there). For each model:
  1. transformers float32 greedy continuations (the reference), with each step's top-1 margin;
  2. transformers bf16 (and fp16) teacher-forced on those sequences: the logprob noise that
     half precision itself brings, measured, not guessed;
  3. pagedllm (coordinator + mpirun workers from a bundle, --device cuda, bf16 / fp16) through
     gRPC via pagedllm-client --json.
Checks: pagedllm's greedy tokens equal the float32 reference at every step until the first
step whose reference margin is below MARGIN_FACTOR x the measured noise (a legitimate tie), and
its chosen-token logprobs differ from float32 by at most LOGPROB_FACTOR x that noise (+ 1e-3).
Prints a table and writes a JSON report; exits 1 on any failure.

  python3 tests/gpu/compare_with_transformers.py --bin /tmp/pagedllm/bin --out $OUT
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

MARGIN_FACTOR = 2.0
LOGPROB_FACTOR = 2.0
NEW_TOKENS = 24


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_wide_model(path, layers):
    """Llama-3-8B widths (hidden 4096, 32 heads, 8 KV heads, MLP 14336, vocab 128256), few layers,
    bf16 weights, initialised so greedy margins are clear (default tiny init gives near-ties)."""
    if os.path.exists(os.path.join(path, "config.json")):
        return
    torch.manual_seed(7)
    config = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=layers,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                         max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5,
                         tie_word_embeddings=False, bos_token_id=0, eos_token_id=1)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            elif "embed_tokens" in name:
                p.normal_(0.0, 1.0)
            else:
                p.normal_(0.0, 1.5 / p.shape[1] ** 0.5)
    model.to(torch.bfloat16).save_pretrained(path, safe_serialization=True)


def hf_reference(model_dir, prompts, device):
    """float32 greedy continuations, margins, chosen logprobs; and the half-precision noise."""
    ref = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).to(device).eval()
    out = []
    with torch.no_grad():
        for prompt in prompts:
            ids = list(prompt)
            tokens, margins, logprobs = [], [], []
            for _ in range(NEW_TOKENS):
                logits = ref(torch.tensor([ids], device=device)).logits[0, -1].float()
                top2 = torch.topk(logits, 2)
                lp = torch.log_softmax(logits.double(), -1)
                token = int(top2.indices[0])
                tokens.append(token)
                margins.append(float(top2.values[0] - top2.values[1]))
                logprobs.append(float(lp[token]))
                ids.append(token)
            out.append({"prompt": prompt, "tokens": tokens, "margins": margins, "logprobs": logprobs})
    del ref
    noise = {}
    for dtype in (torch.bfloat16, torch.float16):
        half = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=dtype).to(device).eval()
        worst = 0.0
        with torch.no_grad():
            for case in out:
                seq = torch.tensor([case["prompt"] + case["tokens"]], device=device)
                lp = torch.log_softmax(half(seq).logits[0].double(), -1)
                n = len(case["prompt"])
                for step, token in enumerate(case["tokens"]):
                    worst = max(worst, abs(float(lp[n - 1 + step, token]) - case["logprobs"][step]))
        noise[str(dtype).split(".")[-1]] = worst
        del half
    torch.cuda.empty_cache()
    return out, noise


def serve(bin_dir, model_dir, tp, dtype, log_path):
    port = free_port()
    port_file = f"/tmp/pagedllm-port-{port}"
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    # tp > 1 shares GPU 0 (NCCL over sockets) unless the node has a GPU per rank and
    # PAGEDLLM_COMPARE_GPU_PER_RANK=1 asks for real NCCL between GPUs.
    if tp > 1 and os.environ.get("PAGEDLLM_COMPARE_GPU_PER_RANK") != "1":
        env["PAGEDLLM_SHARE_ONE_GPU"] = "1"
    cmd = [f"{bin_dir}/pagedllm-coordinator", f"--model={model_dir}", f"--tp={tp}", "--device=cuda",
           f"--dtype={dtype}", "--host=127.0.0.1", f"--port={port}", f"--port_file={port_file}",
           f"--gpu_memory_utilization={0.85 / tp:.3f}", "--mpirun_args=--oversubscribe --bind-to none",
           "--worker_start_timeout_s=240"]
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.time() + 240
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"server did not start: see {log_path}")
        time.sleep(0.2)
    return proc, f"127.0.0.1:{port}"


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def generate(bin_dir, address, prompt):
    out = subprocess.run([f"{bin_dir}/pagedllm-client", f"--address={address}", "--json",
                          "--prompt_ids=" + ",".join(map(str, prompt)), f"--max_tokens={NEW_TOKENS}",
                          "--temperature=0", "--ignore_eos", "--logprobs=0"],
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(reference, ours, noise):
    """Returns (ok, steps compared, first divergence, max logprob diff, limit)."""
    limit = LOGPROB_FACTOR * noise + 1e-3
    max_diff, compared = 0.0, 0
    for step, token in enumerate(reference["tokens"]):
        if ours["token_ids"][step] != token:
            tie = reference["margins"][step] < MARGIN_FACTOR * noise
            return tie and max_diff <= limit, compared, step, max_diff, limit
        max_diff = max(max_diff, abs(ours["logprobs"][step] - reference["logprobs"][step]))
        compared += 1
    return max_diff <= limit, compared, None, max_diff, limit


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--repo", default=".")
    parser.add_argument("--wide_layers", type=int, default=2)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    wide = "/tmp/llama3-8b-widths"
    make_wide_model(wide, args.wide_layers)
    models = [
        ("pagedllm-tiny-py", os.path.join(args.repo, "models/pagedllm-tiny-py"), 4096, [1, 2]),
        ("mqa-llama3-rope", os.path.join(args.repo, "tests/data/models/mqa-llama3-rope"), 512, [1, 2]),
        ("gqa-tied", os.path.join(args.repo, "tests/data/models/gqa-tied"), 500, [1]),
        (f"llama3-8b-widths-{args.wide_layers}l", wide, 128256, [1, 2]),
    ]
    rng = random.Random(20261123)
    report, failures = [], 0
    for name, model_dir, vocab, tps in models:
        prompts = [[0] + [rng.randrange(3, vocab) for _ in range(n)] for n in (4, 31, 150, 400)]
        reference, noise = hf_reference(model_dir, prompts, "cuda")
        print(f"{name}: transformers half-precision noise vs float32: "
              f"bf16 {noise['bfloat16']:.4f}, fp16 {noise['float16']:.4f} nats", flush=True)
        for dtype in ("bfloat16", "float16"):
            for tp in tps:
                log = os.path.join(args.out, f"serve-{name}-{dtype}-tp{tp}.log")
                proc, address = serve(args.bin, model_dir, tp, dtype, log)
                try:
                    for case in reference:
                        ours = generate(args.bin, address, case["prompt"])
                        ok, compared, diverged, max_diff, limit = compare(case, ours, noise[dtype])
                        failures += not ok
                        row = {"model": name, "dtype": dtype, "tp": tp, "prompt_len": len(case["prompt"]),
                               "steps_equal": compared, "diverged_at": diverged,
                               "margin_there": None if diverged is None else case["margins"][diverged],
                               "max_logprob_diff": max_diff, "limit": limit, "ok": ok}
                        report.append(row)
                        print(json.dumps(row), flush=True)
                finally:
                    stop(proc)
    with open(os.path.join(args.out, "compare_with_transformers.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"{len(report) - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
