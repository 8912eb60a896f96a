"""Tests of the data package: every source, the registry, downloads and the error messages."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import difusion.data.download as download_module
from difusion.data import (
    DATASETS,
    Dataset,
    describe_datasets,
    download_files,
    load_dataset,
)
from difusion.data import cifar10 as cifar10_module
from difusion.data import idx as idx_module
from difusion.data.cifar10 import extract_cifar10, load_cifar10, read_cifar_bin
from difusion.data.digits import load_digits
from difusion.data.download import cache_dir, download, file_digest
from difusion.data.folder import load_folder
from difusion.data.idx import load_idx_dataset, read_idx, write_idx
from difusion.data.toy2d import DISTRIBUTIONS, load_toy2d
from difusion.errors import DatasetNotFoundError, DifusionError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the user's cache or DIFUSION_DATA; downloads land in tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("DIFUSION_DATA", raising=False)


def assert_one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message and "\n" not in message and "Traceback" not in message
    return message


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------- toy2d


@pytest.mark.parametrize("distribution", list(DISTRIBUTIONS))
def test_toy2d_shape_scale_and_determinism(distribution: str) -> None:
    ds = load_toy2d(distribution, n=4000, seed=3)
    assert isinstance(ds, Dataset)
    assert ds.data.shape == (4000, 2) and ds.data.dtype == torch.float32
    assert ds.kind == "points" and ds.shape == (2,)
    assert torch.isfinite(ds.data).all()
    assert ds.data.mean(0).abs().max() < 0.05
    std = ds.data.std(0)
    assert ((std > 0.5) & (std < 1.5)).all(), std
    assert abs(ds.data.pow(2).mean().item() - 1.0) < 0.05
    again = load_toy2d(distribution, n=4000, seed=3)
    assert torch.equal(ds.data, again.data)
    other = load_toy2d(distribution, n=4000, seed=4)
    assert not torch.equal(ds.data, other.data)
    test = load_toy2d(distribution, n=4000, seed=3, split="test")
    assert not torch.equal(ds.data, test.data)


def test_toy2d_does_not_touch_global_rng() -> None:
    np.random.seed(123)
    torch.manual_seed(123)
    expected_np, expected_torch = np.random.rand(3), torch.rand(3)
    np.random.seed(123)
    torch.manual_seed(123)
    load_toy2d("moons", n=100, seed=0)
    assert np.array_equal(np.random.rand(3), expected_np)
    assert torch.equal(torch.rand(3), expected_torch)


def test_toy2d_distributions_differ() -> None:
    clouds = [load_toy2d(d, n=500, seed=0).data for d in DISTRIBUTIONS]
    for i in range(len(clouds)):
        for j in range(i + 1, len(clouds)):
            assert not torch.allclose(clouds[i], clouds[j], atol=0.1)


def test_toy2d_unknown_distribution_lists_valid_names() -> None:
    with pytest.raises(DifusionError) as error:
        load_toy2d("banana")
    message = assert_one_line(error)
    assert "banana" in message
    for name in DISTRIBUTIONS:
        assert name in message


@pytest.mark.parametrize("n", [0, -5])
def test_toy2d_rejects_bad_n(n: int) -> None:
    with pytest.raises(DifusionError):
        load_toy2d("moons", n=n)


# --------------------------------------------------------------------------- digits


def test_digits_splits_shapes_and_values() -> None:
    from sklearn.datasets import load_digits as sk_digits

    train, test, everything = load_digits("train"), load_digits("test"), load_digits("all")
    assert train.data.shape == (1500, 1, 8, 8)
    assert test.data.shape == (297, 1, 8, 8)
    assert everything.data.shape == (1797, 1, 8, 8)
    for ds in (train, test, everything):
        assert ds.data.dtype == torch.float32 and ds.labels.dtype == torch.int64
        assert ds.data.min() >= -1.0 and ds.data.max() <= 1.0
        assert ds.class_names == [str(i) for i in range(10)]
    assert everything.data.min() == -1.0 and everything.data.max() == 1.0
    assert set(train.labels.tolist()) == set(range(10))
    assert torch.equal(torch.cat([train.data, test.data]), everything.data)
    assert torch.equal(torch.cat([train.labels, test.labels]), everything.labels)
    raw = sk_digits()
    expected = torch.from_numpy(raw.images[:1500, None] / 16.0 * 2.0 - 1.0).float()
    assert torch.allclose(train.data, expected)
    assert torch.equal(train.labels, torch.from_numpy(raw.target[:1500]).long())


def test_digits_bad_split() -> None:
    with pytest.raises(DifusionError) as error:
        load_digits("validation")
    message = assert_one_line(error)
    assert "train" in message and "test" in message and "all" in message


# --------------------------------------------------------------------------- IDX


def handmade_idx(array: np.ndarray, code: int, big_endian_dtype: str) -> bytes:
    """IDX bytes built by hand (independent of write_idx)."""
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(big_endian_dtype).tobytes()


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_handmade_bytes(tmp_path: Path, gz: bool) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 10
    ints = np.array([1, -2, 70000, -(2**31)], dtype=np.int32)
    for name, array, code, dtype in [("img", images, 0x08, ">u1"), ("ints", ints, 0x0C, ">i4")]:
        payload = handmade_idx(array, code, dtype)
        path = tmp_path / (f"{name}.gz" if gz else name)
        path.write_bytes(gzip.compress(payload) if gz else payload)
        got = read_idx(path)
        assert got.shape == array.shape and got.dtype == array.dtype
        assert np.array_equal(got, array)
        got[...] = 0  # writable


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_write_read_idx_round_trip(tmp_path: Path, suffix: str, dtype: type) -> None:
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 5, 2)) * 50).astype(dtype)
    path = write_idx(tmp_path / f"x-idx3{suffix}", array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path)
    assert back.dtype == array.dtype and np.array_equal(back, array)


def test_read_idx_truncated_and_bad_files(tmp_path: Path) -> None:
    payload = handmade_idx(np.ones((4, 5, 5), np.uint8), 0x08, ">u1")
    cases = {
        "short-idx3-ubyte": payload[:-7],
        "long-idx3-ubyte": payload + b"\x00",
        "header-idx3-ubyte": payload[:9],
        "magic-idx3-ubyte": b"\x12\x34" + payload[2:],
        "short.gz": gzip.compress(payload)[:-12],
        "notgz.gz": b"\x1f\x8b" + b"garbage" * 5,
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DifusionError) as error:
            read_idx(path)
        assert name in assert_one_line(error)
    with pytest.raises(DifusionError) as error:
        read_idx(tmp_path / "missing-idx3-ubyte")
    assert "missing-idx3-ubyte" in assert_one_line(error)


def write_fake_idx_dir(
    directory: Path, split: str, images: np.ndarray, labels: np.ndarray, gz: bool
) -> None:
    stems = idx_module.IDX_FILES[split]
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    write_idx(directory / (stems[0] + suffix), images)
    write_idx(directory / (stems[1] + suffix), labels)


def fake_idx_arrays(n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    images = np.zeros((n, 28, 28), np.uint8)
    images[0, 0, 0] = 255
    images[1, :, :] = 51
    images[2, 27, 27] = 255
    labels = np.array([9, 0, 4][:n], np.uint8)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_dataset_from_root(tmp_path: Path, gz: bool) -> None:
    images, labels = fake_idx_arrays()
    write_fake_idx_dir(tmp_path / "fm", "test", images, labels, gz)
    ds = load_idx_dataset("fashion-mnist", "test", root=tmp_path / "fm")
    assert ds.data.shape == (3, 1, 28, 28) and ds.data.dtype == torch.float32
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == [9, 0, 4]
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert len(ds.class_names) == 10
    assert ds.data[0, 0, 0, 0] == 1.0 and ds.data[0, 0, 0, 1] == -1.0
    assert ds.data[2, 0, 27, 27] == 1.0
    assert torch.allclose(ds.data[1], torch.full((1, 28, 28), 51 / 255 * 2 - 1))
    assert ds.data.min() >= -1.0 and ds.data.max() <= 1.0
    # The train split is absent from that directory: a clear error, not a crash.
    with pytest.raises(DatasetNotFoundError):
        load_idx_dataset("fashion-mnist", "train", root=tmp_path / "fm")


def test_load_idx_dataset_mnist_class_names_and_mismatch(tmp_path: Path) -> None:
    images, labels = fake_idx_arrays()
    write_fake_idx_dir(tmp_path / "m", "train", images, labels, gz=False)
    ds = load_idx_dataset("mnist", "train", root=tmp_path / "m")
    assert ds.class_names == [str(i) for i in range(10)]
    write_fake_idx_dir(tmp_path / "bad", "train", images, labels[:2], gz=False)
    with pytest.raises(DifusionError) as error:
        load_idx_dataset("mnist", "train", root=tmp_path / "bad")
    assert_one_line(error)


def test_idx_lookup_order_env_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels = fake_idx_arrays()
    cached = cache_dir("mnist")
    assert cached == tmp_path / "xdg-cache" / "difusion" / "mnist"
    write_fake_idx_dir(cached, "test", images, labels, gz=True)
    assert load_idx_dataset("mnist", "test").info["location"] == str(cached)
    env_root = tmp_path / "env-data"
    write_fake_idx_dir(env_root / "mnist", "test", images[:2], labels[:2], gz=False)
    monkeypatch.setenv("DIFUSION_DATA", str(env_root))
    ds = load_idx_dataset("mnist", "test")
    assert ds.info["location"] == str(env_root / "mnist") and len(ds) == 2


def test_missing_idx_dataset_message_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DatasetNotFoundError) as error:
        load_idx_dataset("mnist", "train")
    message = assert_one_line(error)
    assert "difusion datasets download mnist" in message and "mnist" in message
    source = dataclasses.replace(
        idx_module.IDX_SOURCES["fashion-mnist"], system_dir=tmp_path / "no-debian"
    )
    monkeypatch.setitem(idx_module.IDX_SOURCES, "fashion-mnist", source)
    with pytest.raises(DatasetNotFoundError) as error:
        load_dataset("fashion-mnist", split="test")
    message = assert_one_line(error)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "difusion datasets download fashion-mnist" in message
    assert str(tmp_path / "no-debian") in message
    with pytest.raises(DifusionError) as error:
        load_idx_dataset("mnist", "validation")
    assert "train" in assert_one_line(error)


def make_fake_idx_server(tmp_path: Path) -> tuple[str, dict[str, str], np.ndarray, np.ndarray]:
    """Gzipped IDX files in a folder served through file:// URLs, with their MD5s."""
    served = tmp_path / "served"
    served.mkdir()
    images, labels = fake_idx_arrays()
    md5s = {}
    for split in ("train", "test"):
        for stem, array in zip(idx_module.IDX_FILES[split], (images, labels), strict=True):
            path = write_idx(served / f"{stem}.gz", array)
            md5s[path.name] = file_digest(path)
    return served.as_uri() + "/", md5s, images, labels


def test_idx_download_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base_url, md5s, images, _ = make_fake_idx_server(tmp_path)
    source = dataclasses.replace(idx_module.IDX_SOURCES["mnist"], base_url=base_url, md5=md5s)
    monkeypatch.setitem(idx_module.IDX_SOURCES, "mnist", source)
    ds = load_dataset("mnist", split="train", download=True)
    cached = cache_dir("mnist")
    assert sorted(p.name for p in cached.iterdir()) == sorted(md5s)
    assert ds.info["location"] == str(cached)
    assert torch.equal(ds.data[:, 0], torch.from_numpy(images / 127.5 - 1).float())
    assert download_files("mnist") == cached  # already there: nothing fetched, same place


def test_idx_download_bad_md5_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, md5s, _, _ = make_fake_idx_server(tmp_path)
    bad = {name: "0" * 32 for name in md5s}
    source = dataclasses.replace(idx_module.IDX_SOURCES["mnist"], base_url=base_url, md5=bad)
    monkeypatch.setitem(idx_module.IDX_SOURCES, "mnist", source)
    with pytest.raises(DifusionError) as error:
        download_files("mnist")
    assert "checksum" in assert_one_line(error).lower()
    cached = cache_dir("mnist")
    assert not cached.exists() or list(cached.iterdir()) == []


# --------------------------------------------------------------------------- download


def test_file_digest_known_value(tmp_path: Path) -> None:
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello")
    assert file_digest(path) == "5d41402abc4b2a76b9719d911017c592"


def test_download_file_url_success(tmp_path: Path) -> None:
    payload = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)  # several chunks
    source = tmp_path / "src.bin"
    source.write_bytes(payload)
    dest = tmp_path / "out" / "dest.bin"
    got = download(source.as_uri(), dest, md5_bytes(payload).upper())
    assert got == dest and dest.read_bytes() == payload
    assert [p.name for p in dest.parent.iterdir()] == ["dest.bin"]


def test_download_mismatch_raises_and_leaves_no_partial_file(tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(b"some bytes")
    dest = tmp_path / "out" / "dest.bin"
    with pytest.raises(DifusionError) as error:
        download(source.as_uri(), dest, "0" * 32)
    message = assert_one_line(error)
    assert source.as_uri() in message and "checksum" in message.lower()
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_download_network_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "out" / "dest.bin"
    missing = (tmp_path / "nope.bin").as_uri()
    with pytest.raises(DifusionError) as error:
        download(missing, dest, "0" * 32)
    assert missing in assert_one_line(error)

    class BrokenResponse(io.BytesIO):
        headers: dict = {"Content-Length": "100"}

        def read(self, size: int = -1) -> bytes:
            if self.tell() >= 10:
                raise ConnectionResetError("connection reset by peer")
            return super().read(10)

    monkeypatch.setattr(download_module, "urlopen", lambda url, timeout: BrokenResponse(b"x" * 100))
    with pytest.raises(DifusionError) as error:
        download("https://example.invalid/data.bin", dest, "0" * 32)
    message = assert_one_line(error)
    assert "https://example.invalid/data.bin" in message and "connection reset" in message
    assert list(dest.parent.iterdir()) == []


def test_download_keeps_good_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"cached")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not download")

    monkeypatch.setattr(download_module, "urlopen", no_network)
    assert download("https://example.invalid/x", dest, md5_bytes(b"cached")) == dest


# --------------------------------------------------------------------------- CIFAR-10


def cifar_records(labels: list[int], seed: int) -> tuple[bytes, np.ndarray]:
    """Binary CIFAR-10 records and the (N, 3, 32, 32) images they encode."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    blob = b"".join(bytes([lab]) + img.tobytes() for lab, img in zip(labels, images, strict=True))
    return blob, images


def test_read_cifar_bin_layout(tmp_path: Path) -> None:
    record = bytearray(3073)
    record[0] = 7
    record[1 : 1 + 1024] = bytes([10]) * 1024  # red plane
    record[1 + 1024 : 1 + 2048] = bytes([20]) * 1024  # green plane
    record[1 + 2048 :] = bytes([30]) * 1024  # blue plane
    record[1 + 1] = 200  # red, row 0, column 1
    record[1 + 32] = 201  # red, row 1, column 0
    path = tmp_path / "one.bin"
    path.write_bytes(bytes(record) * 2)
    images, labels = read_cifar_bin(path)
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [7, 7]
    assert images[0, 0, 0, 1] == 200 and images[0, 0, 1, 0] == 201
    assert images[0, 1].max() == 20 and images[0, 2].min() == 30
    path.write_bytes(bytes(record)[:-1])
    with pytest.raises(DifusionError) as error:
        read_cifar_bin(path)
    assert "one.bin" in assert_one_line(error)


def make_cifar_archive(tmp_path: Path) -> tuple[Path, dict[str, tuple[list[int], np.ndarray]]]:
    """A tiny cifar-10-binary.tar.gz (2 images per train batch, 3 test) plus hostile members."""
    contents = {}
    archive = tmp_path / "fake-cifar.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:

        def add(name: str, data: bytes) -> None:
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))

        for i in range(1, 6):
            labels = [i % 10, (i + 3) % 10]
            blob, images = cifar_records(labels, seed=i)
            add(f"cifar-10-batches-bin/data_batch_{i}.bin", blob)
            contents[f"data_batch_{i}.bin"] = (labels, images)
        blob, images = cifar_records([0, 5, 9], seed=99)
        add("cifar-10-batches-bin/test_batch.bin", blob)
        contents["test_batch.bin"] = ([0, 5, 9], images)
        add("cifar-10-batches-bin/batches.meta.txt", b"airplane\n")
        add("../escaped.txt", b"evil")
        add("cifar-10-batches-bin/unexpected.sh", b"evil")
        add("/tmp/absolute-escape.txt", b"evil")
        link = tarfile.TarInfo("cifar-10-batches-bin/readme.html")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    return archive, contents


def test_cifar10_download_and_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, contents = make_cifar_archive(tmp_path)
    monkeypatch.setattr(cifar10_module, "CIFAR10_URL", archive.as_uri())
    monkeypatch.setattr(cifar10_module, "CIFAR10_MD5", file_digest(archive))
    with pytest.raises(DatasetNotFoundError) as error:
        load_cifar10("train")
    assert "difusion datasets download cifar10" in assert_one_line(error)

    train = load_dataset("cifar10", split="train", download=True)
    test = load_cifar10("test")
    assert train.data.shape == (10, 3, 32, 32) and test.data.shape == (3, 3, 32, 32)
    assert train.class_names[0] == "airplane" and train.class_names[9] == "truck"
    expected_labels = [lab for i in range(1, 6) for lab in contents[f"data_batch_{i}.bin"][0]]
    assert train.labels.tolist() == expected_labels and test.labels.tolist() == [0, 5, 9]
    expected = np.concatenate([contents[f"data_batch_{i}.bin"][1] for i in range(1, 6)])
    assert torch.allclose(train.data, torch.from_numpy(expected / 255 * 2 - 1).float(), atol=1e-6)
    assert train.data.min() >= -1 and train.data.max() <= 1
    target = cache_dir("cifar10") / "cifar-10-batches-bin"
    assert train.info["location"] == str(target)
    assert not (cache_dir("cifar10") / "cifar-10-binary.tar.gz").exists()  # archive removed
    assert not (target / "readme.html").exists()  # the symlink member was skipped
    assert not (target / "unexpected.sh").exists()  # only known names are extracted
    assert not (cache_dir("cifar10") / "escaped.txt").exists()
    assert not (tmp_path / "xdg-cache" / "difusion" / "escaped.txt").exists()


def test_cifar10_bad_md5_and_root_layouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, _ = make_cifar_archive(tmp_path)
    monkeypatch.setattr(cifar10_module, "CIFAR10_URL", archive.as_uri())
    monkeypatch.setattr(cifar10_module, "CIFAR10_MD5", "f" * 32)
    with pytest.raises(DifusionError) as error:
        load_cifar10("test", download=True)
    assert "checksum" in assert_one_line(error).lower()
    cached = cache_dir("cifar10")
    assert not cached.exists() or list(cached.iterdir()) == []
    # A root holding the .bin files directly, or their cifar-10-batches-bin folder.
    bins = extract_cifar10(archive, tmp_path / "manual")
    assert len(load_cifar10("test", root=bins)) == 3
    assert len(load_cifar10("test", root=tmp_path / "manual")) == 3
    with pytest.raises(DifusionError) as error:
        load_cifar10("valid", root=bins)
    assert "train" in assert_one_line(error)


# --------------------------------------------------------------------------- folder


def save(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def test_folder_flat_resize_crop_and_channels(tmp_path: Path) -> None:
    save(tmp_path / "a_red.png", Image.new("RGB", (40, 20), (255, 0, 0)))
    save(tmp_path / "b_blue.jpg", Image.new("RGB", (16, 16), (0, 0, 255)))
    stripes = Image.new("L", (30, 10), 0)  # black | white | black: the centre crop is white
    stripes.paste(255, (10, 0, 20, 10))
    save(tmp_path / "c_stripes.bmp", stripes)
    (tmp_path / "notes.txt").write_text("not an image")
    ds = load_folder(tmp_path, image_size=8, channels=3)
    assert ds.data.shape == (3, 3, 8, 8) and ds.data.dtype == torch.float32
    assert ds.labels is None and ds.class_names is None
    assert ds.data.min() >= -1 and ds.data.max() <= 1
    red = ds.data[0]
    assert torch.allclose(red[0], torch.ones(8, 8))
    assert torch.allclose(red[1:], -torch.ones(2, 8, 8))
    assert ds.data[1, 2].mean() > 0.9 and ds.data[1, :2].mean() < -0.9  # blue (jpeg: approx)
    assert torch.allclose(ds.data[2], torch.ones(3, 8, 8))
    gray = load_folder(tmp_path, image_size=5, channels=1)
    assert gray.data.shape == (3, 1, 5, 5)


def test_folder_subdirectories_become_labels(tmp_path: Path) -> None:
    save(tmp_path / "dog" / "1.png", Image.new("RGB", (12, 12), (255, 255, 255)))
    save(tmp_path / "cat" / "2.png", Image.new("RGB", (12, 12), (0, 0, 0)))
    save(tmp_path / "cat" / "deeper" / "1.png", Image.new("L", (12, 12), 128))
    save(tmp_path / "cat" / "1.webp", Image.new("RGB", (12, 12), (0, 0, 0)))
    ds = load_dataset("folder", root=tmp_path, image_size=12, channels=1)
    assert ds.class_names == ["cat", "dog"]
    assert ds.labels.tolist() == [0, 0, 0, 1] and ds.labels.dtype == torch.int64
    assert ds.data.shape == (4, 1, 12, 12)
    assert ds.data[3].min() == 1.0  # dog/1.png sorts last, white
    # One image outside a subfolder: no labels at all.
    save(tmp_path / "loose.png", Image.new("RGB", (12, 12)))
    mixed = load_folder(tmp_path, image_size=12)
    assert mixed.labels is None and len(mixed) == 5


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DifusionError) as error:
        load_folder(tmp_path)
    assert str(tmp_path) in assert_one_line(error)
    with pytest.raises(DifusionError):
        load_folder(tmp_path / "missing")
    save(tmp_path / "good.png", Image.new("RGB", (8, 8)))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    with pytest.raises(DifusionError) as error:
        load_folder(tmp_path)
    assert "broken.png" in assert_one_line(error)
    (tmp_path / "broken.png").unlink()
    with pytest.raises(DifusionError):
        load_folder(tmp_path, channels=2)
    with pytest.raises(DifusionError):
        load_folder(tmp_path, image_size=0)
    with pytest.raises(DifusionError) as error:
        load_dataset("folder")
    assert "root" in assert_one_line(error)


# --------------------------------------------------------------------------- registry


def test_load_dataset_dispatch_and_validation() -> None:
    assert torch.equal(
        load_dataset("toy2d", distribution="spiral", n=300, seed=5).data,
        load_toy2d("spiral", n=300, seed=5).data,
    )
    with pytest.raises(DifusionError) as error:
        load_dataset("imagenet")
    message = assert_one_line(error)
    for name in ("toy2d", "digits", "mnist", "fashion-mnist", "cifar10", "folder"):
        assert name in message
    with pytest.raises(DifusionError) as error:
        load_dataset("digits", split="valid")
    assert "train, test, all, fit, val" in assert_one_line(error)
    with pytest.raises(DifusionError):
        load_dataset("cifar10", split="all")
    with pytest.raises(DifusionError):
        load_dataset("toy2d", image_size=32)
    with pytest.raises(DifusionError):
        download_files("toy2d")


def test_load_dataset_resizes_and_converts_channels() -> None:
    ds = load_dataset("digits", split="test", image_size=16, channels=3)
    assert ds.data.shape == (297, 3, 16, 16)
    assert ds.data.min() >= -1 and ds.data.max() <= 1
    assert torch.equal(ds.data[:, 0], ds.data[:, 1])
    assert torch.equal(ds.labels, load_digits("test").labels)


def test_describe_datasets() -> None:
    rows = {row["name"]: row for row in describe_datasets()}
    assert (
        set(rows)
        == set(DATASETS)
        == {
            "toy2d",
            "digits",
            "mnist",
            "fashion-mnist",
            "cifar10",
            "folder",
            "latents",
        }
    )
    keys = {"description", "kind", "shape", "classes", "location", "available", "how_to_get"}
    for row in rows.values():
        assert keys <= set(row)
        assert row["how_to_get"] and "\n" not in row["how_to_get"]
    assert rows["toy2d"]["available"] and rows["toy2d"]["kind"] == "points"
    assert rows["digits"]["available"] and rows["digits"]["shape"] == (1, 8, 8)
    assert rows["mnist"]["location"] is None and not rows["mnist"]["available"]
    assert rows["cifar10"]["classes"] == 10 and not rows["cifar10"]["available"]
    assert rows["fashion-mnist"]["available"] == FASHION_DIR.is_dir()


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_real_fashion_mnist_test_split() -> None:
    ds = load_dataset("fashion-mnist", split="test")
    assert ds.data.shape == (10000, 1, 28, 28) and ds.data.dtype == torch.float32
    assert ds.info["location"] == str(FASHION_DIR)
    assert ds.data.min() == -1.0 and ds.data.max() == 1.0
    assert torch.bincount(ds.labels, minlength=10).tolist() == [1000] * 10
    assert ds.class_names[9] == "Ankle boot"
