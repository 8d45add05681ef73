"""The one pipeline factory: the graph of the deepfake detection pipeline.

No file or environment reads happen here; runners bind paths, metadata and
Beam arguments and pass them in.
"""

import dataclasses
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.dsl.components.base.base_node import BaseNode
from tfx.orchestration import data_types
from tfx.proto import distribution_validator_pb2
from tfx.types import BaseChannel

from components import runtime_settings
from components.ensemble import EnsembleTrainer
from components.model_card import ModelCard
from components.runtime_settings.component import Setting
from deepfake_detection import component_ids, contract, defaults
from deepfake_detection.evaluation import cross_generator
from deepfake_detection.evaluation.eval_config import BlessingConfig, build_eval_config
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import LAYOUT_AUTO
from deepfake_detection.models.registry import get_backbone
from deepfake_detection.models.training import TrainingConfig
from pipeline.data_nodes import DataChannels, data_nodes

RUN_FN = "components.trainer_module.run_fn"
ENSEMBLE = "ensemble"
ENSEMBLE_TRAINER_ID = "EnsembleTrainer"
TUNER_FN = "components.trainer_module.tuner_fn"


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
    """One run's configuration, checked when it is built, before any video is read.

    What is ingested (`ingest_config`, `layout`), which models train and how
    (`backbones`; `training_settings[name]`, or "*" for all, overriding each
    `TrainingConfig`; two or more image `ensemble_members` add an
    EnsembleTrainer), how models are judged (`blessing`, on `evaluation_split`).
    The per-run knobs `epochs`, `warm_start` (1 or 0), `tuner_trials`,
    `min_auc` and `max_auc_drop` are values or Kubeflow `RuntimeParameter`s;
    `epochs`, `warm_start`, `min_auc` and `max_auc_drop` left at None keep
    `training_settings`' and `blessing`'s.
    Continuous training: `span_pattern` names the span folders of the data
    root (a TFX split pattern; or a Kubeflow `RuntimeParameter` holding the
    ingest's TFX input config, `spans.input_config_json`); training and
    evaluation read the newest `train_spans` spans (None: the span this run
    ingested, where no span resolver compiles); with a `drift_config`, the
    newest span is compared with the previous one and `on_drift` (`warn`,
    `block`) says whether drift stops the run before training.
    `code_version` (a fingerprint of the code, bound by the local runner) goes
    into the ingest's and the Trainers' properties, so TFX's cache, which keys
    on properties and inputs, reruns them when the code changes. `sample_data`
    says the data are the generated sample videos, for the model cards.
    """

    backbones: Sequence[str] = ()
    ingest_config: IngestConfig = dataclasses.field(default_factory=IngestConfig)
    layout: str = LAYOUT_AUTO
    training_settings: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    ensemble_members: Sequence[str] = ()
    blessing: BlessingConfig = dataclasses.field(default_factory=BlessingConfig)
    evaluation_split: str = contract.EVALUATION_SPLIT
    epochs: Setting = None
    warm_start: Setting = None
    tuner_trials: Setting = 0
    min_auc: Setting = None
    max_auc_drop: Setting = None
    code_version: Optional[str] = None
    sample_data: bool = False
    span_pattern: Union[str, data_types.RuntimeParameter] = defaults.SPAN_PATTERN
    train_spans: Optional[int] = defaults.TRAIN_SPANS
    drift_config: Optional[distribution_validator_pb2.DistributionValidatorConfig] = None
    on_drift: Union[str, data_types.RuntimeParameter] = defaults.ON_DRIFT

    def __post_init__(self) -> None:
        if self.evaluation_split not in contract.SPLIT_NAMES:
            raise ValueError(
                f"evaluation_split={self.evaluation_split!r}: expected one of {list(contract.SPLIT_NAMES)}"
            )
        _check_training(self.ingest_config, self.backbones, self.training_settings)
        if self.train_spans is not None and self.train_spans < 1:
            raise ValueError(f"train_spans={self.train_spans}: expected at least 1 span")


@dataclasses.dataclass(frozen=True)
class TrainingBranch:
    """One model's training nodes: its name in serving and in component ids, the resolver of its latest blessed
    model (the Trainer's warm start and the Evaluator's baseline), its Trainer, its Tuner if any."""

    name: str
    baseline: BaseNode
    trainer: BaseNode
    tuner: Optional[BaseNode] = None
    temporal: bool = False

    @property
    def nodes(self) -> List[BaseNode]:
        return [node for node in (self.baseline, self.tuner, self.trainer) if node is not None]


def _latest_blessed(name: str, trainer_id: str) -> BaseNode:
    """The latest model of Trainer `trainer_id` that model `name`'s own Evaluator blessed, so backbones never
    start from nor compare against each other's models; nothing on a model's first run."""
    return tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(
            type=tfx.types.standard_artifacts.Model, producer_component_id=trainer_id, output_key="model"
        ),
        model_blessing=tfx.dsl.Channel(
            type=tfx.types.standard_artifacts.ModelBlessing,
            producer_component_id=component_ids.node_id(component_ids.EVALUATOR, name),
            output_key="blessing",
        ),
    ).with_id(component_ids.node_id(component_ids.BASELINE_RESOLVER, name))


def _ensemble(
    members: Sequence[str],
    backbones: Sequence[str],
    branches: Sequence[TrainingBranch],
    examples: BaseChannel,
    training_settings: Mapping[str, Mapping[str, Any]],
) -> List[TrainingBranch]:
    if not members:
        return []
    invalid = [m for m in members if m not in backbones or get_backbone(m).temporal]
    if len(members) < 2 or invalid:
        raise ValueError(
            f"ensemble_members={list(members)!r}: expected two or more image backbones among {list(backbones)}"
        )
    trainers = {branch.name: branch.trainer for branch in branches}
    models = [trainers[name].outputs["model"] for name in members]
    fakes = _training(training_settings, members[0]).fakes()
    ensemble = EnsembleTrainer(members=models, examples=examples, fake_source=fakes)
    baseline = _latest_blessed(ENSEMBLE, ENSEMBLE_TRAINER_ID)
    return [TrainingBranch(ENSEMBLE, baseline, ensemble.with_id(ENSEMBLE_TRAINER_ID))]


def _settings(training_settings: Mapping[str, Mapping[str, Any]], name: str) -> Dict[str, Any]:
    """One backbone's training settings: the "*" entry, overridden by its own."""
    return {**training_settings.get("*", {}), **training_settings.get(name, {})}


def _training(training_settings: Mapping[str, Mapping[str, Any]], name: str) -> TrainingConfig:
    """The TrainingConfig the Trainer of backbone `name` will build from its custom_config."""
    return TrainingConfig.from_custom_config({**_settings(training_settings, name), "backbone": name})


def _check_training(
    ingest_config: IngestConfig, backbones: Sequence[str], training_settings: Mapping[str, Mapping[str, Any]]
) -> None:
    """Each backbone's training settings, checked when the pipeline is built, before any video is read.

    Catches what would otherwise fail in the Trainer after the whole ingest:
    settings for a backbone that is not trained, an input size under the
    backbone's smallest, clips of another length than the ingest writes.
    """
    unknown = set(training_settings) - set(backbones) - {"*"}
    if unknown:
        raise ValueError(f"training_settings names backbones that are not trained: {sorted(unknown)}")
    for name in backbones:
        training = _training(training_settings, name)
        if training.temporal and training.clip_length != ingest_config.clip_length:
            raise ValueError(
                f"{name} trains on clips of clip_length={training.clip_length}, but the ingest writes "
                f"clip_length={ingest_config.clip_length}: set both to the same value"
            )


def _unseen_manipulations(
    training_settings: Mapping[str, Mapping[str, Any]], backbones: Sequence[str], ensemble_members: Sequence[str]
) -> Dict[str, Sequence[str]]:
    """{model name: the manipulation kinds it never trained on}; an ensemble's are those none of its members saw."""
    unseen = {
        name: cross_generator.unseen_manipulations(_training(training_settings, name).fakes()) for name in backbones
    }
    if ensemble_members:
        unseen[ENSEMBLE] = cross_generator.common_unseen(unseen[name] for name in ensemble_members)
    return unseen


def _card_settings(settings: PipelineSettings, branch: "TrainingBranch") -> Dict[str, Any]:
    """What the model card says of how a model was trained: its resolved TrainingConfig (an ensemble: its first
    member's), its name and whether the data were the generated sample videos."""
    name = branch.name if branch.name != ENSEMBLE else settings.ensemble_members[0]
    training = dataclasses.asdict(_training(settings.training_settings, name))
    return {**training, "backbone": branch.name, "sample_data": settings.sample_data}


def _model_card(
    branch: "TrainingBranch",
    evaluator: BaseNode,
    data: DataChannels,
    settings: PipelineSettings,
    pusher: Optional[BaseNode],
) -> BaseNode:
    """The model card of one model, after its Evaluator and Pusher."""
    card_settings = _card_settings(settings, branch)
    return ModelCard(
        model_name=branch.name,
        model=branch.trainer.outputs["model"],
        examples=data.clip_examples if branch.temporal else data.examples,
        evaluation=evaluator.outputs["evaluation"],
        blessing=evaluator.outputs["blessing"],
        ingest_report=data.ingest_report,
        test_split=settings.evaluation_split,
        training_settings=json.dumps(card_settings, sort_keys=True, default=list),
        clip_length=card_settings["clip_length"] if branch.temporal else 0,
        pushed_model=pusher.outputs["pushed_model"] if pusher else None,
        statistics=data.statistics,
    ).with_id(component_ids.node_id(component_ids.MODEL_CARD, branch.name))


def _evaluation_branch(
    branch: TrainingBranch,
    data: DataChannels,
    unseen_manipulations: Mapping[str, Sequence[str]],
    settings: PipelineSettings,
    serving_model_dir: Optional[str],
) -> List[BaseNode]:
    """Evaluator, (with a serving directory) Pusher and the model card of one model, ids suffixed with its name.

    The baseline is the branch's latest blessed model (`_latest_blessed`), the
    one its Trainer started from when warm starts are on.
    """
    name, temporal, trainer = branch.name, branch.temporal, branch.trainer
    examples, clip_examples = data.examples, data.clip_examples
    model = trainer.outputs["model"]
    evaluator = runtime_settings.EvaluatorWithRunSettings(
        min_auc=settings.min_auc,
        max_auc_drop=settings.max_auc_drop,
        examples=clip_examples if temporal else examples,
        model=model,
        baseline_model=branch.baseline.outputs["model"],
        eval_config=build_eval_config(
            settings.blessing, temporal=temporal, unseen_manipulations=unseen_manipulations[name]
        ),
        example_splits=[settings.evaluation_split],
    ).with_id(component_ids.node_id(component_ids.EVALUATOR, name))
    nodes: List[BaseNode] = [evaluator]
    pusher = None
    if serving_model_dir:
        destination = tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=os.path.join(serving_model_dir, name))
        )
        pusher = tfx.components.Pusher(
            model=model, model_blessing=evaluator.outputs["blessing"], push_destination=destination
        ).with_id(component_ids.node_id(component_ids.PUSHER, name))
        nodes.append(pusher)
    nodes.append(_model_card(branch, evaluator, data, settings, pusher))
    return nodes


def _training_branch(
    name: str,
    examples: BaseChannel,
    clip_examples: BaseChannel,
    backbone_settings: Mapping[str, Any],
    settings: "PipelineSettings",
    gate: BaseNode,
) -> TrainingBranch:
    """Tuner (when trials > 0) and Trainer of one backbone, ids suffixed with its name; the Trainer starts from
    the latest blessed model of its backbone (`base_model`) where `run_fn` finds the same architecture."""
    tuner_trials, epochs = settings.tuner_trials, settings.epochs
    temporal = get_backbone(name).temporal
    inputs = clip_examples if temporal else examples
    custom_config: Dict[str, Any] = {**backbone_settings, "backbone": name}
    if settings.code_version:
        custom_config[component_ids.CODE_VERSION_KEY] = settings.code_version
    train_args = tfx.proto.TrainArgs(splits=[contract.TRAIN_SPLIT])
    eval_args = tfx.proto.EvalArgs(splits=[contract.EVAL_SPLIT])
    tuner, hyperparameters = None, None
    if isinstance(tuner_trials, data_types.RuntimeParameter) or tuner_trials > 0:
        tuner = runtime_settings.TunerWithRunSettings(
            tuner_trials=tuner_trials,
            examples=inputs,
            tuner_fn=TUNER_FN,
            train_args=train_args,
            eval_args=eval_args,
            custom_config=custom_config,
        ).with_id(component_ids.node_id(component_ids.TUNER, name))
        tuner.add_upstream_node(gate)
        hyperparameters = tuner.outputs["best_hyperparameters"]
    trainer_id = component_ids.node_id(component_ids.TRAINER, name)
    baseline = _latest_blessed(name, trainer_id)
    trainer = runtime_settings.TrainerWithRunSettings(
        epochs=epochs,
        warm_start=settings.warm_start,
        examples=inputs,
        base_model=baseline.outputs["model"],
        run_fn=RUN_FN,
        hyperparameters=hyperparameters,
        train_args=train_args,
        eval_args=eval_args,
        custom_config=custom_config,
    ).with_id(trainer_id)
    trainer.add_upstream_node(gate)
    return TrainingBranch(name, baseline, trainer, tuner, temporal)


def _model_nodes(settings: PipelineSettings, data: DataChannels, serving_model_dir: Optional[str]) -> List[BaseNode]:
    """Every model's branch behind the gate: Tuner and Trainer per backbone, the ensemble, then each model's
    baseline, Evaluator, Pusher and model card."""
    examples, clip_examples, anomaly_gate = data.examples, data.clip_examples, data.gate
    training_settings = settings.training_settings
    branches = [
        _training_branch(name, examples, clip_examples, _settings(training_settings, name), settings, anomaly_gate)
        for name in settings.backbones
    ]
    members = settings.ensemble_members
    branches += _ensemble(members, settings.backbones, branches, examples, training_settings)
    unseen = _unseen_manipulations(training_settings, settings.backbones, members)
    training = [node for branch in branches for node in branch.nodes]
    evaluation = [
        node for branch in branches for node in _evaluation_branch(branch, data, unseen, settings, serving_model_dir)
    ]
    return training + evaluation


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: Union[str, data_types.RuntimeParameter],
    schema_path: str,
    settings: Optional[PipelineSettings] = None,
    serving_model_dir: Optional[str] = None,
    beam_pipeline_args: Optional[List[str]] = None,
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """Videos -> face examples -> validation -> gate -> per-backbone training -> evaluation -> push.

    The gate fails the run on any anomaly, so no backbone trains on examples
    that break the schema. Each backbone gets a Tuner (`tuner_trials` > 0, or a
    runtime parameter) and a Trainer, which starts from the latest blessed
    model of its backbone where the architecture matches (warm start); every
    model is evaluated against that predecessor (cross-generator metrics on the
    kinds it never trained on, no AUC drop on any span) and, given
    `serving_model_dir`, pushed to
    `<serving_model_dir>/<name>/` when blessed; each gets a model card, which
    also goes into its pushed version. `settings` holds the rest.
    """
    settings = settings or PipelineSettings()
    data, channels = data_nodes(data_root, schema_path, settings)
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[*data, *_model_nodes(settings, channels, serving_model_dir)],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )
