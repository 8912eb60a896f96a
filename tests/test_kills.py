"""Fault injection, part two (issue 24): SIGKILL at random points, inside every file write too, then
resume, must give training bit-identical to an uninterrupted run and never a torn file; a full disk,
a file-size limit and a read-only file system must give one line, no traceback, and leave every
file that was there byte-identical with no temporary file behind.

The commands run in SERVER, a Python process that imports difusion once and forks a child for each
command (`difusion train`, `sample`, `eval` through ``difusion.cli.main``), so a kill costs a fork,
not seconds of imports. In the child, the ``os`` of :mod:`difusion.files`, through which every file
of a run is written (the test checks that no file of the run folder was written another way), is
wrapped so that the process SIGKILLs itself in the k-th write of a chosen file: with the temporary
file half written ("torn"), before its fsync ("fsync"), between fsync and rename ("replace"), just
after the rename ("renamed"), in the middle of a metrics line ("append-torn") or just after one
("append"). Others are SIGKILLed from the test at a random moment ("timer"). After every kill the
folder is checked: the checkpoint loads and equals the uninterrupted run's checkpoint of the same
step, tensor for tensor, bit for bit; config.yaml loads and is the run's; every whole metrics line
is the uninterrupted run's (a torn last line is allowed: the resume drops it); every picture or
samples file is byte-identical to the uninterrupted run's; temporary files are only those of the
write just killed (the start of the command removed the earlier ones). The run then goes on with
`--resume` (or, before its first checkpoint, starts again with `--overwrite`, as the refusal says)
until it finishes, bit-identical to the uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from difusion.checkpoint import load_checkpoint
from difusion.config import load_config, load_run_config

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SIGKILL, /proc/self/fd and mounts: Linux only"
)

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
CKPT = "checkpoint.safetensors"
# a small toy2d run: a checkpoint every step (checkpoint_minutes=0), so kills often land in one;
# every step logged, so kills land in metrics lines often (the carried-over loss window of
# log_every > 1 is tested in test_run_folders.py)
SMALL = [
    "train.checkpoint_minutes=0",
    "train.sample_every=0",
    "train.threads=1",
    "train.log_every=1",
    "sample.n=64",
    "model.hidden=32",
    "model.depth=2",
    "train.batch_size=64",
]
ATOMIC_OPS = ("torn", "fsync", "replace", "renamed")
END_FILES = ("loss.png", "report.md", "samples.npz", "samples_scatter.png", "trajectory.gif")
SAME_BYTES = ("config.yaml", "loss.png", "samples.npz", "samples_scatter.png", "trajectory.gif")

SERVER = r"""
import importlib, json, os, re, shutil, signal, sys, time, traceback
import difusion.files as files
from difusion.cli import main

# imported once (seconds); each command is a fork of this process (no time)
for name in ("difusion.training.loop", "difusion.build", "difusion.training.diffusion_objective",
             "difusion.data.toy2d", "difusion.runs", "difusion.viz", "matplotlib.pyplot",
             "PIL.Image", "torch._dynamo"):
    try:
        importlib.import_module(name)
    except ImportError:  # moved: imported in the command instead
        pass

TMP = re.compile(r"^\.(?P<name>.+)\.tmp-\d+$")


def command(plan, args):
    counts = {}
    trace = open(plan["trace"], "a") if plan.get("trace") else None
    aim = (plan.get("target"), plan.get("op"), plan.get("k"))

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def target_of(path):
        name = os.path.basename(path)
        m = TMP.match(name)
        return m["name"] if m else name

    def event(target, op, fd=None):
        counts[target, op] = k = counts.get((target, op), 0) + 1
        if trace:
            trace.write(f"{target} {op}\n")
            trace.flush()
        if plan.get("hold") == [target, op]:  # wait here for the kill from outside
            time.sleep(3600)
        if aim == (target, op, k):
            if op == "torn":  # the kill came while the temporary file was half written
                os.truncate(f"/proc/self/fd/{fd}", os.fstat(fd).st_size // 2)  # fd: read-only
            die()

    class Os:  # difusion.files.os: every write of the lab goes through it
        def __getattr__(self, name):
            return getattr(os, name)

        def fsync(self, fd):
            target = target_of(os.readlink(f"/proc/self/fd/{fd}"))
            event(target, "torn", fd)
            event(target, "fsync")
            os.fsync(fd)

        def replace(self, src, dst):
            target = target_of(dst)
            event(target, "replace")
            os.replace(src, dst)
            if plan.get("keep") and target == "checkpoint.safetensors":
                n = counts[target, "replace"]
                shutil.copy(dst, os.path.join(plan["keep"], f"{n}.safetensors"))
            event(target, "renamed")

        def write(self, fd, data):
            target = target_of(os.readlink(f"/proc/self/fd/{fd}"))
            if aim == (target, "append-torn", counts.get((target, "append"), 0) + 1):
                os.write(fd, data[: len(data) // 2])
                die()
            n = os.write(fd, data)
            event(target, "append")
            return n

    files.os = Os()
    if plan.get("fsize") is not None:  # a file-size limit: EFBIG instead of a kill (SIGXFSZ)
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (plan["fsize"], plan["fsize"]))
    os.environ.update(plan.get("env", {}))
    sys.argv = ["difusion", *args]
    main()


for line in sys.stdin:  # one command a line: [plan, args, log]; answers its pid, then its exit
    plan, args, log = json.loads(line)
    pid = os.fork()
    if pid == 0:
        for fd, ext in ((1, ".out"), (2, ".err")):
            os.dup2(os.open(log + ext, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        code = 1
        try:
            command(plan, args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        except BaseException:
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print(json.dumps(pid), flush=True)
    print(json.dumps(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])), flush=True)
"""


class Server:
    """SERVER: imports difusion once and forks a child for each command (the import takes seconds,
    a fork none); the children are the processes killed or limited."""

    def __init__(self, tmp: Path):
        self.tmp, self.n, self.child = tmp, 0, None
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, env=ENV,
        )  # fmt: skip

    def start(self, plan: dict, args: list[str]) -> int:
        """Start a command (``plan``: where to kill it, a file-size limit, environment)."""
        self.n += 1
        self.log = self.tmp / f"command-{self.n}"
        self.proc.stdin.write(json.dumps([plan, args, str(self.log)]) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the server stopped"
        self.child = json.loads(line)
        return self.child

    def wait(self) -> tuple[int, str, str]:
        """Exit code (-9: SIGKILL), stdout, stderr."""
        line = self.proc.stdout.readline()
        assert line, "the server stopped"
        self.child = None
        out, err = (Path(f"{self.log}{ext}").read_text() for ext in (".out", ".err"))
        return json.loads(line), out, err

    def run(self, plan: dict, args: list[str]) -> tuple[int, str, str]:
        self.start(plan, args)
        return self.wait()

    def close(self) -> None:
        if self.child is not None:  # a test failed while a command ran (it may be held): end it
            os.kill(self.child, signal.SIGKILL)
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path)
    yield s
    s.close()


# -- the uninterrupted run -----------------------------------------------------------------------


@dataclass
class Reference:
    run: Path
    steps: int
    rows: list  # (step, loss, lr, grad_norm) of each metrics line
    keep: Path  # its checkpoint after each step: keep/STEP.safetensors
    events: Counter
    seconds: float

    def checkpoint(self, step: int) -> Path:
        return self.keep / f"{step}.safetensors"


def fresh_args(run: Path, steps: int, overwrite: bool = False) -> list[str]:
    return ["train", "toy2d", "--out", str(run), "--quiet", f"train.steps={steps}", *SMALL] + (
        ["--overwrite"] if overwrite else []
    )


def rows_of(path: Path) -> list[tuple]:
    """(step, loss, lr, grad_norm) of every whole line: what must not depend on kills."""
    lines = path.read_bytes().split(b"\n")[:-1]  # a torn last line (no newline) is left out
    return [(r["step"], r["loss"], r["lr"], r["grad_norm"]) for r in map(json.loads, lines)]


def reference_run(server: Server, steps: int) -> Reference:
    tmp = server.tmp
    run, keep, trace = tmp / "reference", tmp / "reference-checkpoints", tmp / "reference.trace"
    keep.mkdir()
    started = time.perf_counter()
    code, _, err = server.run({"trace": str(trace), "keep": str(keep)}, fresh_args(run, steps))
    assert code == 0, err
    events = Counter(tuple(line.split()) for line in trace.read_text().splitlines())
    # every file of the run folder was written through difusion.files (atomically or appended)
    written = {target for target, _ in events}
    assert {p.name for p in run.iterdir()} == written, written
    assert events[CKPT, "renamed"] == steps + 1  # one a step, and the last one again at the end
    assert events["metrics.jsonl", "append"] == steps
    return Reference(
        run, steps, rows_of(run / "metrics.jsonl"), keep, events, time.perf_counter() - started
    )


# -- checks ----------------------------------------------------------------------------------


def same_checkpoint(path: Path, reference: Path) -> None:
    """Every tensor (model, ema, optimizer, RNG) bit for bit, the optimizer's scalars and groups,
    the step."""
    groups, info = load_checkpoint(path)
    ref_groups, ref_info = load_checkpoint(reference)
    assert sorted(groups) == sorted(ref_groups) and {"model", "ema", "optim", "rng"} <= set(groups)
    for g, tensors in ref_groups.items():
        assert sorted(groups[g]) == sorted(tensors), g
        for name, want in tensors.items():
            got = groups[g][name]
            assert got.dtype == want.dtype and got.shape == want.shape, (g, name)
            bits = (got.reshape(-1).view(torch.uint8), want.reshape(-1).view(torch.uint8))
            assert torch.equal(*bits), f"{path}: {g}/{name} differs from the uninterrupted run"
    assert info["optimizer"] == ref_info["optimizer"]
    meta, ref_meta = dict(info["meta"]), dict(ref_info["meta"])
    meta.pop("elapsed"), ref_meta.pop("elapsed")  # wall-clock time: the only thing that may differ
    assert meta == ref_meta


def temp_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*.tmp-*"))


def step_of(run: Path) -> int | None:
    if not (run / CKPT).exists():
        return None
    return load_checkpoint(run / CKPT, prefixes=())[1]["meta"]["step"]


def check_folder(run: Path, ref: Reference, last_step: int | None) -> int | None:
    """What a kill may leave: whole files equal to the uninterrupted run's, at most one torn
    metrics line at the end, temporary files. Returns the checkpoint's step."""
    names = {p.name for p in run.iterdir() if not p.name.startswith(".")}
    assert names <= {p.name for p in ref.run.iterdir()}, names
    step = step_of(run)  # it loads: never torn
    if step is not None:
        assert last_step is None or step >= last_step, f"the checkpoint went back to step {step}"
        same_checkpoint(run / CKPT, ref.checkpoint(step))
    if (run / "config.yaml").exists():
        assert load_run_config(run).to_dict() == load_run_config(ref.run).to_dict()
    if (run / "metrics.jsonl").exists():
        rows = rows_of(run / "metrics.jsonl")
        assert rows == ref.rows[: len(rows)], "a metrics line differs from the uninterrupted run"
    for name in SAME_BYTES:
        if (run / name).exists():
            assert (run / name).read_bytes() == (ref.run / name).read_bytes(), name
    if (run / "report.md").exists():
        text = (run / "report.md").read_text()
        assert text.startswith("# Run ") and text.endswith("\n") and "- steps:" in text
    return step


def trim_needed(run: Path, step: int) -> bool:
    """Whether a resume from ``step`` rewrites metrics.jsonl (a torn line, lines after ``step``)."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return True
    data = path.read_bytes()
    lines = data.split(b"\n")[:-1]
    kept = [line for line in lines if json.loads(line)["step"] <= step]
    return b"".join(line + b"\n" for line in kept) != data


# -- kill, check, resume ---------------------------------------------------------------------


@dataclass
class Killer:
    server: Server
    ref: Reference
    run: Path = None
    kills: int = 0
    attempts: int = 0
    restarts: int = 0
    pids: list = field(default_factory=list)
    log: list = field(default_factory=list)
    step: int | None = None

    def __post_init__(self):
        self.run = self.server.tmp / "run"

    def command(self) -> list[str]:
        if self.step is not None:
            return ["train", "--resume", str(self.run), "--quiet"]
        held = any((self.run / n).exists() for n in ("config.yaml", "metrics.jsonl"))
        self.restarts += self.attempts > 0
        return fresh_args(self.run, self.ref.steps, overwrite=held)  # as the refusal says

    def attempt(self, plan: dict | None) -> None:
        """One command; with a plan it must be SIGKILLed where the plan says."""
        plan = dict(plan or {})
        delay = plan.pop("delay", None)
        if delay is not None:  # killed from outside; held before the end so it cannot finish
            plan["hold"] = ["loss.png", "torn"]
        before = self.step
        pid = self.server.start(plan, self.command())
        self.attempts += 1
        self.pids.append(pid)
        if delay is not None:
            time.sleep(delay)
            os.kill(pid, signal.SIGKILL)
        code, _, err = self.server.wait()
        temps = temp_files(self.run)
        if not plan and delay is None:
            assert code == 0, err
            self.step = check_folder(self.run, self.ref, self.step)
            assert temps == [], temps  # the stale ones were removed at the start
            return
        assert code == -signal.SIGKILL, f"{plan}: not killed (exit {code}): {err[-2000:]}"
        self.kills += 1
        self.step = check_folder(self.run, self.ref, self.step)
        owners = {int(p.name.rsplit("-", 1)[1]) for p in temps}
        if delay is None:  # killed inside a write, after the start removed earlier leftovers
            assert owners <= {pid}, temps
            tmp = self.run / f".{plan['target']}.tmp-{pid}"
            assert tmp.exists() == (plan["op"] in ("torn", "fsync", "replace")), (plan, temps)
        else:
            assert owners <= set(self.pids), temps
        what = f"timer {delay:.2f} s" if delay is not None else f"{plan['target']} {plan['op']}"
        self.log.append(f"{what} (k={plan.get('k', '-')}): step {before} -> {self.step}")

    def finish(self) -> None:
        self.attempt(None)
        assert self.step == self.ref.steps
        same_checkpoint(self.run / CKPT, self.ref.checkpoint(self.ref.steps))
        assert rows_of(self.run / "metrics.jsonl") == self.ref.rows
        assert (self.run / "metrics.jsonl").read_bytes().endswith(b"\n")
        for name in SAME_BYTES:
            assert (self.run / name).read_bytes() == (self.ref.run / name).read_bytes(), name
        assert sorted(p.name for p in self.run.iterdir()) == sorted(
            p.name for p in self.ref.run.iterdir()
        )


def test_sigkill_inside_writes_and_at_a_random_moment_then_resume_is_bit_identical(server):
    """Six kills: between fsync and rename of config.yaml, in a checkpoint write (temporary file
    half written), in the middle of a metrics line, in the resume's rewrite of metrics.jsonl, at a
    random moment, in the loss plot's write at the end; each followed by a restart or resume, the
    run finished bit-identical to an uninterrupted one, no torn file at any point."""
    ref = reference_run(server, steps=30)
    k = Killer(server, ref)
    k.attempt({"target": "config.yaml", "op": "replace", "k": 1})
    assert k.step is None and not (k.run / "config.yaml").exists()
    stale = temp_files(k.run)
    assert [p.name.split(".tmp-")[0] for p in stale] == [".config.yaml"]
    k.attempt({"target": CKPT, "op": "torn", "k": 4})  # a fresh start: the stale file went
    assert k.step == 3 and not any(p.exists() for p in stale)
    k.attempt({"target": "metrics.jsonl", "op": "append-torn", "k": 3})
    assert k.step == 5 and not (k.run / "metrics.jsonl").read_bytes().endswith(b"\n")
    k.attempt({"target": "metrics.jsonl", "op": "replace", "k": 1})  # the resume's trim
    assert k.step == 5 and not (k.run / "metrics.jsonl").read_bytes().endswith(b"\n")
    k.attempt({"delay": random.Random(24).uniform(0.05, 0.6)})
    k.attempt({"target": "loss.png", "op": "torn", "k": 1})
    assert k.step == 30 and not (k.run / "loss.png").exists()
    k.finish()
    assert k.kills == 6 and k.attempts == 7


class Draw:
    """Seeded random choices that go round: every kind and every phase of a write comes up once
    before any comes up again (so twenty kills reach all of them)."""

    def __init__(self, seed: int):
        self.rng, self.bags, self.fresh = random.Random(seed), {}, ["config.yaml", "metrics.jsonl"]

    def pick(self, options: tuple, allowed: tuple | None = None):
        bag = self.bags.setdefault(options, [])
        if not bag:
            bag.extend(self.rng.sample(options, len(options)))
        for item in bag:
            if allowed is None or item in allowed:
                bag.remove(item)
                return item
        return self.rng.choice(allowed)

    def op(self) -> str:
        return self.pick(ATOMIC_OPS)


MID = ("checkpoint", "append", "append-torn", "timer", "trim")
ENDS = (*END_FILES, "final checkpoint")


def plan_for(draw: Draw, k: Killer, kills_left: int) -> dict:
    """A random kill for the next command, which starts from checkpoint step ``k.step``: in the
    writes of a fresh start (config, metrics) until both were hit, then in the middle of training
    (a checkpoint, a metrics line, the resume's rewrite of metrics.jsonl, a random moment), and for
    the last six in the writes at the end (the final checkpoint, loss plot, report, samples)."""
    rng = draw.rng
    if k.step is None:  # a fresh start
        if draw.fresh:
            return {"target": draw.fresh.pop(0), "op": draw.op(), "k": 1}
        return {"target": CKPT, "op": draw.op(), "k": rng.randint(1, 3)}
    left = k.ref.steps - k.step
    if kills_left > 6 and left >= 4:
        kind = draw.pick(MID, MID if trim_needed(k.run, k.step) else MID[:-1])
        if kind == "checkpoint":
            return {"target": CKPT, "op": draw.op(), "k": rng.randint(1, 3)}
        if kind in ("append", "append-torn"):
            return {"target": "metrics.jsonl", "op": kind, "k": rng.randint(1, 3)}
        if kind == "trim":
            return {"target": "metrics.jsonl", "op": draw.op(), "k": 1}
        return {"delay": rng.uniform(0.0, 0.6)}
    target = draw.pick(ENDS)
    if target == "final checkpoint":
        return {"target": CKPT, "op": draw.op(), "k": left + 1}
    return {"target": target, "op": draw.op(), "k": 1}


@pytest.mark.slow
def test_twenty_sigkills_at_random_points_then_resume_is_bit_identical(server):
    """Twenty kills drawn by a seeded RNG over every file write of a run (config, metrics lines
    and rewrites, checkpoints, loss plot, report, samples, scatter, GIF; each phase of a write)
    and random moments; every folder state checked, the end bit-identical."""
    started = time.perf_counter()
    ref = reference_run(server, steps=60)
    k = Killer(server, ref)
    draw = Draw(2024)
    while k.kills < 20:
        k.attempt(plan_for(draw, k, 20 - k.kills))
    k.finish()
    seconds = time.perf_counter() - started
    points = Counter(line.split(" (")[0].split(" 0.")[0] for line in k.log)
    print(
        f"\n{k.kills} kills, {k.restarts} restarts before a first checkpoint, "
        f"{k.attempts - 1 - k.restarts} resumes; every checkpoint seen, the final one and "
        f"metrics.jsonl bit-identical to the uninterrupted run; {seconds:.0f} s "
        f"(reference run {ref.seconds:.1f} s)\n" + "\n".join(k.log) + f"\n{dict(points)}"
    )
    assert k.kills == 20
    assert {"config.yaml", "metrics.jsonl", CKPT, *END_FILES, "timer"} <= {
        line.split()[0] for line in k.log
    }
    ops = {line.split()[1] for line in k.log if not line.startswith("timer")}
    assert {*ATOMIC_OPS, "append", "append-torn"} <= ops


# -- disk full, read-only, file-size limit -------------------------------------------------------


def hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A finished toy2d run of 5 steps with a samples folder, and an eval JSON of a samples.npz."""
    from difusion.cli import main
    from difusion.training.loop import train

    root = tmp_path_factory.mktemp("base")
    cfg = load_config("toy2d", ["train.steps=5", *SMALL])
    train(cfg, root / "run", progress=False, final_samples=False)
    images = np.random.default_rng(0).uniform(-1, 1, (32, 1, 8, 8)).astype(np.float32)
    (root / "evals").mkdir()
    np.savez(root / "evals" / "s.npz", images=images, seeds=np.arange(32))
    argv = sys.argv
    for args in (
        ["sample", str(root / "run"), "--n", "16", "--quiet"],
        ["eval", str(root / "evals" / "s.npz"), "--ref", "digits:test", "--quiet",
         "--out", str(root / "evals" / "eval.json")],
    ):  # fmt: skip
        sys.argv = ["difusion", *args]
        try:
            with pytest.raises(SystemExit) as e:
                main()
            assert e.value.code == 0
        finally:
            sys.argv = argv
    assert (root / "run" / "samples-seed0-n16" / "samples.npz").exists()
    return root


def commands(root: Path) -> dict[str, list[str]]:
    """Each writes over files that are there: a fresh run into a folder with notes, a resume that
    trains 3 more steps, samples of another seed into the samples folder, another eval JSON (with
    the reference features cached, or not yet)."""
    run, evals = root / "run", root / "evals"
    eval_args = ["eval", str(evals / "s.npz"), "--ref", "digits:test", "--metrics", "fid",
                 "--quiet", "--out", str(evals / "eval.json")]  # fmt: skip
    return {
        "train-fresh": fresh_args(root / "new", 5) + ["--no-samples"],
        "train-resume": ["train", "--resume", str(run), "--steps", "8", "--quiet", "--no-samples"],
        "sample": ["sample", str(run), "--n", "16", "--seed", "1", "--quiet",
                   "--out", str(run / "samples-seed0-n16")],
        "eval": eval_args,
        "eval-cold-cache": eval_args,  # with XDG_CACHE_HOME=ROOT/cache: see environment()
    }  # fmt: skip


def prepare(base: Path, root: Path) -> None:
    for name in ("run", "evals"):
        shutil.copytree(base / name, root / name)
    (root / "new").mkdir()
    (root / "new" / "notes.txt").write_text("not a run: kept as it is\n")


def snapshot(root: Path) -> tuple[dict[str, str], dict[str, bytes]]:
    """The SHA-256 of every file under ``root``, and the bytes of its metrics files."""
    return hashes(root), {
        str(p.relative_to(root)): p.read_bytes() for p in root.rglob("metrics.jsonl")
    }


def check_refused(name: str, code: int, err: str, root: Path, before: tuple, cause: str) -> None:
    """Non-zero, one line without a traceback that names the cause; every file that was there is
    byte-identical (a resume may save its new config, whole, and append whole metrics lines; a
    fresh run may leave a whole config and metrics), nothing else was written, no temporary file
    is left."""
    hashes_before, metrics_before = before
    hashes_before = dict(hashes_before)
    lines = err.strip().splitlines()
    assert code != 0 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("difusion: error:"), err
    assert cause in lines[0], lines[0]
    assert list(root.rglob(".*.tmp-*")) == []
    after = hashes(root)
    if name == "train-resume":
        assert "checkpoint of step 5 is intact" in lines[0], lines[0]
        assert load_run_config(root / "run").train.steps in (5, 8)  # whole, old or new
        new = (root / "run" / "metrics.jsonl").read_bytes()
        assert new.startswith(metrics_before["run/metrics.jsonl"]) and new.endswith(b"\n")
        rows_of(root / "run" / "metrics.jsonl")  # whole lines only
        for key in ("run/config.yaml", "run/metrics.jsonl"):
            hashes_before.pop(key), after.pop(key)
    if name == "eval-cold-cache":  # nothing cached: the features were what did not fit
        assert "cache" in lines[0] or "reference" in lines[0], lines[0]
    if name == "train-fresh":
        assert "no checkpoint was written yet" in lines[0], lines[0]
        new = root / "new"
        assert not (new / CKPT).exists()
        if (new / "config.yaml").exists():
            assert load_run_config(new).train.steps == 5
        if (new / "metrics.jsonl").exists():
            rows_of(new / "metrics.jsonl")
        for key in ("new/config.yaml", "new/metrics.jsonl"):
            after.pop(key, None)
    assert after == hashes_before


def cli(monkeypatch, capsys, args: list[str]) -> tuple[int, str]:
    from difusion.cli import main

    monkeypatch.setattr(sys, "argv", ["difusion", *args])
    with pytest.raises(SystemExit) as e:
        main()
    return e.value.code, capsys.readouterr().err


@pytest.fixture
def tmpfs(tmp_path):
    """A 4 MB tmpfs mounted for the test (root in a container may; elsewhere: skipped)."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    try:
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot mount a small file system here: {e}")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(mnt: Path) -> None:
    """Take every free byte of the file system."""
    fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    assert os.statvfs(mnt).f_bavail == 0


NAMES = ["train-fresh", "train-resume", "sample", "eval", "eval-cold-cache"]


def environment(name: str, root: Path) -> dict[str, str]:
    """eval-cold-cache: no reference features cached yet; they are written first (in ``root``)."""
    return {"XDG_CACHE_HOME": str(root / "cache")} if name == "eval-cold-cache" else {}


@pytest.mark.parametrize("name", NAMES)
def test_a_full_disk_is_one_line_and_changes_nothing(name, base, tmpfs, monkeypatch, capsys):
    prepare(base, tmpfs)
    fill(tmpfs)
    before = snapshot(tmpfs)
    for key, value in environment(name, tmpfs).items():
        monkeypatch.setenv(key, value)
    code, err = cli(monkeypatch, capsys, commands(tmpfs)[name])
    check_refused(name, code, err, tmpfs, before, "No space left on device")


@pytest.mark.parametrize("name", NAMES)
def test_a_read_only_file_system_is_one_line_and_changes_nothing(
    name, base, tmpfs, monkeypatch, capsys
):
    prepare(base, tmpfs)
    before = snapshot(tmpfs)
    remount = ["mount", "-o", "remount,ro", str(tmpfs)]
    proc = subprocess.run(remount, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot remount the test's file system read-only: {proc.stderr.strip()}")
    for key, value in environment(name, tmpfs).items():
        monkeypatch.setenv(key, value)
    code, err = cli(monkeypatch, capsys, commands(tmpfs)[name])
    check_refused(name, code, err, tmpfs, before, "Read-only file system")


@pytest.fixture(scope="module")
def limits_server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("server"))
    yield s
    s.close()


# train: config.yaml and metrics lines fit, a checkpoint does not (a disk that fills up during
# training); sample and eval: not even their smallest file fits; a cold cache: the JSON would fit,
# the reference features do not
LIMITS = {"train-fresh": 4096, "train-resume": 4096, "sample": 256, "eval": 256,
          "eval-cold-cache": 4096}  # fmt: skip


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="no file-size limit here")
@pytest.mark.parametrize("name", NAMES)
def test_a_file_size_limit_is_one_line_and_changes_nothing(name, base, tmp_path, limits_server):
    """RLIMIT_FSIZE in the command's process (SIGXFSZ ignored): its writes fail with EFBIG."""
    prepare(base, tmp_path)
    before = snapshot(tmp_path)
    plan = {"fsize": LIMITS[name], "env": environment(name, tmp_path)}
    code, _, err = limits_server.run(plan, commands(tmp_path)[name])
    check_refused(name, code, err, tmp_path, before, "File too large")
