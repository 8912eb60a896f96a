"""Bad inputs to every command but `train`: each is one line on stderr, a non-zero exit, no traceback,
and no file of an existing run (or anything else in the folder) changes.

The commands run in-process through ``difusion.cli.main`` against a tiny trained digits run, a few
fake run folders (a config.yaml is all the refusals need) and a set of broken input files.
"""

from __future__ import annotations

import hashlib
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

TINY = [
    "train.steps=3",
    "train.sample_every=0",
    "model.base_channels=8",
    "model.channel_mult=[1]",
    "model.attention_levels=[]",
    "sample.n=4",
]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder holding a trained run (``run``), fake runs and broken input files."""
    from PIL import Image

    from difusion.config import load_config
    from difusion.training.loop import train

    root = tmp_path_factory.mktemp("inputs")
    train(load_config("digits", TINY), root / "run", progress=False, final_samples=False)
    for name, objective in (("seg", "segmentation"), ("ae", "autoencoder")):
        (root / name).mkdir()
        (root / name / "config.yaml").write_text(f"objective: {objective}\n")
    (root / "badyaml").mkdir()
    (root / "badyaml" / "config.yaml").write_text("model: [1, 2\n")
    (root / "nonutf").mkdir()
    (root / "nonutf" / "config.yaml").write_bytes(b"\xff\xfe\x00bad")
    (root / "empty").mkdir()
    (root / "bad.yaml").write_text("model: [1, 2\n")
    (root / "nonutf.yaml").write_bytes(b"\xff\xfe")
    ok = np.zeros((20, 1, 8, 8), dtype=np.float32)
    np.savez(root / "ok8.npz", images=ok)
    (root / "trunc.npz").write_bytes((root / "ok8.npz").read_bytes()[:300])
    (root / "garbage.npz").write_bytes(b"garbage\n")
    np.savez(root / "noimages.npz", x=np.zeros(3))
    np.savez(root / "nan.npz", images=np.full_like(ok, np.nan))
    np.savez(root / "big.npz", images=np.zeros((20, 1, 28, 28), dtype=np.float32))
    np.savez(root / "none.npz", images=ok[:0])
    np.savez(root / "text.npz", images=np.array(["a", "b"]))
    np.savez(root / "uint8.npz", images=np.full(ok.shape, 255, dtype=np.uint8))
    np.savez(root / "labels99.npz", images=ok, labels=np.full(20, 99))
    np.savez(root / "labels3.npz", images=ok, labels=np.zeros(3))
    np.savez(root / "flat.npz", images=np.zeros((20, 64), dtype=np.float32))
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(root / "img.png")
    (root / "torn.png").write_bytes((root / "img.png").read_bytes()[:40])
    (root / "torn.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    Image.fromarray(np.zeros((4, 5000), np.uint8)).save(root / "wide.png")
    return root


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def busy_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


# (id, arguments, a word the message must hold). "{busy}" is a port that is in use.
CASES = [
    # sample: counts, steps, seeds, guidance (issue items 3, 4, 7, 8)
    ("sample-n-0", "sample run --n 0", "--n"),
    ("sample-n-negative", "sample run --n -3", "--n"),
    ("sample-n-huge", "sample run --n 99999999999999999999", "--no-limits"),
    ("sample-n-over-limit", "sample run --n 60000", "--no-limits"),
    ("sample-n-over-hard-bound", "sample run --n 2000000 --no-limits", "1,000,000"),
    (
        "sample-no-limits-still-checks-steps",
        "sample run --n 60000 --no-limits --steps 5000",
        "1000",
    ),
    ("sample-n-text", "sample run --n many", "--n"),
    ("sample-steps-0", "sample run --steps 0", "--steps"),
    ("sample-steps-negative", "sample run --steps -2", "--steps"),
    ("sample-steps-beyond-T", "sample run --steps 5000", "at most 1000"),
    ("sample-steps-over-limit", "sample run --steps 100000000", "--no-limits"),
    ("sample-seed-65-bits", "sample run --seed 99999999999999999999", "--seed"),
    ("sample-seed-negative", "sample run --seed -1", "--seed"),
    ("sample-guidance-nan", "sample run --guidance nan", "guidance"),
    ("sample-guidance-inf", "sample run --guidance inf", "guidance"),
    ("sample-guidance-negative", "sample run --guidance -1", "guidance"),
    ("sample-rescale-nan", "sample run --rescale nan", "rescale"),
    ("sample-rescale-2", "sample run --rescale 2", "rescale"),
    ("sample-eta-nan", "sample run --sampler ddim --eta nan", "eta"),
    ("sample-eta-2", "sample run --sampler ddim --eta 2", "eta"),
    ("sample-interval-nan", "sample run --guidance-interval nan,1", "interval"),
    ("sample-interval-one-number", "sample run --guidance-interval 0.5", "interval"),
    ("sample-interval-reversed", "sample run --guidance-interval 0.8,0.2", "interval"),
    ("sample-interval-text", "sample run --guidance-interval a,b", "interval"),
    ("sample-class-negative", "sample run --class -1", "--class"),
    ("sample-class-unconditional", "sample run --class 3", "class"),
    ("sample-sampler-unknown", "sample run --sampler nope", "sampler"),
    ("sample-variance-unknown", "sample run --variance nope", "variance"),
    ("sample-out-empty", "sample run --out=", "empty"),
    ("sample-out-run-folder", "sample run --out run", "holds a run"),
    ("sample-out-file", "sample run --out run/config.yaml", "is a file"),
    ("sample-no-run", "sample nosuch", "nosuch"),
    ("sample-empty-folder", "sample empty", "config.yaml"),
    ("sample-invalid-yaml", "sample badyaml", "YAML"),
    ("sample-non-utf8-yaml", "sample nonutf", "UTF-8"),
    ("sample-segmentation-run", "sample seg", "difusion segment"),
    ("sample-autoencoder-steps", "sample ae --steps 5", "--steps"),
    ("sample-autoencoder-guidance", "sample ae --guidance 1", "--guidance"),
    ("sample-unknown-option", "sample run --nn 3", "--nn"),
    # eval of a run (items 7, 8)
    ("eval-n-0", "eval run --n 0", "--n"),
    ("eval-n-negative", "eval run --n -3", "--n"),
    ("eval-n-too-few-for-pr", "eval run --n 2", "--n"),
    ("eval-n-over-limit", "eval run --n 60000", "--no-limits"),
    ("eval-steps-0", "eval run --steps 0", "--steps"),
    ("eval-steps-beyond-T", "eval run --steps 5000", "at most 1000"),
    ("eval-steps-over-limit", "eval run --steps 20000", "--no-limits"),
    ("eval-seed-65-bits", "eval run --seed 99999999999999999999", "--seed"),
    ("eval-seed-negative", "eval run --seed -5", "--seed"),
    ("eval-guidance-nan", "eval run --guidance nan", "guidance"),
    ("eval-guidance-inf", "eval run --guidance inf", "guidance"),
    ("eval-eta-nan", "eval run --eta nan", "eta"),
    ("eval-interval-bad", "eval run --guidance-interval 2,3", "interval"),
    ("eval-sampler-unknown", "eval run --sampler nope", "sampler"),
    ("eval-n-ref-0", "eval run --n-ref 0", "--n-ref"),
    ("eval-n-ref-too-few", "eval run --n-ref 2", "--n-ref"),
    ("eval-metrics-unknown", "eval run --metrics fid,nope", "nope"),
    ("eval-metrics-empty", "eval run --metrics=", "metric"),
    ("eval-features-unknown", "eval run --features nope", "nope"),
    ("eval-ref-other-shape", "eval run --n 4 --ref toy2d:test", "toy2d"),
    ("eval-ref-no-dataset", "eval run --ref :test", "--ref"),
    ("eval-ref-unknown", "eval run --ref nope:test", "nope"),
    ("eval-ref-bad-split", "eval run --ref digits:nope", "nope"),
    ("eval-nll-images-0", "eval run --nll --nll-images 0", "--nll-images"),
    ("eval-nll-images-negative", "eval run --nll --nll-images -1", "--nll-images"),
    ("eval-nll-images-over-limit", "eval run --nll --nll-images 20000", "--no-limits"),
    ("eval-ode-steps-0", "eval run --nll --ode-steps 0", "--ode-steps"),
    ("eval-ode-steps-over-limit", "eval run --nll --ode-steps 20000", "--no-limits"),
    ("eval-variance-unknown", "eval run --nll --variance nope", "variance"),
    ("eval-variance-learned-fixed-run", "eval run --nll --variance learned", "fixed"),
    ("eval-out-empty", "eval run --out=", "empty"),
    ("eval-out-checkpoint", "eval run --out run/checkpoint.safetensors", ".json"),
    ("eval-out-config", "eval run --out run/config.yaml", ".json"),
    ("eval-out-metrics", "eval run --out run/metrics.jsonl", ".json"),
    ("eval-out-not-json", "eval run --out result.txt", ".json"),
    ("eval-out-folder", "eval run --out run", "folder"),
    ("eval-out-under-a-file", "eval run --out img.png/x.json", "not a folder"),
    ("eval-no-target", "eval nosuch.npz --ref digits:test", "nosuch"),
    ("eval-empty-folder", "eval empty", "config.yaml"),
    ("eval-invalid-yaml", "eval badyaml", "YAML"),
    ("eval-non-utf8-yaml", "eval nonutf", "YAML"),
    ("eval-segmentation-data-unknown", "eval seg --data nope", "--data"),
    ("eval-segmentation-nll", "eval seg --nll", "--nll"),
    ("eval-segmentation-ref", "eval seg --ref digits:test", "--ref"),
    ("eval-autoencoder-steps", "eval ae --steps 3", "--steps"),
    ("eval-run-data", "eval run --data stardist", "--data"),
    ("eval-npz-steps", "eval ok8.npz --ref digits:test --steps 3", "--steps"),
    ("eval-npz-guidance", "eval ok8.npz --ref digits:test --guidance 1", "--guidance"),
    ("eval-segmentation-out-config", "eval seg --out seg/config.yaml", ".json"),
    # eval of a samples .npz (item 8)
    ("eval-npz-no-ref", "eval ok8.npz", "--ref"),
    ("eval-npz-truncated", "eval trunc.npz --ref digits:test", "trunc.npz"),
    ("eval-npz-garbage", "eval garbage.npz --ref digits:test", "garbage.npz"),
    ("eval-npz-no-images", "eval noimages.npz --ref digits:test", "images"),
    ("eval-npz-nan", "eval nan.npz --ref digits:test", "NaN"),
    ("eval-npz-28-vs-8", "eval big.npz --ref digits:test", "28"),
    ("eval-npz-28-vs-8-inception", "eval big.npz --ref digits:test --features inception", "28"),
    ("eval-npz-empty", "eval none.npz --ref digits:test", "non-empty"),
    ("eval-npz-strings", "eval text.npz --ref digits:test", "numbers"),
    ("eval-npz-0-255", "eval uint8.npz --ref digits:test", "[-1, 1]"),
    ("eval-npz-flat", "eval flat.npz --ref digits:test", "(N, C, H, W)"),
    ("eval-npz-labels-out-of-range", "eval labels99.npz --ref digits:test", "labels"),
    ("eval-npz-labels-wrong-count", "eval labels3.npz --ref digits:test", "labels"),
    ("eval-npz-points-reference", "eval ok8.npz --ref toy2d:test", "toy2d"),
    ("eval-npz-n-ref-too-few", "eval ok8.npz --ref digits:test --n-ref 3", "--n-ref"),
    ("eval-npz-nll", "eval ok8.npz --ref digits:test --nll", "--nll"),
    ("eval-npz-out-over-itself", "eval ok8.npz --ref digits:test --out ok8.npz", ".json"),
    (
        "eval-npz-out-checkpoint",
        "eval ok8.npz --ref digits:test --out run/checkpoint.safetensors",
        ".json",
    ),
    # segment
    ("segment-missing-image", "segment seg nosuch.png", "nosuch.png"),
    ("segment-image-is-folder", "segment seg run", "folder"),
    ("segment-torn-png", "segment seg torn.png", "torn.png"),
    ("segment-torn-tif", "segment seg torn.tif", "torn.tif"),
    ("segment-not-an-image", "segment seg ok8.npz", "ok8.npz"),
    ("segment-image-too-wide", "segment seg wide.png", "--no-limits"),
    ("segment-out-empty", "segment seg img.png --out=", "empty"),
    ("segment-out-checkpoint", "segment seg img.png --out run/checkpoint.safetensors", ".png"),
    ("segment-out-folder", "segment seg img.png --out run", "folder"),
    ("segment-out-no-suffix", "segment seg img.png --out mask", ".png"),
    ("segment-not-a-segmentation-run", "segment run img.png", "segmentation"),
    ("segment-no-run", "segment nosuch img.png", "segmentation"),
    ("segment-non-utf8-yaml", "segment nonutf img.png", "UTF-8"),
    ("segment-no-checkpoint", "segment seg img.png --out m.png", "seg"),
    # explore (item 8, 10): refused before serving
    ("explore-port-too-large", "explore run --port 99999", "--port"),
    ("explore-port-0", "explore run --port 0", "--port"),
    ("explore-port-busy", "explore run --port {busy}", "in use"),
    ("explore-host-not-here", "explore run --host 203.0.113.1", "203.0.113.1"),
    ("explore-run-missing", "explore nosuch", "nosuch"),
    ("explore-run-not-a-run", "explore empty", "config.yaml"),
    ("explore-root-file", "explore --root img.png", "--root"),
    ("explore-root-empty", "explore --root=", "empty"),
    # datasets, fetch, experiment
    ("datasets-download-unknown", "datasets download nope", "nope"),
    ("datasets-download-empty", "datasets download ", "dataset"),
    ("datasets-unknown-command", "datasets nope", "nope"),
    ("fetch-unknown", "fetch nope", "nope"),
    ("experiment-unknown", "experiment nope", "nope"),
    ("experiment-budget-unknown", "experiment learning-curve --budget huge", "--budget"),
    ("experiment-jobs-0", "experiment learning-curve --jobs 0", "--jobs"),
    ("experiment-runs-file", "experiment learning-curve --runs img.png", "--runs"),
    ("experiment-results-file", "experiment learning-curve --results img.png", "--results"),
    ("experiment-runs-empty", "experiment learning-curve --runs=", "empty"),
    # config files (config.load_yaml)
    ("train-invalid-yaml", "train bad.yaml --out new", "YAML"),
    ("train-non-utf8-yaml", "train nonutf.yaml --out new", "UTF-8"),
    ("unknown-command", "nope", "nope"),
]


def _split(args: str) -> list[str]:
    # "--out=" keeps an empty value; a trailing space in "download " means an empty argument
    parts = args.split(" ")
    return [p for p in parts[:-1] if p] + [parts[-1]]


@pytest.mark.parametrize("args,word", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(work, monkeypatch, capsys, args, word):
    from difusion import cli

    monkeypatch.chdir(work)
    monkeypatch.setenv("XDG_CACHE_HOME", str(work.parent / f"{work.name}-cache"))
    sock, port = busy_port()
    before = tree_digest(work)
    monkeypatch.setattr(sys, "argv", ["difusion", *_split(args.format(busy=port))])
    try:
        with pytest.raises(SystemExit) as exit_:
            cli.main()
    finally:
        sock.close()
    err = capsys.readouterr().err
    assert exit_.value.code not in (0, None), err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("difusion: error:"), err
    assert "Traceback" not in err
    assert word in lines[0], lines[0]
    assert tree_digest(work) == before, "a file changed or appeared"


def test_the_table_covers_every_command():
    commands = {c[1].split()[0] for c in CASES}
    assert {"sample", "eval", "segment", "explore", "datasets", "fetch", "experiment"} <= commands
    assert len(CASES) >= 120


def test_eval_out_refuses_anything_but_json(tmp_path):
    from difusion.errors import DifusionError
    from difusion.run_eval import check_out

    check_out(None)
    check_out(tmp_path / "new.json")
    for bad in (tmp_path, tmp_path / "x.safetensors", tmp_path / "x", Path("")):
        with pytest.raises(DifusionError):
            check_out(bad)


def test_load_samples_reads_what_sample_writes_and_refuses_the_rest(tmp_path):
    from difusion.errors import DifusionError
    from difusion.evaluation import load_samples

    images = np.linspace(-1, 1, 2 * 64, dtype=np.float32).reshape(2, 1, 8, 8)
    np.savez(tmp_path / "s.npz", images=images, labels=np.array([0, 1]), seeds=np.array([5, 6]))
    x, y, info = load_samples(tmp_path / "s.npz")
    assert x.shape == (2, 1, 8, 8) and y.tolist() == [0, 1] and info["seeds"] == [5, 6]
    np.savez(tmp_path / "inf.npz", images=np.full((2, 1, 8, 8), np.inf, dtype=np.float32))
    with pytest.raises(DifusionError, match="NaN or infinite"):
        load_samples(tmp_path / "inf.npz")


def test_good_inputs_still_work(work, tmp_path, monkeypatch, capsys):
    """The checks refuse only what is wrong: a small sample and an eval of it go through, and the
    eval JSON is written whole (no temporary file left beside it)."""
    import json

    from difusion import cli

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "s"
    for args in (
        ["sample", str(work / "run"), "--n", "4", "--steps", "2", "--quiet", "--out", str(out)],
        ["eval", str(out / "samples.npz"), "--ref", "digits:test", "--metrics", "fid,kid,pr",
         "--quiet", "--out", str(tmp_path / "e.json")],
    ):  # fmt: skip
        monkeypatch.setattr(sys, "argv", ["difusion", *args])
        with pytest.raises(SystemExit) as exit_:
            cli.main()
        assert exit_.value.code == 0, capsys.readouterr().err
    assert "fid_domain" in json.loads((tmp_path / "e.json").read_text())["metrics"]
    assert not list(tmp_path.glob(".*.tmp-*"))
