"""Which ground truth a prediction is scored against when ``gt_dir`` is a benchmark dataset, not a folder of
sharp images.

A GoPro, HIDE or RealBlur folder holds blurry and sharp frames side by side (GoPro ``test/<seq>/{blur,
blur_gamma,sharp}``), so matching file names across it would score predictions against blurry frames. Given
such a folder, :func:`benchmark_pairing` takes the sharp image of every pair the dataset's test split
defines (the lists ``deblur-eval`` and training use) and finds each pair's prediction under any of the
names the suite writes:

* ``deblur-eval save_images=true``: the pair name (GoPro ``<seq>/000047``, HIDE ``test-close-ups/<file>``,
  RealBlur ``sceneNNN/blur/blur_M``);
* ``deblur-predict input=<root>/test recursive=true`` (GoPro, HIDE): the blurry file's path under the split
  folder (GoPro ``<seq>/blur/000047``);
* ``deblur-predict input=<root> recursive=true``: the blurry file's path under the dataset root.

Predictions of other frames (``blur_gamma``, ``sharp``, training images) are ignored and counted. In a plain
folder, a ground-truth path through a folder of blurry frames (``blur/``, ``blur_gamma/``, ``input/``) is
refused: a blurry image is never ground truth.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from deblur.data.blurry import BLURRY_FOLDERS
from deblur.errors import UserError

#: RealBlur test lists, by dataset
REALBLUR_LISTS = {"realblur_j": "RealBlur_J_test_list.txt", "realblur_r": "RealBlur_R_test_list.txt"}


@dataclass
class BenchmarkPairing:
    """Predictions matched to a benchmark's test split: ``pairs`` = ``[(name, prediction, sharp image)]``."""

    dataset: str
    root: Path
    pairs: list[tuple[str, Path, Path]] = field(default_factory=list)
    pred_only: list[str] = field(default_factory=list)
    gt_only: list[str] = field(default_factory=list)
    #: the blurry input of each matched prediction: ``{prediction path: blurry file}``
    inputs: dict[Path, Path] = field(default_factory=dict)


def _is_gopro_split(folder: Path) -> bool:
    if (folder / "sharp").is_dir() and ((folder / "blur").is_dir() or (folder / "blur_gamma").is_dir()):
        return True
    return any((seq / "sharp").is_dir() and (seq / "blur").is_dir() for seq in _subfolders(folder))


def _subfolders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]


def detect_benchmark(gt_dir: str | os.PathLike, dataset: str | None = None) -> tuple[str, Path] | None:
    """``(dataset name, dataset root)`` when ``gt_dir`` is a GoPro / HIDE / RealBlur root or its test split
    folder; None for a plain folder. ``dataset`` names it when a root holds both RealBlur-J and -R.

    Raises:
        UserError: a RealBlur root holding both lists and no ``dataset`` to choose.
    """
    folder = Path(gt_dir).expanduser()
    for root, split in ((folder, folder / "test"), (folder.parent, folder)):
        if split.name == "test" and split.is_dir() and _is_gopro_split(split) and root.is_dir():
            if dataset in (None, "gopro"):
                return "gopro", root
        if (root / "GT").is_dir() and (root / "test").is_dir() and split.name == "test":
            if dataset in (None, "hide"):
                return "hide", root
    found = [name for name, listed in REALBLUR_LISTS.items() if (folder / listed).is_file()]
    if dataset in found:
        return dataset, folder
    if len(found) == 1 and dataset is None:
        return found[0], folder
    if len(found) > 1:
        raise UserError(
            f"gt_dir={folder} is a RealBlur root with both test lists "
            f"({', '.join(REALBLUR_LISTS.values())}): name the one to score with dataset=realblur_j or "
            "dataset=realblur_r"
        )
    return None


def _stem(path: Path) -> str:
    return path.with_suffix("").as_posix()


def benchmark_pairing(
    pred: dict[str, Path], dataset: str, root: Path, pred_dir: Path, on_bad_pair: str = "error"
) -> BenchmarkPairing:
    """Match predictions (``deblur.io.list_images`` of ``pred_dir``) to the test split's sharp images."""
    from deblur.data.on_disk import SPLIT_FOLDER, list_pairs

    cfg = {"root": str(root), "on_bad_pair": on_bad_pair, "validate": False}
    listed = list_pairs(dataset, cfg, "val")
    split_dir = root / SPLIT_FOLDER["val"]
    result = BenchmarkPairing(dataset=dataset, root=root)
    used: set[str] = set()
    for blurry, sharp, name in listed:
        candidates = [_stem(Path(name))]
        for base in (split_dir, root):
            try:
                candidates.append(_stem(blurry.relative_to(base)))
            except ValueError:
                continue
        key = next((k for k in candidates if k in pred), None)
        if key is None:
            result.gt_only.append(name)
            continue
        used.add(key)
        result.inputs[pred[key]] = blurry
        result.pairs.append((pred[key].relative_to(pred_dir).as_posix(), pred[key], sharp))
    result.pred_only = sorted(pred[k].relative_to(pred_dir).as_posix() for k in pred.keys() - used)
    result.pairs.sort()
    return result


def refuse_blurry_ground_truth(gt: dict[str, Path], gt_dir: Path) -> None:
    """Raise when a plain ground-truth folder holds files inside a folder of blurry frames."""
    blurry = sorted(k for k in gt if BLURRY_FOLDERS & set(Path(k).parts[:-1]))
    if blurry:
        raise UserError(
            f"gt_dir={gt_dir} holds {len(blurry)} image(s) in folders of blurry frames (e.g. {blurry[0]}); "
            "a blurry image is never ground truth. Give the dataset's root (GOPRO_Large, HIDE_dataset, the "
            "RealBlur folder) or its test/ folder, and deblur-score picks the sharp images of its test "
            "split; or give a folder holding only sharp images."
        )
