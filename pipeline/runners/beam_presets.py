"""Apache Beam pipeline arguments for each runner preset (direct, dataflow, flink, spark): the one place runners
get them from. Formerly `beam.py`, which read as Apache Beam itself.
"""

from typing import List, Optional

BEAM_RUNNERS = ("direct", "dataflow", "flink", "spark")


def beam_args(
    runner: str = "direct",
    direct_num_workers: int = 1,
    project: Optional[str] = None,
    region: Optional[str] = None,
    temp_location: Optional[str] = None,
    image: Optional[str] = None,
    flink_master: Optional[str] = None,
    spark_master: Optional[str] = None,
    machine_type: Optional[str] = None,
    max_workers: Optional[int] = None,
) -> List[str]:
    """Beam arguments of each preset.

    - direct: in one process by default, `direct_num_workers` processes when
      asked (0: one per core);
    - dataflow: Google Cloud Dataflow in `project`/`region`, staging under
      `temp_location`, workers on the pipeline `image` (Runner v2), of
      `machine_type` and at most `max_workers` of them when given (face
      detection is CPU-bound: the worker count bounds the ingest's speed and cost);
    - flink / spark: a Flink or Spark cluster at `flink_master` /
      `spark_master`, Python workers in the pipeline `image` (Docker environment),
      `max_workers` as Flink's parallelism.
    """
    if runner == "direct":
        if direct_num_workers == 1:
            return ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
        return ["--direct_running_mode=multi_processing", f"--direct_num_workers={direct_num_workers}"]
    needs = {
        "dataflow": {"project": project, "region": region, "temp_location": temp_location, "image": image},
        "flink": {"flink_master": flink_master, "image": image},
        "spark": {"spark_master": spark_master, "image": image},
    }
    if runner not in needs:
        raise ValueError(f"Unknown Beam runner {runner!r}; expected one of {list(BEAM_RUNNERS)}")
    missing = [f"--{name.replace('_', '-')}" for name, value in needs[runner].items() if not value]
    if missing:
        raise ValueError(f"The {runner} Beam preset needs {', '.join(missing)}")
    if runner == "dataflow":
        sizing = [f"--machine_type={machine_type}"] if machine_type else []
        sizing += [f"--max_num_workers={max_workers}"] if max_workers else []
        return [
            "--runner=DataflowRunner",
            f"--project={project}",
            f"--region={region}",
            f"--temp_location={temp_location}",
            f"--sdk_container_image={image}",
            "--experiments=use_runner_v2",
            *sizing,
        ]
    container = ["--environment_type=DOCKER", f"--environment_config={image}"]
    if runner == "flink":
        parallelism = [f"--parallelism={max_workers}"] if max_workers else []
        return ["--runner=FlinkRunner", f"--flink_master={flink_master}", *container, *parallelism]
    return ["--runner=SparkRunner", f"--spark_master_url={spark_master}", *container]
