"""The benchmark suite of difusion: one command, a table on the terminal and a JSON file.

Three sections (``--only`` picks some):
- throughput: images/s of the full training loop against the bare network step, per variant
  (fp32, bf16 autocast, channels-last) and batch size, and the loop's overhead in percent
  (benchmarks/throughput.py);
- samplers: each sampler's own cost per network evaluation, measured by driving it with a null
  network, against the bare forward pass (benchmarks/sampler_overhead.py);
- memory: peak RSS of a training process and of a sampling process (benchmarks/memory.py).

    python benchmarks/run.py                        # the default Fashion-MNIST preset (~15 min)
    python benchmarks/run.py --tiny 20              # a tiny network on digits, about 20 s
    python benchmarks/run.py --only throughput --variants fp32 bf16 --batch-sizes 64
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import memory  # noqa: E402
import sampler_overhead  # noqa: E402
import throughput  # noqa: E402
import torch  # noqa: E402

SECTIONS = ("throughput", "samplers", "memory")
# --tiny: a network small enough that each measured step takes milliseconds.
TINY = [
    "model.base_channels=8",
    "model.channel_mult=[1,2]",
    "model.num_res_blocks=1",
    "model.attention_levels=[]",
]


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def tiny_steps(seconds: float, preset, overrides, variants, batch_sizes) -> int:
    """Measured steps per cell so the throughput section takes about 60% of ``seconds``."""
    cfg = throughput.variant_config(preset, overrides, "fp32", max(batch_sizes))
    t = throughput.bare_seconds_per_step(cfg, "fp32", 3, warmup=1)
    cells = len(variants) * len(batch_sizes)
    return int(min(50, max(6, 0.6 * seconds / (2 * cells * t) - 3)))


def print_table(title: str, rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """columns: (key, header, format)."""
    print(f"\n{title}")
    widths = [max(len(h), 9) for _, h, _ in columns]
    print("  ".join(h.rjust(w) for (_, h, _), w in zip(columns, widths, strict=True)))
    for r in rows:
        cells = [format(r[k], f) if f else str(r[k]) for k, _, f in columns]
        print("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="ddpm-fmnist")
    ap.add_argument("--set", action="append", default=[], help="a config override KEY=VALUE")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--variants", nargs="+", choices=throughput.VARIANTS,
                    default=list(throughput.VARIANTS))  # fmt: skip
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 64, 128])
    ap.add_argument("--steps", type=int, default=20, help="measured training steps per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sampler-batch", type=int, default=64)
    ap.add_argument("--sampler-steps", type=int, default=20)
    ap.add_argument("--tiny", type=float, default=None, metavar="SECONDS",
                    help="a budget for tests: digits, a tiny network, steps fitted to SECONDS")  # fmt: skip
    ap.add_argument("--json", default="runs/bench/bench.json", help="where to write the results")
    args = ap.parse_args(argv)
    preset, overrides = args.preset, list(args.set)
    steps, repeats = args.steps, args.repeats
    s_batch, s_steps, s_repeats, mem_steps, mem_n = (
        args.sampler_batch,
        args.sampler_steps,
        3,
        20,
        256,
    )
    if args.tiny is not None:
        preset = "digits" if args.preset == "ddpm-fmnist" else args.preset
        overrides = [*TINY, *overrides]
        repeats, s_batch, s_steps, s_repeats, mem_steps, mem_n = 1, 16, 4, 1, 5, 32
        if "throughput" in args.only:
            steps = tiny_steps(args.tiny, preset, overrides, args.variants, args.batch_sizes)
    out: dict = {"machine": machine(), "preset": preset, "overrides": overrides}
    out["tiny_seconds"] = args.tiny
    started = time.perf_counter()

    if "throughput" in args.only:
        rows = throughput.measure_throughput(
            preset, overrides, args.variants, args.batch_sizes, steps, repeats
        )
        out["throughput"] = rows
        print_table(
            f"Training throughput ({preset}, {steps} steps x {repeats} repeats, median)",
            rows,
            [
                ("variant", "variant", ""),
                ("batch", "batch", "d"),
                ("bare_images_per_s", "bare img/s", ".0f"),
                ("loop_images_per_s", "loop img/s", ".0f"),
                ("extra_ms_per_step", "extra ms/step", ".2f"),
                ("overhead_percent", "loop overhead %", ".1f"),
                ("overhead_with_ckpt_percent", "+ checkpoints %", ".1f"),
            ],
        )
    if "samplers" in args.only:
        rows = sampler_overhead.measure(
            preset, s_batch, s_steps, s_repeats, tuple(overrides), verbose=False
        )
        out["samplers"] = rows
        print_table(
            f"Sampler overhead (batch {s_batch}, {s_steps} steps, null network)",
            rows,
            [
                ("sampler", "sampler", ""),
                ("ms_per_call", "ms per call", ".2f"),
                ("forward_ms", "forward ms", ".2f"),
                ("sampler_alone_ms", "sampler alone ms", ".3f"),
                ("overhead_percent", "overhead %", ".2f"),
            ],
        )
    if "memory" in args.only:
        rows = [
            memory.peak_rss("train", preset, overrides, steps=mem_steps),
            memory.peak_rss("sample", preset, overrides, n=mem_n, steps=mem_steps),
        ]
        out["memory"] = rows
        print_table(
            "Peak memory (RSS, MiB; each job in a fresh process)",
            rows,
            [
                ("job", "job", ""),
                ("batch", "batch", "d"),
                ("setup_mb", "after setup", ".0f"),
                ("peak_mb", "peak", ".0f"),
                ("work_mb", "added by the job", ".0f"),
            ],
        )
    out["seconds"] = round(time.perf_counter() - started, 1)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    m = out["machine"]
    print(f"\n{m['cpu']}, {m['cores']} cores, torch {m['torch']}; {out['seconds']} s; -> {path}")
    return out


if __name__ == "__main__":
    main()
