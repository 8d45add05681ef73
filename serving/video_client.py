"""The old name of `serving.video_analysis` (it holds the analyser, not a client), kept so that existing imports
go on working."""

from serving.video_analysis import *  # noqa: F403
from serving.video_analysis import VERDICT_FAKE, VERDICT_NO_FACE, VERDICT_REAL, VERDICT_UNCERTAIN, VideoAnalyzer  # noqa: F401
