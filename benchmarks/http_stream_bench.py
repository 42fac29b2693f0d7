#!/usr/bin/env python3
"""Streams a workload through the OpenAI HTTP API (server-sent events) at a fixed concurrency.

The HTTP twin of `pagedllm-bench --workload file`: the same requests (a workload file of JSON
lines {"prompt_ids": [...], "output_len": N}, as `pagedllm-bench --save_workload` writes), sent
as POST /v1/completions with stream, ignore_eos and the same temperature, so that the HTTP
path's throughput can be set beside the gRPC path's (RESULTS.md). Python's standard library
only (asyncio streams, hand-written HTTP/1.1 with chunked decoding): it runs on the GPU node.

  benchmarks/http_stream_bench.py --url http://127.0.0.1:8000 --workload workload.jsonl \
      --concurrency 1000 [--temperature 0] [--api_key KEY] [--output_json out.json]
"""
import argparse
import asyncio
import json
import statistics
import sys
import time
from urllib.parse import urlparse


async def read_chunked_events(reader, on_event):
    """Reads a chunked body and calls on_event(data) per server-sent event."""
    pending = b""
    while True:
        size_line = await reader.readline()
        if not size_line:
            raise ConnectionError("connection closed mid-stream")
        size = int(size_line.strip().split(b";")[0], 16)
        if size == 0:
            await reader.readline()
            return
        chunk = await reader.readexactly(size + 2)
        pending += chunk[:-2]
        while b"\n\n" in pending:
            event, pending = pending.split(b"\n\n", 1)
            if event.startswith(b"data: "):
                on_event(event[6:])


async def one_request(host, port, headers, body, stats):
    reader, writer = await asyncio.open_connection(host, port)
    payload = json.dumps(body).encode()
    request = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(payload)}\r\nConnection: close\r\n{headers}\r\n").encode() + payload
    started = time.perf_counter()
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    chunked = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower():
            chunked = True
    times = []
    tokens = [0]

    def on_event(data):
        if data == b"[DONE]":
            return
        event = json.loads(data)
        if "error" in event:
            raise RuntimeError(event["error"].get("message"))
        for choice in event.get("choices", []):
            if choice.get("text"):
                tokens[0] += 1
                times.append(time.perf_counter())

    if status != 200 or not chunked:
        body_text = await reader.read()
        stats["errors"].append(f"HTTP {status}: {body_text[:200]!r}")
    else:
        await read_chunked_events(reader, on_event)
    writer.close()
    end = time.perf_counter()
    if times:
        stats["ttft"].append(times[0] - started)
        if len(times) > 1:
            stats["tpot"].append((times[-1] - times[0]) / (len(times) - 1))
    stats["events"] += tokens[0]
    stats["e2e"].append(end - started)


async def run(args):
    url = urlparse(args.url)
    host, port = url.hostname, url.port or 80
    headers = f"Authorization: Bearer {args.api_key}\r\n" if args.api_key else ""
    requests = [json.loads(line) for line in open(args.workload) if line.strip()]
    if args.max_requests:
        requests = requests[: args.max_requests]
    stats = {"ttft": [], "tpot": [], "e2e": [], "events": 0, "errors": []}
    queue = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)

    async def worker():
        while not queue.empty():
            r = queue.get_nowait()
            body = {"prompt": r["prompt_ids"], "max_tokens": r["output_len"], "ignore_eos": True,
                    "temperature": args.temperature, "stream": True}
            if args.model:
                body["model"] = args.model
            try:
                await one_request(host, port, headers, body, stats)
            except Exception as error:  # noqa: BLE001 - every failure is counted and shown
                stats["errors"].append(repr(error))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(args.concurrency, len(requests)))))
    wall = time.perf_counter() - started
    output_tokens = sum(r["output_len"] for r in requests)

    def pct(values, p):
        return sorted(values)[min(len(values) - 1, int(p / 100 * len(values)))] * 1000 if values else 0

    result = {
        "transport": "http+sse", "requests": len(requests), "failed": len(stats["errors"]),
        "concurrency": args.concurrency, "wall_s": wall, "requests_per_s": len(requests) / wall,
        "output_tokens_per_s": output_tokens / wall, "events_with_text": stats["events"],
        "ttft_ms_p50": pct(stats["ttft"], 50), "ttft_ms_p99": pct(stats["ttft"], 99),
        "tpot_ms_mean": statistics.mean(stats["tpot"]) * 1000 if stats["tpot"] else 0,
        "tpot_ms_p99": pct(stats["tpot"], 99), "e2e_ms_p50": pct(stats["e2e"], 50),
    }
    print(f"http: {len(requests)} requests ({len(stats['errors'])} failed), concurrency "
          f"{args.concurrency}: wall {wall:.3f} s, {result['requests_per_s']:.2f} requests/s, "
          f"{result['output_tokens_per_s']:.1f} output tokens/s; TTFT p50 {result['ttft_ms_p50']:.1f} ms "
          f"p99 {result['ttft_ms_p99']:.1f} ms; TPOT mean {result['tpot_ms_mean']:.2f} ms "
          f"p99 {result['tpot_ms_p99']:.2f} ms")
    for error in stats["errors"][:5]:
        print("  error:", error)
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(result, f, indent=1)
    return 0 if not stats["errors"] else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--workload", required=True)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--max_requests", type=int, default=0)
    parser.add_argument("--model", default="")
    parser.add_argument("--api_key", default="")
    parser.add_argument("--output_json", default="")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
