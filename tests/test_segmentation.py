"""The U-Net chapter: output-size arithmetic, the weight map, elastic deformation, overlap-tile
inference, the measures, the data sources, and a small U-Net that learns to beat Otsu."""

from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
import pytest
import torch

from difusion.errors import DifusionError
from difusion.metrics.segmentation import (
    average_precision,
    dice,
    instances_from_foreground,
    iou,
    pixel_error,
    separated_share,
    touching_pairs,
)
from difusion.nn.unet_seg import UNetSeg, legal_input_sizes, output_size
from difusion.segmentation.elastic import dense_displacements, elastic_deform, warp
from difusion.segmentation.tiling import predict_tiled, tile_origins
from difusion.segmentation.weight_map import class_weights, separation_target, weight_map

# ---------------------------------------------------------------- the network's size arithmetic


def test_paper_tile_572_gives_388():
    assert output_size(572, depth=4) == 388
    assert UNetSeg(base_channels=2, depth=4).margin(572) == 92


def test_legal_sizes_step_by_two_to_the_depth_and_match_the_network():
    sizes = legal_input_sizes(4, 600)
    assert 572 in sizes and sizes[0] == 188
    assert all(b - a == 16 for a, b in zip(sizes, sizes[1:], strict=False))
    net = UNetSeg(base_channels=2, depth=3)
    for n in legal_input_sizes(3, 140)[:3]:
        y = net(torch.zeros(1, 1, n, n))
        assert y.shape[-1] == output_size(n, 3)


@pytest.mark.parametrize("n", [570, 574, 100, 0])
def test_illegal_sizes_are_refused_with_one_line(n):
    with pytest.raises(DifusionError) as e:
        output_size(n, 4)
    assert "\n" not in str(e.value) and "illegal" in str(e.value)
    net = UNetSeg(base_channels=2, depth=2)
    with pytest.raises(DifusionError):
        net(torch.zeros(1, 1, 47, 47))


def test_paper_network_has_64_to_1024_channels_and_same_variant_keeps_size():
    net = UNetSeg()
    assert net.down[0][0].out_channels == 64 and net.bottom[0].out_channels == 1024
    assert 30e6 < sum(p.numel() for p in net.parameters()) < 32e6  # the paper's ~31M
    same = UNetSeg(base_channels=4, depth=2, padding="same")
    assert same(torch.zeros(2, 1, 32, 48)).shape == (2, 2, 32, 48)
    with pytest.raises(DifusionError):
        output_size(30, 2, "same")


# ---------------------------------------------------------------- the weight map (Eq. 2)


def _two_squares(gap: int, size: int = 80) -> np.ndarray:
    lab = np.zeros((size, size), np.int32)
    lab[30:50, 10:38] = 1
    lab[30:50, 38 + gap : 66 + gap] = 2
    return lab


def test_weight_map_between_close_cells_is_wc_plus_w0_and_wc_far_away():
    lab = _two_squares(gap=2)
    target = separation_target(lab)
    wc = class_weights(target)
    w = weight_map(lab, w0=10.0, sigma=5.0)
    # in the 2-px gap d1 + d2 = 2 (pixel centres 1 px from each cell): w_c + 10 exp(-4/50)
    gap_w = w[40, 38]
    assert gap_w == pytest.approx(wc[0] + 10 * np.exp(-((1 + 2) ** 2) / 50), rel=0.15)
    assert gap_w > wc[0] + 8
    assert w[5, 5] == pytest.approx(wc[0], abs=1e-3)  # far from any border: only w_c
    assert w[40, 20] == pytest.approx(wc[1])  # inside a cell: only w_c
    assert wc[0] * (target == 0).sum() == pytest.approx(wc[1] * (target == 1).sum())


def test_touching_cells_get_a_separating_background_line():
    lab = _two_squares(gap=0)
    target = separation_target(lab)
    comps = instances_from_foreground(target > 0, "components", min_size=1)
    assert comps.max() == 2  # the line splits them
    assert (target[lab > 0] == 0).sum() == 20  # one column of 20 px


# ---------------------------------------------------------------- elastic deformation


def test_zero_displacement_is_the_identity_and_keeps_labels():
    rng = np.random.default_rng(0)
    img = rng.random((40, 50))
    lab = rng.integers(0, 5, (40, 50))
    zero = np.zeros((2, 40, 50))
    assert np.allclose(warp(img, zero, 3), img, atol=1e-6)
    assert np.array_equal(warp(lab, zero, 0), lab)


def test_random_deformation_keeps_label_values_and_bicubic_field_is_smooth():
    rng = np.random.default_rng(1)
    lab = np.zeros((64, 64), np.int64)
    lab[10:30, 10:30], lab[35:60, 30:60] = 3, 7
    img = lab.astype(float)
    out_img, out_lab = elastic_deform([img, lab], [3, 0], rng, grid=3, std=10.0)
    assert set(np.unique(out_lab)) <= {0, 3, 7}
    assert not np.array_equal(out_lab, lab)
    coarse = np.zeros((2, 3, 3))
    coarse[0, 1, 1] = 10.0
    d = dense_displacements(coarse, (65, 65))
    assert d[0, 32, 32] == pytest.approx(10.0) and d[0, 0, 0] == pytest.approx(0.0)
    assert np.abs(np.diff(d[0], axis=0)).max() < 1.0  # smooth: < 1 px change per pixel


# ---------------------------------------------------------------- overlap-tile inference


def test_tiles_cover_the_image_exactly():
    for size, out in [(100, 36), (36, 36), (10, 36), (73, 20)]:
        covered = np.zeros(max(size, out), bool)
        for s in tile_origins(max(size, out), out):
            covered[s : s + out] = True
        assert covered.all()


@pytest.mark.parametrize("shape", [(57, 83), (20, 20), (100, 64)])
def test_overlap_tile_equals_whole_image_for_a_translation_equivariant_net(shape):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 5), torch.nn.Tanh()
    )  # valid convolutions only: margin 3, equivariant to every shift
    img = np.random.default_rng(0).random(shape).astype(np.float32)
    with torch.no_grad():
        padded = np.pad(img, 3, mode="reflect")
        whole = net(torch.from_numpy(padded)[None, None])[0].numpy()
    tiled = predict_tiled(net, img, tile_in=30, tile_out=24)
    assert tiled.shape == whole.shape == (2, *shape)
    assert np.allclose(tiled, whole, atol=1e-5)


# ---------------------------------------------------------------- measures


def test_measures_on_hand_made_masks():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:, :5], b[:, 2:6] = True, True
    assert dice(a, b) == pytest.approx(2 * 30 / 90)
    assert iou(a, b) == pytest.approx(30 / 60)
    assert pixel_error(a, b) == pytest.approx(30 / 100)
    truth = _two_squares(0)
    merged = (truth > 0).astype(np.int32)  # the two touching cells as one
    ap = average_precision(truth, merged)
    # the merged blob overlaps each cell with IoU ~ 0.5 or less: no match, 1 FP, 2 FN
    assert ap["tp"] == 0 and ap["ap"] == 0.0
    assert average_precision(truth, truth)["ap"] == 1.0
    assert touching_pairs(truth) == [(1, 2)]
    assert separated_share(truth, merged)["share"] == 0.0
    assert separated_share(truth, truth)["share"] == 1.0
    relabelled = np.where(truth > 0, truth * 7 + 3, 0)  # ids need not be consecutive
    assert average_precision(relabelled, truth)["ap"] == 1.0


def test_watershed_splits_two_overlapping_discs():
    yy, xx = np.mgrid[:60, :90]
    fg = ((yy - 30) ** 2 + (xx - 30) ** 2 < 15**2) | ((yy - 30) ** 2 + (xx - 55) ** 2 < 15**2)
    assert instances_from_foreground(fg, "components").max() == 1
    assert instances_from_foreground(fg, "watershed", min_distance=8).max() == 2


# ---------------------------------------------------------------- data


def test_synthetic_cells_touch_and_are_reproducible():
    from difusion.data.cells import synthetic_set

    x, y = synthetic_set(3, 128, seed=5)
    x2, y2 = synthetic_set(3, 128, seed=5)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert x.shape == (3, 128, 128) and y.dtype == np.int32
    assert sum(len(touching_pairs(lab)) for lab in y) >= 3
    for img, lab in zip(x, y, strict=True):  # cells are brighter than the background
        assert img[lab > 0].mean() > img[lab == 0].mean() + 0.2


def _tif(arr: np.ndarray) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, arr)
    return buf.getvalue()


def test_dsb2018_loader_reads_a_small_archive(tmp_path):
    from difusion.data.dsb2018 import load_dsb2018

    zpath = tmp_path / "dsb2018.zip"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(zpath, "w") as zf:
        for split, names in (("train", ["a", "b"]), ("test", ["c"])):
            for name in names:
                img = rng.integers(0, 255, (24, 32), dtype=np.uint8)
                mask = np.zeros((24, 32), np.uint16)
                mask[2:8, 3:9] = 4
                zf.writestr(f"dsb2018/{split}/images/{name}.tif", _tif(img))
                zf.writestr(f"dsb2018/{split}/masks/{name}.tif", _tif(mask))
    train = load_dsb2018("train", zpath)
    assert [r[0] for r in train] == ["a", "b"]
    name, img, mask = load_dsb2018("test", zpath)[0]
    assert img.shape == mask.shape == (24, 32) and mask.max() == 4 and img.dtype == np.float32
    with pytest.raises(DifusionError):
        load_dsb2018("val", zpath)
    with pytest.raises(DifusionError):
        load_dsb2018("test", tmp_path / "missing.zip")


def test_stardist_pair_is_refused_on_a_wrong_checksum(tmp_path):
    from difusion.data.stardist_wheel import MEMBERS, extract_pair

    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for member in MEMBERS.values():
            zf.writestr(member, b"not the image")
    with pytest.raises(DifusionError, match="sha256"):
        extract_pair(wheel, tmp_path / "out")
    assert not (tmp_path / "out" / "img2d.tif").exists()


def test_stardist_pair_if_fetched():
    from difusion.data.stardist_wheel import FILE_SHA256, load_stardist_pair, stardist_dir

    folder = stardist_dir()
    if not (folder / "img2d.tif").is_file():
        pytest.skip("run `difusion fetch stardist` first")
    for name, digest in FILE_SHA256.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    img, mask = load_stardist_pair()
    assert img.shape == mask.shape == (512, 512)
    assert len(np.unique(mask)) - 1 == 125


# ---------------------------------------------------------------- learning


@pytest.mark.slow
def test_small_unet_trained_briefly_beats_otsu_on_held_out_synthetic_cells(tmp_path):
    """The whole path: preset -> the one training loop -> overlap-tile inference -> measures."""
    import json

    from difusion.config import load_config
    from difusion.training.loop import train

    cfg = load_config(
        "seg-cells",
        [
            "train.steps=150",
            "train.threads=2",
            "segmentation.base_channels=8",
            "segmentation.depth=2",
            "segmentation.tile=92",
            "segmentation.n_train=10",
            "segmentation.n_test=4",
            "segmentation.image_size=128",
        ],
    )
    train(cfg, tmp_path / "run", progress=False)
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    unet, otsu = scores["unet"], scores["otsu_watershed"]
    assert unet["dice"] > otsu["dice"] and unet["iou"] > otsu["iou"]
    assert (tmp_path / "run" / "overlay.png").is_file()


def test_small_experiments_write_their_pages_and_reuse_runs(tmp_path):
    from difusion.data.stardist_wheel import stardist_dir
    from difusion.experiments.runner import run_named

    runs, results = tmp_path / "runs", tmp_path / "results"
    page = run_named("seg-weight-map", "small", runs, results, False)
    text = page.read_text()
    assert "w_c only" in text and "Otsu + watershed" in text and "| trained |" in text
    assert (page.parent / "weight_map.png").is_file()
    again = run_named("seg-weight-map", "small", runs, results, False).read_text()
    assert "| reused |" in again and "| trained |" not in again
    page = run_named("seg-elastic", "small", runs, results, False)
    assert page.read_text().count("| yes |") == 1 and "| no |" in page.read_text()
    if (stardist_dir() / "img2d.tif").is_file():
        page = run_named("seg-real", "small", runs, results, False)
        assert "Otsu + watershed" in page.read_text()
