"""The driver of VideoExampleGen: TFX's FileBasedExampleGen driver, with a fingerprint that sees nested videos.

TFX's driver resolves the newest span (and `{VERSION}`) and fills the span
pattern; this one then fingerprints every depth of the span's folder
(`spans.tree_fingerprint`), so TFX's cache, which keys on these properties,
runs the ingest again whenever a video of the span was added, removed or
rewritten. Without a `{VERSION}` in the pattern, TFX gives no version; the span
then takes one from ML Metadata: the version of its earlier ingest of the same
files, else one more than the last, so a changed span is a newer version to
TFX's span resolvers downstream.
"""

from typing import Any, Dict, List, Tuple

from tfx.components.example_gen import driver as example_gen_driver
from tfx.components.example_gen import utils as example_gen_utils
from tfx.orchestration import data_types
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.video_example_gen import spans

INPUT_BASE_KEY = standard_component_specs.INPUT_BASE_KEY
INPUT_CONFIG_KEY = standard_component_specs.INPUT_CONFIG_KEY
SPAN_KEY = example_gen_utils.SPAN_PROPERTY_NAME
VERSION_KEY = example_gen_utils.VERSION_PROPERTY_NAME
FINGERPRINT_KEY = example_gen_utils.FINGERPRINT_PROPERTY_NAME


class Driver(example_gen_driver.FileBasedDriver):
    """Resolves the span as TFX's FileBasedExampleGen does; fingerprints and versions it over its whole tree."""

    def resolve_exec_properties(
        self,
        exec_properties: Dict[str, Any],
        pipeline_info: data_types.PipelineInfo,
        component_info: data_types.ComponentInfo,
    ) -> Dict[str, Any]:
        input_base = exec_properties[INPUT_BASE_KEY]
        config = spans.without_spans_if_none_match(
            input_base, spans.parse_input_config(exec_properties[INPUT_CONFIG_KEY])
        )
        exec_properties[INPUT_CONFIG_KEY] = proto_utils.proto_to_json(config)
        exec_properties = super().resolve_exec_properties(exec_properties, pipeline_info, component_info)
        resolved = spans.parse_input_config(exec_properties[INPUT_CONFIG_KEY])
        fingerprint = spans.tree_fingerprint(spans.span_folder(input_base, resolved))
        exec_properties[FINGERPRINT_KEY] = fingerprint
        if exec_properties[VERSION_KEY] is None:
            earlier = self._earlier_ingests(input_base, exec_properties[SPAN_KEY])
            exec_properties[VERSION_KEY] = spans.version_for(fingerprint, earlier)
        return exec_properties

    def _earlier_ingests(self, input_base: str, span: int) -> List[Tuple[str, int]]:
        """(fingerprint, version) of every published ingest of this span of `input_base`."""
        with self._metadata_handle as metadata:
            artifacts = metadata.store.get_artifacts_by_type(standard_artifacts.Examples.TYPE_NAME)
        earlier = []
        for artifact in artifacts:
            custom = artifact.custom_properties
            if (
                artifact.state == artifact.LIVE
                and custom[INPUT_BASE_KEY].string_value == input_base
                and FINGERPRINT_KEY in custom
                and custom[SPAN_KEY].int_value == span
            ):
                earlier.append((custom[FINGERPRINT_KEY].string_value, custom[VERSION_KEY].int_value))
        return earlier
