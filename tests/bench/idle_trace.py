"""Where one job's time goes on an idle fleet, span by span: a diagnostic, not a benchmark.

    python -m tests.bench.idle_trace                     (8 GPUs, 10 probes, the median one shown)
    python -m tests.bench.idle_trace --probes 20 --show 5 --keep

Starts the embedded stack as ``bench-vs-slurm`` does (tests/bench/vs_slurm/ours.py), with every
process printing its OpenTelemetry spans (``GPUFLEET_OTEL_EXPORTER=console``: gRPC calls on both
sides, every SQL statement, Kafka sends and receives). It then runs idle-fleet probes as that
benchmark does (submit over REST, poll ``GET /v1/jobs/{id}`` every 5 ms until the job runs), half a
second apart, reads the spans back from the processes' logs and prints, for one probe, every span that
began between its submit and the poll that saw it running: milliseconds since the submit, duration,
process, trace id (the last hex digits: one request's spans share it) and name or SQL statement.

Tracing slows every process (a span printed per statement): absolute times here are some 30-40 %
above an untraced run's, so read this for the order and the shape of the hops, and take figures from
``make bench-vs-slurm``. The last line is one JSON object (the probes' client-side times)."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tests.bench.vs_slurm.ours import OurStack


@dataclass(frozen=True)
class Span:
    start: float  # epoch seconds
    end: float
    process: str
    name: str
    trace: str
    statement: str

    def line(self, t0: float) -> str:
        what = self.statement.replace("\n", " ")[:90] if self.statement else self.name[:90]
        return f"{(self.start - t0) * 1000:8.1f} {(self.end - self.start) * 1000:7.1f}  {self.process:<12} {self.trace}  {what}"


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def read_spans(logs: Path) -> list[Span]:
    """Every span the console exporter printed into ``logs/*.log`` (JSON objects among log lines)."""
    spans: list[Span] = []
    decoder = json.JSONDecoder()
    for log in sorted(logs.glob("*.log")):
        text, at = log.read_text(errors="replace"), 0
        while (begin := text.find('{\n    "name"', at)) >= 0:
            try:
                obj, at = decoder.raw_decode(text, begin)
            except ValueError:
                at = begin + 1
                continue
            attributes = obj.get("attributes") or {}
            spans.append(
                Span(
                    _epoch(obj["start_time"]),
                    _epoch(obj["end_time"]),
                    log.stem,
                    obj["name"],
                    obj["context"]["trace_id"][-6:],
                    str(attributes.get("db.statement", "")),
                )
            )
    spans.sort(key=lambda s: s.start)
    return spans


async def run(args: argparse.Namespace) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="gpufleet-idle-trace-"))
    stack = OurStack(root, gpus=args.gpus, extra_env={"GPUFLEET_OTEL_EXPORTER": "console"})
    probes = []
    try:
        await stack.start()
        await asyncio.sleep(2)  # the start-up's own spans settle
        for _ in range(args.probes):
            probes.append(await (stack.probe_watched() if args.watch else stack.probe()))
            await asyncio.sleep(0.5)
        await asyncio.sleep(1)  # the last spans are printed
        spans = read_spans(root / "logs")
        if args.keep:  # the stack removes its own folder when it closes
            kept = Path(tempfile.mkdtemp(prefix="gpufleet-idle-trace-logs-"))
            shutil.copytree(root / "logs", kept, dirs_exist_ok=True)
    finally:
        await stack.close()
        shutil.rmtree(root, ignore_errors=True)
    posts = [s for s in spans if s.process == "gateway" and s.name == "POST /v1/jobs"]
    if len(posts) < len(probes):
        raise SystemExit(f"found {len(posts)} submit spans for {len(probes)} probes: was tracing on?")
    posts = posts[-len(probes) :]  # the probes' submits are the last ones
    order = sorted(range(len(probes)), key=lambda i: probes[i].running_ms)
    shown = args.show if args.show is not None else order[len(order) // 2]
    t0, probe = posts[shown].start, probes[shown]
    until = t0 + probe.running_ms / 1000 + 0.005
    print(
        f"probe {shown}: allocated after {probe.allocated_ms:.1f} ms, running after {probe.running_ms:.1f} ms"
    )
    print(f"{'ms':>8} {'took':>7}  {'process':<12} {'trace':<6}  span")
    for span in spans:
        if t0 - 0.0005 <= span.start <= until:
            print(span.line(t0))
    if args.keep:
        print(f"(logs kept in {kept})")
    running = [p.running_ms for p in probes]
    return {
        "bench": "idle_trace",
        "gpus": args.gpus,
        "watched": args.watch,
        "probes": len(probes),
        "shown": shown,
        "traced_running_ms_p50": round(statistics.median(running), 1),
        "traced_allocated_ms_p50": round(statistics.median(p.allocated_ms for p in probes), 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.idle_trace", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--show", type=int, default=None, help="which probe to print (default: the median)")
    parser.add_argument("--keep", action="store_true", help="keep the stack's logs (every span)")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="follow each probe on GET /v1/jobs/{id}:watch instead of polling it",
    )
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
