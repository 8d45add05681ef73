"""Apache Beam's arguments for each runner preset."""

import pytest

from pipeline.runners import beam_presets


@pytest.mark.parametrize(
    "runner, options, expected",
    [
        ("direct", {"direct_num_workers": 0}, "--direct_running_mode=multi_processing"),
        (
            "dataflow",
            {"project": "p", "region": "r", "temp_location": "gs://t", "image": "i"},
            "--runner=DataflowRunner",
        ),
        ("flink", {"flink_master": "flink:8081", "image": "i"}, "--flink_master=flink:8081"),
        ("flink", {"flink_master": "flink:8081", "image": "i", "max_workers": 16}, "--parallelism=16"),
        (
            "dataflow",
            {"project": "p", "region": "r", "temp_location": "gs://t", "image": "i", "max_workers": 20},
            "--max_num_workers=20",
        ),
        (
            "dataflow",
            {"project": "p", "region": "r", "temp_location": "gs://t", "image": "i", "machine_type": "n1-highcpu-16"},
            "--machine_type=n1-highcpu-16",
        ),
        ("spark", {"spark_master": "spark://s:7077", "image": "i"}, "--spark_master_url=spark://s:7077"),
    ],
)
def test_beam_presets(runner, options, expected):
    assert expected in beam_presets.beam_args(runner, **options)


def test_beam_preset_names_what_it_misses():
    with pytest.raises(ValueError, match="--project, --region"):
        beam_presets.beam_args("dataflow", image="i", temp_location="gs://t")
