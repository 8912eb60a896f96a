"""How much the resize and the input range move Inception FID, measured on Fashion-MNIST.

    OMP_NUM_THREADS=1 python scripts/inception_preprocessing.py   # N = 100: 1300 Inception passes
    OMP_NUM_THREADS=1 python scripts/inception_preprocessing.py --n 20 --out /tmp/x   # a smoke run

The same uint8 pixels (``difusion.metrics.inception.to_uint8``) of N Fashion-MNIST test images and
N training images (a seeded draw of each split) go through six preprocessing pipelines before the
same network (the lab's TorchScript Inception, float32):

- ``lab``: the lab's own ``preprocess``: PIL bicubic on float32 (clean-fid's "clean" mode), clipped
  to [0, 255], then ``x / 128 - 1``;
- ``torch-bilinear``: ``F.interpolate(mode="bilinear", align_corners=False, antialias=False)``,
  pytorch-fid's resize;
- ``torch-bicubic-aa``: ``F.interpolate(mode="bicubic", align_corners=False, antialias=True)``,
  clipped to [0, 255];
- ``tf1-bilinear``: TensorFlow 1's ``ResizeBilinear`` as the original TF-FID graph runs it
  (``align_corners=False`` and no half-pixel centres: output pixel i samples input i * in / out),
  which torch-fidelity, and through it torchmetrics' FID, reimplement;
- ``range-0-1``: the lab's resize, then ``x / 255`` (the network expects [-1, 1): a wrong range);
- ``range-127.5``: the lab's resize, then ``x / 127.5 - 1`` ([-1, 1] from uint8; the graph's own
  mapping is ``(x - 128) / 128``; pytorch-fid's ``2 x - 1`` on ``x / 255`` is this one).

For each pipeline it reports the FID when *both* sets use it (how much the number itself depends on
the convention: comparing with another code base) and when only the test set uses it against the
training set through the lab's pipeline (a mismatch: samples preprocessed differently from cached
reference statistics), and the mean per-image relative change of the features. For scale, it also
scores a second, disjoint draw of N test images through the lab's pipeline (how much FID moves with
the images drawn). Writes results.json and README.md into ``--out``.

    OMP_NUM_THREADS=1 python scripts/inception_preprocessing.py --cross-check 8

instead compares the lab's features with the independent forward pass of
``tests/inception_reference.py`` on the first 8 Fashion-MNIST test images and writes
cross-check.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from difusion.data import load_dataset
from difusion.metrics.fid import fid_from_features
from difusion.metrics.inception import INPUT_SIZE, InceptionFeatures, preprocess, to_uint8

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "inception-preprocessing"


def resize_pil_bicubic(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1, H, W) -> float (N, 3, 299, 299) in [0, 255]: PIL bicubic on float32, clipped.

    The same steps as the lab's ``preprocess`` before its final ``x / 128 - 1``.
    """
    out = np.empty((len(pixels), 1, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, image in enumerate(pixels.numpy()):
        img = Image.fromarray(image[0].astype(np.float32))
        img = img.resize((INPUT_SIZE, INPUT_SIZE), resample=Image.Resampling.BICUBIC)
        out[i, 0] = np.asarray(img, dtype=np.float32).clip(0, 255)
    return torch.from_numpy(out).expand(-1, 3, -1, -1)


def resize_torch(pixels: torch.Tensor, mode: str, antialias: bool) -> torch.Tensor:
    """``F.interpolate`` to 299x299 (align_corners=False) on the uint8 values as float32."""
    x = F.interpolate(
        pixels.float(),
        size=(INPUT_SIZE, INPUT_SIZE),
        mode=mode,
        align_corners=False,
        antialias=antialias,
    )
    return x.clamp(0, 255).expand(-1, 3, -1, -1)


def tf1_bilinear_weights(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in) matrix of TF1 ResizeBilinear (align_corners=False, no half-pixel centres).

    Output pixel i reads the input at s = i * size_in / size_out: (1 - f) x[floor s] + f x[floor s + 1]
    with f = s - floor s, the right neighbour clamped to the last pixel.
    """
    s = torch.arange(size_out, dtype=torch.float64) * (size_in / size_out)
    lo = s.floor().long().clamp(max=size_in - 1)
    hi = (lo + 1).clamp(max=size_in - 1)
    frac = s - lo
    w = torch.zeros(size_out, size_in, dtype=torch.float64)
    w[torch.arange(size_out), lo] += 1 - frac
    w[torch.arange(size_out), hi] += frac
    return w


def resize_tf1_bilinear(pixels: torch.Tensor) -> torch.Tensor:
    """TF1's ResizeBilinear to 299x299, separable: rows then columns."""
    h, w = pixels.shape[-2:]
    wy, wx = tf1_bilinear_weights(h, INPUT_SIZE), tf1_bilinear_weights(w, INPUT_SIZE)
    x = wy @ pixels.double() @ wx.T
    return x.float().expand(-1, 3, -1, -1)


# name -> (resize, input range, what it is)
PIPELINES = {
    "lab": (resize_pil_bicubic, "tf", "PIL bicubic on float32, x / 128 - 1 (the lab's preprocess)"),
    "torch-bilinear": (
        lambda p: resize_torch(p, "bilinear", antialias=False),
        "tf",
        "F.interpolate bilinear, align_corners=False, antialias=False (pytorch-fid's resize)",
    ),
    "torch-bicubic-aa": (
        lambda p: resize_torch(p, "bicubic", antialias=True),
        "tf",
        "F.interpolate bicubic, align_corners=False, antialias=True, clipped to [0, 255]",
    ),
    "tf1-bilinear": (
        resize_tf1_bilinear,
        "tf",
        "TF1 ResizeBilinear, align_corners=False, no half-pixel centres (the TF-FID graph; "
        "torch-fidelity and torchmetrics reimplement it)",
    ),
    "range-0-1": (resize_pil_bicubic, "0-1", "PIL bicubic, then x / 255: the range [0, 1]"),
    "range-127.5": (
        resize_pil_bicubic,
        "127.5",
        "PIL bicubic, then x / 127.5 - 1: [-1, 1] (pytorch-fid's 2x - 1 on x / 255)",
    ),
}
RANGES = {"tf": lambda x: x / 128 - 1, "0-1": lambda x: x / 255, "127.5": lambda x: x / 127.5 - 1}


def network_input(name: str, images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> the network's (N, 3, 299, 299) input through pipeline ``name``."""
    if name == "lab":
        return preprocess(images)  # the lab's own function, not a copy
    resize, value_range, _ = PIPELINES[name]
    return RANGES[value_range](resize(to_uint8(images)))


def features(net: InceptionFeatures, name: str, images: torch.Tensor, batch: int) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = network_input(name, images[start : start + batch])
            out.append(net.model(x).reshape(len(x), -1).double())
    return torch.cat(out)


def fid(a: torch.Tensor, b: torch.Tensor) -> float:
    """The lab's ``fid_from_features``, computed in the span of the 2N feature vectors.

    FID (Heusel et al. 2017, eq. 6) is invariant under an orthogonal change of basis and both
    Gaussians live in the span of the rows, so with N < 2048 this is the same number (to about
    1e-8 relative) with 2N-dimensional instead of 2048-dimensional eigenvalue problems.
    """
    q, _ = torch.linalg.qr(torch.cat([a, b]).T)
    return fid_from_features(a @ q, b @ q)


def relative_change(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of ||a_i - b_i|| / ||b_i||."""
    return float(((a - b).norm(dim=1) / b.norm(dim=1)).mean())


def write_readme(out: Path, res: dict) -> None:
    lab = res["pipelines"]["lab"]
    lines = [
        "# Inception FID: how much the resize and the input range move it",
        "",
        f"Fashion-MNIST, {res['n']} test images against {res['n']} training images (seeded draws,"
        f" seed {res['seed']}), the lab's TorchScript Inception (float32, CPU), one run (the seed"
        " spread of the pipeline differences was not measured; the row *another draw* gives the"
        " scale of the sampling noise). Written by:",
        "",
        "```bash",
        res["command"],
        "```",
        "",
        f"Wall time {res['wall_s']:.0f} s on {res['machine']}.",
        "",
        "| pipeline | FID, both sets through it | change vs lab | FID, only the test set through it"
        " | change vs lab | mean relative feature change |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in res["pipelines"].items():
        lines.append(
            f"| {name} | {r['fid_both']:.2f} | {r['fid_both'] - lab['fid_both']:+.2f} |"
            f" {r['fid_mismatch']:.2f} | {r['fid_mismatch'] - lab['fid_both']:+.2f} |"
            f" {r['feature_change']:.4f} |"
        )
    other = res["another_draw"]
    lines += [
        f"| another draw of {res['n']} test images (lab) | {other['fid']:.2f} |"
        f" {other['fid'] - lab['fid_both']:+.2f} | | | |",
        "",
        "Pipelines:",
        "",
    ]
    lines += [f"- `{name}`: {r['what']}" for name, r in res["pipelines"].items()]
    lines += [
        "",
        "*Both sets*: test and training images preprocessed the same way (how the number depends on"
        " the convention when comparing with another code base). *Only the test set*: the test"
        " images through the pipeline, the training images through the lab's (a mismatch between"
        " samples and cached reference statistics). Feature change: mean over the test images of"
        " ||f - f_lab|| / ||f_lab||.",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def cross_check(n: int, out: Path, command: str) -> None:
    """The port against the independent float64 forward pass on ``n`` Fashion-MNIST test images.

    The test suite does this on six small pictures (tests/test_inception_reference.py); here on
    real garments, with the FID of the first half against the second half from each path.
    """
    sys.path.insert(0, str(ROOT))  # the reference lives with the tests: test support, not the lab
    from tests.inception_reference import in_their_span, reference_from_port

    t0 = time.perf_counter()
    images = load_dataset("fashion-mnist", split="test").data[:n]
    x = preprocess(images)
    net = InceptionFeatures()
    with torch.no_grad():
        port = net.model(x).reshape(n, -1).double()
    ref = reference_from_port(net.model)(x.double())
    diff = (port - ref).abs()
    half = n // 2
    fid_port = fid_from_features(*in_their_span(port[:half], port[half:]))
    fid_ref = fid_from_features(*in_their_span(ref[:half], ref[half:]))
    res = {
        "images": f"the first {n} Fashion-MNIST test images, the lab's preprocess",
        "feature_scale_max": float(ref.abs().max()),
        "max_abs_diff": float(diff.max()),
        "max_abs_diff_over_scale": float(diff.max() / ref.abs().max()),
        "max_per_image_relative_diff": float(((port - ref).norm(dim=1) / ref.norm(dim=1)).max()),
        "fid_first_half_vs_second_half": {"port": fid_port, "reference": fid_ref},
        "fid_relative_diff": abs(fid_port - fid_ref) / fid_ref,
        "command": command,
        "torch": torch.__version__,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "cross-check.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100, help="images per set (default 100)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument(
        "--cross-check",
        type=int,
        metavar="N",
        help="instead: compare the port with tests/inception_reference.py on N images",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    command = "OMP_NUM_THREADS=1 python scripts/inception_preprocessing.py" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    if args.cross_check:
        cross_check(args.cross_check, args.out, command)
        return

    gen = torch.Generator().manual_seed(args.seed)
    test = load_dataset("fashion-mnist", split="test").data
    train = load_dataset("fashion-mnist", split="train").data
    order = torch.randperm(len(test), generator=gen)
    test_a, test_b = test[order[: args.n]], test[order[args.n : 2 * args.n]]
    train_a = train[torch.randperm(len(train), generator=gen)[: args.n]]

    net = InceptionFeatures()
    train_lab = features(net, "lab", train_a, args.batch)
    test_lab = features(net, "lab", test_a, args.batch)
    results = {}
    for name, (_, _, what) in PIPELINES.items():
        t = time.perf_counter()
        if name == "lab":
            f_test, f_train = test_lab, train_lab
        else:
            f_test = features(net, name, test_a, args.batch)
            f_train = features(net, name, train_a, args.batch)
        results[name] = {
            "what": what,
            "fid_both": fid(f_test, f_train),
            "fid_mismatch": fid(f_test, train_lab),
            "feature_change": relative_change(f_test, test_lab),
            "input_max_abs_diff_vs_lab": float(
                (network_input(name, test_a[:50]) - preprocess(test_a[:50])).abs().max()
            ),
            "seconds": round(time.perf_counter() - t, 1),
        }
        print(f"{name:18s} {json.dumps({k: v for k, v in results[name].items() if k != 'what'})}")
        sys.stdout.flush()
    other = features(net, "lab", test_b, args.batch)
    res = {
        "dataset": "fashion-mnist",
        "n": args.n,
        "seed": args.seed,
        "features": "Inception-v3 pool3, TF 2015-12-05 weights (TorchScript port), float32",
        "pipelines": results,
        "another_draw": {
            "fid": fid(other, train_lab),
            "feature_note": "a disjoint draw of n test images, lab pipeline, against the same training images",
        },
        "command": command,
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": f"{platform.machine()} CPU, {args.threads} torch thread(s)",
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    write_readme(args.out, res)
    print(f"wrote {args.out / 'results.json'} and README.md ({res['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
