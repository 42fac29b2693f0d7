#!/usr/bin/env python3
"""The reference renderer for tests/text/chat_template: Python's jinja2 set up exactly as
transformers' apply_chat_template sets it up (transformers/utils/chat_template_utils.py):

    ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                  extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    filters["tojson"] = json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)
    globals: raise_exception(message) -> TemplateError, strftime_now(format)

and rendered with transformers' variables: messages, tools (None without tools), documents
(None), add_generation_prompt, the tokenizer's special tokens (special_tokens_map: the set ones,
as strings), then the request's extra kwargs. strftime_now formats a fixed time (FIXED_NOW) so
the C++ test can pass the same.

Usage: render.py TEST_DIR OUT_JSON
  TEST_DIR holds templates/models.json (+ the .jinja files), oracle/conversations.json and
  oracle/snippets.json. Renders every model x conversation x add_generation_prompt, and every
  snippet, in this one process; writes the results to OUT_JSON.

Runs on Debian 12's python3 + python3-jinja2 (3.1.2) and on newer jinja2 3.1.x.
"""
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

FIXED_NOW = datetime(2024, 7, 26, 10, 30, 5)  # a Friday; the C++ test uses the same


class AssistantTracker(jinja2.ext.Extension):
    """transformers' {% generation %} ... {% endgeneration %}: renders its body (the mask of
    assistant tokens it tracks in transformers is not needed here)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    @jinja2.pass_eval_context
    def _generation_support(self, context, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return FIXED_NOW.strftime(format)


def make_environment():
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


SPECIAL_TOKENS_ATTRIBUTES = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                             "mask_token", "additional_special_tokens"]


def token_text(token):
    if isinstance(token, dict):
        return token.get("content")
    return token


def special_tokens_map(config):
    """tokenizer.special_tokens_map: the attributes that are set (truthy), as strings."""
    result = {}
    for attr in SPECIAL_TOKENS_ATTRIBUTES:
        value = config.get(attr)
        if attr == "additional_special_tokens" and value:
            value = [token_text(t) for t in value]
        else:
            value = token_text(value)
        if value:
            result[attr] = value
    return result


def render(template, **variables):
    try:
        return {"ok": True, "text": template.render(**variables)}
    except Exception as e:  # the C++ renderer must fail too, with the same message for TemplateError
        return {"ok": False, "type": type(e).__name__, "message": str(e)}


def main():
    test_dir, out_path = sys.argv[1], sys.argv[2]
    env = make_environment()
    with open(os.path.join(test_dir, "templates", "models.json"), encoding="utf-8") as f:
        models = json.load(f)
    with open(os.path.join(test_dir, "oracle", "conversations.json"), encoding="utf-8") as f:
        conversations = json.load(f)
    with open(os.path.join(test_dir, "oracle", "snippets.json"), encoding="utf-8") as f:
        snippets = json.load(f)

    chats = []
    for model in models:
        with open(os.path.join(test_dir, "templates", model["file"]), encoding="utf-8", newline="") as f:
            source = f.read()
        template = env.from_string(source)
        tokens = special_tokens_map(model["special_tokens"])
        for conversation in conversations:
            for add_generation_prompt in (False, True):
                kwargs = {**tokens, **conversation.get("kwargs", {})}
                result = render(template, messages=conversation["messages"], tools=conversation.get("tools"),
                                documents=None, add_generation_prompt=add_generation_prompt, **kwargs)
                result.update(model=model["name"], conversation=conversation["name"],
                              add_generation_prompt=add_generation_prompt)
                chats.append(result)

    snippet_results = []
    for snippet in snippets:
        try:
            template = env.from_string(snippet["template"])
        except Exception as e:
            snippet_results.append({"ok": False, "type": type(e).__name__, "message": str(e)})
            continue
        snippet_results.append(render(template, **snippet.get("context", {})))

    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"python": sys.version.split()[0], "jinja2": jinja2.__version__, "chats": chats,
                   "snippets": snippet_results}, f, ensure_ascii=True)


if __name__ == "__main__":
    main()
