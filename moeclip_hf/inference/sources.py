"""What `moeclip detect` scores: image files, the images of folders, glob matches, the paths listed in text
files, or the rows of a `datasets` dataset, each as an `ImageItem` with the key its result row is written
under and the name of its map file.

The order is deterministic, because resuming and sharding depend on it: inputs in the order given, a
folder's images sorted by relative path, a glob's matches sorted, a list file's lines as written, a
dataset's rows by index. An image named twice is scored once.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset
from PIL import Image

from ..data.images import IMAGE_SUFFIXES, read_image

#: Suffixes of text files read as lists of image paths, one per line.
LIST_SUFFIXES: frozenset[str] = frozenset({".txt", ".lst"})

ACCEPTED = (
    "give image files, folders (searched recursively), glob patterns in quotes ('parts/**/*.png') or text files "
    "(.txt) listing one image path per line"
)


@dataclass(frozen=True)
class DatasetRow:
    """Row `index` of a `datasets` dataset whose `column` holds the image (undecoded, or a path)."""

    dataset: Dataset
    index: int
    column: str

    def read(self) -> Image.Image:
        return read_image(self.dataset[self.index][self.column])


@dataclass(frozen=True)
class ImageItem:
    """One image to score.

    Attributes:
        key: the `path` column of its result row, unique among the items: the file path as given (normalised),
            or for a dataset row its stored file name, else `<dataset>#<index>`.
        map_name: its map file, relative to the maps folder: `<folder>/<stem>-<digest>.png` for a file, after
            the folder holding it, its name and the first 10 hex digits of the key's SHA-256 (the same name
            whatever else is scored, so a resumed run with more images never reuses one), or
            `<dataset name>/<index>.png`.
        source: the file path, or the dataset row.
    """

    key: str
    map_name: str
    source: str | DatasetRow

    def read(self) -> Image.Image:
        """The image as RGB (`data.images.read_image`: any mode converted, a broken file named in the error)."""
        return self.source.read() if isinstance(self.source, DatasetRow) else read_image(self.source)


def collect_images(
    inputs: Sequence[str | os.PathLike[str]] = (),
    dataset: str | None = None,
    split: str | None = None,
    image_column: str = "image",
    exclude: Iterable[str | os.PathLike[str]] = (),
) -> list[ImageItem]:
    """The images named by `inputs` and the rows of `dataset`, in order, each once.

    Args:
        inputs: image files, folders, glob patterns and `.txt` lists of paths (relative lines are read from
            the list's folder).
        dataset: a folder written by `Dataset.save_to_disk`, or what `datasets.load_dataset` takes (offline:
            a local folder or loading script).
        split: the dataset's split, needed when it has several.
        image_column: the dataset column holding the images (an `Image` feature or file paths).
        exclude: folders whose files are never taken from a folder or a glob (the run's own maps folder).

    Raises:
        FileNotFoundError: an input that is no file, folder or glob match; a folder or glob without images; a
            listed file that does not exist.
        ValueError: a file that is neither an image nor a list; an unknown split or column; nothing to score.
    """
    excluded = [Path(folder).resolve() for folder in exclude]
    paths: list[str] = []
    for entry in inputs:
        paths += _expand(os.fspath(entry), excluded)
    paths = list(dict.fromkeys(os.path.normpath(path) for path in paths))
    items = [ImageItem(path, _map_name(path), path) for path in paths]
    if dataset is not None:
        items += _dataset_items(dataset, split, image_column)
    if not items:
        raise ValueError(f"nothing to score: {ACCEPTED}, or --from-dataset")
    keys, names = {}, {}
    for item in items:
        if names.setdefault(item.map_name, item.key) != item.key:
            raise ValueError(f"{names[item.map_name]} and {item.key} would write the same map file {item.map_name}; rename one")
        keys.setdefault(item.key, item)
    return list(keys.values())


def _expand(entry: str, excluded: list[Path]) -> list[str]:
    path = Path(entry)
    if path.is_dir():
        found = [os.path.join(entry, name) for name in _image_files(path, excluded)]
        if not found:
            raise FileNotFoundError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under the folder {entry}")
        return found
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            return [entry]
        if suffix in LIST_SUFFIXES:
            return _read_list(path)
        raise ValueError(f"{entry} is neither an image ({', '.join(sorted(IMAGE_SUFFIXES))}) nor a list of paths (.txt): {ACCEPTED}")
    if glob.has_magic(entry):
        matches = sorted(match for match in glob.glob(entry, recursive=True) if _is_image(Path(match), excluded))
        if not matches:
            raise FileNotFoundError(f"no image file matches {entry!r}")
        return matches
    raise FileNotFoundError(f"{entry}: no such image, folder, glob match or list file; {ACCEPTED}")


def _image_files(folder: Path, excluded: list[Path]) -> list[str]:
    """Image files under `folder`, relative and sorted; hidden files and folders, and `excluded`, skipped."""
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if not any(part.startswith(".") for part in relative.parts) and _is_image(path, excluded):
            found.append(relative.as_posix())
    return sorted(found)


def _is_image(path: Path, excluded: list[Path]) -> bool:
    if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
        return False
    resolved = path.resolve()
    return not any(resolved.is_relative_to(folder) for folder in excluded)


def _read_list(list_file: Path) -> list[str]:
    paths = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = line if os.path.isabs(line) else os.path.join(list_file.parent, line)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{list_file}, line {number}: no such image file {line!r} (relative lines are read from {list_file.parent})")
        paths.append(path)
    if not paths:
        raise ValueError(f"{list_file} lists no image path (one per line; blank lines and # comments are skipped)")
    return paths


def _map_name(path: str) -> str:
    file = Path(path)
    digest = hashlib.sha256(path.encode()).hexdigest()[:10]
    return (Path(file.parent.name) / f"{file.stem}-{digest}.png").as_posix()


def _dataset_items(reference: str, split: str | None, image_column: str) -> list[ImageItem]:
    import datasets
    import pyarrow as pa

    location = Path(reference)
    if location.is_dir() and any((location / name).is_file() for name in ("state.json", "dataset_dict.json")):
        loaded = datasets.load_from_disk(str(location))
    else:
        loaded = datasets.load_dataset(reference, split=split)
    if isinstance(loaded, datasets.DatasetDict):
        if split is None and len(loaded) == 1:
            split = next(iter(loaded))
        if split not in loaded:
            raise ValueError(f"{reference} has the splits {sorted(loaded)}: choose one with --split")
        loaded = loaded[split]
    if image_column not in loaded.column_names:
        raise ValueError(f"{reference} has no column {image_column!r}; its columns: {loaded.column_names}. Name the image column with --image-column")
    loaded = loaded.select_columns([image_column])  # a row read is then only its image
    if isinstance(loaded.features[image_column], datasets.Image):
        loaded = loaded.cast_column(image_column, datasets.Image(decode=False))
    # The column as Arrow (memory-mapped; the row order after any select): file names without the bytes.
    column = loaded.with_format("arrow")[image_column]
    is_image = pa.types.is_struct(column.type)
    chunks = [chunk.field("path") for chunk in column.chunks] if is_image else column.chunks
    stored = pa.chunked_array(chunks, type=pa.string() if is_image else column.type).to_pylist()
    unique = all(stored) and len(set(stored)) == len(stored)
    name = location.name or "dataset"
    return [
        ImageItem(stored[index] if unique else f"{reference}#{index}", f"{name}/{index:08d}.png", DatasetRow(loaded, index, image_column))
        for index in range(len(loaded))
    ]


__all__ = ["ACCEPTED", "LIST_SUFFIXES", "DatasetRow", "ImageItem", "collect_images"]
