#!/usr/bin/env python3
"""Builds small random Llama models and their transformers reference outputs.

Usage: make_golden_models.py --out DIR [--only NAME ...] [--min-margin 0.05]

Writes DIR/<model>/{config.json, generation_config.json, model.safetensors,
golden.json} and DIR/manifest.json. With --only, only the named models' folders
are written; manifest.json keeps the other models' entries as they were. Needs
torch and transformers (it is run on a machine that has them; CI only reads the
files it wrote).

Every model is a LlamaForCausalLM in float32 with seeded weights drawn so that
greedy decisions have clear margins. The reference is computed on the CPU in
float32: greedy argmax over a full forward pass of the whole sequence at every
step (no KV cache), 16 new tokens, eos is not a stop. The script then reloads
each saved model from disk and checks that the full-forward logits and
`generate(do_sample=False)` with a KV cache agree with the reference. It exits
with status 2 when any check failed (after writing everything it could).
"""

import argparse
import json
import math
import os
import random
import sys
import time
import traceback

MAX_NEW_TOKENS = 16
PROMPT_LENGTHS = (1, 7, 33, 150, 300)
TOP_K = 5
BOS_ID, EOS_ID, PAD_ID = 0, 1, 2
FIRST_PROMPT_ID = 3  # Prompts avoid the special ids 0..2.
RMS_NORM_EPS = 1e-5
PROJ_GAIN = 1.5  # Std of a projection weight: PROJ_GAIN / sqrt(fan_in).
LOGIT_STD = 4.0  # Std of an output-embedding weight: LOGIT_STD / sqrt(hidden).
NORM_WEIGHT_RANGE = (0.5, 1.5)  # RMSNorm weights: uniform in this range.
MAX_PROMPT_ATTEMPTS = 60
MAX_MODEL_ATTEMPTS = 4
TP_CANDIDATES = (1, 2, 4)

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}

# name -> architecture. rope is None for plain RoPE with rope_theta.
MODEL_SPECS = {
    "mha-untied": dict(hidden=64, layers=2, heads=4, kv_heads=4, head_dim=16,
                       intermediate=160, vocab=384, tied=False,
                       rope_theta=10000.0, rope=None, max_pos=512, seed=1001),
    "gqa-tied": dict(hidden=96, layers=3, heads=6, kv_heads=2, head_dim=16,
                     intermediate=200, vocab=500, tied=True,
                     rope_theta=10000.0, rope=None, max_pos=512, seed=2001),
    "mqa-llama3-rope": dict(hidden=128, layers=2, heads=8, kv_heads=1,
                            head_dim=16, intermediate=352, vocab=512,
                            tied=False, rope_theta=500000.0, rope=LLAMA3_ROPE,
                            max_pos=1024, seed=3001),
    "gqa-wide-head": dict(hidden=80, layers=2, heads=4, kv_heads=2,
                          head_dim=32, intermediate=208, vocab=256,
                          tied=False, rope_theta=10000.0, rope=None,
                          max_pos=512, seed=4001),
    # vocab_size 1021 is prime, so no tp > 1 divides it; tied, so the
    # vocab-parallel embedding is the LM head too.
    "odd-vocab-tied": dict(hidden=64, layers=2, heads=4, kv_heads=2,
                           head_dim=16, intermediate=192, vocab=1021,
                           tied=True, rope_theta=10000.0, rope=None,
                           max_pos=512, seed=5001),
}

TP_RULE = ("tp divides num_attention_heads; num_key_value_heads % tp == 0 or "
           "tp % num_key_value_heads == 0 (kv heads replicated); tp divides "
           "intermediate_size. vocab_size need not divide (padded).")


def Log(*args):
  print(*args, flush=True)


# ---------------------------------------------------------------- pure python


def TpSizes(spec):
  """tp sizes among TP_CANDIDATES whose divisibility rules hold."""
  sizes = []
  for tp in TP_CANDIDATES:
    if spec["heads"] % tp:
      continue
    if spec["kv_heads"] % tp and tp % spec["kv_heads"]:
      continue
    if spec["intermediate"] % tp:
      continue
    sizes.append(tp)
  return sizes


def PromptSeed(name, index, length, attempt):
  return "%s/prompt%d/len%d/attempt%d" % (name, index, length, attempt)


def MakePrompt(seed, length, vocab):
  """Uniform ids in [FIRST_PROMPT_ID, vocab) from random.Random(seed)."""
  rng = random.Random(seed)
  return [rng.randrange(FIRST_PROMPT_ID, vocab) for _ in range(length)]


def ExpectedInvFreq(spec):
  """RoPE inverse frequencies (float64), llama3 scaling applied if any."""
  d = spec["head_dim"]
  theta = spec["rope_theta"]
  inv = [1.0 / theta ** (i / d) for i in range(0, d, 2)]
  rope = spec["rope"]
  if rope is None:
    return inv
  factor = rope["factor"]
  lo, hi = rope["low_freq_factor"], rope["high_freq_factor"]
  old = rope["original_max_position_embeddings"]
  low_freq_wavelen, high_freq_wavelen = old / lo, old / hi
  out = []
  for f in inv:
    wavelen = 2 * math.pi / f
    if wavelen < high_freq_wavelen:
      out.append(f)
    elif wavelen > low_freq_wavelen:
      out.append(f / factor)
    else:
      smooth = (old / wavelen - lo) / (hi - lo)
      out.append((1 - smooth) * f / factor + smooth * f)
  return out


def RopeParameters(spec):
  if spec["rope"] is not None:
    return dict(spec["rope"])
  return {"rope_type": "default", "rope_theta": spec["rope_theta"]}


def PatchConfigJson(path, spec, legacy_rope_scaling):
  """Adds top-level rope_theta and (llama3) the legacy rope_scaling key."""
  with open(path) as f:
    cfg = json.load(f)
  cfg["rope_theta"] = spec["rope_theta"]
  if "rope_parameters" not in cfg:
    cfg["rope_parameters"] = RopeParameters(spec)
  cfg.pop("rope_scaling", None)
  if spec["rope"] is not None and legacy_rope_scaling:
    cfg["rope_scaling"] = {k: v for k, v in spec["rope"].items()
                           if k != "rope_theta"}
  cfg["head_dim"] = spec["head_dim"]
  cfg["tie_word_embeddings"] = spec["tied"]
  with open(path, "w") as f:
    json.dump(cfg, f, indent=2, sort_keys=True)
    f.write("\n")
  return cfg


def _IsFlat(x):
  return not isinstance(x, (list, dict))


def Dumps(obj, indent=0):
  """JSON with lists of scalars (and short lists of such lists) on one line."""
  pad = " " * (indent + 1)
  if isinstance(obj, dict):
    if not obj:
      return "{}"
    items = [pad + json.dumps(k) + ": " + Dumps(v, indent + 1)
             for k, v in obj.items()]
    return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
  if isinstance(obj, list):
    one_line = json.dumps(obj)
    if all(_IsFlat(x) for x in obj) or (
        all(isinstance(x, list) and all(_IsFlat(y) for y in x) for x in obj)
        and len(one_line) <= 240):
      return one_line
    items = [pad + Dumps(x, indent + 1) for x in obj]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
  return json.dumps(obj)


def WriteJson(path, obj):
  with open(path, "w") as f:
    f.write(Dumps(obj))
    f.write("\n")


# ---------------------------------------------------------------- torch parts


def BuildConfig(spec):
  from transformers import LlamaConfig
  common = dict(
      vocab_size=spec["vocab"], hidden_size=spec["hidden"],
      intermediate_size=spec["intermediate"],
      num_hidden_layers=spec["layers"], num_attention_heads=spec["heads"],
      num_key_value_heads=spec["kv_heads"], head_dim=spec["head_dim"],
      max_position_embeddings=spec["max_pos"], rms_norm_eps=RMS_NORM_EPS,
      hidden_act="silu", tie_word_embeddings=spec["tied"],
      attention_bias=False, mlp_bias=False, bos_token_id=BOS_ID,
      eos_token_id=EOS_ID, pad_token_id=PAD_ID)
  try:
    return LlamaConfig(rope_parameters=RopeParameters(spec), **common)
  except TypeError as e:  # Older transformers: rope_theta + rope_scaling.
    Log("  LlamaConfig(rope_parameters=...) failed (%s); legacy keys" % e)
    legacy = dict(rope_theta=spec["rope_theta"])
    if spec["rope"] is not None:
      legacy["rope_scaling"] = {k: v for k, v in spec["rope"].items()
                                if k != "rope_theta"}
    return LlamaConfig(**legacy, **common)


def SetAttn(model, impl):
  if hasattr(model, "set_attn_implementation"):
    try:
      model.set_attn_implementation(impl)
    except Exception as e:  # pylint: disable=broad-except
      Log("  set_attn_implementation(%s) failed: %s" % (impl, e))
      model.config._attn_implementation = impl
  else:
    model.config._attn_implementation = impl
  return getattr(model.config, "_attn_implementation", impl)


def InitWeights(model, spec, seed):
  """Seeded init; returns a list of the rules applied, for the header."""
  import torch
  g = torch.Generator().manual_seed(seed)
  embed_std = 1.0 if not spec["tied"] else LOGIT_STD / math.sqrt(spec["hidden"])
  lo, hi = NORM_WEIGHT_RANGE
  with torch.no_grad():
    for name, p in model.named_parameters():  # Tied lm_head listed once.
      if name.endswith("embed_tokens.weight"):
        p.copy_(torch.randn(p.shape, generator=g) * embed_std)
      elif name.endswith("lm_head.weight"):
        p.copy_(torch.randn(p.shape, generator=g) *
                (LOGIT_STD / math.sqrt(p.shape[1])))
      elif name.endswith("norm.weight"):
        p.copy_(lo + (hi - lo) * torch.rand(p.shape, generator=g))
      elif p.dim() == 2:
        p.copy_(torch.randn(p.shape, generator=g) *
                (PROJ_GAIN / math.sqrt(p.shape[1])))
      else:
        raise ValueError("unexpected parameter %s %s" % (name, tuple(p.shape)))
  return {
      "torch_generator_seed": seed,
      "order": "model.named_parameters() order, one draw per tensor",
      "embed_tokens": "normal(0, %g)" % embed_std,
      "lm_head": ("tied to embed_tokens" if spec["tied"] else
                  "normal(0, %g / sqrt(hidden_size))" % LOGIT_STD),
      "projections": "normal(0, %g / sqrt(in_features))" % PROJ_GAIN,
      "rms_norm_weights": "uniform(%g, %g)" % NORM_WEIGHT_RANGE,
  }


def LastLogits(model, ids):
  """float32 logits [vocab] of the last position, full forward, no cache."""
  import torch
  with torch.no_grad():
    x = torch.tensor([ids], dtype=torch.long)
    out = model(input_ids=x, use_cache=False)
    return out.logits[0, -1].float()


def GreedyReference(model, prompt):
  """16 greedy steps, full forward each; per-step records."""
  import torch
  seq = list(prompt)
  steps = []
  for _ in range(MAX_NEW_TOKENS):
    logits = LastLogits(model, seq)
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    top_logits, top_ids = torch.topk(logits, TOP_K)
    tok = int(top_ids[0])  # Exact ties are rejected by the margin rule.
    steps.append({
        "token": tok,
        "runner_up": int(top_ids[1]),
        "margin": float(top_logits[0] - top_logits[1]),
        "logprob": float(logprobs[tok]),
        "top5": [[int(i), float(logprobs[int(i)])] for i in top_ids],
        "logits": logits,
    })
    seq.append(tok)
  return steps


def BuildModel(spec, seed):
  from transformers import LlamaForCausalLM
  config = BuildConfig(spec)
  model = LlamaForCausalLM(config).float().eval()
  attn = SetAttn(model, "eager")

  def Tied():
    return (model.lm_head.weight.data_ptr() ==
            model.model.embed_tokens.weight.data_ptr())

  if spec["tied"] and not Tied():
    model.tie_weights()
    if not Tied():
      raise RuntimeError("tie_word_embeddings did not tie lm_head")
  init = InitWeights(model, spec, seed)
  return model, attn, init


def InvFreqOf(model):
  for name, buf in model.named_buffers():
    if name.split(".")[-1] == "inv_freq":
      return [float(v) for v in buf.float()]
  return None


def CheckInvFreq(model, spec, what, errors):
  got = InvFreqOf(model)
  want = ExpectedInvFreq(spec)
  if got is None:
    errors.append("%s: no inv_freq buffer found" % what)
    return
  if len(got) != len(want) or any(
      abs(a - b) > 1e-5 * abs(b) + 1e-12 for a, b in zip(got, want)):
    errors.append("%s: inv_freq %s != expected %s" % (what, got, want))


def SaveModel(model, spec, out_dir, legacy):
  from transformers import GenerationConfig
  os.makedirs(out_dir, exist_ok=True)
  try:
    model.save_pretrained(out_dir, safe_serialization=True)
  except TypeError:
    model.save_pretrained(out_dir)
  gen = GenerationConfig(bos_token_id=BOS_ID, eos_token_id=EOS_ID,
                         pad_token_id=PAD_ID, do_sample=False)
  gen.save_pretrained(out_dir)
  for f in ("config.json", "generation_config.json", "model.safetensors"):
    if not os.path.exists(os.path.join(out_dir, f)):
      raise RuntimeError("save_pretrained did not write %s (dir has %s)" %
                         (f, sorted(os.listdir(out_dir))))
  return PatchConfigJson(os.path.join(out_dir, "config.json"), spec, legacy)


def TensorTable(path):
  from safetensors import safe_open
  table = {}
  with safe_open(path, framework="pt") as f:
    for k in sorted(f.keys()):
      t = f.get_tensor(k)
      table[k] = {"dtype": str(t.dtype).replace("torch.", ""),
                  "shape": list(t.shape)}
  return table


def Reload(out_dir):
  import torch
  from transformers import LlamaForCausalLM
  try:
    m = LlamaForCausalLM.from_pretrained(out_dir, dtype=torch.float32,
                                         attn_implementation="sdpa")
  except TypeError:
    m = LlamaForCausalLM.from_pretrained(out_dir, torch_dtype=torch.float32,
                                         attn_implementation="sdpa")
  return m.float().eval()


def CheckReloaded(reloaded, case, steps, errors, name):
  """Full-forward logits and KV-cache generate() against the reference."""
  import torch
  seq = list(case["prompt_ids"])
  max_diff = 0.0
  for st in steps:
    got = LastLogits(reloaded, seq)
    max_diff = max(max_diff, float((got - st["logits"]).abs().max()))
    seq.append(st["token"])
  # An eos id that is not in the continuation, so generate() never stops early.
  cont = set(case["continuation_ids"])
  gen_eos = next(i for i in range(FIRST_PROMPT_ID, 10**9) if i not in cont)
  reloaded.generation_config.eos_token_id = gen_eos
  x = torch.tensor([case["prompt_ids"]], dtype=torch.long)
  with torch.no_grad():
    out = reloaded.generate(input_ids=x, attention_mask=torch.ones_like(x),
                            do_sample=False, num_beams=1,
                            max_new_tokens=MAX_NEW_TOKENS, use_cache=True,
                            eos_token_id=gen_eos, pad_token_id=PAD_ID)
  seqs = out.sequences if hasattr(out, "sequences") else out
  gen = [int(t) for t in seqs[0, x.shape[1]:]]
  match = gen == case["continuation_ids"]
  if not match:
    errors.append("%s len %d: generate() with KV cache gave %s, reference %s"
                  % (name, len(case["prompt_ids"]), gen,
                     case["continuation_ids"]))
  if max_diff > 1e-3:
    errors.append("%s len %d: reloaded logits differ by %g" %
                  (name, len(case["prompt_ids"]), max_diff))
  return match, max_diff


def ModelCases(model, name, spec, min_margin):
  """Prompts (resampled until all margins >= min_margin) and their steps."""
  cases, all_steps = [], []
  for index, length in enumerate(PROMPT_LENGTHS):
    for attempt in range(MAX_PROMPT_ATTEMPTS):
      seed = PromptSeed(name, index, length, attempt)
      prompt = MakePrompt(seed, length, spec["vocab"])
      steps = GreedyReference(model, prompt)
      worst = min(s["margin"] for s in steps)
      if worst >= min_margin:
        break
      Log("  prompt len %d attempt %d: min margin %.4f < %g, resampling" %
          (length, attempt, worst, min_margin))
    else:
      return None, None
    cont = [s["token"] for s in steps]
    cases.append({
        "prompt_seed": seed,
        "prompt_attempts": attempt + 1,
        "prompt_ids": prompt,
        "continuation_ids": cont,
        "margins": [s["margin"] for s in steps],
        "min_margin": worst,
        "runner_up_ids": [s["runner_up"] for s in steps],
        "chosen_logprobs": [s["logprob"] for s in steps],
        "top5": [s["top5"] for s in steps],
        "distinct_continuation_ids": len(set(cont)),
    })
    all_steps.append(steps)
    Log("  prompt len %3d: min margin %.4f, %d distinct of %d, attempts %d" %
        (length, worst, len(set(cont)), len(cont), attempt + 1))
  return cases, all_steps


def MakeOne(name, spec, out_root, min_margin, versions):
  errors, notes = [], []
  for model_attempt in range(MAX_MODEL_ATTEMPTS):
    seed = spec["seed"] + model_attempt
    model, attn, init = BuildModel(spec, seed)
    Log("%s: seed %d, attn %s, %d params" %
        (name, seed, attn, sum(p.numel() for p in model.parameters())))
    cases, all_steps = ModelCases(model, name, spec, min_margin)
    if cases is not None:
      break
    Log("  no good prompt found; next model seed")
  else:
    raise RuntimeError("%s: no seed gave margins >= %g" % (name, min_margin))
  CheckInvFreq(model, spec, name + " (built)", errors)

  out_dir = os.path.join(out_root, name)
  legacy = spec["rope"] is not None
  cfg = SaveModel(model, spec, out_dir, legacy)
  want_rope = RopeParameters(spec)
  got_rope = cfg.get("rope_parameters") or {}
  for k, v in want_rope.items():
    if got_rope.get(k) != v:
      errors.append("%s: config.json rope_parameters[%s] = %r, want %r" %
                    (name, k, got_rope.get(k), v))
  reloaded = Reload(out_dir)
  reload_errors = []
  CheckInvFreq(reloaded, spec, name + " (reloaded)", reload_errors)
  if legacy and reload_errors:
    notes.append("legacy rope_scaling key dropped, the reload with it failed: "
                 "%s" % reload_errors)
    Log("  " + notes[-1])
    cfg = PatchConfigJson(os.path.join(out_dir, "config.json"), spec, False)
    reloaded = Reload(out_dir)
    reload_errors = []
    CheckInvFreq(reloaded, spec, name + " (reloaded, no legacy)",
                 reload_errors)
  errors += reload_errors

  for case, steps in zip(cases, all_steps):
    match, diff = CheckReloaded(reloaded, case, steps, errors, name)
    case["hf_generate_with_kv_cache_matches"] = match
    case["sdpa_reload_max_abs_logit_diff"] = diff

  tensors = TensorTable(os.path.join(out_dir, "model.safetensors"))
  for k, v in tensors.items():
    if v["dtype"] != "float32":
      errors.append("%s: tensor %s is %s" % (name, k, v["dtype"]))
  if spec["tied"] and "lm_head.weight" in tensors:
    Log("  note: tied model saved lm_head.weight too")
  rotary = getattr(getattr(model, "model", None), "rotary_emb", None)
  golden = {
      "model": name,
      "reference": {
          "library": versions,
          "device": "cpu",
          "dtype": "float32",
          "attn_implementation": attn,
          "decoding": ("greedy (argmax), full forward pass over the whole "
                       "sequence at every step (no KV cache), exactly %d new "
                       "tokens; eos is NOT a stop" % MAX_NEW_TOKENS),
          "self_check": ("model reloaded from this folder with "
                         "from_pretrained(dtype=float32, attn_implementation="
                         "'sdpa'): full-forward logits compared per step, and "
                         "generate(do_sample=False) with KV cache must give "
                         "the same continuation"),
      },
      "bos_token_id": BOS_ID,
      "eos_token_id": EOS_ID,
      "pad_token_id": PAD_ID,
      "max_new_tokens": MAX_NEW_TOKENS,
      "prompt_ids_rule": ("no tokenizer: random.Random(prompt_seed) (Python, "
                          "string seed), then [rng.randrange(%d, vocab_size) "
                          "for _ in range(length)]; no bos prepended; prompts "
                          "resampled (attempt+1) until every step's margin >= "
                          "min_margin_required" % FIRST_PROMPT_ID),
      "margin_definition": ("per generated token: top-1 minus top-2 float32 "
                            "logit (equals log p(top-1) - log p(top-2))"),
      "logprob_definition": ("log_softmax of the float32 logits (computed in "
                             "float64); top5 = [[token_id, logprob], ...] by "
                             "decreasing logit; chosen_logprobs = logprob of "
                             "the greedy token"),
      "min_margin_required": min_margin,
      "min_margin": min(c["min_margin"] for c in cases),
      "architecture": {
          "hidden_size": spec["hidden"], "num_hidden_layers": spec["layers"],
          "num_attention_heads": spec["heads"],
          "num_key_value_heads": spec["kv_heads"],
          "head_dim": spec["head_dim"],
          "intermediate_size": spec["intermediate"],
          "vocab_size": spec["vocab"], "tie_word_embeddings": spec["tied"],
          "max_position_embeddings": spec["max_pos"],
          "rms_norm_eps": RMS_NORM_EPS,
          "rope_parameters": RopeParameters(spec),
          "config_json_has_legacy_rope_scaling": "rope_scaling" in cfg,
      },
      "rope_inv_freq": ExpectedInvFreq(spec),
      "rope_attention_scaling": float(getattr(rotary, "attention_scaling",
                                              1.0)),
      "tp_sizes": TpSizes(spec),
      "tp_rule": TP_RULE,
      "weight_init": init,
      "tensors": tensors,
      "cases": cases,
  }
  WriteJson(os.path.join(out_dir, "golden.json"), golden)
  sizes = {f: os.path.getsize(os.path.join(out_dir, f))
           for f in sorted(os.listdir(out_dir))}
  summary = {"name": name, "min_margin": golden["min_margin"],
             "tp_sizes": golden["tp_sizes"], "bytes": sizes,
             "kv_cache_generate_matches": all(
                 c["hf_generate_with_kv_cache_matches"] for c in cases),
             "max_abs_logit_diff_reload": max(
                 c["sdpa_reload_max_abs_logit_diff"] for c in cases),
             "notes": notes, "errors": errors}
  Log("%s: min margin %.4f, tp %s, kv-cache match %s, reload diff %.3g, "
      "errors %d" % (name, summary["min_margin"], summary["tp_sizes"],
                     summary["kv_cache_generate_matches"],
                     summary["max_abs_logit_diff_reload"], len(errors)))
  for e in errors:
    Log("  ERROR " + e)
  return summary


def LoadManifest(path):
  """The existing manifest (or an empty one); a broken one is an error."""
  if not os.path.exists(path):
    return {"models": []}
  try:
    with open(path) as f:
      manifest = json.load(f)
    names = [m["name"] for m in manifest["models"]]
  except (ValueError, KeyError, TypeError) as e:
    raise SystemExit("%s is not a manifest this script wrote (%s: %s); move it "
                     "away or fix it" % (path, type(e).__name__, e))
  Log("%s: has %s" % (path, ", ".join(names) or "no models"))
  return manifest


def MergeManifest(old, summaries, versions):
  """The models built now replace their entries; the others stay as they were.

  Entries kept from a run with other library versions get that run's
  "library" string, so every entry says what made it.
  """
  built = {s["name"]: s for s in summaries}
  kept = {m["name"]: m for m in old.get("models", [])}
  order = list(MODEL_SPECS) + [n for n in kept if n not in MODEL_SPECS]
  models = []
  for name in order:
    if name in built:
      models.append(built[name])
    elif name in kept:
      entry = dict(kept[name])
      if old.get("library") and old["library"] != versions:
        entry.setdefault("library", old["library"])
      models.append(entry)
  return {"generator": "tools/make_golden_models.py", "library": versions,
          "models": models}


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--out", required=True)
  ap.add_argument("--only", nargs="*", default=None,
                  help="models to build (default all): %s" %
                  ", ".join(MODEL_SPECS))
  ap.add_argument("--min-margin", type=float, default=0.05)
  args = ap.parse_args()
  unknown = [n for n in args.only or [] if n not in MODEL_SPECS]
  if unknown:
    ap.error("unknown model(s) %s; known: %s" %
             (", ".join(unknown), ", ".join(MODEL_SPECS)))
  manifest_path = os.path.join(args.out, "manifest.json")
  old_manifest = LoadManifest(manifest_path)

  import torch
  import transformers
  torch.manual_seed(0)
  torch.set_num_threads(min(8, os.cpu_count() or 1))
  versions = "transformers %s, torch %s" % (transformers.__version__,
                                            torch.__version__)
  Log(versions)
  os.makedirs(args.out, exist_ok=True)
  names = args.only or list(MODEL_SPECS)
  summaries, failed = [], False
  for name in names:
    t0 = time.time()
    try:
      s = MakeOne(name, MODEL_SPECS[name], args.out, args.min_margin, versions)
      failed |= bool(s["errors"]) or not s["kv_cache_generate_matches"]
      summaries.append(s)
    except Exception:  # pylint: disable=broad-except
      failed = True
      Log("%s: FAILED\n%s" % (name, traceback.format_exc()))
      summaries.append({"name": name, "errors": [traceback.format_exc()]})
    Log("%s: %.1f s" % (name, time.time() - t0))
  WriteJson(manifest_path, MergeManifest(old_manifest, summaries, versions))
  Log("SUMMARY")
  for s in summaries:
    Log("  %-16s min_margin %s tp %s bytes %s errors %d" % (
        s["name"], s.get("min_margin"), s.get("tp_sizes"),
        sum(s.get("bytes", {}).values()), len(s["errors"])))
  Log("RESULT: %s" % ("FAILED" if failed else "OK"))
  return 2 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
