"""The ``pipeline`` section of ``suite bench``: a training epoch on synthetic uint8 images through
:class:`~suite.data.DeviceLoader` (batched crop + flip on the device) and through torch's DataLoader
with torchvision's per-image transforms, with a standard training step per batch and without."""

from __future__ import annotations

import torch

from ..data import DATASETS, DeviceLoader
from ..engine.device import channels_last, training_autocast
from ..methods import get_method
from .iterations import bench_model
from .settings import Settings
from .timing import interleaved, medians, progress

PIPELINE_PADDING = 4


class PerImageDataset(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 does per item: a PIL image from HWC uint8, then ``transform``."""

    def __init__(self, images_nchw: torch.Tensor, labels: torch.Tensor, transform):
        hwc = images_nchw.permute(0, 2, 3, 1).numpy()
        self.images = hwc[..., 0] if hwc.shape[-1] == 1 else hwc
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def bench_pipeline(s: Settings, device: torch.device) -> dict:
    """A training epoch's data path: DeviceLoader vs DataLoader with per-image transforms."""
    from torchvision import transforms as T

    info = DATASETS[s.dataset]
    g = torch.Generator().manual_seed(s.seed)
    images = torch.randint(
        0, 256, (s.images, info.in_channels, info.image_size, info.image_size), dtype=torch.uint8, generator=g
    )
    labels = torch.randint(0, info.num_classes, (s.images,), generator=g)
    model, optimizer = bench_model(s.arch, info, device)
    standard = get_method("standard").step
    loaders = {
        "device_loader": DeviceLoader(
            images,
            labels,
            s.batch_size,
            shuffle=True,
            crop_padding=PIPELINE_PADDING,
            flip=True,
            device=device,
            generator=torch.Generator().manual_seed(s.seed),
        )
    }
    transform = T.Compose(
        [T.RandomCrop(info.image_size, padding=PIPELINE_PADDING), T.RandomHorizontalFlip(), T.ToTensor()]
    )
    dataset = PerImageDataset(images, labels, transform)
    for workers in sorted({0, s.workers}):
        loaders[f"dataloader_{workers}w"] = torch.utils.data.DataLoader(
            dataset,
            batch_size=s.batch_size,
            shuffle=True,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=device.type == "cuda",
        )

    def epoch(loader, train: bool):
        def run():
            for xb, yb in loader:
                xb, yb = channels_last(xb.to(device, non_blocking=True)), yb.to(device, non_blocking=True)
                if train:
                    optimizer.zero_grad(set_to_none=True)
                    with training_autocast(device):
                        standard(model, xb, yb, s.eps / 255)
                    optimizer.step()

        return run

    fns = {
        f"{mode}/{name}": epoch(loader, mode == "train")
        for mode in ("train", "data")
        for name, loader in loaders.items()
    }
    progress(f"timing {len(fns)} epochs of {s.images} images ({s.reps} rounds + {s.warmup} warm-up)")
    med = medians(interleaved(fns, s.reps, s.warmup, device))
    out = {
        "images": s.images,
        "augmentation": f"random crop {info.image_size} padding {PIPELINE_PADDING} + flip",
        "seconds": {mode: {name: med[f"{mode}/{name}"] for name in loaders} for mode in ("train", "data")},
    }
    fastest = min((n for n in loaders if n != "device_loader"), key=lambda n: med[f"train/{n}"])
    out["dataloader_over_device_loader"] = {
        mode: med[f"{mode}/{fastest}"] / med[f"{mode}/device_loader"] for mode in ("train", "data")
    }
    out["compared_dataloader"] = fastest
    out["all_ratios"] = {
        mode: {n: med[f"{mode}/{n}"] / med[f"{mode}/device_loader"] for n in loaders} for mode in ("train", "data")
    }
    return out
