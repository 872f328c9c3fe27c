"""Serving benchmark: `odqa serve` in a subprocess on 127.0.0.1, driven from this process by an async
client (aiohttp) at concurrency 1, 8 and 32 with a fixed count of KorQuAD 1.0 dev eval questions
(the article-level split's eval articles, unseen by the model; each level its own questions). Prints p50/p95/p99 latency,
throughput and errors per concurrency, then the command that reproduces it.

Without --model it builds the pipeline's default model first: BM25 (kiwi+bigram) over the split's
preprocessed passages, the default from-scratch reader (hidden 128, 2 layers, 2 heads) trained for
--train-steps steps (latency does not depend on how well it reads), logged with odqa.serving.log_model
and registered as models:/odqa@champion in a SQLite registry under --out-dir.

Targets on the 2-core development machines: p95 at concurrency 1 under 150 ms; throughput at 32 at
least 3x the throughput at 1; zero errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CONCURRENCY = (1, 8, 32)


def build_model(work: Path, train_steps: int, num_threads: int) -> str:
    """The pipeline's default model over KorQuAD dev's train split, registered as odqa@champion;
    returns the tracking URI."""
    from odqa import registry, serving, tracking
    from odqa.data.korquad import KorquadSplitConfig, prepare_korquad
    from odqa.preprocess import PreprocessConfig, preprocess
    from odqa.reader.config import ReaderTrainConfig
    from odqa.reader.train import train_reader
    from odqa.retrieval.base import build_index
    from odqa.settings import korquad_dev_path

    split = prepare_korquad(KorquadSplitConfig(), korquad_dev_path(), work / "split")
    passages = preprocess(PreprocessConfig(), split.documents_path, work / "passages")
    index = build_index("bm25", {"analyzer": "kiwi+bigram"}, passages.passages_path, work / "index")
    reader = train_reader(
        ReaderTrainConfig(max_steps=train_steps, num_threads=num_threads),
        split.train_path,
        work / "reader",
        corpus_path=passages.passages_path,
    )
    uri = tracking.sqlite_uri(work / "mlflow.db")
    run_id = tracking.start_pipeline_run(uri, "bench-serving", "build")
    model_uri = serving.log_model(uri, run_id, index, [reader], {}, {}, top_k=20)
    version = registry.register_version(uri, "odqa", model_uri)
    tracking.client(uri).set_registered_model_alias("odqa", registry.CHAMPION, version)
    return uri


def eval_questions(work: Path, count: int) -> list[str]:
    from odqa.data import load_qa
    from odqa.data.korquad import KorquadSplitConfig, prepare_korquad
    from odqa.settings import korquad_dev_path

    split_dir = work / "split"
    if not (split_dir / "eval.jsonl").is_file():
        prepare_korquad(KorquadSplitConfig(), korquad_dev_path(), split_dir)
    questions = [e.question for e in load_qa(split_dir / "eval.jsonl").examples]
    return questions[:count]


class Server:
    """`odqa serve` in a subprocess; returns once it listens and a model serves (read from its output,
    no polling). Its request log is drained to a file."""

    def __init__(self, model: str, tracking_uri: str, log_path: Path, extra: list[str]):
        odqa = Path(sys.executable).with_name("odqa")
        argv = [str(odqa), "serve", "--model", model, "--tracking-uri", tracking_uri, "--port", "0", *extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"odqa serve exited: {self.proc.stderr.read()}")
        self.url = json.loads(line)["url"]
        self._log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 (closed in stop)
        for line in self.proc.stderr:
            self._log.write(line)
            if "serving version" in line:
                break
        else:
            raise SystemExit(f"odqa serve stopped before serving a model (log: {log_path})")
        self._drain = threading.Thread(target=self._copy, daemon=True)
        self._drain.start()

    def _copy(self) -> None:
        for line in self.proc.stderr:
            self._log.write(line)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self._drain.join(10)
        self._log.close()


async def drive(url: str, questions: list[str], concurrency: int) -> dict:
    """Send every question once, `concurrency` at a time; latency per request from send to body read."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    pending = iter(questions)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal errors
            for question in pending:
                t0 = time.perf_counter()
                try:
                    async with session.post(f"{url}/v1/answer", json={"question": question}) as r:
                        body = await r.json()
                        ok = r.status == 200 and "answer" in body
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "p50_ms": q[49] * 1000,
        "p95_ms": q[94] * 1000,
        "p99_ms": q[98] * 1000,
        "throughput": len(latencies) / wall,
        "wall_s": wall,
        "errors": errors,
    }


def batch_sizes(url: str) -> tuple[float, float]:
    """(reader calls, questions) so far, from the service's Prometheus metrics."""
    import urllib.request

    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith(("odqa_batch_questions_count", "odqa_batch_questions_sum")):
            name, value = line.split()
            values[name] = float(value)
    return values.get("odqa_batch_questions_count", 0.0), values.get("odqa_batch_questions_sum", 0.0)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def markdown_table(rows: list[dict]) -> str:
    base = rows[0]["throughput"]
    lines = [
        "| concurrency | requests | p50 ms | p95 ms | p99 ms | req/s | vs c=1 | mean batch | server CPU ms/question "
        "| server cores busy | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cpu = r.get("cpu_s")
        per_question = f"{1000 * cpu / r['requests']:.1f}" if cpu is not None else "-"
        busy = f"{cpu / r['wall_s']:.2f}" if cpu is not None else "-"
        lines.append(
            f"| {r['concurrency']} | {r['requests']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['throughput']:.1f} | {r['throughput'] / base:.2f}x | {r['mean_batch']:.1f} | {per_question} "
            f"| {busy} | {r['errors']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="serve this model URI instead of building one (with --tracking-uri)")
    parser.add_argument("--tracking-uri", help="registry of --model")
    parser.add_argument("--out-dir", type=Path, help="work folder (default: a temp folder)")
    parser.add_argument("--questions", type=int, default=256, help="eval questions per concurrency level")
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)), help="comma-separated")
    parser.add_argument("--train-steps", type=int, default=20, help="steps of the built reader")
    parser.add_argument("--num-threads", type=int, default=2, help="torch threads (building)")
    parser.add_argument("--warmup", type=int, default=16, help="requests before measuring")
    parser.add_argument("serve_args", nargs="*", help="more `odqa serve` flags, after --")
    args = parser.parse_args(argv)
    if bool(args.model) != bool(args.tracking_uri) and args.model:
        parser.error("--model needs --tracking-uri")

    work = args.out_dir or Path(tempfile.mkdtemp(prefix="odqa-bench-serving-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.model:
        model, tracking_uri = args.model, args.tracking_uri
    else:
        t0 = time.perf_counter()
        model, tracking_uri = "models:/odqa@champion", build_model(work, args.train_steps, args.num_threads)
        print(f"built the model in {time.perf_counter() - t0:.0f}s ({work})", file=sys.stderr)
    levels = [int(c) for c in args.concurrency.split(",")]
    # each level its own questions (and the warm-up others again): the service keeps what it computed
    # for spans it has seen, so asking one level's questions again would flatter the later levels
    pool = eval_questions(work, args.warmup + args.questions * len(levels))
    if len(pool) < args.warmup + args.questions * len(levels):
        parser.error(
            f"--questions {args.questions} x {len(levels)} levels + warm-up exceeds the {len(pool)} eval questions"
        )
    warmup, pool = pool[: args.warmup], pool[args.warmup :]
    questions = [pool[i * args.questions : (i + 1) * args.questions] for i in range(len(levels))]

    server = Server(model, tracking_uri, work / "serve.log", args.serve_args)
    rows = []
    try:
        asyncio.run(drive(server.url, warmup, min(args.warmup, 8)))
        for c, level_questions in zip(levels, questions, strict=True):
            before, cpu_before = batch_sizes(server.url), cpu_seconds(server.proc.pid)
            row = asyncio.run(drive(server.url, level_questions, c))
            after, cpu_after = batch_sizes(server.url), cpu_seconds(server.proc.pid)
            # CPU the server spent per question: when c=1 already keeps the cores busy, batching cannot
            # multiply throughput, only save what a reader call costs beyond its questions
            row["cpu_s"] = (
                cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
            )
            calls = after[0] - before[0]
            row["mean_batch"] = (after[1] - before[1]) / calls if calls else 0.0
            rows.append(row)
            print(f"done concurrency {c}", file=sys.stderr)
    finally:
        server.stop()

    load = os.getloadavg()
    print(markdown_table(rows))
    print()
    print(
        f"{args.questions} KorQuAD dev eval questions per level (other questions at each level); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"on {os.cpu_count()} cores; server log {work / 'serve.log'}"
    )
    command = ["python", "bench/serving.py"] + (argv if argv is not None else sys.argv[1:])
    print(f"Reproduce: .venv/bin/{shlex.join(command)}")
    p95_ok = rows[0]["p95_ms"] < 150 if levels[0] == 1 else None
    scale = rows[-1]["throughput"] / rows[0]["throughput"] if len(rows) > 1 else None
    print(
        f"targets: p95 at c=1 < 150 ms: {p95_ok}; throughput c={levels[-1]} / c={levels[0]} = "
        f"{scale:.2f}x (>= 3x: {scale is not None and scale >= 3}); errors: {sum(r['errors'] for r in rows)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
