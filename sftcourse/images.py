"""Images as tensors: normalisation and augmentation, datasets in memory, image folders, splits, HF image sets.

- :func:`to_float_image`, :func:`channel_stats`, :func:`normalize`, :class:`ImageTransform`: a
  pretrained network expects the input statistics it was trained with (chapter 08);
- :class:`ImageTensorDataset`, :class:`ImageTask` (images, labels, class names, pool/val/test);
- :func:`load_image_folder` (your own images, one folder per class), :func:`stratified_split`,
  :func:`sample_per_class`;
- :func:`load_hf_image_dataset`, :func:`hf_images_to_tensor`, :func:`hf_image_task` (full
  profile: e.g. CIFAR-10, located by :mod:`sftcourse.hub`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import Dataset

from sftcourse.hub import load_dataset_dict
from sftcourse.runtime import Profile

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# ImageNet statistics: what torchvision-style and microsoft/resnet-* models were pretrained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------
# Images as tensors: statistics, normalisation, augmentation


def to_float_image(x: Tensor) -> Tensor:
    """uint8 in [0, 255] -> float32 in [0, 1]; float input is returned as float32 unchanged."""
    return x.float().div(255.0) if x.dtype == torch.uint8 else x.float()


def channel_stats(images: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of images (n, c, h, w), on the [0, 1] scale (uint8 is rescaled)."""
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty (n, c, h, w) tensor, got shape {tuple(images.shape)}")
    x = to_float_image(images)
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """(x - mean) / std per channel; x is (c, h, w) or (n, c, h, w) on the [0, 1] scale."""
    c = x.shape[-3] if x.ndim >= 3 else -1
    if x.ndim not in (3, 4) or len(mean) != c or len(std) != c:
        raise ValueError(f"normalize needs (c, h, w) or (n, c, h, w) with one mean/std per channel; got shape "
                         f"{tuple(x.shape)} with {len(mean)} means and {len(std)} stds")
    if min(std) <= 0:
        raise ValueError(f"std must be positive, got {list(std)}")
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x - m) / s


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """Translate an image (c, h, w) by up to ``max_shift`` pixels each way, filling with zeros (pad + random crop)."""
    if max_shift <= 0:
        return x
    h, w = x.shape[-2:]
    padded = F.pad(x, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2,), generator=generator).tolist()
    return padded[..., dy:dy + h, dx:dx + w]


def random_hflip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Mirror left-right with probability ``p`` (fine for photos; wrong for digits and text)."""
    return x.flip(-1) if float(torch.rand((), generator=generator)) < p else x


def resize(x: Tensor, size: int) -> Tensor:
    """Bilinear resize of (c, h, w) or (n, c, h, w) to (size, size)."""
    batched = x.ndim == 4
    out = F.interpolate(x if batched else x[None], size=(size, size), mode="bilinear", align_corners=False,
                        antialias=True)
    return out if batched else out[0]


class ImageTransform:
    """uint8 or [0, 1] image (c, h, w) -> optional resize, random shift, flip -> normalised float32.

    Augmentation (``max_shift``, ``hflip``) runs on the [0, 1] image, before normalisation, so the
    zeros it pads with are black pixels. Use ``train=False`` copies for validation and test.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], *, size: int | None = None,
                 max_shift: int = 0, hflip: bool = False) -> None:
        if min(std) <= 0:
            raise ValueError(f"std must be positive, got {list(std)}")
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        self.size, self.max_shift, self.hflip = size, int(max_shift), bool(hflip)

    def eval(self) -> ImageTransform:
        """The same resize and normalisation without augmentation."""
        return ImageTransform(self.mean, self.std, size=self.size)

    def __call__(self, x: Tensor) -> Tensor:
        x = to_float_image(x)
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = resize(x, self.size)
        x = random_shift(x, self.max_shift)
        if self.hflip:
            x = random_hflip(x)
        return normalize(x, self.mean, self.std)

    def __repr__(self) -> str:
        return (f"ImageTransform(mean={self.mean}, std={self.std}, size={self.size}, "
                f"max_shift={self.max_shift}, hflip={self.hflip})")


class ImageTensorDataset(Dataset):
    """Images (n, c, h, w) and labels (n,) held in memory; item i is ``(transform(images[i]), labels[i])``."""

    def __init__(self, images: Tensor, labels: Tensor, transform: Callable[[Tensor], Tensor] | None = None) -> None:
        if images.ndim != 4:
            raise ValueError(f"images must be (n, c, h, w), got shape {tuple(images.shape)}"
                             + ("; add a channel axis with images.unsqueeze(1)" if images.ndim == 3 else ""))
        labels = torch.as_tensor(labels)
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"labels must be (n,) = ({images.shape[0]},), got {tuple(labels.shape)}")
        if images.shape[0] == 0:
            raise ValueError("the dataset is empty; pass at least one image")
        self.images, self.labels = images, labels.long()
        self.transform = transform if transform is not None else to_float_image

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.transform(self.images[i]), self.labels[i]


# ---------------------------------------------------------------------------
# Your own images: one folder per class; splits and sampling


def _pil_to_tensor(img: Any, size: int | tuple[int, int] | None) -> Tensor:
    if size is not None:
        w_h = (size, size) if isinstance(size, int) else (size[1], size[0])
        img = img.resize(w_h, Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def load_image_folder(root: str | Path, *, image_size: int | tuple[int, int] = 28, grayscale: bool = True,
                      extensions: Sequence[str] = IMAGE_EXTENSIONS) -> tuple[Tensor, Tensor, list[str]]:
    """Read ``root/<class>/<image>`` files: images uint8 (n, c, H, W), labels (n,), class names (sorted).

    Every class folder must hold at least one image; every image is resized to ``image_size``
    and converted to grey (c=1) or RGB (c=3). Files are read in sorted order (deterministic).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist; it must contain one sub-folder per class "
                         "(root/cat/*.jpg, root/dog/*.jpg)")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(class_dirs) < 2:
        raise ValueError(f"{root} has {len(class_dirs)} class sub-folder(s); a classifier needs at least 2 "
                         "(root/<class name>/<images>)")
    exts = tuple(e.lower() for e in extensions)
    images, labels = [], []
    for label, d in enumerate(class_dirs):
        files = sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in exts
                       and not f.name.startswith("."))
        if not files:
            raise ValueError(f"class folder {d} has no images with extensions {', '.join(exts)}; "
                             "add images or remove the folder")
        for f in files:
            try:
                with Image.open(f) as img:
                    img = img.convert("L" if grayscale else "RGB")
                    images.append(_pil_to_tensor(img, image_size))
            except (UnidentifiedImageError, OSError, SyntaxError) as exc:
                raise ValueError(f"cannot read image {f}: {exc}; delete or replace the file") from None
            labels.append(label)
    return torch.stack(images), torch.tensor(labels, dtype=torch.long), [d.name for d in class_dirs]


def stratified_split(labels: Tensor | np.ndarray | Sequence[int], val_fraction: float = 0.2,
                     seed: int = 0) -> tuple[Tensor, Tensor]:
    """Deterministic train/val indices with ``val_fraction`` of each class in val (at least one per class
    when the class has two or more samples). Same labels and seed -> same split."""
    y = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {y.shape}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val = 0 if idx.size < 2 else max(1, int(round(val_fraction * idx.size)))
        n_val = min(n_val, idx.size - 1) if idx.size >= 2 else 0
        val.extend(idx[:n_val].tolist())
        train.extend(idx[n_val:].tolist())
    return torch.tensor(sorted(train), dtype=torch.long), torch.tensor(sorted(val), dtype=torch.long)


def sample_per_class(labels: Tensor | np.ndarray, k: int, seed: int,
                     candidates: Tensor | np.ndarray | Iterable[int] | None = None) -> Tensor:
    """Indices of ``k`` samples per class drawn (without replacement) from ``candidates`` (default: all)."""
    y = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels)
    cand = np.arange(y.size) if candidates is None else np.asarray(
        candidates.cpu() if isinstance(candidates, Tensor) else list(candidates), dtype=np.int64)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k (labels per class) must be an int >= 1, got {k!r}")
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(y[cand]):
        pool = cand[y[cand] == c]
        if pool.size < k:
            raise ValueError(f"class {c} has only {pool.size} candidates, fewer than k={k}")
        out.extend(rng.choice(pool, size=k, replace=False).tolist())
    return torch.tensor(sorted(out), dtype=torch.long)


# ---------------------------------------------------------------------------
# A task: images, labels, names and fixed pool / val / test indices; Hugging Face image datasets


@dataclass
class ImageTask:
    """Images uint8 (n, c, h, w), labels (n,) in [0, C), class names, and fixed pool / val / test indices.

    ``pool``: what training examples are drawn from; ``val``: for choosing hyperparameters;
    ``test``: touched only for the final numbers.
    """

    images: Tensor
    labels: Tensor
    class_names: list[str]
    pool: Tensor
    val: Tensor
    test: Tensor

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """(images[idx], labels[idx])."""
        return self.images[idx], self.labels[idx]


def load_hf_image_dataset(name_or_dir: str | Path, *, profile: Profile | None = None,
                          cache_root: Path | None = None) -> Any:
    """A ``datasets.DatasetDict`` of images (e.g. ``uoft-cs/cifar10``) from a ``save_to_disk`` folder,
    the course cache or the Hub: :func:`sftcourse.hub.load_dataset_dict` (offline: ``OfflineError``)."""
    return load_dataset_dict(name_or_dir, profile=profile, cache_root=cache_root)


def hf_images_to_tensor(split: Any, image_key: str, label_key: str, *, limit: int | None = None,
                        size: int | None = None) -> tuple[Tensor, Tensor]:
    """Images of a ``datasets`` split as uint8 (n, 3, H, W) and labels (n,); optionally the first ``limit``.

    Images of different sizes need ``size`` (each is resized to size x size).
    """
    for key in (image_key, label_key):
        if key not in split.column_names:
            raise ValueError(f"column {key!r} is not in the dataset; it has {split.column_names}")
    n = len(split) if limit is None else min(limit, len(split))
    rows = split.select(range(n))
    images = [_pil_to_tensor(im.convert("RGB"), size) for im in rows[image_key]]
    if len({tuple(im.shape) for im in images}) > 1:
        raise ValueError("the images have different sizes; pass size= to resize them to one size")
    return torch.stack(images), torch.as_tensor(rows[label_key], dtype=torch.long)


def hf_image_task(data: Any, *, image_key: str = "img", label_key: str = "label", train_split: str = "train",
                  test_split: str = "test", pool_size: int | None = None, test_size: int | None = None,
                  n_val_per_class: int = 20, size: int | None = None, seed: int = 0) -> ImageTask:
    """An :class:`ImageTask` from a ``datasets.DatasetDict``: val drawn per class from the first
    ``pool_size`` training rows, the rest is the pool, the first ``test_size`` test rows are the test set."""
    for split in (train_split, test_split):
        if split not in data:
            raise ValueError(f"the dataset has no {split!r} split; it has {list(data)}")
    X_tr, y_tr = hf_images_to_tensor(data[train_split], image_key, label_key, limit=pool_size, size=size)
    X_te, y_te = hf_images_to_tensor(data[test_split], image_key, label_key, limit=test_size, size=size)
    feature = data[train_split].features[label_key]
    num_classes = int(max(y_tr.max(), y_te.max())) + 1
    names = list(getattr(feature, "names", None) or [str(i) for i in range(num_classes)])
    val = sample_per_class(y_tr, n_val_per_class, seed)
    pool = torch.tensor(sorted(set(range(len(y_tr))) - set(val.tolist())), dtype=torch.long)
    test = torch.arange(len(y_tr), len(y_tr) + len(y_te))
    return ImageTask(torch.cat([X_tr, X_te]), torch.cat([y_tr, y_te]), names, pool, val, test)


__all__ = ["IMAGE_EXTENSIONS", "IMAGENET_MEAN", "IMAGENET_STD", "to_float_image", "channel_stats", "normalize",
           "random_shift", "random_hflip", "resize", "ImageTransform", "ImageTensorDataset", "load_image_folder",
           "stratified_split", "sample_per_class", "ImageTask", "load_hf_image_dataset", "hf_images_to_tensor",
           "hf_image_task"]
