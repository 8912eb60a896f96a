"""The shipped domain classifiers (FID-FMNIST features, class accuracy of samples)."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import torch

from difusion.data import load_dataset
from difusion.errors import DifusionError
from difusion.metrics.classifier import (
    ClassifierConfig,
    SmallCNN,
    load_classifier,
    predict,
    read_metadata,
    weights_path,
)

SHIPPED = ("fashion-mnist", "digits", "mnist")


def _test_split(name: str):
    try:
        return load_dataset(name, split="test")
    except DifusionError as err:  # dataset files not installed here (MNIST: `difusion fetch mnist`)
        pytest.skip(f"{name} test images not on this machine, accuracy not recomputed: {err}")


@pytest.fixture(scope="module")
def digits_model() -> SmallCNN:
    return load_classifier("digits")


@pytest.fixture(scope="module")
def digits_test():
    return _test_split("digits")


@pytest.mark.parametrize(
    ("name", "bar", "tol"),
    [
        # 10k test images: the recomputed accuracy must match the stored one within 0.1 %.
        ("fashion-mnist", 0.93, 0.001),
        # 297 test images: one image is 0.34 %; allow one float-rounding flip, nothing more.
        ("digits", 0.97, 1.5 / 297),
        # 10k test images, as for fashion-mnist.
        ("mnist", 0.99, 0.001),
    ],
)
def test_shipped_classifier_reaches_its_stated_accuracy(name: str, bar: float, tol: float) -> None:
    test = _test_split(name)
    model = load_classifier(name)
    meta = read_metadata(weights_path(name))
    assert meta["dataset"] == name
    assert int(meta["test_images"]) == len(test.labels)
    logits, _ = predict(model, test.data)
    acc = (logits.argmax(1) == test.labels).float().mean().item()
    stated = float(meta["test_accuracy"])
    assert abs(acc - stated) <= tol, (acc, stated)
    assert acc >= bar


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_are_small_and_listed_in_the_readme(name: str) -> None:
    path = weights_path(name)
    assert path.stat().st_size < 2_000_000
    meta = read_metadata(path)
    config = ClassifierConfig.from_json(meta["config"])
    assert config.feature_dim == load_classifier(name).feature_dim
    assert "scripts/train_classifier.py" in meta["command"]
    readme = (path.parent / "README.md").read_text()
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert sha in readme, f"README.md does not list the sha256 of {path.name}: {sha}"


def test_features_shape_and_batch_independence(digits_model: SmallCNN, digits_test) -> None:
    x = digits_test.data[:100]
    logits, feats = predict(digits_model, x, batch_size=512)
    assert logits.shape == (100, 10)
    assert feats.shape == (100, digits_model.feature_dim)
    assert feats.dtype == torch.float32
    assert (feats >= 0).all()  # after the ReLU
    logits7, feats7 = predict(digits_model, x, batch_size=7)
    torch.testing.assert_close(feats7, feats, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits7, logits, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        one = digits_model.features(x[3:4])
    torch.testing.assert_close(one[0], feats[3], atol=1e-5, rtol=1e-5)


def test_forward_matches_predict(digits_model: SmallCNN, digits_test) -> None:
    x = digits_test.data[:64]
    logits, _ = predict(digits_model, x)
    with torch.no_grad():
        direct = digits_model(x)
    torch.testing.assert_close(direct, logits, atol=1e-5, rtol=1e-5)
    assert not digits_model.training


@pytest.mark.parametrize("size", [8, 28])
def test_architecture_handles_both_sizes(size: int) -> None:
    torch.manual_seed(0)
    model = SmallCNN(ClassifierConfig(channels=(4, 8, 8), feature_dim=16)).eval()
    logits, feats = predict(model, torch.rand(5, 1, size, size) * 2 - 1)
    assert logits.shape == (5, 10) and feats.shape == (5, 16)
    with pytest.raises(DifusionError):
        model.features(torch.zeros(2, 3, size, size))


def test_missing_weights_give_a_one_line_error(tmp_path) -> None:
    with pytest.raises(DifusionError) as info:
        load_classifier("fashion-mnist", path=tmp_path / "nope.safetensors")
    message = str(info.value)
    assert "\n" not in message
    assert "scripts/train_classifier.py --dataset fashion-mnist" in message
    if not weights_path("mnist").exists():  # a checkout without the MNIST weights
        with pytest.raises(DifusionError, match=r"train_classifier\.py --dataset mnist"):
            load_classifier("mnist")


def test_unknown_dataset_is_refused() -> None:
    with pytest.raises(DifusionError, match=re.escape("cifar10")):
        load_classifier("cifar10")


def test_config_round_trips_through_json() -> None:
    config = ClassifierConfig(channels=(8, 16, 32), feature_dim=64, dropout=0.1)
    assert ClassifierConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["channels"] == [8, 16, 32]
