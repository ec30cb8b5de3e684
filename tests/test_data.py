"""Datasets, the restricted CIFAR unpickler, and BatchStream (core/data/)."""
from __future__ import annotations

import builtins
import io
import os
import pickle
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data import (
    BatchStream,
    DatasetError,
    ImageData,
    get_dataset_spec,
    list_datasets,
    load_dataset,
)


@pytest.fixture(scope="module")
def digits() -> ImageData:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def shapes() -> ImageData:
    return load_dataset("shapes", seed=0)


def _check_contract(d: ImageData) -> None:
    for x, y in ((d.train_x, d.train_y), (d.test_x, d.test_y)):
        assert x.dtype == torch.uint8 and x.dim() == 4
        assert y.dtype == torch.int64 and y.shape == (x.shape[0],)
        assert x.shape[1] == d.in_channels and x.shape[2] == x.shape[3] == d.image_size
        assert int(y.min()) >= 0 and int(y.max()) < d.num_classes
    assert len(d.mean) == len(d.std) == d.in_channels
    assert all(s > 0 for s in d.std)


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def test_registry_lists_every_dataset():
    assert {"digits", "shapes", "cifar10", "cifar100", "folder"} <= set(list_datasets())


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist")
    assert isinstance(e.value, ValueError)
    for name in list_datasets():
        assert name in str(e.value)


@pytest.mark.parametrize("name", list_datasets())
def test_every_dataset_loads_or_explains(name: str, tmp_path: Path):
    """Bundled/generated sets load and keep the contract; file-backed ones, pointed at an
    empty folder, fail with a DatasetError that names where they looked."""
    spec = get_dataset_spec(name)
    if not spec.needs_files:
        d = load_dataset(name, image_size=8)
        _check_contract(d)
        assert d.image_size == 8
        return
    missing = tmp_path / "nothing_here"
    with pytest.raises(DatasetError) as e:
        load_dataset(name, data_dir=str(missing))
    assert str(missing) in str(e.value)


# ---------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------


def test_digits_shapes_and_classes(digits: ImageData):
    _check_contract(digits)
    assert digits.classes == [str(i) for i in range(10)]
    assert digits.in_channels == 1 and digits.image_size == 16
    assert len(digits.train_x) + len(digits.test_x) == 1797
    assert abs(len(digits.test_x) - 0.2 * 1797) < 10
    # Stratified: every class holds out ~20%.
    counts = torch.bincount(digits.test_y, minlength=10).float() / torch.bincount(
        torch.cat([digits.train_y, digits.test_y]), minlength=10
    ).float()
    assert torch.all((counts - 0.2).abs() < 0.02)
    assert int(digits.train_x.max()) > 200  # scaled 0..16 -> 0..255


def test_digits_test_part_fixed_across_seeds(digits: ImageData):
    other = load_dataset("digits", seed=123)
    assert torch.equal(other.test_x, digits.test_x) and torch.equal(other.test_y, digits.test_y)
    assert torch.equal(other.train_x, digits.train_x)


def test_digits_test_part_disjoint_from_train():
    # The split is by index, so the parts are disjoint by construction; check it on the indices.
    from core.data.images import TEST_FRACTION, TEST_SPLIT_SEED, _stratified_split

    y = torch.arange(1797) % 10
    tr, te = _stratified_split(y, TEST_FRACTION, TEST_SPLIT_SEED)
    assert len(set(tr.tolist()) & set(te.tolist())) == 0
    assert len(tr) + len(te) == 1797


def test_digits_resize():
    d = load_dataset("digits", image_size=32)
    assert d.train_x.shape[1:] == (1, 32, 32)


# ---------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------


def test_shapes_contract(shapes: ImageData):
    _check_contract(shapes)
    assert shapes.train_x.shape == (3000, 3, 16, 16) and shapes.test_x.shape == (1000, 3, 16, 16)
    assert shapes.num_classes == 10 and len(set(shapes.classes)) == 10
    assert torch.bincount(shapes.train_y, minlength=10).min() > 0
    assert torch.bincount(shapes.test_y, minlength=10).min() > 0


def test_shapes_deterministic_per_seed(shapes: ImageData):
    again = load_dataset("shapes", seed=0)
    other = load_dataset("shapes", seed=1)
    assert torch.equal(again.train_x, shapes.train_x) and torch.equal(again.train_y, shapes.train_y)
    assert not torch.equal(other.train_x, shapes.train_x)
    # The test part is fixed, so test accuracy compares across seeds.
    assert torch.equal(other.test_x, shapes.test_x)


def test_shapes_32px():
    d = load_dataset("shapes", image_size=32)
    assert d.train_x.shape == (3000, 3, 32, 32)


def test_shapes_classes_separable(shapes: ImageData):
    """Nearest centroid on |FFT| of the standardized grey image, a translation- and
    contrast-sign-invariant feature (raw-pixel centroids blur out: positions and colours are
    random on purpose), clears 30% test accuracy by a wide margin."""

    def features(x: torch.Tensor) -> torch.Tensor:
        g = x.float().mean(1)  # (N, H, W)
        g = (g - g.mean((1, 2), keepdim=True)) / (g.std((1, 2), keepdim=True) + 1e-6)
        return torch.fft.fft2(g).abs().log1p().flatten(1)

    ftr, fte = features(shapes.train_x), features(shapes.test_x)
    centroids = torch.stack([ftr[shapes.train_y == c].mean(0) for c in range(10)])
    acc = (torch.cdist(fte, centroids).argmin(1) == shapes.test_y).float().mean().item()
    assert acc > 0.3


# ---------------------------------------------------------------------------------------------
# CIFAR on fake batch folders
# ---------------------------------------------------------------------------------------------


def _py2_pickle(obj) -> bytes:
    """Protocol-2 bytes as Python 2's cPickle wrote the CIFAR batches: str as SHORT_BINSTRING /
    BINSTRING, arrays through ``numpy.core.multiarray._reconstruct`` (numpy 1.x names)."""
    out = bytearray(b"\x80\x02")

    def s(b: bytes) -> None:
        out.extend(b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b)

    def i(v: int) -> None:
        if 0 <= v < 256:
            out.extend(b"K" + bytes([v]))
        elif 0 <= v < 65536:
            out.extend(b"M" + struct.pack("<H", v))
        else:
            out.extend(b"J" + struct.pack("<i", v))

    def w(o) -> None:
        if isinstance(o, dict):
            out.extend(b"}(")
            for k, v in o.items():
                w(k)
                w(v)
            out.extend(b"u")
        elif isinstance(o, list):
            out.extend(b"](")
            for v in o:
                w(v)
            out.extend(b"e")
        elif isinstance(o, bytes):
            s(o)
        elif isinstance(o, int):
            i(o)
        elif isinstance(o, np.ndarray):
            assert o.dtype == np.uint8
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            i(0)
            out.extend(b"\x85")  # TUPLE1
            s(b"b")
            out.extend(b"\x87R(")  # TUPLE3 REDUCE MARK (setstate args follow)
            i(1)
            out.extend(b"(")
            for dim in o.shape:
                i(dim)
            out.extend(b"tcnumpy\ndtype\n")
            s(b"u1")
            i(0)
            i(1)
            out.extend(b"\x87R(")
            i(3)
            s(b"|")
            out.extend(b"NNN")
            i(-1)
            i(-1)
            i(0)
            out.extend(b"tbI00\n")  # dtype state; then fortran=False
            s(o.tobytes())
            out.extend(b"tb")
        else:
            raise TypeError(type(o))

    w(obj)
    out.extend(b".")
    return bytes(out)


def _fake_cifar10(root: Path, n: int = 6, protocol: int | None = None) -> Path:
    """cifar-10-batches-py with tiny batches; the pixel values encode (batch, image)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    dump = _py2_pickle if protocol is None else (lambda o: pickle.dumps(o, protocol=protocol))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, fname in enumerate(files):
        data = np.random.default_rng(b).integers(0, 256, (n, 3072), dtype=np.uint8)
        data[:, 0] = b  # first red pixel: batch number
        batch = {
            b"batch_label": f"batch {b}".encode(),
            b"labels": [int(v) for v in (np.arange(n) + b) % 10],
            b"data": data,
            b"filenames": [f"img_{b}_{k}.png".encode() for k in range(n)],
        }
        (folder / fname).write_bytes(dump(batch))
    meta = {b"num_cases_per_batch": n, b"label_names": names, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(dump(meta))
    return folder


def test_cifar10_py2_format(tmp_path: Path):
    folder = _fake_cifar10(tmp_path)
    for data_dir in (tmp_path, folder):  # the parent, or the batch folder itself
        d = load_dataset("cifar10", data_dir=str(data_dir))
        _check_contract(d)
        assert d.train_x.shape == (30, 3, 32, 32) and d.test_x.shape == (6, 3, 32, 32)
        assert d.classes[0] == "airplane" and d.num_classes == 10
        assert d.train_x[:, 0, 0, 0].tolist() == [b for b in range(5) for _ in range(6)]
        assert int(d.test_x[0, 0, 0, 0]) == 5
        assert d.train_y[:6].tolist() == list(range(6))
    # Channel-major rows: the file's row 0 is R(1024) G(1024) B(1024).
    raw = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="bytes")[b"data"]
    assert torch.equal(d.train_x[1], torch.from_numpy(raw[1].reshape(3, 32, 32)))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_cifar10_python3_pickles(tmp_path: Path, protocol: int):
    _fake_cifar10(tmp_path, protocol=protocol)
    d = load_dataset("cifar10", data_dir=str(tmp_path), image_size=16)
    assert d.train_x.shape == (30, 3, 16, 16) and d.classes[-1] == "truck"


def test_cifar100(tmp_path: Path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for fname, n in (("train", 20), ("test", 7)):
        batch = {
            b"filenames": [b"x.png"] * n,
            b"batch_label": fname.encode(),
            b"fine_labels": [int(v) for v in rng.integers(0, 100, n)],
            b"coarse_labels": [int(v) for v in rng.integers(0, 20, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        }
        (folder / fname).write_bytes(_py2_pickle(batch))
    meta = {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}
    (folder / "meta").write_bytes(_py2_pickle(meta))
    d = load_dataset("cifar100", data_dir=str(tmp_path))
    _check_contract(d)
    assert d.num_classes == 100 and d.classes[7] == "fine7"
    assert len(d.train_x) == 20 and len(d.test_x) == 7


def test_cifar_missing_message(tmp_path: Path):
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10", data_dir=str(tmp_path))
    msg = str(e.value)
    assert str(tmp_path) in msg and str(tmp_path / "cifar-10-batches-py") in msg
    assert "data_batch_1" in msg and "--data-dir" in msg


def test_cifar_default_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _fake_cifar10(tmp_path)
    monkeypatch.setenv("PRIME_EXPLORER_DATA", str(tmp_path))
    assert len(load_dataset("cifar10").train_x) == 30


class _Smuggle:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _smugglers(marker: Path) -> list[_Smuggle]:
    return [
        _Smuggle(os.system, (f"touch {marker}",)),
        _Smuggle(builtins.eval, (f"open({str(marker)!r}, 'w').close()",)),
        _Smuggle(subprocess.Popen, (["touch", str(marker)],)),
        _Smuggle(builtins.print, ("smuggled",)),
    ]


@pytest.mark.parametrize("which", range(4))
@pytest.mark.parametrize("protocol", [2, 4])
def test_cifar_refuses_callables(tmp_path: Path, which: int, protocol: int, capsys: pytest.CaptureFixture):
    folder = _fake_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    evil = {b"labels": [0], b"data": np.zeros((1, 3072), np.uint8), b"x": _smugglers(marker)[which]}
    (folder / "data_batch_3").write_bytes(pickle.dumps(evil, protocol=protocol))
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar10", data_dir=str(tmp_path))
    assert "refused" in str(e.value) and "callable" in str(e.value)
    assert "data_batch_3" in str(e.value)
    assert not marker.exists()
    assert "smuggled" not in capsys.readouterr().out


def test_cifar_refuses_callable_inside_object_array(tmp_path: Path):
    folder = _fake_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    arr = np.empty(1, dtype=object)
    arr[0] = _Smuggle(os.system, (f"touch {marker}",))
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": arr, b"labels": [0]}, protocol=2))
    with pytest.raises(DatasetError, match="refused"):
        load_dataset("cifar10", data_dir=str(tmp_path))
    assert not marker.exists()


def test_cifar_rejects_malformed_batch(tmp_path: Path):
    folder = _fake_cifar10(tmp_path)
    (folder / "data_batch_2").write_bytes(_py2_pickle({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DatasetError, match="data_batch_2"):
        load_dataset("cifar10", data_dir=str(tmp_path))
    (folder / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="data_batch_2"):
        load_dataset("cifar10", data_dir=str(tmp_path))


# ---------------------------------------------------------------------------------------------
# folder
# ---------------------------------------------------------------------------------------------


def _write_images(root: Path, classes: dict[str, tuple[int, int, int]], n: int, size: int = 12) -> None:
    from PIL import Image

    for name, colour in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            img = np.zeros((size, size + 3, 3), np.uint8)  # not square on purpose
            img[:] = colour
            img[k % size, :] = 255
            ext = ".png" if k % 2 else ".jpg"
            Image.fromarray(img).save(root / name / f"{k}{ext}")
        (root / name / "notes.txt").write_text("ignored")


def test_folder_holds_out_20_percent(tmp_path: Path):
    _write_images(tmp_path, {"red": (200, 0, 0), "green": (0, 200, 0), "blue": (0, 0, 200)}, n=5)
    d = load_dataset("folder", data_dir=str(tmp_path), image_size=8)
    _check_contract(d)
    assert d.classes == ["blue", "green", "red"]
    assert d.train_x.shape == (12, 3, 8, 8) and d.test_x.shape == (3, 3, 8, 8)
    assert torch.bincount(d.test_y, minlength=3).tolist() == [1, 1, 1]
    red = d.train_x[d.train_y == 2].float().mean((0, 2, 3))  # (3,) channel means
    assert red[0] > red[1] and red[0] > red[2]
    again = load_dataset("folder", data_dir=str(tmp_path), image_size=8, seed=9)
    assert torch.equal(again.test_x, d.test_x)


def test_folder_train_test_layout(tmp_path: Path):
    _write_images(tmp_path / "train", {"a": (10, 10, 10), "b": (240, 240, 240)}, n=4)
    _write_images(tmp_path / "test", {"a": (10, 10, 10), "b": (240, 240, 240)}, n=2)
    d = load_dataset("folder", data_dir=str(tmp_path))
    assert d.image_size == 32 and len(d.train_x) == 8 and len(d.test_x) == 4


def test_folder_missing_or_empty(tmp_path: Path):
    with pytest.raises(DatasetError) as e:
        load_dataset("folder", data_dir=str(tmp_path / "nope"))
    assert str(tmp_path / "nope") in str(e.value) and "<class>" in str(e.value)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DatasetError) as e:
        load_dataset("folder", data_dir=str(tmp_path))
    assert str(tmp_path) in str(e.value) and "<class>" in str(e.value)


# ---------------------------------------------------------------------------------------------
# split_train and normalize
# ---------------------------------------------------------------------------------------------


def test_split_train(digits: ImageData):
    w, a = digits.split_train(0.5, seed=3)
    n = len(digits.train_x)
    assert len(w) == round(0.5 * n) and len(w) + len(a) == n
    assert sorted(torch.cat([w, a]).tolist()) == list(range(n))
    w2, a2 = digits.split_train(0.5, seed=3)
    assert torch.equal(w, w2) and torch.equal(a, a2)
    assert not torch.equal(w, digits.split_train(0.5, seed=4)[0])
    for bad in (0.0, 1.0):
        with pytest.raises(DatasetError):
            digits.split_train(bad, seed=0)


@pytest.mark.parametrize("fixture", ["digits", "shapes"])
def test_normalize_zero_mean_unit_std(fixture: str, request: pytest.FixtureRequest):
    d: ImageData = request.getfixturevalue(fixture)
    z = d.normalize(d.train_x)
    assert z.dtype == torch.float32 and z.shape == d.train_x.shape
    assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(d.in_channels), atol=1e-4)
    assert torch.allclose(z.std((0, 2, 3)), torch.ones(d.in_channels), atol=1e-3)


# ---------------------------------------------------------------------------------------------
# BatchStream
# ---------------------------------------------------------------------------------------------


def _labelled(n: int = 10, size: int = 6) -> ImageData:
    """Tiny data whose label is the sample index, so batches reveal which samples they hold."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    y = torch.arange(n)
    return ImageData("t", x, y, x[:2], y[:2], [str(i) for i in range(n)], (0.5,) * 3, (0.25,) * 3)


def test_batch_stream_passes_cover_each_sample_once():
    d = _labelled(10)
    idx = torch.tensor([0, 2, 3, 5, 6, 7, 8, 9, 1])  # 9 of 10
    s = BatchStream(d, idx, batch_size=4, seed=0)
    assert s.batches_per_epoch == 3
    for _ in range(2):  # two passes, each a different shuffle of the same samples
        batches = [s.next() for _ in range(s.batches_per_epoch)]
        assert [len(y) for _, y in batches] == [4, 4, 1]  # the partial batch is kept
        assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(idx.tolist())
    assert s.epoch == 1
    x, y = s.next()
    assert x.dtype == torch.float32 and x.shape == (4, 3, 6, 6) and y.dtype == torch.int64
    assert torch.allclose(x, d.normalize(d.train_x[y]))
    assert s.epoch == 2


@pytest.mark.parametrize("augment", [False, True])
def test_batch_stream_deterministic(augment: bool, shapes: ImageData):
    idx = torch.arange(0, 100)  # small batches stay fast on a busy CPU
    a = BatchStream(shapes, idx, 32, seed=5, augment=augment)
    b = BatchStream(shapes, idx, 32, seed=5, augment=augment)
    c = BatchStream(shapes, idx, 32, seed=6, augment=augment)
    for _ in range(7):  # crosses a pass boundary
        (xa, ya), (xb, yb), (xc, yc) = a.next(), b.next(), c.next()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(xa, xc)


@pytest.mark.parametrize("augment", [False, True])
def test_batch_stream_state_round_trip(augment: bool, shapes: ImageData):
    idx = torch.arange(100, 250)
    a = BatchStream(shapes, idx, 32, seed=1, augment=augment)
    for _ in range(3):  # stop mid-pass
        a.next()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    b = BatchStream(shapes, idx, 32, seed=999, augment=augment)
    b.load_state_dict(state)
    for _ in range(6):  # crosses the next reshuffle
        (xa, ya), (xb, yb) = a.next(), b.next()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert a.epoch == b.epoch == 1


def test_batch_stream_state_rejects_other_subset(shapes: ImageData):
    a = BatchStream(shapes, torch.arange(100), 10, seed=0)
    b = BatchStream(shapes, torch.arange(50), 10, seed=0)
    with pytest.raises(DatasetError):
        b.load_state_dict(a.state_dict())


def test_augment_is_flip_and_padded_crop():
    """Every augmented image is some 4 px zero-padded crop of the original, maybe mirrored."""
    d = _labelled(8, size=8)
    s = BatchStream(d, torch.arange(8), 8, seed=0, augment=True)
    x, y = s.next()
    raw = torch.nn.functional.pad(d.train_x[y], (4, 4, 4, 4))  # (B, C, 16, 16)
    flipped = 0
    for k in range(len(y)):
        found = False
        for dy in range(9):
            for dx in range(9):
                crop = raw[k, :, dy : dy + 8, dx : dx + 8]
                for flip in (False, True):
                    target = d.normalize(crop.flip(-1) if flip else crop)
                    if torch.allclose(target, x[k]):
                        found, flipped = True, flipped + flip
        assert found
    assert 0 < flipped < len(y)  # seed 0 draws both


def test_batch_stream_rejects_bad_indices(digits: ImageData):
    with pytest.raises(DatasetError):
        BatchStream(digits, torch.tensor([], dtype=torch.int64), 4, seed=0)
    with pytest.raises(DatasetError):
        BatchStream(digits, torch.tensor([len(digits.train_x)]), 4, seed=0)



def test_digits_raw_arrays():
    """The direct read of sklearn's bundled digits file has load_digits's content (checked on
    known facts, since importing scikit-learn alone takes ~2 s)."""
    from core.data.digits import _digits_arrays

    images, target = _digits_arrays()
    assert images.shape == (1797, 8, 8) and target.shape == (1797,)
    assert np.bincount(target).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert images.min() == 0 and images.max() == 16 and np.array_equal(images, images.round())
