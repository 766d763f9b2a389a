"""Load test of the OpenAI-compatible server: concurrent clients against ``python -m anymal.serve`` on a tiny model.

Usage::

    python bench/bench_serve_load.py      # 32 clients x 100 requests; writes bench/results/serve_load.json
    python bench/bench_serve_load.py --clients 8 --requests 20 --out /tmp/serve.json

The model is the stories260K LLaMA (../shared/assets, a real 260K-parameter model with its tokenizer) with the IMU
plugin, saved to a temporary folder and served by a real server process (``python -m anymal.serve``) on loopback.
Each client is a thread with the official ``openai`` client sending ``--requests`` requests one after another: a
mix of non-streaming and streaming, greedy and sampled (temperature 0.8, top_p 0.9, per-request seed), a quarter
with an IMU recording, ``max_tokens`` 16. The run is made twice: batched (``--max-batch``, default 32, with
``--batch-wait-ms``) and one request at a time (``--max-batch 1``), so the table shows what batching buys.

Reported per mode: requests, errors (any exception or non-200; target 0), wall time, requests/s, completion
tokens/s, latency p50/p99 (request sent to last byte) and the mean batch size the server ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import report


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _save_model(folder: Path) -> None:
    from anymal.testing import STORIES260K_ASSET, require_asset, tiny_anymal

    tiny_anymal(("imu",), llm=require_asset(STORIES260K_ASSET)).save_pretrained(folder)


def _start_server(folder: Path, port: int, max_batch: int, wait_ms: float, threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    command = [sys.executable, "-m", "anymal.serve", "--model", str(folder), "--model-name", "stories260K"]
    command += ["--port", str(port)]
    command += ["--max-batch", str(max_batch), "--batch-wait-ms", str(wait_ms), "--max-queue", "1024"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read() if server.stderr else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("the server did not start within 180 s")


def _request(i: int) -> dict:
    """The i-th request of a client: every other one streamed, every other pair sampled, a quarter with IMU."""
    kwargs: dict = {"model": "stories260K", "max_tokens": 16, "stream": i % 2 == 0}
    if (i // 2) % 2:
        kwargs.update(temperature=0.8, top_p=0.9, seed=i)
    else:
        kwargs.update(temperature=0)
    content: list = [{"type": "text", "text": f"Once upon a time, story {i}:"}]
    if i % 4 == 3:
        samples = np.random.default_rng(i).normal(size=(100, 6)).round(3).tolist()
        content.insert(0, {"type": "input_imu", "input_imu": {"samples": samples, "rate": 50}})
    kwargs["messages"] = [{"role": "user", "content": content}]
    return kwargs


def _client(url: str, n: int, latencies: list, tokens: list, errors: list, offset: int) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)
    for i in range(n):
        kwargs = _request(offset + i)
        start = time.perf_counter()
        try:
            if kwargs["stream"]:
                kwargs["stream_options"] = {"include_usage": True}
                used = 0
                for chunk in client.chat.completions.create(**kwargs):
                    if chunk.usage is not None:
                        used = chunk.usage.completion_tokens
            else:
                used = client.chat.completions.create(**kwargs).usage.completion_tokens
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        latencies.append(time.perf_counter() - start)
        tokens.append(used)


def _run(folder: Path, mode: str, max_batch: int, args: argparse.Namespace) -> dict:
    port = _free_port()
    server = _start_server(folder, port, max_batch, args.batch_wait_ms, args.server_threads)
    url = f"http://127.0.0.1:{port}"
    try:
        _client(url, 4, [], [], [], offset=10_000)  # warm-up
        latencies: list[float] = []
        tokens: list[int] = []
        errors: list[str] = []
        threads = [
            threading.Thread(target=_client, args=(url, args.requests, latencies, tokens, errors, c * args.requests))
            for c in range(args.clients)
        ]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        with urllib.request.urlopen(f"{url}/health") as response:
            health = json.load(response)
    finally:
        server.terminate()
        server.wait(timeout=30)
    lat = sorted(latencies)
    if errors:
        print(f"{mode}: {len(errors)} errors, first: {errors[0]}", file=sys.stderr)
    return {
        "mode": mode,
        "max_batch": max_batch,
        "clients": args.clients,
        "requests": args.clients * args.requests,
        "errors": len(errors),
        "wall_s": round(wall, 2),
        "req_per_s": len(lat) / wall,
        "tokens_per_s": sum(tokens) / wall,
        "p50_ms": 1000 * statistics.median(lat) if lat else None,
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None,
        "mean_batch": health["batched_requests"] / max(1, health["generate_calls"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=100, help="requests per client")
    parser.add_argument("--max-batch", type=int, default=32, help="the batched run's --max-batch (one per client)")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--server-threads", type=int, default=1, help="torch threads of the server process")
    parser.add_argument("--skip-sequential", action="store_true", help="leave out the one-at-a-time run")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/serve_load.json)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        _save_model(folder)
        rows = [_run(folder, "batched", args.max_batch, args)]
        if not args.skip_sequential:
            rows.append(_run(folder, "one at a time", 1, args))
            rows[0]["speedup"] = rows[0]["req_per_s"] / rows[1]["req_per_s"]
    for row in rows:
        row["machine"] = f"{platform.machine()} {os.cpu_count()} cpus"
    report("serve_load", rows, args.out)


if __name__ == "__main__":
    main()
