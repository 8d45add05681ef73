"""Dataset readers: turn a dataset folder into one `VideoRecord` per input file.

Label, manipulation method, dataset, compression and the identity group
(`source_id`) come from the layout. Every file a reader finds becomes a record,
even one it cannot label: such a record carries a `reject_reason`, so the ingest
report accounts for it instead of the file silently disappearing.
"""

import csv
import dataclasses
import json
import os
import re
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from deepfake_detection import contract

LAYOUT_AUTO = "auto"
LAYOUT_FOLDERS = "folders"
LAYOUT_DFDC = "dfdc"
LAYOUT_FFPP = "ffpp"
LAYOUT_CELEBDF = "celebdf"
LAYOUTS = (LAYOUT_FOLDERS, LAYOUT_DFDC, LAYOUT_FFPP, LAYOUT_CELEBDF)

_FFPP_ORIGINALS = "original_sequences"
_FFPP_MANIPULATED = "manipulated_sequences"
_FFPP_SPLIT_NAMES = {"train": contract.TRAIN_SPLIT, "val": contract.EVAL_SPLIT, "test": contract.TEST_SPLIT}
_CELEBDF_FOLDERS = {
    "Celeb-real": contract.REAL_LABEL,
    "YouTube-real": contract.REAL_LABEL,
    "Celeb-synthesis": contract.FAKE_LABEL,
}
_CELEBDF_TEST_LIST = "List_of_testing_videos.txt"
_DFDC_METADATA = "metadata.json"
_DFDC_LABELS_CSV = "labels.csv"


@dataclasses.dataclass(frozen=True)
class VideoRecord:
    """One input file and everything its dataset layout says about it."""

    path: str
    relative_path: str
    label: int
    dataset: str
    manipulation: str
    source_id: str
    compression: str = contract.UNKNOWN
    split: Optional[str] = None
    reject_reason: Optional[str] = None
    span: int = 0

    @property
    def video_id(self) -> str:
        """Unique, stable id of the video: its path inside the dataset, extension included.

        `clip.mp4` and `clip.webm` in one folder are two videos; without the
        extension their faces would merge into one video in video-level metrics.
        """
        return f"{self.dataset}/{self.relative_path}"


def detect_layout(root: str) -> str:
    """Names the layout of `root`, or raises with what each layout expects."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Input folder {root!r} does not exist")
    entries = set(os.listdir(root))
    if entries & {_FFPP_ORIGINALS, _FFPP_MANIPULATED}:
        return LAYOUT_FFPP
    if entries & set(_CELEBDF_FOLDERS):
        return LAYOUT_CELEBDF
    if _dfdc_parts(root):
        return LAYOUT_DFDC
    if entries & {"real", "fake"}:
        return LAYOUT_FOLDERS
    raise ValueError(
        f"Cannot tell the dataset layout of {root!r}. Expected one of: "
        "real/ and fake/ folders; DFDC parts with metadata.json (or labels.csv); "
        "FaceForensics++ original_sequences/ and manipulated_sequences/; "
        "Celeb-DF v2 Celeb-real/, YouTube-real/, Celeb-synthesis/. Use --layout to force one."
    )


def read_dataset(root: str, layout: str = LAYOUT_AUTO) -> List[VideoRecord]:
    """Lists every input file of the dataset at `root` as a record, sorted by path."""
    if layout == LAYOUT_AUTO:
        layout = detect_layout(root)
    readers: Dict[str, Callable[[str], Iterable[VideoRecord]]] = {
        LAYOUT_FOLDERS: read_folders,
        LAYOUT_DFDC: read_dfdc,
        LAYOUT_FFPP: read_ffpp,
        LAYOUT_CELEBDF: read_celebdf,
    }
    if layout not in readers:
        raise ValueError(f"Unknown layout {layout!r}; expected one of {(LAYOUT_AUTO,) + LAYOUTS}")
    return sorted(readers[layout](root), key=lambda record: record.relative_path)


def in_span(records: Iterable[VideoRecord], span: int, span_folder: Optional[str]) -> List[VideoRecord]:
    """The records of a span read from its own folder: their span, and paths inside the dataset that start with
    the span's folder (`span-2/real/a.mp4`), so that videos of two spans never share an id; `span_folder` None: the
    dataset is the span."""
    return [
        dataclasses.replace(
            record,
            span=span,
            relative_path=os.path.join(span_folder, record.relative_path) if span_folder else record.relative_path,
        )
        for record in records
    ]


def _walk_files(folder: str) -> Iterable[str]:
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.join(directory, name)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def read_folders(root: str) -> Iterable[VideoRecord]:
    """`real/` and `fake/` folders; `fake/<method>/...` names the manipulation.

    Without links between fakes and originals, each video is its own identity
    group: its path inside the dataset, extension included.
    """
    for class_name, label in (("real", contract.REAL_LABEL), ("fake", contract.FAKE_LABEL)):
        class_dir = os.path.join(root, class_name)
        for path in _walk_files(class_dir):
            inner = os.path.relpath(path, class_dir).split(os.sep)
            if label == contract.REAL_LABEL:
                manipulation = contract.ORIGINAL_MANIPULATION
            else:
                manipulation = inner[0] if len(inner) > 1 else contract.UNKNOWN
            yield VideoRecord(
                path=path,
                relative_path=os.path.relpath(path, root),
                label=label,
                dataset=LAYOUT_FOLDERS,
                manipulation=manipulation,
                source_id=f"{LAYOUT_FOLDERS}:{os.path.relpath(path, root)}",
            )


def _dfdc_parts(root: str) -> List[str]:
    candidates = [root] + [os.path.join(root, d) for d in sorted(os.listdir(root))]
    return [
        d
        for d in candidates
        if os.path.isdir(d)
        and (os.path.isfile(os.path.join(d, _DFDC_METADATA)) or os.path.isfile(os.path.join(d, _DFDC_LABELS_CSV)))
    ]


def read_dfdc(root: str) -> Iterable[VideoRecord]:
    """DFDC parts: `metadata.json` maps each file to its label and `original`.

    A fake shares its actor with its original, so both get the original's name
    as `source_id`. An optional `manipulation` key per entry (written by the
    sample generator) names the method, and `compression` its encoding level;
    DFDC itself says only FAKE.
    Test parts may carry `labels.csv` (`filename,label`) instead.
    """
    for part in _dfdc_parts(root):
        labels = _dfdc_labels(part)
        listed = set()
        for name, entry in sorted(labels.items()):
            listed.add(name)
            path = os.path.join(part, name)
            is_fake = entry["label"] == contract.FAKE_LABEL
            original = entry.get("original") or name
            yield VideoRecord(
                path=path,
                relative_path=os.path.relpath(path, root),
                label=entry["label"],
                dataset=LAYOUT_DFDC,
                manipulation=entry.get("manipulation") or ("deepfake" if is_fake else contract.ORIGINAL_MANIPULATION),
                source_id=f"{LAYOUT_DFDC}:{_stem(original)}",
                compression=entry.get("compression") or contract.UNKNOWN,
            )
        for path in _walk_files(part):
            name = os.path.relpath(path, part)
            top = name.split(os.sep)[0]
            if (
                name in listed
                or name in (_DFDC_METADATA, _DFDC_LABELS_CSV)
                or os.path.join(part, top) in _dfdc_parts(root)
            ):
                continue
            yield VideoRecord(
                path=path,
                relative_path=os.path.relpath(path, root),
                label=contract.REAL_LABEL,
                dataset=LAYOUT_DFDC,
                manipulation=contract.UNKNOWN,
                source_id=f"{LAYOUT_DFDC}:{_stem(path)}",
                reject_reason=f"not listed in {_DFDC_METADATA} or {_DFDC_LABELS_CSV}: no label",
            )


def _dfdc_labels(part: str) -> Dict[str, dict]:
    labels: Dict[str, dict] = {}
    metadata_path = os.path.join(part, _DFDC_METADATA)
    if os.path.isfile(metadata_path):
        with open(metadata_path) as f:
            try:
                metadata = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{metadata_path} is not valid JSON: {e}") from e
        for name, entry in metadata.items():
            label = str(entry.get("label", "")).upper()
            if label not in ("FAKE", "REAL"):
                raise ValueError(f"{metadata_path}: {name} has label {entry.get('label')!r}, expected FAKE or REAL")
            labels[name] = dict(entry, label=contract.FAKE_LABEL if label == "FAKE" else contract.REAL_LABEL)
    csv_path = os.path.join(part, _DFDC_LABELS_CSV)
    if os.path.isfile(csv_path):
        with open(csv_path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("label") not in ("0", "1"):
                    raise ValueError(
                        f"{csv_path}: {row.get('filename')} has label {row.get('label')!r}, expected 0 or 1"
                    )
                labels.setdefault(row["filename"], {"label": int(row["label"])})
    return labels


def _ffpp_official_splits(root: str) -> Dict[str, str]:
    """Maps each FF++ video id ('071') to its split from `splits/*.json`."""
    splits = {}
    for file_name, split in _FFPP_SPLIT_NAMES.items():
        path = os.path.join(root, "splits", f"{file_name}.json")
        if os.path.isfile(path):
            with open(path) as f:
                for pair in json.load(f):
                    for video_id in pair:
                        splits[str(video_id)] = split
    return splits


def _ffpp_identity_groups(names: Iterable[str]) -> Dict[str, str]:
    """Joins each youtube id with its partner from fake names like `071_054`."""
    groups = {}
    for name in names:
        ids = name.split("_")
        if len(ids) == 2 and all(i.isdigit() for i in ids):
            key = "_".join(sorted(ids))
            for video_id in ids:
                groups[video_id] = key
    return groups


def read_ffpp(root: str) -> Iterable[VideoRecord]:
    """FaceForensics++: `{original,manipulated}_sequences/<kind>/<compression>/videos/*`.

    A fake `TTT_SSS` and the originals `TTT` and `SSS` share one identity
    group, as in the official split files, which decide the split when present.
    Actor videos (DeepFakeDetection) are grouped by the target actor.
    """
    entries: List[Tuple[str, int, str, str]] = []
    for top, label in ((_FFPP_ORIGINALS, contract.REAL_LABEL), (_FFPP_MANIPULATED, contract.FAKE_LABEL)):
        top_dir = os.path.join(root, top)
        if not os.path.isdir(top_dir):
            continue
        for kind in sorted(os.listdir(top_dir)):
            for path in _walk_files(os.path.join(top_dir, kind)):
                parts = os.path.relpath(path, os.path.join(top_dir, kind)).split(os.sep)
                compression = parts[0] if len(parts) > 1 else contract.UNKNOWN
                entries.append((path, label, kind, compression))
    groups = _ffpp_identity_groups(_stem(path) for path, label, _, _ in entries if label == contract.FAKE_LABEL)
    official = _ffpp_official_splits(root)
    for path, label, kind, compression in entries:
        stem = _stem(path)
        if "__" in stem:
            group = f"actor{stem.split('__')[0].split('_')[0]}"
        else:
            group = groups.get(stem.split("_")[0], stem.split("_")[0])
        yield VideoRecord(
            path=path,
            relative_path=os.path.relpath(path, root),
            label=label,
            dataset=LAYOUT_FFPP,
            manipulation=contract.ORIGINAL_MANIPULATION if label == contract.REAL_LABEL else kind,
            source_id=f"{LAYOUT_FFPP}:{group}",
            compression=compression,
            split=official.get(stem.split("_")[0]),
        )


def read_celebdf(root: str) -> Iterable[VideoRecord]:
    """Celeb-DF v2: the label comes from the folder; fakes `idT_idS_NNNN` group with `idT`.

    Videos named in `List_of_testing_videos.txt` go to the test split; the
    file's first column is ignored because the dataset does not define it.
    """
    test_videos = set()
    test_list = os.path.join(root, _CELEBDF_TEST_LIST)
    if os.path.isfile(test_list):
        with open(test_list) as f:
            for line in f:
                fields = line.split()
                if fields:
                    test_videos.add(os.path.normpath(fields[-1]))
    for folder, label in _CELEBDF_FOLDERS.items():
        for path in _walk_files(os.path.join(root, folder)):
            relative_path = os.path.relpath(path, root)
            stem = _stem(path)
            identity = re.match(r"(id\d+)_", stem)
            group = identity.group(1) if identity else f"{folder}-{stem}"
            yield VideoRecord(
                path=path,
                relative_path=relative_path,
                label=label,
                dataset=LAYOUT_CELEBDF,
                manipulation=contract.ORIGINAL_MANIPULATION if label == contract.REAL_LABEL else "celeb_synthesis",
                source_id=f"{LAYOUT_CELEBDF}:{group}",
                split=contract.TEST_SPLIT if os.path.normpath(relative_path) in test_videos else None,
            )
