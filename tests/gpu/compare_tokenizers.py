#!/usr/bin/env python3
"""Second tokenizer oracle: Hugging Face's Python tokenizers (transformers' fast tokenizer over
the Rust `tokenizers` library) against ours.

Ours runs on the build machine and writes, per document, the ids (special tokens added) and the
text they decode to (skip_special_tokens):
    pagedllm-tokenizer-bench --model_dir DIR --corpus corpus.json --dump DIR/ours-corpus.json
This script (where they are installed, e.g. the GPU node) encodes and decodes the same documents
with one of two Python implementations and counts the differences:
  --library tokenizers    the Rust library itself: Tokenizer.from_file(DIR/tokenizer.json), BOS /
                          EOS from tokenizer_config.json when tokenizer.json has no post-processor,
                          and transformers 4's clean_up_tokenization when the config asks for it
                          (what pagedllm and @huggingface/tokenizers implement);
  --library transformers  AutoTokenizer.from_pretrained(DIR) as installed (transformers 5 rebuilds
                          some pipelines itself, e.g. Llama's Metaspace, and skips the clean-up
                          for BPE: differences there are transformers' choices, reported as such).
    compare_tokenizers.py [--library tokenizers|transformers] ROOT
(ROOT/corpus.json, ROOT/bench400.json, ROOT/<model>/tokenizer.json and ours-*.json)
"""
import json
import os
import sys

import tokenizers
import transformers
from tokenizers import Tokenizer
from transformers import AutoTokenizer


CLEAN_UPS = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
             (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]


class RawTokenizer:
    """tokenizers.Tokenizer plus the tokenizer_config.json parts transformers 4 applied."""

    def __init__(self, model_dir):
        self.tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        spec = json.load(open(os.path.join(model_dir, "tokenizer.json")))
        config_path = os.path.join(model_dir, "tokenizer_config.json")
        config = json.load(open(config_path)) if os.path.exists(config_path) else {}
        self.prefix, self.suffix = [], []
        if not spec.get("post_processor"):
            def token_id(name):
                token = config.get(name)
                if isinstance(token, dict):
                    token = token.get("content")
                return self.tok.token_to_id(token) if token else None
            if config.get("add_bos_token") and token_id("bos_token") is not None:
                self.prefix = [token_id("bos_token")]
            if config.get("add_eos_token") and token_id("eos_token") is not None:
                self.suffix = [token_id("eos_token")]
        self.clean_up = bool(config.get("clean_up_tokenization_spaces", False))

    def encode(self, text):
        return self.prefix + self.tok.encode(text, add_special_tokens=True).ids + self.suffix

    def decode(self, ids):
        text = self.tok.decode(ids, skip_special_tokens=True)
        if self.clean_up:
            for before, after in CLEAN_UPS:
                text = text.replace(before, after)
        return text


class TransformersTokenizer:
    def __init__(self, model_dir):
        self.tok = AutoTokenizer.from_pretrained(model_dir)

    def encode(self, text):
        return self.tok(text, add_special_tokens=True)["input_ids"]

    def decode(self, ids):
        return self.tok.decode(ids, skip_special_tokens=True)


def main(root, library):
    failures = 0
    for model in sorted(os.listdir(root)):
        model_dir = os.path.join(root, model)
        if not os.path.isdir(model_dir):
            continue
        tok = RawTokenizer(model_dir) if library == "tokenizers" else TransformersTokenizer(model_dir)
        for corpus in ("corpus", "bench400"):
            ours_path = os.path.join(model_dir, f"ours-{corpus}.json")
            if not os.path.exists(ours_path):
                continue
            docs = json.load(open(os.path.join(root, f"{corpus}.json")))
            ours = json.load(open(ours_path))
            id_diffs, text_diffs, examples = 0, 0, []
            for doc, mine in zip(docs, ours):
                ids = tok.encode(doc)
                if ids != mine.get("ids"):
                    id_diffs += 1
                    if len(examples) < 3:
                        theirs_ids, my_ids = ids, mine.get("ids") or []
                        k = 0
                        while k < min(len(theirs_ids), len(my_ids)) and theirs_ids[k] == my_ids[k]:
                            k += 1
                        lo = max(0, k - 2)
                        examples.append(("ids", f"first difference at token {k}",
                                         [(i, tok.decode([i])) for i in theirs_ids[lo:k + 4]],
                                         [(i, tok.decode([i])) for i in my_ids[lo:k + 4]]))
                    continue
                text = tok.decode(ids)
                if text != mine.get("text"):
                    text_diffs += 1
                    if len(examples) < 3:
                        examples.append(("text", doc[:60], text[:60], mine.get("text", "")[:60]))
            print(f"{model:8s} {corpus:9s} {len(docs):5d} docs: {id_diffs} id differences, "
                  f"{text_diffs} decode differences")
            for kind, doc, theirs, mine in examples:
                print(f"    {kind}: {doc!r}\n      tokenizers: {theirs!r}\n      pagedllm:   {mine!r}")
            failures += id_diffs + text_diffs
    print(f"{library}: transformers {transformers.__version__}, tokenizers "
          f"{tokenizers.__version__}; total differences: {failures}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    library = "tokenizers"
    args = sys.argv[1:]
    if args[:1] == ["--library"]:
        library, args = args[1], args[2:]
    sys.exit(main(args[0], library))
