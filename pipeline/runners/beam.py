"""The old name of `beam_presets` (it read as Apache Beam itself), kept so that existing imports go on working."""

from pipeline.runners.beam_presets import BEAM_RUNNERS, beam_args

__all__ = ["BEAM_RUNNERS", "beam_args"]
