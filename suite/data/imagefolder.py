"""Tiny-ImageNet: an ImageFolder layout, and the step that makes it from the official zip.

Loaded layout (``prepare_tiny_imagenet`` writes it)::

    <data_dir>/tiny-imagenet-200/train/<wnid>/*.JPEG
    <data_dir>/tiny-imagenet-200/val/<wnid>/*.JPEG     (the official val set, used as test set)

Official archive layout::

    tiny-imagenet-200/train/<wnid>/images/*.JPEG
    tiny-imagenet-200/val/images/*.JPEG
    tiny-imagenet-200/val/val_annotations.txt          (filename<TAB>wnid<TAB>bbox...)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

import numpy as np
import torch

from suite.errors import SuiteError

from ._common import corrupt

FOLDER = "tiny-imagenet-200"
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
_ANNOTATIONS = "val/val_annotations.txt"


def _hint(data_dir: Path) -> str:
    return (
        "download the official archive tiny-imagenet-200.zip "
        "(http://cs231n.stanford.edu/tiny-imagenet-200.zip) and run "
        f"'suite data prepare-tiny-imagenet PATH/TO/tiny-imagenet-200.zip --data-dir {data_dir}'"
    )


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _is_image(p.name))


def _decode(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise corrupt(path, exc) from exc
    if arr.shape[:2] != (size, size):
        raise SuiteError(
            f"image {path} is {arr.shape[1]}x{arr.shape[0]} pixels, "
            f"expected {size}x{size}: replace it with the original file"
        )
    return arr


def read_image_folder(root: Path, size: int, classes: list[str] | None = None, data_dir: Path | None = None):
    """Read ``root/<class>/*`` into (uint8 N x 3 x size x size, int64 N, class names).

    Class index = position in ``classes`` (default: the sorted sub-folder names).
    """
    hint = _hint(data_dir if data_dir is not None else root.parent.parent)
    dirs = sorted(d for d in root.iterdir() if d.is_dir())
    if classes is None:
        classes = [d.name for d in dirs]
    index = {c: i for i, c in enumerate(classes)}
    files: list[tuple[Path, int]] = []
    for d in dirs:
        if d.name == "images" or (d / "images").is_dir():
            raise SuiteError(f"{root} is in the official archive layout, not prepared: {hint}")
        if d.name not in index:
            raise SuiteError(
                f"class folder {d} is not one of the {len(classes)} training classes: re-prepare the data ({hint})"
            )
        imgs = _images_in(d)
        if not imgs:
            raise SuiteError(f"class folder {d} holds no images: re-prepare the data ({hint})")
        files += [(p, index[d.name]) for p in imgs]
    if not files:
        raise SuiteError(f"no images found in {root}: {hint}")
    x = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, (p, _) in enumerate(files):
        x[i] = _decode(p, size)
    y = torch.tensor([label for _, label in files], dtype=torch.int64)
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), y, classes


def load_tiny_imagenet(data_dir: Path, download: bool, size: int = 64):
    """(train_x, train_y, test_x, test_y), folder. There is no automatic download."""
    root = data_dir / FOLDER
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise SuiteError(
            f"Tiny-ImageNet not found in {root} (it cannot be downloaded automatically): {_hint(data_dir)}"
        )
    if (root / "val" / "images").is_dir():
        raise SuiteError(f"{root} is in the official archive layout, not prepared: {_hint(data_dir)}")
    train_x, train_y, classes = read_image_folder(root / "train", size, data_dir=data_dir)
    test_x, test_y, _ = read_image_folder(root / "val", size, classes, data_dir=data_dir)
    return (train_x, train_y, test_x, test_y), root


# ---------------------------------------------------------------- preparation


def _plain(name: str, where: str) -> str:
    """``name`` if it is a plain file or folder name (no separator, not . or ..), else an error:
    names taken from an archive become paths, and must not lead out of the output folder."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise SuiteError(
            f"unsafe name {name!r} in {where}: not a plain file or folder name, "
            f"so this is not the official archive; nothing was written"
        )
    return name


def _parse_annotations(text: str, where: str) -> dict[str, str]:
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise SuiteError(f"bad line {n} in {where}: expected 'filename<TAB>wnid<TAB>...'")
        out[_plain(parts[0].strip(), where)] = _plain(parts[1].strip(), where)
    if not out:
        raise SuiteError(f"{where} is empty")
    return out


def _target(rel: list[str], annotations: dict[str, str], where: str) -> tuple[str, ...] | None:
    """Where an archive member (path parts below the root) goes, or None to skip it."""
    if not rel or not _is_image(rel[-1]):
        return None
    for part in rel:
        _plain(part, f"the archive path {'/'.join(rel)!r}")
    if len(rel) == 4 and rel[0] == "train" and rel[2] == "images":
        return ("train", rel[1], rel[3])
    if len(rel) == 3 and rel[0] == "val" and rel[1] == "images":
        if rel[2] not in annotations:
            raise SuiteError(f"val image {rel[2]} has no line in {where}: the archive is incomplete")
        return ("val", annotations[rel[2]], rel[2])
    return None


def _build(dest: Path, members: Iterable[tuple[tuple[str, ...], Callable[[], IO[bytes]]]]) -> int:
    """Write members into a fresh ``dest`` atomically: into a temporary folder beside it,
    renamed at the end, removed on any failure (no half-built ``dest`` is left)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    count = 0
    try:
        for target, opener in members:
            out = tmp.joinpath(*target)
            out.parent.mkdir(parents=True, exist_ok=True)
            with opener() as src, open(out, "xb") as dst:
                shutil.copyfileobj(src, dst)
            count += 1
        if count:
            tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return count


def _check_result(dest: Path, source: Path, data_dir: Path) -> None:
    for split in ("train", "val"):
        folder = dest / split
        if not folder.is_dir() or not any(d.is_dir() and d.name != "images" for d in folder.iterdir()):
            raise SuiteError(f"{source} holds no {split} images in the Tiny-ImageNet layout: {_hint(data_dir)}")


def prepare_tiny_imagenet(archive_or_dir: str | Path, data_dir: str | Path) -> Path:
    """Turn the official ``tiny-imagenet-200.zip`` (or its extracted folder) into the
    ImageFolder layout under ``<data_dir>/tiny-imagenet-200``; returns that folder.

    An extracted folder that already is ``<data_dir>/tiny-imagenet-200`` is converted
    in place (files are moved); otherwise the output folder must not exist yet.
    """
    src = Path(archive_or_dir).expanduser()
    data_dir = Path(data_dir).expanduser()
    dest = data_dir / FOLDER
    exists_msg = f"{dest} already exists: delete it to prepare again, or pass that folder itself to prepare it in place"

    if src.is_file():
        try:
            zf = zipfile.ZipFile(src)
        except (zipfile.BadZipFile, OSError) as exc:
            raise corrupt(src, exc) from exc
        with zf:
            names = zf.namelist()
            ann = [n for n in names if n == _ANNOTATIONS or n.endswith("/" + _ANNOTATIONS)]
            if not ann:
                raise SuiteError(
                    f"{src} is not the Tiny-ImageNet archive (no {_ANNOTATIONS} inside): {_hint(data_dir)}"
                )
            prefix = ann[0][: -len(_ANNOTATIONS)]
            where = f"{src}:{ann[0]}"
            try:
                annotations = _parse_annotations(zf.read(ann[0]).decode("utf-8"), where)
                if dest.exists():
                    raise SuiteError(exists_msg)
                members = []
                for n in names:
                    if n.startswith(prefix) and not n.endswith("/"):
                        target = _target(n[len(prefix) :].split("/"), annotations, where)
                        if target is not None:
                            members.append((target, lambda n=n: zf.open(n)))
                data_dir.mkdir(parents=True, exist_ok=True)
                _build(dest, members)
            except (zipfile.BadZipFile, EOFError, OSError, UnicodeDecodeError) as exc:
                raise corrupt(src, exc) from exc
    elif src.is_dir():
        root = src
        if not (root / _ANNOTATIONS).is_file() and (src / FOLDER / _ANNOTATIONS).is_file():
            root = src / FOLDER
        ann_path = root / _ANNOTATIONS
        if not ann_path.is_file():
            raise SuiteError(f"{src} is not the extracted Tiny-ImageNet archive (no {_ANNOTATIONS}): {_hint(data_dir)}")
        annotations = _parse_annotations(ann_path.read_text(), str(ann_path))
        files = [p for p in (root / "val" / "images").glob("*")]
        for d in (root / "train").glob("*"):
            files += list((d / "images").glob("*"))
        moves = []
        for p in sorted(files):
            target = _target(list(p.relative_to(root).parts), annotations, str(ann_path))
            if target is not None:
                moves.append((p, target))
        if dest.exists() and dest.resolve() == root.resolve():
            for p, target in moves:  # in place: move the files, drop the emptied folders
                out = root.joinpath(*target)
                out.parent.mkdir(parents=True, exist_ok=True)
                if not out.parent.resolve().is_relative_to(root.resolve()):
                    raise SuiteError(f"{out.parent} leads out of {root} (a link?): extract the official archive again")
                os.replace(p, out)
            for d in [root / "val" / "images", *(root / "train").glob("*/images")]:
                if d.is_dir() and not any(d.iterdir()):
                    d.rmdir()
        else:
            if dest.exists():
                raise SuiteError(exists_msg)
            data_dir.mkdir(parents=True, exist_ok=True)
            try:
                _build(dest, [(t, lambda p=p: open(p, "rb")) for p, t in moves])
            except OSError as exc:
                raise corrupt(Path(exc.filename or src), exc) from exc
    else:
        raise SuiteError(f"{src} does not exist: {_hint(data_dir)}")

    _check_result(dest, src, data_dir)
    return dest
