"""A person's maps: each face's map of where it looks manipulated, mixed with the mean map of that person's faces.

An edit stays on a person for the whole video (a swapped mouth is swapped in
every frame), while a single face's map also answers to what one frame
shows: a blink, motion blur, compression. Face crops are centred on the
detected face, so a part sits at about the same cells of every crop of a
person, and the person's mean map is that person's steady evidence. Each
face keeps OWN_SHARE of its own map, so a face where the edit shows more
(or moved within the crop) still says so; a person seen once (an image)
keeps its own map. On held-out sample fakes the mix lifted the pointing
game of eyes-only and mouth-only edits by about 0.05 to 0.08
(docs/explanations.md). Pure numpy: the TF-free detection service applies
it to the maps the model server returns.
"""

from typing import Dict, Hashable, List, Sequence

import numpy as np

# The share of its own map a face keeps; the rest is its person's mean map.
OWN_SHARE = 0.5


def with_person_maps(maps: np.ndarray, persons: Sequence[Hashable], own_share: float = OWN_SHARE) -> np.ndarray:
    """maps [N, g, g] of N faces and the person of each -> [N, g, g]: own_share of each face's own map plus the
    rest of its person's mean map. Values stay within the maps' range."""
    maps = np.asarray(maps, np.float64)
    if len(persons) != len(maps):
        raise ValueError(f"{len(maps)} maps but {len(persons)} persons")
    faces_of: Dict[Hashable, List[int]] = {}
    for number, person in enumerate(persons):
        faces_of.setdefault(person, []).append(number)
    mixed = np.empty_like(maps)
    for faces in faces_of.values():
        mixed[faces] = own_share * maps[faces] + (1 - own_share) * maps[faces].mean(axis=0)
    return mixed
