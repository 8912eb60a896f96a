"""How many samples does a domain FID need? Real Fashion-MNIST training images scored against the
test set: the spread over disjoint draws and the bias at each sample count (the measurement floor).

    python docs/figures/fid_spread.py
"""

import statistics
import time

import torch

from difusion.data import load_dataset
from difusion.metrics.classifier import load_classifier, predict
from difusion.metrics.fid import fid_from_features
from difusion.metrics.kid import kid

t0 = time.perf_counter()
model = load_classifier("fashion-mnist")
_, ref = predict(model, load_dataset("fashion-mnist", split="test").data)
_, train = predict(model, load_dataset("fashion-mnist", split="train").data)
ref, train = ref.double(), train.double()
perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
print("| N samples | FID-FMNIST (mean ± std over 5 disjoint draws) | KID (mean of 5) |")
print("|---|---|---|")
for n in (100, 500, 2000, 10000):
    fids, kids = [], []
    for k in range(5):
        x = train[perm[k * n : (k + 1) * n]]
        fids.append(fid_from_features(x, ref))
        kids.append(kid(x, ref, subsets=20, subset_size=min(n, 1000))[0])
    print(
        f"| {n} | {statistics.mean(fids):.2f} ± {statistics.stdev(fids):.2f} | "
        f"{statistics.mean(kids):.4f} |"
    )
print(f"\n({time.perf_counter() - t0:.0f} s; reference: all 10,000 test images)")
