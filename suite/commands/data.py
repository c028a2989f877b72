"""``suite data``: prepare data sets that torchvision cannot download."""
from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="prepare data sets (Tiny-ImageNet)",
                                   description="Prepare data sets that cannot be downloaded automatically.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    tiny = actions.add_parser("prepare-tiny-imagenet", help="official tiny-imagenet-200.zip -> ImageFolder layout",
                              description="Convert the official Tiny-ImageNet archive (or its extracted folder) "
                                          "into <data-dir>/tiny-imagenet-200/{train,val}/<wnid>/*.JPEG.")
    tiny.add_argument("archive", type=Path, help="tiny-imagenet-200.zip or its extracted folder")
    tiny.add_argument("--data-dir", type=Path, default=Path("data"), help="default ./data")
    tiny.set_defaults(func=prepare_tiny)


def prepare_tiny(args) -> int:
    from ..data import prepare_tiny_imagenet

    out = prepare_tiny_imagenet(args.archive, args.data_dir)
    print(f"Tiny-ImageNet ready in {out}; use --dataset tiny_imagenet --data-dir {args.data_dir}")
    return 0
