"""``suite data``: fetch data sets before runs need them; prepare those that cannot be downloaded."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    from ..data import DATASETS

    parser = subparsers.add_parser(
        "data",
        help="download data sets (on a login node) or prepare Tiny-ImageNet",
        description="Fetch data sets into a data folder before runs need them, or "
        "prepare those that cannot be downloaded automatically.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    down = actions.add_parser(
        "download",
        help="download data sets into --data-dir (once; safe to run concurrently)",
        description="Download data sets through torchvision into --data-dir, or check that "
        "they are there. Run it on a machine with internet (a cluster's login "
        "node) before submitting runs to offline compute nodes. A data set this machine "
        "has elsewhere (Debian's Fashion-MNIST) is copied into --data-dir, so that the folder "
        "alone serves nodes without it. A file lock in the data folder keeps concurrent "
        "downloads from colliding.",
    )
    down.add_argument(
        "datasets",
        nargs="+",
        metavar="DATASET",
        choices=list(DATASETS),
        help=f"one or more of: {', '.join(DATASETS)} (tiny_imagenet: see prepare-tiny-imagenet)",
    )
    down.add_argument("--data-dir", type=Path, default=Path("data"), help="the data folder runs will read")
    down.set_defaults(func=download)
    tiny = actions.add_parser(
        "prepare-tiny-imagenet",
        help="official tiny-imagenet-200.zip -> ImageFolder layout",
        description="Convert the official Tiny-ImageNet archive (or its extracted folder) "
        "into <data-dir>/tiny-imagenet-200/{train,val}/<wnid>/*.JPEG.",
    )
    tiny.add_argument("archive", type=Path, help="tiny-imagenet-200.zip or its extracted folder")
    tiny.add_argument("--data-dir", type=Path, default=Path("data"), help="the data folder runs will read")
    tiny.set_defaults(func=prepare_tiny)


def download(args) -> int:
    from ..data.prefetch import fetch_into

    for name in dict.fromkeys(args.datasets):
        print(f"{name}: checking {args.data_dir} ...", flush=True)
        done = fetch_into(name, args.data_dir)
        print(f"{name}: {done}; runs read it with --data-dir {args.data_dir}", flush=True)
    return 0


def prepare_tiny(args) -> int:
    from ..data import prepare_tiny_imagenet

    out = prepare_tiny_imagenet(args.archive, args.data_dir)
    print(f"Tiny-ImageNet ready in {out}; use --dataset tiny_imagenet --data-dir {args.data_dir}")
    return 0
