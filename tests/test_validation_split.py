"""The validation split: "val" and "fit" cut the training split in two, so settings are chosen on
data the test split never saw (issue 25: choose on validation, report the test split once)."""

from __future__ import annotations

import pytest
import torch

from difusion.data import DATASETS, VALIDATION, load_dataset
from difusion.errors import DifusionError


def parts(name: str):
    return (load_dataset(name, split=s) for s in ("train", "fit", "val", "test"))


@pytest.mark.parametrize("name", ["digits", "fashion-mnist"])
def test_fit_and_val_partition_the_training_split(name):
    if not DATASETS[name].available():
        pytest.skip(f"{name} is not installed")
    train, fit, val, test = parts(name)
    assert len(val) == VALIDATION[name] and len(fit) + len(val) == len(train)
    # the training split, cut once: fit first, val last, nothing shared, nothing lost
    assert torch.equal(torch.cat([fit.data, val.data]), train.data)
    assert torch.equal(torch.cat([fit.labels, val.labels]), train.labels)
    # and none of it is a test image (the splits were disjoint before the cut)
    flat = val.data.flatten(1)
    assert not (torch.cdist(flat[:200], test.data.flatten(1)[:200]) == 0).any()
    # a fixed cut only works on shuffled files: every class is within 20% of its share
    counts = torch.bincount(val.labels, minlength=10).float()
    assert (counts - len(val) / 10).abs().max() < 0.2 * len(val) / 10
    assert val.info["split"] == "val" and fit.info["held_out_of"] == "train"


def test_a_split_the_dataset_has_not_is_a_one_line_error():
    with pytest.raises(DifusionError, match="Valid splits: .*fit, val"):
        load_dataset("digits", split="validation")
    with pytest.raises(DifusionError, match="unknown split 'val'"):
        load_dataset("toy2d", split="val")


def test_val_is_a_reference_set_for_eval():
    """Scoring against digits:val: the validation images themselves score FID 0 against it, and
    the test images (a different draw of the same digits) score more than that and less than
    noise does."""
    from difusion.evaluation import evaluate

    val = load_dataset("digits", split="val")
    test = load_dataset("digits", split="test")

    def fid(images):
        result = evaluate(images, None, reference="digits:val", metrics=("fid",), progress=False)
        return result.metrics["fid_domain"]

    same, other = fid(val.data), fid(test.data)
    noise = fid(torch.rand_like(test.data) * 2 - 1)
    assert abs(same) < 1e-6
    assert 0 < other < noise / 10
