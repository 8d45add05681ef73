"""Split assignment by identity group.

A fake and the real video it was made from show the same person, so all videos
of one `source_id` must land in one split or the eval metrics measure identity
memorisation. The hash is stable across runs, machines and Python versions.
"""

import hashlib
from typing import Mapping, Optional

from deepfake_detection import contract


def hash_bucket(key: str, num_buckets: int) -> int:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % num_buckets


def assign_split(source_id: str, buckets: Mapping[str, int], official_split: Optional[str] = None) -> str:
    """Returns the split of a video: the dataset's official one, else by hash of `source_id`.

    `buckets` maps split names to their share, e.g. {'train': 8, 'eval': 1, 'test': 1}.
    """
    if official_split is not None:
        return official_split
    ordered = [(name, buckets[name]) for name in contract.SPLIT_NAMES if buckets.get(name, 0) > 0]
    bucket = hash_bucket(source_id, sum(count for _, count in ordered))
    for name, count in ordered:
        if bucket < count:
            return name
        bucket -= count
    raise AssertionError("unreachable: bucket outside the bucket total")
