"""Which folder of `input_base` a run ingests, and the fingerprint that tells TFX's cache it changed.

`input_base` holds spans, one folder each, named by a TFX split pattern
(`span-{SPAN}`, `{YYYY}-{MM}-{DD}`, optionally with `{VERSION}`), each in any
layout the ingest reads; TFX's ExampleGen driver resolves the newest one. A
folder without spans is one span, span 0 (the pattern `.`, the folder itself).

TFX fingerprints the files its pattern matches, one level deep; a video dataset
nests its videos (`real/`, `part_0/`, `manipulated_sequences/<kind>/...`), so
the ingest's fingerprint is TFX's at every depth of the span's folder: a video
added, removed or rewritten anywhere in the span changes it.
"""

import os
import re
from typing import List, Optional, Sequence

from tfx.components.example_gen import utils as example_gen_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.utils import io_utils, proto_utils

# The one input split: a span's folder holds every split's videos (the ingest assigns splits by identity).
VIDEOS_SPLIT = "videos"
WHOLE_FOLDER = "."


def input_config(span_pattern: str) -> example_gen_pb2.Input:
    """TFX's input config of the ingest: one split whose pattern names the span folders ('' for no spans)."""
    pattern = span_pattern.strip().strip("/") or WHOLE_FOLDER
    split = example_gen_pb2.Input.Split(name=VIDEOS_SPLIT, pattern=pattern)
    example_gen_utils.verify_split_pattern_specs(split)
    return example_gen_pb2.Input(splits=[split])


def input_config_json(span_pattern: str) -> str:
    return proto_utils.proto_to_json(input_config(span_pattern))


def parse_input_config(text: str) -> example_gen_pb2.Input:
    config = example_gen_pb2.Input()
    proto_utils.json_to_proto(text, config)
    return config


def has_span_spec(pattern: str) -> bool:
    is_span, is_date, _ = example_gen_utils.verify_split_pattern_specs(
        example_gen_pb2.Input.Split(name=VIDEOS_SPLIT, pattern=pattern)
    )
    return is_span or is_date


def span_candidates(input_base: str, pattern: str) -> List[str]:
    """The entries of `input_base` the span pattern could match (each placeholder as `*`)."""
    specs = [example_gen_utils.SPAN_FULL_REGEX, example_gen_utils.VERSION_FULL_REGEX]
    specs += [re.escape(spec) for spec in example_gen_utils.DATE_SPECS]
    for spec in specs:
        pattern = re.sub(spec, "*", pattern)
    return fileio.glob(os.path.join(input_base, pattern))


def without_spans_if_none_match(input_base: str, config: example_gen_pb2.Input) -> example_gen_pb2.Input:
    """The config to resolve: a span pattern that matches no folder reads the whole folder as span 0."""
    pattern = config.splits[0].pattern
    if has_span_spec(pattern) and not span_candidates(input_base, pattern):
        return input_config("")
    return config


def span_folder(input_base: str, resolved: example_gen_pb2.Input) -> str:
    """The folder of the resolved span (TFX's driver has filled the pattern's placeholders)."""
    return os.path.normpath(os.path.join(input_base, resolved.splits[0].pattern))


def tree_fingerprint(folder: str) -> str:
    """TFX's file fingerprint (count, bytes, modification times) at every depth of `folder`, one line each."""
    lines = []
    depth = 1
    while True:
        pattern = os.path.join(folder, *(["*"] * depth))
        if not fileio.glob(pattern):
            return "\n".join(lines)
        lines.append(io_utils.generate_fingerprint(f"{VIDEOS_SPLIT}/depth-{depth}", pattern))
        depth += 1


def version_for(fingerprint: str, earlier: Sequence[tuple]) -> int:
    """The version of a span with `fingerprint`, given its earlier ingests as (fingerprint, version) pairs:
    the same files keep their version, changed files take the next one."""
    for seen, version in earlier:
        if seen == fingerprint:
            return version
    return max((version for _, version in earlier), default=-1) + 1


def relative_span_folder(resolved: example_gen_pb2.Input) -> Optional[str]:
    """The span folder inside `input_base`, or None when the whole folder is the span."""
    pattern = os.path.normpath(resolved.splits[0].pattern)
    return None if pattern == WHOLE_FOLDER else pattern
