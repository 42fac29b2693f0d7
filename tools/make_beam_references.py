#!/usr/bin/env python3
"""Beam-search references from transformers for the golden test models.

Usage: make_beam_references.py [--models a,b] [--out-root DIR]
                               [--min-margin 1e-3]

For each model folder DIR/<model> (config.json and model.safetensors, made by
tools/make_golden_models.py; DIR defaults to tests/data/models) it writes
DIR/<model>/beam.json: transformers' generate() beam search on 3 seeded
prompts, 12 new tokens, with num_beams 2 and 4, num_return_sequences 1 or
num_beams, length_penalty 0.5, 1 and 2, early_stopping False and True, with an
eos id and without one. Computed on the CPU in float32. Needs torch and
transformers (it is run on a machine that has them; CI only reads the files).

Every case is checked before it is written: generate() runs twice and must give
the same ids and scores; a hook on _beam_search checks that generate() passed
no logits processor and no stopping criterion but max length (and eos); and a
plain reimplementation of the rules in the header ("semantics", a full forward
pass per step, no KV cache) must give the same ids, and scores within
SCORE_TOLERANCE. A prompt is drawn again until every decision in its cases has
a margin of at least --min-margin. Exits with status 2 when any check failed
(after writing every file it could).
"""

import argparse
import copy
import json
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden_models import (  # pylint: disable=wrong-import-position
    FIRST_PROMPT_ID, MODEL_SPECS, Log, MakePrompt, WriteJson)

MAX_NEW_TOKENS = 12
PROMPT_LENGTHS = (5, 17, 40)
BEAM_WIDTHS = (2, 4)
LENGTH_PENALTIES = (0.5, 1.0, 2.0)
# (length_penalty, early_stopping) of the eos cases, read cyclically; any 4 in a
# row hold every length penalty and both early_stopping values.
EOS_CASE_SETTINGS = ((0.5, False), (1.0, True), (2.0, False),
                     (0.5, True), (1.0, False), (2.0, True))
EOS_CASES_PER_WIDTH = 4  # per prompt and num_beams
NO_EOS_CASES_PER_WIDTH = 2
EOS_PICK_BEAMS = 2  # the eos id comes from the best or second-best beam,
EOS_PICK_POSITIONS = (2, 3)  # at one of these 0-based generated positions.
DEFAULT_PAD_ID = 2
ATTN_IMPLEMENTATION = "eager"
SCORE_TOLERANCE = 5e-4  # generate() (KV cache) against the reimplementation.
MAX_PROMPT_ATTEMPTS = 20
DEFAULT_OUT_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, "tests", "data", "models")

GENERATE_CALL = (
    "model.generate(input_ids=[prompt_ids], attention_mask=ones, "
    "generation_config=GenerationConfig(num_beams, num_return_sequences, "
    "do_sample=False, length_penalty, early_stopping, max_new_tokens, "
    "eos_token_id=eos_token_ids[0] or None, pad_token_id, "
    "return_dict_in_generate=True, output_scores=True)); before each call "
    "model.generation_config is replaced by a copy of that same config, so "
    "no field left unset is filled from the model's generation_config.json "
    "(whose eos_token_id is 1). Every other field is transformers' default: "
    "no temperature, top-k/top-p, repetition penalty, min length, etc.")

CHECKS = (
    "generate() ran twice per case with identical ids and scores; a hook on "
    "_beam_search saw no logits processor, only MaxLengthCriteria (plus "
    "EosTokenCriteria with an eos id), and the case's num_beams, "
    "num_return_sequences, length_penalty, early_stopping, eos ids and "
    "max_length = prompt length + max_new_tokens; a reimplementation of "
    "'semantics' (full forward pass per step, no KV cache) gave the same ids "
    "and scores within %g" % SCORE_TOLERANCE)

SEMANTICS = {
    "notation": (
        "W = num_beams, M = max_new_tokens, lp = length_penalty, E = "
        "eos_token_ids, V = vocab_size. A beam is (generated ids, score); "
        "score is a float32 sum of log-probabilities. One prompt, no "
        "padding."),
    "log_probs": (
        "logp = log_softmax(float32 logits of the last position) over the "
        "whole vocabulary, nothing else applied (no temperature, top-k, "
        "top-p or penalties)."),
    "steps": (
        "Step t = 1..M (t = number of generated tokens after the step). "
        "Before step 1 there is one beam: the prompt with score 0. "
        "Candidates: every running beam extended by every token, score = "
        "beam score + logp[token] (float32 add), ranked by score, best "
        "first, over all beams together."),
    "finishing": "A candidate finishes when its token is in E or t == M.",
    "hypotheses": (
        "Each finishing candidate among the W best candidates of the step "
        "(ranked among all candidates, finishing or not) is offered with "
        "penalised score = score / t^lp (t^lp in double, the division in "
        "float32); finishing candidates ranked below W are dropped for good. "
        "The hypothesis list keeps the W best penalised scores: once it is "
        "full, a better newcomer replaces the worst."),
    "running": (
        "The next running beams are the W best non-finishing candidates. "
        "(With one eos id at most one candidate per beam finishes, so "
        "transformers' top 2W candidates always hold W of them.)"),
    "stopping": (
        "After step t the search stops when: t == M; or the list holds W "
        "hypotheses and early_stopping is True; or the list holds W "
        "hypotheses, early_stopping is False and (best running score after "
        "the step) / t^lp <= the worst hypothesis score. That last rule is "
        "transformers' heuristic: it divides by the current length t, not "
        "by M, even when lp > 0 would favour longer sequences."),
    "output": (
        "The hypotheses by penalised score, best first; the first "
        "num_return_sequences of them. output_ids are their generated ids "
        "(the eos id that ended one is included; no prompt, no padding); "
        "sequences_scores are their penalised scores. A sequence shorter "
        "than M always ends with an id in E."),
    "ties": (
        "transformers orders equal scores by torch.topk, which is not "
        "specified; the cases avoid near-ties (see min_decision_margin)."),
}

FIELDS = {
    "prompt_index": "0, 1, 2 for the prompt lengths 5, 17, 40; the key of "
                    "eos_choices",
    "output_ids": "per returned sequence, best first: generated ids only",
    "sequences_scores": "per returned sequence: transformers' "
                        "sequences_scores (penalised, float32)",
    "ends_with_eos": "per returned sequence: its last id is in eos_token_ids",
    "any_ends_with_eos": "some returned sequence ends with an eos id",
    "min_score_gap": "smallest |difference| of consecutive sequences_scores "
                     "(null when one sequence is returned); informational",
    "min_decision_margin": "smallest gap, in log-probability units, at any "
                           "decision the search made (reimplementation): "
                           "ranks W/W+1 of the non-finishing candidates; "
                           "ranks W/W+1 of all candidates where one of them "
                           "finishes; ranks W/W+1 of the hypothesis list when "
                           "new ones arrive; the early-stop heuristic's two "
                           "sides; consecutive returned sequences and the "
                           "last returned against the next hypothesis. A gap "
                           "of penalised scores a, b of lengths ta, tb counts "
                           "as |a - b| / mean(ta^-lp, tb^-lp): the change of "
                           "unpenalised scores that would swap them",
    "min_decision_margin_at": "where that smallest gap was",
    "num_steps": "steps the search ran (reimplementation; < M when it "
                 "stopped early)",
    "eos_hypotheses": "hypotheses that ended with an eos id during the search, "
                      "kept or not (reimplementation)",
    "deterministic": "a second generate() gave the same ids and scores",
    "reimplementation_max_abs_score_diff": "max |generate() score - "
                                           "reimplementation score|",
}


# ---------------------------------------------------------------- pure python


def CasePlan():
  """(prompt_index, num_beams, num_return_sequences, length_penalty,
  early_stopping, with_eos) for every case, in file order."""
  plan = []
  k = 0  # (prompt, width) index
  for p in range(len(PROMPT_LENGTHS)):
    for w in BEAM_WIDTHS:
      for j in range(EOS_CASES_PER_WIDTH):
        lp, es = EOS_CASE_SETTINGS[(EOS_CASES_PER_WIDTH * k + j) %
                                   len(EOS_CASE_SETTINGS)]
        n = w if (k + j) % 2 == 0 else 1
        plan.append((p, w, n, lp, es, True))
      for j in range(NO_EOS_CASES_PER_WIDTH):
        lp = LENGTH_PENALTIES[(NO_EOS_CASES_PER_WIDTH * k + j) %
                              len(LENGTH_PENALTIES)]
        es = (k + j) % 2 == 1
        n = w if j == 0 else 1
        plan.append((p, w, n, lp, es, False))
      k += 1
  return plan


def PromptSeed(name, index, length, attempt):
  return "%s/beam/prompt%d/len%d/attempt%d" % (name, index, length, attempt)


def MinScoreGap(scores):
  if len(scores) < 2:
    return None
  return min(abs(a - b) for a, b in zip(scores, scores[1:]))


def LogProbGap(a, len_a, b, len_b, lp):
  """The gap of penalised scores a (len_a ids) and b, in log-prob units.

  A swap needs the unpenalised scores to move by this much in all (each by
  half of it, in opposite directions), the same as for a gap of raw scores.
  """
  return abs(a - b) / ((len_a ** -lp + len_b ** -lp) / 2)


def CaseName(p, w, n, lp, es, eos):
  return "prompt %d W %d n %d lp %g es %s eos %s" % (
      p, w, n, lp, "T" if es else "F", eos or "none")


# ---------------------------------------------------------------- torch parts


def DescribeCall(logits_processor, stopping_criteria, gen):
  """What generate() handed to _beam_search, as plain values."""
  eos = getattr(gen, "_eos_token_tensor", None)
  pad = getattr(gen, "_pad_token_tensor", None)
  return {
      "logits_processors": [type(p).__name__ for p in logits_processor or []],
      "stopping_criteria": [type(c).__name__ for c in stopping_criteria or []],
      "num_beams": getattr(gen, "num_beams", None),
      "num_return_sequences": getattr(gen, "num_return_sequences", None),
      "do_sample": getattr(gen, "do_sample", None),
      "length_penalty": getattr(gen, "length_penalty", None),
      "early_stopping": getattr(gen, "early_stopping", None),
      "max_length": getattr(gen, "max_length", None),
      "eos_token_ids": None if eos is None else [int(v) for v in
                                                 eos.reshape(-1)],
      "pad_token_id": None if pad is None else int(pad),
  }


class BeamSearchSpy(object):
  """Wraps cls._beam_search while active and records every call's settings.

  generate() looks the decoding method up on type(model), so the class
  attribute is what gets replaced; it is restored on exit.
  """

  def __init__(self, cls):
    self.cls = cls
    self.calls = []
    self.active = False

  def __enter__(self):
    import inspect
    self.had_own = "_beam_search" in self.cls.__dict__
    self.saved = self.cls.__dict__.get("_beam_search")
    original = getattr(self.cls, "_beam_search", None)
    if original is None:
      Log("  NOTE: %s has no _beam_search; generate() settings are not "
          "inspected (the reimplementation check still runs)" %
          self.cls.__name__)
      return self
    signature = inspect.signature(original)
    spy = self

    def Wrapped(model_self, *args, **kwargs):
      try:
        a = signature.bind(model_self, *args, **kwargs).arguments
        spy.calls.append(DescribeCall(a.get("logits_processor"),
                                      a.get("stopping_criteria"),
                                      a.get("generation_config")))
      except Exception as e:  # pylint: disable=broad-except
        spy.calls.append({"error": "%s: %s" % (type(e).__name__, e)})
      return original(model_self, *args, **kwargs)

    self.cls._beam_search = Wrapped
    self.active = True
    return self

  def __exit__(self, *exc):
    if self.active:
      if self.had_own:
        self.cls._beam_search = self.saved
      else:
        del self.cls._beam_search
    self.active = False
    return False


def CheckCall(call, w, n, lp, es, eos, max_length, pad, what):
  """Problems with the settings _beam_search actually got."""
  if call is None:
    return ["%s: generate() did not call _beam_search" % what]
  if "error" in call:
    return ["%s: could not read _beam_search's arguments: %s" %
            (what, call["error"])]
  problems = []
  if call["logits_processors"]:
    problems.append("%s: logits processors took part: %s" %
                    (what, call["logits_processors"]))
  want_criteria = ["MaxLengthCriteria"] + (["EosTokenCriteria"] if eos else [])
  if sorted(call["stopping_criteria"]) != sorted(want_criteria):
    problems.append("%s: stopping criteria %s, want %s" %
                    (what, call["stopping_criteria"], want_criteria))
  want = {"num_beams": w, "num_return_sequences": n, "do_sample": False,
          "length_penalty": lp, "max_length": max_length,
          "eos_token_ids": list(eos) or None, "pad_token_id": pad}
  for key, value in want.items():
    if call[key] != value:
      problems.append("%s: generate() used %s = %r, want %r" %
                      (what, key, call[key], value))
  # transformers tests `early_stopping is True`: it must be a real bool.
  if not (isinstance(call["early_stopping"], bool) and
          call["early_stopping"] is es):
    problems.append("%s: generate() used early_stopping = %r, want %r" %
                    (what, call["early_stopping"], es))
  return problems


def LoadModel(model_dir):
  import torch
  from transformers import LlamaForCausalLM
  try:
    model = LlamaForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32,
        attn_implementation=ATTN_IMPLEMENTATION)
  except TypeError:  # Older transformers.
    model = LlamaForCausalLM.from_pretrained(
        model_dir, torch_dtype=torch.float32,
        attn_implementation=ATTN_IMPLEMENTATION)
  model = model.float().eval()
  attn = getattr(model.config, "_attn_implementation", ATTN_IMPLEMENTATION)
  return model, attn


def HfBeamSearch(model, spy, prompt, w, n, lp, es, eos, pad):
  """generate() with a fresh GenerationConfig; ids after the prompt, scores.

  Returns {"ids", "scores", "problems"}; problems are check failures.
  """
  import torch
  from transformers import GenerationConfig
  what = "W %d n %d lp %g es %s eos %s" % (w, n, lp, "T" if es else "F",
                                           eos or "none")
  gen = GenerationConfig(
      num_beams=w, num_return_sequences=n, do_sample=False,
      length_penalty=lp, early_stopping=es, max_new_tokens=MAX_NEW_TOKENS,
      eos_token_id=(eos[0] if len(eos) == 1 else list(eos)) if eos else None,
      pad_token_id=pad, return_dict_in_generate=True, output_scores=True)
  model.generation_config = copy.deepcopy(gen)
  x = torch.tensor([prompt], dtype=torch.long)
  calls_before = len(spy.calls)
  with torch.no_grad():
    out = model.generate(input_ids=x, attention_mask=torch.ones_like(x),
                         generation_config=gen)
  problems = []
  if spy.active:
    new_calls = spy.calls[calls_before:]
    problems += CheckCall(new_calls[-1] if new_calls else None, w, n, lp, es,
                          eos, len(prompt) + MAX_NEW_TOKENS, pad, what)
  seqs = getattr(out, "sequences", None)
  scores = getattr(out, "sequences_scores", None)
  beam_indices = getattr(out, "beam_indices", None)
  if seqs is None or scores is None or beam_indices is None:
    raise RuntimeError(
        "%s: generate() returned %s without sequences, sequences_scores or "
        "beam_indices (return_dict_in_generate=True, output_scores=True "
        "were passed)" % (what, type(out).__name__))
  if seqs.shape[0] != n or scores.shape[0] != n:
    raise RuntimeError("%s: generate() returned %d sequences, %d scores; "
                       "want %d" % (what, seqs.shape[0], scores.shape[0], n))
  ids, values = [], []
  plen = len(prompt)
  for r in range(n):
    if [int(v) for v in seqs[r, :plen]] != list(prompt):
      problems.append("%s: sequence %d does not start with the prompt" %
                      (what, r))
    valid = [bool(v) for v in (beam_indices[r] != -1)]
    length = sum(valid)
    if valid != [True] * length + [False] * (len(valid) - length):
      problems.append("%s: sequence %d beam_indices %s are not a prefix" %
                      (what, r, beam_indices[r].tolist()))
    generated = [int(v) for v in seqs[r, plen:plen + length]]
    if len(generated) != length or not (
        length == MAX_NEW_TOKENS or
        (0 < length < MAX_NEW_TOKENS and generated[-1] in eos)):
      problems.append("%s: sequence %d has %d generated ids %s (max %d, eos "
                      "%s)" % (what, r, length, generated, MAX_NEW_TOKENS,
                               eos))
    ids.append(generated)
    values.append(float(scores[r]))
  return {"ids": ids, "scores": values, "problems": problems}


def ReimplementedBeamSearch(model, prompt, w, n, lp, es, eos):
  """SEMANTICS step by step, with a full forward pass per step (no cache).

  Also measures the gap at every decision (FIELDS["min_decision_margin"]).
  """
  import torch
  eos = set(eos)
  m = MAX_NEW_TOKENS
  beams = [([], torch.tensor(0.0, dtype=torch.float32))]  # Best first.
  hyps = []  # (penalised float32 score, ids), best first.
  gaps = []  # (gap in log-prob units, where)
  eos_hypotheses = 0

  def PenalisedGap(a, b):  # a, b: (penalised score, ids)
    return LogProbGap(float(a[0]), len(a[1]), float(b[0]), len(b[1]), lp)

  t = 0
  for t in range(1, m + 1):
    seqs = torch.tensor([list(prompt) + ids for ids, _ in beams],
                        dtype=torch.long)
    with torch.no_grad():
      logits = model(input_ids=seqs, use_cache=False).logits[:, -1, :].float()
    logp = torch.log_softmax(logits, dim=-1)
    vocab = logp.shape[1]
    beam_scores = torch.stack([s for _, s in beams])
    acc = (logp + beam_scores[:, None]).reshape(-1)
    # Enough candidates for W + 1 non-finishing ones (<= |E| per beam finish).
    k = min(acc.numel(), w * (1 + len(eos)) + 1)
    vals, idx = torch.topk(acc, k)
    cands = [(vals[i], int(idx[i]) // vocab, int(idx[i]) % vocab)
             for i in range(k)]

    def Finishes(tok, t=t):
      return tok in eos or t == m

    offered = []
    for score, b, tok in cands[:w]:
      if Finishes(tok):
        offered.append((score / (t ** lp), beams[b][0] + [tok]))
        eos_hypotheses += tok in eos
    if k > w and (Finishes(cands[w - 1][2]) or Finishes(cands[w][2])):
      gaps.append((float(cands[w - 1][0]) - float(cands[w][0]),
                   "step %d: candidates %d/%d (finishing)" % (t, w, w + 1)))
    if offered:
      pool = sorted(hyps + offered, key=lambda h: -float(h[0]))
      if len(pool) > w:
        gaps.append((PenalisedGap(pool[w - 1], pool[w]),
                     "step %d: hypotheses %d/%d" % (t, w, w + 1)))
      hyps = pool[:w]
    if t == m:
      break
    going_on = [c for c in cands if not Finishes(c[2])]
    if len(going_on) < w:
      raise RuntimeError("step %d: %d non-finishing candidates < %d" %
                         (t, len(going_on), w))
    if len(going_on) > w:
      gaps.append((float(going_on[w - 1][0]) - float(going_on[w][0]),
                   "step %d: running beams %d/%d" % (t, w, w + 1)))
    beams = [(beams[b][0] + [tok], score) for score, b, tok in going_on[:w]]
    if len(hyps) == w:
      if es:
        break
      best_running = beams[0][1] / (t ** lp)
      worst = min(hyps, key=lambda h: float(h[0]))
      gaps.append((PenalisedGap((best_running, beams[0][0]), worst),
                   "step %d: early-stop heuristic" % t))
      if not bool(best_running > worst[0]):
        break
  out = hyps[:n]
  for i in range(len(out) - 1):
    gaps.append((PenalisedGap(out[i], out[i + 1]),
                 "returned %d/%d" % (i + 1, i + 2)))
  if len(hyps) > n:
    gaps.append((PenalisedGap(out[-1], hyps[n]),
                 "returned %d / hypothesis %d" % (n, n + 1)))
  gap, where = min(gaps) if gaps else (None, "no decision")
  return {"ids": [ids for _, ids in out],
          "scores": [float(s) for s, _ in out], "num_steps": t,
          "eos_hypotheses": eos_hypotheses, "min_decision_margin": gap,
          "min_decision_margin_at": where}


def ChooseEos(model, spy, prompt, p, w, pad, problems):
  """An eos id that beam search with W beams really reaches for this prompt.

  Candidates: the ids at EOS_PICK_POSITIONS of the best and second-best beam
  of a search without eos (n = W, lp 1, early_stopping False), ids >=
  FIRST_PROMPT_ID, first seen first. Each is tried as the eos id in the same
  search; the one that ends most returned sequences wins (first on ties).
  """
  base = HfBeamSearch(model, spy, prompt, w, w, 1.0, False, [], pad)
  problems += base["problems"]
  picks = []
  for beam in range(min(EOS_PICK_BEAMS, len(base["ids"]))):
    for pos in EOS_PICK_POSITIONS:
      tok = base["ids"][beam][pos]
      if tok >= FIRST_PROMPT_ID and tok not in [q[0] for q in picks]:
        picks.append((tok, beam, pos))
  if not picks:
    raise RuntimeError("prompt %d W %d: no id >= %d at positions %s of the "
                       "best beams %s" % (p, w, FIRST_PROMPT_ID,
                                          EOS_PICK_POSITIONS, base["ids"]))
  tried = []
  for tok, _, _ in picks:
    r = HfBeamSearch(model, spy, prompt, w, w, 1.0, False, [tok], pad)
    problems += r["problems"]
    tried.append([tok, sum(1 for ids in r["ids"] if ids and ids[-1] == tok)])
  best = max(range(len(picks)), key=lambda i: (tried[i][1], -i))
  tok, beam, pos = picks[best]
  return {"prompt_index": p, "num_beams": w, "eos_token_id": tok,
          "picked_from_beam": beam, "picked_from_position": pos,
          "candidates": tried}


def MakeCase(model, spy, prompt, entry, eos_by_width, pad, problems):
  p, w, n, lp, es, with_eos = entry
  eos = [eos_by_width[w]["eos_token_id"]] if with_eos else []
  what = CaseName(p, w, n, lp, es, eos)
  hf = HfBeamSearch(model, spy, prompt, w, n, lp, es, eos, pad)
  again = HfBeamSearch(model, spy, prompt, w, n, lp, es, eos, pad)
  problems += hf["problems"] + again["problems"]
  deterministic = hf["ids"] == again["ids"] and hf["scores"] == again["scores"]
  if not deterministic:
    problems.append("%s: two generate() runs differ: %s %s / %s %s" %
                    (what, hf["ids"], hf["scores"], again["ids"],
                     again["scores"]))
  ref = ReimplementedBeamSearch(model, prompt, w, n, lp, es, eos)
  diffs = [abs(a - b) for a, b in zip(hf["scores"], ref["scores"])]
  diff = max(diffs) if diffs else None
  if (ref["ids"] != hf["ids"] or len(ref["scores"]) != len(hf["scores"]) or
      diff is None or diff > SCORE_TOLERANCE):
    problems.append(
        "%s: the reimplementation of 'semantics' disagrees with generate(): "
        "%s %s vs generate() %s %s (min decision margin %.3g at %s)" %
        (what, ref["ids"], ref["scores"], hf["ids"], hf["scores"],
         ref["min_decision_margin"], ref["min_decision_margin_at"]))
  ends = [bool(ids) and ids[-1] in eos for ids in hf["ids"]]
  return {
      "prompt_index": p,
      "prompt_ids": list(prompt),
      "num_beams": w,
      "num_return_sequences": n,
      "length_penalty": lp,
      "early_stopping": es,
      "max_new_tokens": MAX_NEW_TOKENS,
      "eos_token_ids": eos,
      "output_ids": hf["ids"],
      "sequences_scores": hf["scores"],
      "ends_with_eos": ends,
      "any_ends_with_eos": any(ends),
      "min_score_gap": MinScoreGap(hf["scores"]),
      "min_decision_margin": ref["min_decision_margin"],
      "min_decision_margin_at": ref["min_decision_margin_at"],
      "num_steps": ref["num_steps"],
      "eos_hypotheses": ref["eos_hypotheses"],
      "deterministic": deterministic,
      "reimplementation_max_abs_score_diff": diff,
  }


def PromptCases(model, spy, name, p, length, vocab, pad, plan, min_margin):
  """One prompt's cases, the prompt drawn again until all margins hold.

  Returns (cases, eos_choices, problems, attempts, margin_ok); when no attempt
  reaches min_margin, the attempt with the largest smallest margin.
  """
  best = None
  for attempt in range(MAX_PROMPT_ATTEMPTS):
    seed = PromptSeed(name, p, length, attempt)
    prompt = MakePrompt(seed, length, vocab)
    problems = []
    choices = {w: ChooseEos(model, spy, prompt, p, w, pad, problems)
               for w in BEAM_WIDTHS}
    cases = [MakeCase(model, spy, prompt, e, choices, pad, problems)
             for e in plan if e[0] == p]
    for c in cases:
      c["prompt_seed"] = seed
    worst = min(c["min_decision_margin"] for c in cases)
    result = (cases, [choices[w] for w in BEAM_WIDTHS], problems, attempt + 1,
              worst >= min_margin)
    if best is None or worst > best[0]:
      best = (worst, result)
    if worst >= min_margin:
      return result
    at = min(cases, key=lambda c: c["min_decision_margin"])
    Log("  prompt len %d attempt %d: decision margin %.2e < %g (%s, %s), "
        "resampling" % (length, attempt, worst, min_margin,
                        CaseName(p, at["num_beams"],
                                 at["num_return_sequences"],
                                 at["length_penalty"], at["early_stopping"],
                                 at["eos_token_ids"]),
                        at["min_decision_margin_at"]))
  return best[1]


def MakeOne(name, model_dir, min_margin, versions):
  with open(os.path.join(model_dir, "config.json")) as f:
    cfg = json.load(f)
  vocab = cfg["vocab_size"]
  pad = cfg.get("pad_token_id")
  pad = DEFAULT_PAD_ID if pad is None else pad
  model, attn = LoadModel(model_dir)
  if model.config.vocab_size != vocab:
    raise RuntimeError("%s: loaded vocab_size %d != config.json %d" %
                       (name, model.config.vocab_size, vocab))
  Log("%s: vocab %d, pad %d, attn %s" % (name, vocab, pad, attn))
  plan = CasePlan()
  errors, cases, eos_choices = [], [], []
  with BeamSearchSpy(type(model)) as spy:
    for p, length in enumerate(PROMPT_LENGTHS):
      pcases, choices, problems, attempts, ok = PromptCases(
          model, spy, name, p, length, vocab, pad, plan, min_margin)
      errors += problems
      if not ok:
        errors.append("%s prompt len %d: no prompt in %d attempts had every "
                      "decision margin >= %g; kept the best (%.2e)" %
                      (name, length, MAX_PROMPT_ATTEMPTS, min_margin,
                       min(c["min_decision_margin"] for c in pcases)))
      for c in choices:
        c["prompt_attempts"] = attempts
      cases += pcases
      eos_choices += choices
      with_eos = [c for c in pcases if c["eos_token_ids"]]
      Log("  prompt len %2d: %d attempt(s), eos %s, eos cases: %d of %d end a "
          "returned sequence with eos, %d stop before %d steps; min margin "
          "%.3g" % (length, attempts,
                    [c["eos_token_id"] for c in choices],
                    sum(c["any_ends_with_eos"] for c in with_eos),
                    len(with_eos),
                    sum(c["num_steps"] < MAX_NEW_TOKENS for c in with_eos),
                    MAX_NEW_TOKENS,
                    min(c["min_decision_margin"] for c in pcases)))
  # Field order: the case's inputs first, then outputs, then the checks.
  order = ["prompt_index", "prompt_seed", "prompt_ids", "num_beams",
           "num_return_sequences", "length_penalty", "early_stopping",
           "max_new_tokens", "eos_token_ids"]
  cases = [dict([(k, c[k]) for k in order] +
                [(k, v) for k, v in c.items() if k not in order])
           for c in cases]
  eos_cases = [c for c in cases if c["eos_token_ids"]]
  beam = {
      "model": name,
      "generator": "tools/make_beam_references.py",
      "reference": {
          "library": versions,
          "device": "cpu",
          "dtype": "float32",
          "attn_implementation": attn,
          "call": GENERATE_CALL,
          "checks": CHECKS,
      },
      "semantics": SEMANTICS,
      "vocab_size": vocab,
      "pad_token_id": pad,
      "max_new_tokens": MAX_NEW_TOKENS,
      "prompt_ids_rule": (
          "no tokenizer: random.Random(prompt_seed) (Python, string seed), "
          "then [rng.randrange(%d, vocab_size) for _ in range(length)] for "
          "lengths %s; no bos; a prompt is drawn again (attempt+1) until "
          "every case of it has min_decision_margin >= "
          "min_decision_margin_required" %
          (FIRST_PROMPT_ID, list(PROMPT_LENGTHS))),
      "eos_rule": (
          "eos_token_ids is [] or one id chosen per prompt and num_beams "
          "(eos_choices): a search without eos (num_return_sequences = "
          "num_beams, length_penalty 1, early_stopping False) gives "
          "candidates, the ids at generated positions %s (0-based) of its "
          "best and second-best sequence that are >= %d; each is tried as "
          "the eos id in the same search and the one that ends the most "
          "returned sequences is kept (candidates = [[id, that count], "
          "...]); so beams really reach it and some hypotheses finish early"
          % (list(EOS_PICK_POSITIONS), FIRST_PROMPT_ID)),
      "case_rule": (
          "per prompt and num_beams W in %s: %d cases with eos, "
          "(length_penalty, early_stopping) read cyclically from %s, and %d "
          "without; num_return_sequences alternates between W and 1" %
          (list(BEAM_WIDTHS), EOS_CASES_PER_WIDTH,
           [list(s) for s in EOS_CASE_SETTINGS], NO_EOS_CASES_PER_WIDTH)),
      "fields": FIELDS,
      "min_decision_margin_required": min_margin,
      "min_decision_margin": min(c["min_decision_margin"] for c in cases),
      "num_cases": len(cases),
      "num_eos_cases_ending_with_eos": sum(c["any_ends_with_eos"]
                                           for c in eos_cases),
      "num_cases_stopped_early": sum(c["num_steps"] < MAX_NEW_TOKENS
                                     for c in cases),
      "eos_choices": eos_choices,
      "cases": cases,
  }
  path = os.path.join(model_dir, "beam.json")
  WriteJson(path, beam)
  summary = {"name": name, "cases": len(cases),
             "eos_cases": len(eos_cases),
             "eos_cases_ending_with_eos": beam["num_eos_cases_ending_with_eos"],
             "stopped_early": beam["num_cases_stopped_early"],
             "min_decision_margin": beam["min_decision_margin"],
             "bytes": os.path.getsize(path), "errors": errors}
  Log("%s: %d cases (%d with eos, %d of them end a returned sequence with "
      "eos), %d stopped early, min decision margin %.3g, %d bytes, errors %d"
      % (name, len(cases), len(eos_cases), summary["eos_cases_ending_with_eos"],
         summary["stopped_early"], summary["min_decision_margin"],
         summary["bytes"], len(errors)))
  for e in errors:
    Log("  ERROR " + e)
  return summary


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--models", default=",".join(MODEL_SPECS),
                  help="comma-separated model folder names (default: %s)" %
                  ",".join(MODEL_SPECS))
  ap.add_argument("--out-root", default=os.path.normpath(DEFAULT_OUT_ROOT),
                  help="folder holding <model>/config.json and "
                  "model.safetensors; beam.json is written beside them")
  ap.add_argument("--min-margin", type=float, default=1e-3,
                  help="smallest decision margin a prompt's cases may have")
  args = ap.parse_args()
  names = [n.strip() for n in args.models.split(",") if n.strip()]
  if not names:
    ap.error("--models names no model")
  missing = ["%s/%s" % (n, f) for n in names
             for f in ("config.json", "model.safetensors")
             if not os.path.isfile(os.path.join(args.out_root, n, f))]
  if missing:
    ap.error("missing in %s: %s. Make the models first: "
             "tools/make_golden_models.py --out %s [--only NAME ...]" %
             (args.out_root, ", ".join(missing), args.out_root))

  import torch
  import transformers
  torch.manual_seed(0)
  torch.set_num_threads(min(8, os.cpu_count() or 1))
  versions = "transformers %s, torch %s" % (transformers.__version__,
                                            torch.__version__)
  Log(versions)
  summaries, failed = [], False
  for name in names:
    t0 = time.time()
    try:
      s = MakeOne(name, os.path.join(args.out_root, name), args.min_margin,
                  versions)
      failed |= bool(s["errors"])
      summaries.append(s)
    except Exception:  # pylint: disable=broad-except
      failed = True
      Log("%s: FAILED\n%s" % (name, traceback.format_exc()))
      summaries.append({"name": name, "errors": [traceback.format_exc()]})
    Log("%s: %.1f s" % (name, time.time() - t0))
  Log("SUMMARY")
  for s in summaries:
    Log("  %-16s cases %s eos-ended %s/%s stopped-early %s min_margin %s "
        "bytes %s errors %d" % (
            s["name"], s.get("cases"), s.get("eos_cases_ending_with_eos"),
            s.get("eos_cases"), s.get("stopped_early"),
            s.get("min_decision_margin"), s.get("bytes"), len(s["errors"])))
  Log("RESULT: %s" % ("FAILED" if failed else "OK"))
  return 2 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
