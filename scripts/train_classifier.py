"""Train the small domain classifier used for FID-FMNIST and class accuracy.

    python scripts/train_classifier.py --dataset fashion-mnist
    python scripts/train_classifier.py --dataset digits
    python scripts/train_classifier.py --dataset mnist      # needs the MNIST files

Saves ``src/difusion/metrics/weights/<dataset>-classifier.safetensors`` (or ``--out``) with
metadata: architecture (``config``, JSON), dataset, epochs, seed, test accuracy, parameter
count, wall time and the exact command. AdamW + one-cycle LR, label smoothing, random shifts
(±2 px on 28×28, ±1 px on 8×8, by padding with the background value and cropping) and, for
fashion-mnist only, horizontal flips. bf16 autocast on CPU (``--no-bf16`` to turn it off);
the reported test accuracy is always measured in float32 in eval mode, exactly as
``difusion.metrics.classifier.predict`` computes it.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from difusion.data import load_dataset
from difusion.metrics.classifier import (
    CLASSIFIER_DATASETS,
    SmallCNN,
    default_config,
    predict,
)

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "src" / "difusion" / "metrics" / "weights"

# (epochs, peak lr, batch size, weight decay) per dataset.
DEFAULTS = {
    "fashion-mnist": (30, 3e-3, 256, 5e-2),
    "mnist": (10, 3e-3, 256, 5e-2),
    "digits": (60, 3e-3, 64, 5e-2),
}


def augment(x: torch.Tensor, shift: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random integer shifts in [-shift, shift] (pad with -1 = background, crop) and h-flips."""
    n, c, h, w = x.shape
    if shift > 0:
        padded = F.pad(x, (shift, shift, shift, shift), value=-1.0)
        oy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
        ox = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
        rows = (oy[:, None] + torch.arange(h))[:, None, :, None]  # (n,1,h,1)
        cols = (ox[:, None] + torch.arange(w))[:, None, None, :]  # (n,1,1,w)
        idx_n = torch.arange(n)[:, None, None, None]
        idx_c = torch.arange(c)[None, :, None, None]
        x = padded[idx_n, idx_c, rows, cols]
    if flip:
        mask = torch.rand(n, generator=gen) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x


def accuracy(model: SmallCNN, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    logits, _ = predict(model, images)
    return (logits.argmax(1) == labels).float().mean().item()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, choices=CLASSIFIER_DATASETS)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (one-cycle)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-bf16", action="store_true", help="train in float32")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    epochs, lr, batch_size, weight_decay = DEFAULTS[args.dataset]
    epochs = args.epochs or epochs
    lr = args.lr or lr
    batch_size = args.batch_size or batch_size
    out = args.out or WEIGHTS_DIR / f"{args.dataset}-classifier.safetensors"
    command = shlex.join(["python", "scripts/train_classifier.py", *argv])

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    train = load_dataset(args.dataset, split="train")
    test = load_dataset(args.dataset, split="test")
    x_train, y_train = train.data.float().contiguous(), train.labels.long()
    x_test, y_test = test.data.float().contiguous(), test.labels.long()
    shift = 2 if x_train.shape[-1] >= 16 else 1
    flip = args.dataset == "fashion-mnist"

    config = default_config(args.dataset)
    model = SmallCNN(config)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"{args.dataset}: train {tuple(x_train.shape)}, test {tuple(x_test.shape)}; "
        f"{n_params:,} parameters; {epochs} epochs, batch {batch_size}, lr {lr}, "
        f"shift ±{shift}, flip {flip}, bf16 {not args.no_bf16}, threads {torch.get_num_threads()}",
        flush=True,
    )
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
    )
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.2
    )

    start = time.perf_counter()
    acc = 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(x_train), generator=gen)
        total, count = 0.0, 0
        for i in range(0, len(perm), batch_size):
            idx = perm[i : i + batch_size]
            if len(idx) < 2:  # BatchNorm needs more than one sample
                continue
            x = augment(x_train[idx], shift, flip, gen)
            y = y_train[idx]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not args.no_bf16):
                loss = F.cross_entropy(model(x).float(), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            count += len(idx)
        acc = accuracy(model, x_test, y_test)
        print(
            f"epoch {epoch:3d}/{epochs}  train loss {total / count:.4f}  test acc {acc:.4f}  "
            f"({time.perf_counter() - t0:.1f} s)",
            flush=True,
        )
    wall = time.perf_counter() - start
    print(f"total training time {wall:.1f} s; final test accuracy {acc:.4f}", flush=True)

    from safetensors.torch import save_file

    meta = {
        "format": "difusion-classifier-v1",
        "config": config.to_json(),
        "dataset": args.dataset,
        "epochs": str(epochs),
        "seed": str(args.seed),
        "test_accuracy": f"{acc:.6f}",
        "test_images": str(len(x_test)),
        "parameters": str(n_params),
        "train_seconds": f"{wall:.1f}",
        "torch": torch.__version__,
        "command": command,
        "recipe": json.dumps(
            {
                "optimizer": "AdamW",
                "lr": lr,
                "weight_decay": weight_decay,
                "schedule": "OneCycleLR(pct_start=0.2)",
                "batch_size": batch_size,
                "label_smoothing": 0.1,
                "shift": shift,
                "hflip": flip,
                "bf16_autocast": not args.no_bf16,
            },
            sort_keys=True,
        ),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out), metadata=meta)
    print(f"saved {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
