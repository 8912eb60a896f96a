"""Inception pool3 cross-checked: the TorchScript port against an independent forward pass.

``tests/inception_reference.py`` rebuilds Inception-v3 up to ``pool_3`` from the architecture and
the TF 2015-12-05 graph's quirks (batch norm without gamma, eps 1e-3; padding-excluding average
pools; a max pool in ``mixed_10``'s pool branch), in float64 with batch norm folded into the
convolutions, and loads the port's own weights. The features and the FID from both paths must
agree to float32 rounding, and each quirk set wrong must move the features far beyond that
tolerance, so the agreement is not two copies of one computation. The reference has no logits:
the port stops at pool3 (its state_dict has no 1008-class layer), so there is no top-class check.

These tests need the real weights (``difusion fetch inception``) and skip without them. 19 s here
with one thread on a shared 2-core machine, most of it the float64 reference.
"""

from __future__ import annotations

import pytest
import torch

from difusion.data import load_dataset
from difusion.metrics.fid import fid_from_features
from difusion.metrics.inception import FEATURE_DIM, InceptionFeatures, preprocess
from tests.inception_reference import ReferenceInception, in_their_span, reference_from_port
from tests.test_inception import needs_weights, shapes

# Float32 port against the float64 reference: the largest difference, as a fraction of the largest
# feature, and each image's difference as a fraction of its feature vector's norm, stay below this
# (measured here: 7.7e-7 and at most 1.7e-6; float32 rounding through 94 convolutions).
FEATURE_RTOL = 1e-5
# A wrong quirk must move the features by at least this fraction of the largest feature
# (measured here: 0.03 for the epsilon, 0.16 and 0.18 for the pools).
QUIRK_MIN_EFFECT = 1e-2


def images() -> torch.Tensor:
    """Six grey pictures in [-1, 1]: a disc, a shirt, uniform noise and three scikit-learn digits.

    The digits are scikit-learn's 8x8 images (always available), blown up to 28x28 (nearest) and
    then to 299x299 by the lab's preprocessing like the rest.
    """
    torch.manual_seed(0)
    pics = shapes()[[0, 3]]
    noise = torch.rand(1, 1, 28, 28) * 2 - 1
    digits = load_dataset("digits", split="test").data[:3]
    digits = torch.nn.functional.interpolate(digits, size=(28, 28), mode="nearest")
    return torch.cat([pics, noise, digits])


@pytest.fixture(scope="module")
def port():
    return InceptionFeatures().model


@pytest.fixture(scope="module")
def inputs():
    return preprocess(images())  # (6, 3, 299, 299) in the TF range, the lab's preprocessing


@pytest.fixture(scope="module")
def port_feats(port, inputs):
    with torch.no_grad():
        return port(inputs).reshape(len(inputs), FEATURE_DIM).double()


@pytest.fixture(scope="module")
def ref_feats(port, inputs):
    return reference_from_port(port)(inputs.double())


@needs_weights
def test_pool3_features_agree_with_the_independent_forward_pass(port_feats, ref_feats):
    assert ref_feats.shape == (6, FEATURE_DIM) and ref_feats.dtype == torch.float64
    scale = ref_feats.abs().max()
    assert scale > 1  # live features (about 5.5 here), so the relative bound means something
    diff = (port_feats - ref_feats).abs()
    assert diff.max() < FEATURE_RTOL * scale, f"max |port - reference| = {diff.max():.3g}"
    # And per image, relative to that image's feature vector.
    per_image = (port_feats - ref_feats).norm(dim=1) / ref_feats.norm(dim=1)
    assert per_image.max() < FEATURE_RTOL


def test_fid_is_unchanged_in_the_span_of_the_features():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 300, generator=g, dtype=torch.float64), torch.randn(3, 300, generator=g)
    full = fid_from_features(a, b.double())
    # Not to 1e-15: in 300-d the rank-2 covariances have 298 eigenvalues that are rounding noise,
    # and their clamped square roots add up to about 1e-8 of the FID here.
    assert abs(fid_from_features(*in_their_span(a, b.double())) - full) < 1e-7 * full


@needs_weights
def test_fid_agrees_between_the_two_paths(port_feats, ref_feats):
    """FID of {disc, shirt, noise} against three digits, from each path's features."""
    fid_port = fid_from_features(*in_their_span(port_feats[:3], port_feats[3:]))
    fid_ref = fid_from_features(*in_their_span(ref_feats[:3], ref_feats[3:]))
    assert fid_ref > 10  # different kinds of picture: far apart
    assert abs(fid_port - fid_ref) < FEATURE_RTOL * fid_ref, (fid_port, fid_ref)


@needs_weights
@pytest.mark.parametrize(
    "wrong",
    [
        {"last_pool": "avg"},  # mixed_10's pool branch as an average pool
        {"avg_pool_counts_padding": True},  # average pools dividing by 9 at the borders
        {"bn_eps": 1e-5},  # torch's default batch-norm epsilon instead of TF's 1e-3
    ],
    ids=["avg-pool-in-mixed_10", "avg-pool-counts-padding", "bn-eps-1e-5"],
)
def test_each_graph_quirk_is_visible(port, inputs, ref_feats, wrong):
    """Getting one quirk wrong moves the features far beyond the agreement tolerance.

    Run in float32 on one image (float64 is not needed to see an effect this size).
    """
    feats = reference_from_port(port, **wrong)(inputs[:1])
    effect = (feats.double() - ref_feats[:1]).abs().max()
    assert effect > QUIRK_MIN_EFFECT * ref_feats.abs().max(), f"{wrong}: effect {effect:.3g}"


@needs_weights
def test_reference_uses_every_weight_and_checks_shapes(port):
    state = dict(port.state_dict())
    ReferenceInception().load_port_state_dict(state)  # every key used exactly once
    del state["net.layers.mixed_4.tower.conv_1.weight"]
    with pytest.raises(ValueError, match="missing keys"):
        ReferenceInception().load_port_state_dict(state)
    # A 17x17 block with the wrong width (160 instead of 128 in mixed_4) does not load.
    wrong = ReferenceInception()
    wrong.blocks["mixed_4"] = ReferenceInception().blocks["mixed_5"]
    with pytest.raises(ValueError, match="architecture says"):
        wrong.load_port_state_dict(dict(port.state_dict()))
