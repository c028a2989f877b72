"""Tests for suite.data: on-disk formats, splits, errors and the device loader.

Every data set is written in its real on-disk format, tiny, under tmp_path; nothing
is downloaded (download=False everywhere).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shlex
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from suite.data import DATASETS, DatasetInfo, DeviceLoader, Splits, load_splits, prepare_tiny_imagenet
from suite.data import torchvision_sets as tv_sets
from suite.errors import SuiteError

RNG = np.random.default_rng(0)


# ----------------------------------------------------------------- writers


def tagged_images(n: int, shape: tuple[int, ...]) -> np.ndarray:
    """Random uint8 images whose first byte is the image's index (an id to track it)."""
    x = RNG.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    x.reshape(n, -1)[:, 0] = np.arange(n)
    return x


def ids(x: torch.Tensor) -> list[int]:
    return x.reshape(x.shape[0], -1)[:, 0].tolist()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def trust(monkeypatch, data_dir: Path) -> None:
    """Make torchvision take the tiny files under data_dir for the official ones: their MD5s
    become the expected checksums (torchvision refuses any other file before reading it)."""
    import torchvision.datasets as tvd

    for cls in (tvd.CIFAR10, tvd.CIFAR100):
        folder = data_dir / cls.base_folder
        if folder.is_dir():
            for attr in ("train_list", "test_list"):
                monkeypatch.setattr(cls, attr, [[f, md5(folder / f)] for f, _ in getattr(cls, attr)])
            monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(folder / cls.meta["filename"])})
    svhn = data_dir / "svhn"
    if svhn.is_dir():
        monkeypatch.setattr(
            tvd.SVHN,
            "split_list",
            {
                k: [url, f, md5(svhn / f) if (svhn / f).is_file() else m]
                for k, (url, f, m) in tvd.SVHN.split_list.items()
            },
        )


def write_cifar(data_dir: Path, monkeypatch, hundred: bool = False, n_train: int = 20, n_test: int = 10):
    """Official CIFAR pickles, trusted; returns (train images N x 3 x 32 x 32, labels, test, labels)."""
    classes = 100 if hundred else 10
    train = tagged_images(n_train, (3, 32, 32))
    test = tagged_images(n_test, (3, 32, 32))
    ytr = RNG.integers(0, classes, n_train).tolist()
    yte = RNG.integers(0, classes, n_test).tolist()
    key = "fine_labels" if hundred else "labels"

    def dump(path: Path, x, y):
        entry = {"batch_label": "x", key: y, "data": x.reshape(len(x), -1), "filenames": []}
        if hundred:
            entry["coarse_labels"] = [v // 5 for v in y]
        with open(path, "wb") as f:
            pickle.dump(entry, f, protocol=2)

    if hundred:
        folder = data_dir / "cifar-100-python"
        folder.mkdir(parents=True)
        dump(folder / "train", train, ytr)
        dump(folder / "test", test, yte)
        meta = {"fine_label_names": [str(i) for i in range(100)], "coarse_label_names": []}
        (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    else:
        folder = data_dir / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        per = n_train // 5
        for b in range(5):
            dump(folder / f"data_batch_{b + 1}", train[b * per : (b + 1) * per], ytr[b * per : (b + 1) * per])
        dump(folder / "test_batch", test, yte)
        meta = {"label_names": [str(i) for i in range(10)], "num_vis": 3072}
        (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    trust(monkeypatch, data_dir)
    return train, np.array(ytr), test, np.array(yte)


def write_svhn(data_dir: Path, monkeypatch, n_train: int = 20, n_test: int = 10):
    import scipy.io

    folder = data_dir / "svhn"
    folder.mkdir(parents=True)
    out = []
    for name, n in (("train", n_train), ("test", n_test)):
        x = tagged_images(n, (3, 32, 32))
        y = np.arange(n) % 10 + 1  # labels 1..10, 10 means digit 0
        scipy.io.savemat(
            folder / f"{name}_32x32.mat", {"X": x.transpose(2, 3, 1, 0), "y": y.reshape(-1, 1).astype(np.uint8)}
        )
        out += [x, y]
    trust(monkeypatch, data_dir)
    return out


def idx_bytes(arr: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_fashion(folder: Path, n_train: int = 20, n_test: int = 10, gz: bool = True):
    folder.mkdir(parents=True)
    out = []
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = tagged_images(n, (28, 28))
        y = RNG.integers(0, 10, n).astype(np.uint8)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            name = f"{prefix}-{kind}-ubyte"
            data = idx_bytes(arr)
            if gz:
                with gzip.open(folder / (name + ".gz"), "wb") as f:
                    f.write(data)
            else:
                (folder / name).write_bytes(data)
        out += [x, y]
    return out


WNIDS = ["n02", "n01", "n03"]  # created out of order; class index = sorted order
COLORS = {"n01": (250, 10, 10), "n02": (10, 250, 10), "n03": (10, 10, 250)}


def write_tiny_official(root: Path, n_train: int = 3, n_val: int = 2) -> Path:
    """The official archive layout below root/tiny-imagenet-200; returns that folder."""
    from PIL import Image

    base = root / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "test" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (base / "words.txt").write_text("".join(f"{w}\tthing {w}\n" for w in WNIDS))
    lines = []
    k = 0
    for w in WNIDS:
        img_dir = base / "train" / w / "images"
        img_dir.mkdir(parents=True)
        (base / "train" / w / f"{w}_boxes.txt").write_text("")
        for i in range(n_train):
            mode = "L" if (w == "n03" and i == 0) else "RGB"  # the real set has gray images
            color = COLORS[w][2] if mode == "L" else COLORS[w]
            Image.new(mode, (64, 64), color).save(img_dir / f"{w}_{i}.JPEG", quality=95)
        for i in range(n_val):
            name = f"val_{k}.JPEG"
            k += 1
            Image.new("RGB", (64, 64), COLORS[w]).save(base / "val" / "images" / name, quality=95)
            lines.append(f"{name}\t{w}\t0\t0\t63\t63\n")
    (base / "val" / "val_annotations.txt").write_text("".join(lines))
    Image.new("RGB", (64, 64)).save(base / "test" / "images" / "test_0.JPEG")
    return base


def zip_folder(base: Path, zip_path: Path) -> Path:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(base.rglob("*")):
            arc = p.relative_to(base.parent).as_posix()
            if p.is_dir():
                zf.writestr(arc + "/", "")
            else:
                zf.write(p, arc)
    return zip_path


# ----------------------------------------------------------------- registry


def test_registry():
    assert set(DATASETS) == {"cifar10", "cifar100", "svhn", "tiny_imagenet", "fashion_mnist", "synthetic_cifar10"}
    c10 = DATASETS["cifar10"]
    assert isinstance(c10, DatasetInfo)
    assert (c10.in_channels, c10.num_classes, c10.image_size, c10.crop_padding, c10.flip) == (3, 10, 32, 4, True)
    assert c10.mean == (0.4914, 0.4822, 0.4465) and c10.std == (0.2471, 0.2435, 0.2616)
    assert DATASETS["cifar100"].num_classes == 100
    assert (DATASETS["svhn"].crop_padding, DATASETS["svhn"].flip) == (0, False)
    ti = DATASETS["tiny_imagenet"]
    assert (ti.num_classes, ti.image_size, ti.crop_padding, ti.flip) == (200, 64, 4, True)
    fm = DATASETS["fashion_mnist"]
    assert (fm.in_channels, fm.image_size, fm.mean, fm.std, fm.crop_padding, fm.flip) == (
        1,
        28,
        (0.2860,),
        (0.3530,),
        0,
        False,
    )
    for info in DATASETS.values():
        assert len(info.mean) == len(info.std) == info.in_channels
    with pytest.raises(Exception):
        c10.num_classes = 3  # frozen


def test_unknown_dataset_lists_names(tmp_path):
    with pytest.raises(SuiteError) as e:
        load_splits("mnist", tmp_path, download=False)
    msg = str(e.value)
    assert "mnist" in msg and "\n" not in msg
    for name in DATASETS:
        assert name in msg


def test_bad_val_fraction(tmp_path):
    with pytest.raises(SuiteError):
        load_splits("cifar10", tmp_path, download=False, val_fraction=1.5)


# ----------------------------------------------------------------- CIFAR


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_roundtrip_and_split(tmp_path, monkeypatch, hundred):
    name = "cifar100" if hundred else "cifar10"
    train, ytr, test, yte = write_cifar(tmp_path, monkeypatch, hundred)
    s = load_splits(name, tmp_path, download=False)
    assert isinstance(s, Splits) and s.info is DATASETS[name]
    assert s.train_x.dtype == torch.uint8 and s.train_y.dtype == torch.int64
    assert s.train_x.shape == (18, 3, 32, 32) and s.val_x.shape == (2, 3, 32, 32)
    assert s.test_x.shape == (10, 3, 32, 32)
    # exact pixels and labels, through the split
    for xs, ys in ((s.train_x, s.train_y), (s.val_x, s.val_y)):
        for img, lab, i in zip(xs, ys, ids(xs)):
            assert torch.equal(img, torch.from_numpy(train[i]))
            assert lab.item() == ytr[i]
    assert torch.equal(s.test_x, torch.from_numpy(test))
    assert s.test_y.tolist() == yte.tolist()
    # disjoint, covering, reproducible
    tr, va = set(ids(s.train_x)), set(ids(s.val_x))
    assert not tr & va and tr | va == set(range(20))
    s2 = load_splits(name, tmp_path, download=False)
    assert torch.equal(s.train_x, s2.train_x) and torch.equal(s.val_y, s2.val_y)
    others = {tuple(sorted(ids(load_splits(name, tmp_path, download=False, split_seed=k).val_x))) for k in range(1, 6)}
    assert len(others | {tuple(sorted(va))}) > 1  # the seed matters


def test_split_fraction(tmp_path, monkeypatch):
    write_cifar(tmp_path, monkeypatch, n_train=100)
    s = load_splits("cifar-10", tmp_path, download=False, val_fraction=0.2, split_seed=3)
    assert (len(s.train_x), len(s.val_x)) == (80, 20) and len(s.train_y) == 80
    s0 = load_splits("cifar10", tmp_path, download=False, val_fraction=0.0)
    assert (len(s0.train_x), len(s0.val_x)) == (100, 0)


def test_cifar_missing(tmp_path):
    for name, folder in (("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")):
        with pytest.raises(SuiteError) as e:
            load_splits(name, tmp_path, download=False)
        msg = str(e.value)
        assert str(tmp_path / folder) in msg and "\n" not in msg
        assert f"run 'suite data download {name} --data-dir DIR' on a machine with internet" in msg


def test_cifar_truncated(tmp_path, monkeypatch):
    write_cifar(tmp_path, monkeypatch)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SuiteError) as e:
        load_splits("cifar10", tmp_path, download=False)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


class Payload:
    """Unpickles to os.system(...): creates ``marker`` if anything ever unpickles it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.mark.parametrize(
    "hundred,name", [(False, "data_batch_1"), (False, "batches.meta"), (True, "train"), (True, "meta")]
)
@pytest.mark.parametrize("trusted", [True, False])
def test_crafted_cifar_pickle_is_never_unpickled(tmp_path, monkeypatch, hundred, name, trusted):
    data_dir = tmp_path / "data"
    write_cifar(data_dir, monkeypatch, hundred)
    if not trusted:
        monkeypatch.undo()  # the official checksums again
    marker = tmp_path / "payload-ran"
    crafted = pickle.dumps(
        {
            "data": Payload(marker),
            "labels": [0],
            "fine_labels": [0],
            "label_names": Payload(marker),
            "fine_label_names": Payload(marker),
        }
    )
    pickle.loads(crafted)
    assert marker.exists(), "the payload must be live for this test to mean anything"
    marker.unlink()
    folder = data_dir / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    (folder / name).write_bytes(crafted)
    with pytest.raises(SuiteError) as e:
        load_splits("cifar100" if hundred else "cifar10", data_dir, download=False)
    assert "corrupt" in str(e.value) and "\n" not in str(e.value)
    if trusted:
        assert str(folder / name) in str(e.value)
    assert not marker.exists()


# ----------------------------------------------------------------- SVHN


def test_svhn(tmp_path, monkeypatch):
    xtr, ytr, xte, yte = write_svhn(tmp_path, monkeypatch)
    s = load_splits("svhn", tmp_path, download=False)
    assert s.train_x.shape == (18, 3, 32, 32) and s.val_x.shape == (2, 3, 32, 32)
    assert s.test_x.dtype == torch.uint8 and s.test_y.dtype == torch.int64
    assert torch.equal(s.test_x, torch.from_numpy(xte))
    assert s.test_y.tolist() == [v % 10 for v in yte.tolist()]  # 10 -> 0
    assert 0 in s.test_y.tolist() and 10 not in s.test_y.tolist()
    for img, lab, i in zip(s.train_x, s.train_y, ids(s.train_x)):
        assert torch.equal(img, torch.from_numpy(xtr[i])) and lab.item() == ytr[i] % 10


def test_svhn_missing_and_truncated(tmp_path, monkeypatch):
    with pytest.raises(SuiteError) as e:
        load_splits("svhn", tmp_path, download=False)
    assert str(tmp_path / "svhn") in str(e.value)
    write_svhn(tmp_path, monkeypatch)
    path = tmp_path / "svhn" / "test_32x32.mat"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(SuiteError) as e:
        load_splits("svhn", tmp_path, download=False)
    assert str(path) in str(e.value)


# ----------------------------------------------------------------- Fashion-MNIST


def test_fashion_idx_gz(tmp_path):
    xtr, ytr, xte, yte = write_fashion(tmp_path / "fashion-mnist")  # before the system copy
    before = sorted(tmp_path.rglob("*"))
    s = load_splits("fashion_mnist", tmp_path, download=False)
    assert sorted(tmp_path.rglob("*")) == before  # decompressed elsewhere, nothing written here
    assert s.train_x.shape == (18, 1, 28, 28) and s.test_x.shape == (10, 1, 28, 28)
    assert s.train_x.dtype == torch.uint8 and s.train_y.dtype == torch.int64
    assert torch.equal(s.test_x[:, 0], torch.from_numpy(xte))
    assert s.test_y.tolist() == yte.tolist()
    for img, lab, i in zip(s.val_x, s.val_y, ids(s.val_x)):
        assert torch.equal(img[0], torch.from_numpy(xtr[i])) and lab.item() == ytr[i]


def test_fashion_plain_in_torchvision_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tv_sets, "SYSTEM_DIR", tmp_path / "no-system-copy")
    xtr, ytr, xte, yte = write_fashion(tmp_path / "FashionMNIST" / "raw", gz=False)
    s = load_splits("fashion_mnist", tmp_path, download=False)
    assert torch.equal(s.test_x[:, 0], torch.from_numpy(xte))
    assert len(s.train_x) + len(s.val_x) == 20


def test_fashion_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(tv_sets, "SYSTEM_DIR", tmp_path / "no-system-copy")
    with pytest.raises(SuiteError) as e:
        load_splits("fashion_mnist", tmp_path, download=False)
    msg = str(e.value)
    assert str(tmp_path / "fashion-mnist") in msg and "\n" not in msg


def test_fashion_truncated(tmp_path):
    write_fashion(tmp_path / "fashion-mnist")
    path = tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SuiteError) as e:
        load_splits("fashion_mnist", tmp_path, download=False)
    assert str(path) in str(e.value)
    # plain IDX whose payload is shorter than its header says
    plain_dir = tmp_path / "plain"
    write_fashion(plain_dir / "fashion-mnist", gz=False)
    plain = plain_dir / "fashion-mnist" / "t10k-images-idx3-ubyte"
    plain.write_bytes(plain.read_bytes()[:-10])
    with pytest.raises(SuiteError) as e:
        load_splits("fashion_mnist", plain_dir, download=False)
    assert str(plain) in str(e.value) and "\n" not in str(e.value)


def test_fashion_labels_must_match_images(tmp_path):
    write_fashion(tmp_path / "fashion-mnist", gz=False)
    (tmp_path / "fashion-mnist" / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(7, np.uint8)))
    with pytest.raises(SuiteError) as e:
        load_splits("fashion_mnist", tmp_path, download=False)
    assert "7 labels" in str(e.value) and "corrupt" in str(e.value)


@pytest.mark.skipif(not tv_sets.SYSTEM_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist(tmp_path):
    s = load_splits("fashion_mnist", tmp_path, download=False)
    assert len(s.train_x) + len(s.val_x) == 60000 and len(s.val_x) == 6000
    assert s.test_x.shape == (10000, 1, 28, 28) and s.train_x.dtype == torch.uint8
    assert sorted(torch.cat([s.train_y, s.val_y]).unique().tolist()) == list(range(10))
    assert sorted(s.test_y.unique().tolist()) == list(range(10))
    assert int(s.test_x.max()) > 200


# ----------------------------------------------------------------- Tiny-ImageNet


def check_tiny(s: Splits, n_train: int = 3, n_val: int = 2):
    assert s.info is DATASETS["tiny_imagenet"]
    assert len(s.train_x) + len(s.val_x) == n_train * len(WNIDS)
    assert s.train_x.shape[1:] == (3, 64, 64) and s.train_x.dtype == torch.uint8
    assert s.test_x.shape == (n_val * len(WNIDS), 3, 64, 64)
    assert s.test_y.dtype == torch.int64
    classes = sorted(WNIDS)
    for xs, ys in ((s.train_x, s.train_y), (s.val_x, s.val_y), (s.test_x, s.test_y)):
        for img, lab in zip(xs, ys):
            w = classes[lab.item()]
            mean = img.float().mean(dim=(1, 2))
            if w == "n03" and float(mean.std()) < 2:  # the gray image: R = G = B
                assert torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])
                assert abs(float(mean[2]) - COLORS[w][2]) < 4
            else:
                assert torch.allclose(mean, torch.tensor(COLORS[w], dtype=torch.float), atol=4)
    assert sorted(s.test_y.tolist()) == [0, 0, 1, 1, 2, 2]


def test_tiny_prepare_from_zip_and_folder(tmp_path):
    base = write_tiny_official(tmp_path / "official")
    zip_path = zip_folder(base, tmp_path / "tiny-imagenet-200.zip")

    out = prepare_tiny_imagenet(zip_path, tmp_path / "from_zip")
    assert out == tmp_path / "from_zip" / "tiny-imagenet-200"
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(WNIDS)
    assert len(list((out / "val" / "n01").glob("*.JPEG"))) == 2
    assert not (out / "val" / "images").exists()
    s_zip = load_splits("tiny_imagenet", tmp_path / "from_zip", download=False)
    check_tiny(s_zip)

    prepare_tiny_imagenet(base, tmp_path / "from_dir")
    s_dir = load_splits("tiny_imagenet", tmp_path / "from_dir", download=False)
    check_tiny(s_dir)
    assert torch.equal(s_zip.train_x, s_dir.train_x) and torch.equal(s_zip.test_y, s_dir.test_y)

    # the output exists: refuse rather than overwrite
    with pytest.raises(SuiteError) as e:
        prepare_tiny_imagenet(zip_path, tmp_path / "from_zip")
    assert "already exists" in str(e.value)


def test_tiny_prepare_in_place(tmp_path):
    data_dir = tmp_path / "data"
    base = write_tiny_official(data_dir)
    with pytest.raises(SuiteError) as e:  # not prepared yet
        load_splits("tiny_imagenet", data_dir, download=False)
    assert "prepare-tiny-imagenet" in str(e.value)
    assert prepare_tiny_imagenet(base, data_dir) == base
    assert not (base / "val" / "images").exists()
    check_tiny(load_splits("tiny_imagenet", data_dir, download=False))


def test_tiny_png_exact(tmp_path):
    from PIL import Image

    root = tmp_path / "tiny-imagenet-200"
    imgs = {}
    for split, n in (("train", 4), ("val", 2)):
        for w in ("b", "a"):
            (root / split / w).mkdir(parents=True)
            for i in range(n):
                arr = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
                arr[0, 0, 0] = len(imgs)
                imgs[len(imgs)] = (arr, w)
                Image.fromarray(arr).save(root / split / w / f"{w}_{i}.png")
    s = load_splits("tiny_imagenet", tmp_path, download=False, val_fraction=0.25)
    assert (len(s.train_x), len(s.val_x), len(s.test_x)) == (6, 2, 4)
    for xs, ys in ((s.train_x, s.train_y), (s.val_x, s.val_y), (s.test_x, s.test_y)):
        for img, lab in zip(xs, ys):
            arr, w = imgs[int(img[0, 0, 0])]
            assert torch.equal(img, torch.from_numpy(arr).permute(2, 0, 1))
            assert lab.item() == ["a", "b"].index(w)


def test_tiny_missing_and_corrupt(tmp_path):
    with pytest.raises(SuiteError) as e:
        load_splits("tiny_imagenet", tmp_path, download=True)
    msg = str(e.value)
    assert str(tmp_path / "tiny-imagenet-200") in msg and "prepare-tiny-imagenet" in msg
    with pytest.raises(SuiteError):
        prepare_tiny_imagenet(tmp_path / "nope.zip", tmp_path)
    bad_zip = tmp_path / "bad.zip"
    bad_zip.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(SuiteError) as e:
        prepare_tiny_imagenet(bad_zip, tmp_path / "out")
    assert str(bad_zip) in str(e.value)
    base = write_tiny_official(tmp_path / "official")
    prepare_tiny_imagenet(base, tmp_path / "d")
    img = tmp_path / "d" / "tiny-imagenet-200" / "train" / "n02" / "n02_1.JPEG"
    img.write_bytes(img.read_bytes()[:40])
    with pytest.raises(SuiteError) as e:
        load_splits("tiny_imagenet", tmp_path / "d", download=False)
    assert str(img) in str(e.value)


# ----------------------------------------------------------------- DeviceLoader


def make_data(n=10, c=3, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % 7
    return x, y


def collect(loader):
    xs, ys = zip(*list(loader))
    return torch.cat(xs), torch.cat(ys)


def test_loader_no_aug_exact():
    x, y = make_data(10)
    loader = DeviceLoader(x, y, 4, shuffle=False)
    assert len(loader) == 3
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    xb, yb = collect(loader)
    assert xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert torch.equal(xb, x.float() / 255) and torch.equal(yb, y)
    assert float(xb.min()) >= 0 and float(xb.max()) <= 1

    loader = DeviceLoader(x, y, 4, shuffle=True, generator=torch.Generator().manual_seed(5))
    xb, yb = collect(loader)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(5))
    assert torch.equal(xb, x[order].float() / 255) and torch.equal(yb, y[order])

    dl = DeviceLoader(x, y, 4, shuffle=True, drop_last=True)
    assert len(dl) == 2 and [len(b[1]) for b in dl] == [4, 4]


def test_loader_covers_every_sample_each_epoch():
    n = 37
    x = torch.zeros(n, 1, 2, 2, dtype=torch.uint8)
    y = torch.arange(n)
    loader = DeviceLoader(x, y, 8, shuffle=True, generator=torch.Generator().manual_seed(1))
    epochs = [collect(loader)[1] for _ in range(3)]
    for e in epochs:
        assert sorted(e.tolist()) == list(range(n))
    assert not torch.equal(epochs[0], epochs[1])  # reshuffled per epoch


def windows(img: torch.Tensor, p: int) -> list[torch.Tensor]:
    """All 81 (for p=4) crops of the zero-padded image, by brute force."""
    c, h, w = img.shape
    padded = torch.zeros(c, h + 2 * p, w + 2 * p, dtype=img.dtype)
    padded[:, p : p + h, p : p + w] = img
    return [padded[:, dy : dy + h, dx : dx + w] for dy in range(2 * p + 1) for dx in range(2 * p + 1)]


def test_loader_crop_is_a_shifted_copy():
    x, y = make_data(16, h=32, w=32)
    loader = DeviceLoader(x, y, 16, shuffle=False, crop_padding=4, generator=torch.Generator().manual_seed(0))
    xb, yb = collect(loader)
    assert xb.shape == x.shape and torch.equal(yb, y)
    out = (xb * 255).round().to(torch.uint8)
    offsets = set()
    for i in range(16):
        match = [k for k, win in enumerate(windows(x[i], 4)) if torch.equal(out[i], win)]
        assert len(match) == 1, f"image {i} is not a crop of its padded original"
        offsets.add(match[0])
    assert len(offsets) > 3  # offsets are drawn per image


def test_loader_flip_is_mirror_and_about_half():
    x, y = make_data(2000, c=1, h=4, w=4)
    loader = DeviceLoader(x, y, 256, shuffle=False, flip=True, generator=torch.Generator().manual_seed(0))
    out = (collect(loader)[0] * 255).round().to(torch.uint8)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    flipped = int((mirrored & ~same).sum())
    assert 850 < flipped < 1150


def test_loader_crop_and_flip_together():
    x, y = make_data(6, h=16, w=16)
    loader = DeviceLoader(x, y, 3, shuffle=False, crop_padding=4, flip=True, generator=torch.Generator().manual_seed(3))
    out = (collect(loader)[0] * 255).round().to(torch.uint8)
    for i in range(6):
        wins = windows(x[i], 4)
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(2)) for w in wins)


def test_loader_reproducible():
    x, y = make_data(50, h=16, w=16)

    def run(seed):
        loader = DeviceLoader(
            x, y, 8, shuffle=True, crop_padding=4, flip=True, generator=torch.Generator().manual_seed(seed)
        )
        return [b for epoch in range(2) for b in loader]

    a, b, c = run(11), run(11), run(12)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert not all(torch.equal(p[0], q[0]) for p, q in zip(a, c))


def test_loader_draws_its_random_numbers_in_the_per_batch_order_of_a_naive_loader():
    """The epoch's draws come in one transfer, but they are the numbers a loader drawing batch by
    batch (order; then per batch crop rows, crop columns, flips) takes, so runs keep their crops."""
    x, y = make_data(23, h=8, w=8)
    p, bs = 2, 5
    g = torch.Generator().manual_seed(9)
    expected = []
    for _ in range(2):  # two epochs from one generator
        order = torch.randperm(23, generator=g)
        for start in range(0, 23, bs):
            idx = order[start : start + bs]
            dy = torch.randint(0, 2 * p + 1, (len(idx),), generator=g)
            dx = torch.randint(0, 2 * p + 1, (len(idx),), generator=g)
            flip = torch.rand(len(idx), generator=g) < 0.5
            for i, k in enumerate(idx):
                crop = windows(x[k], p)[int(dy[i]) * (2 * p + 1) + int(dx[i])]
                expected.append(crop.flip(2) if flip[i] else crop)
    loader = DeviceLoader(x, y, bs, shuffle=True, crop_padding=p, flip=True, generator=torch.Generator().manual_seed(9))
    out = torch.cat([collect(loader)[0] for _ in range(2)])
    assert torch.equal((out * 255).round().to(torch.uint8), torch.stack(expected))


def test_loader_rejects_bad_input():
    x, y = make_data(4)
    with pytest.raises(ValueError):
        DeviceLoader(x.float(), y, 2, shuffle=False)
    with pytest.raises(ValueError):
        DeviceLoader(x, y[:3], 2, shuffle=False)


@pytest.mark.parametrize("evil", ["abs", "dotdot", "member"])
def test_tiny_prepare_never_writes_outside_the_data_folder(tmp_path, evil):
    """Names from the archive (annotation column, member paths) that would lead out are refused."""
    base = write_tiny_official(tmp_path / "official")
    outside = tmp_path / "outside"
    ann = base / "val" / "val_annotations.txt"
    lines = ann.read_text().splitlines(keepends=True)
    if evil == "abs":
        lines[0] = lines[0].replace("\tn02\t", f"\t{outside}\t")
    elif evil == "dotdot":
        lines[0] = lines[0].replace("\tn02\t", "\t../../../outside\t")
    ann.write_text("".join(lines))
    zip_path = zip_folder(base, tmp_path / "tiny-imagenet-200.zip")
    if evil == "member":
        with zipfile.ZipFile(zip_path, "a") as zf:
            zf.writestr("tiny-imagenet-200/train/../../../../outside/images/x.JPEG", b"data")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    before = sorted(p for p in tmp_path.rglob("*") if data_dir not in p.parents)
    for source in [zip_path] if evil == "member" else [zip_path, base]:
        with pytest.raises(SuiteError) as e:
            prepare_tiny_imagenet(source, data_dir)
        assert "unsafe name" in str(e.value) and "\n" not in str(e.value)
        assert sorted(p for p in tmp_path.rglob("*") if data_dir not in p.parents) == before
        assert not outside.exists() and list(data_dir.iterdir()) == []  # no half-built folder


def test_tiny_prepare_leaves_no_half_built_folder(tmp_path):
    base = write_tiny_official(tmp_path / "official")
    (base / "train" / "n03" / "images" / "n03_9.JPEG").mkdir()  # unreadable "image": a folder
    data_dir = tmp_path / "data"
    with pytest.raises(SuiteError) as e:
        prepare_tiny_imagenet(base, data_dir)
    assert "n03_9.JPEG" in str(e.value)
    assert list(data_dir.iterdir()) == []
