"""A model card for each pushed version: what it was trained on, how it scores, where it decides, its limits.

The Model Card Toolkit cannot be installed beside TFX 1.16, so the card is
built here from what the pipeline already records (the ingest report, the
Evaluator's metrics, the operating point fitted in training and its rates on
the test split) and rendered with Jinja2 as Markdown and HTML beside its
JSON, in the version's `assets.extra/`, so it travels with the SavedModel.
"""

import html
import json
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional

import jinja2

from deepfake_detection import contract, defaults
from deepfake_detection.evaluation import operating_point

CARD_DIR = "assets.extra"
CARD_JSON = "model_card.json"
CARD_MARKDOWN = "model_card.md"
CARD_HTML = "model_card.html"

INTENDED_USES = [
    "Flag videos and images of people for human review of possible face manipulation.",
    "Triage: `fake` means substantial evidence, `uncertain` means the model cannot tell, `real` means little "
    "evidence of manipulation, never proof of authenticity.",
]
OUT_OF_SCOPE_USES = [
    "Sole evidence for accusing a person, in moderation, journalism or court.",
    "Media without a visible face (voice clones, whole-scene generation), and non-face content.",
    "Manipulations far from those in its test split; its unseen-kind figures bound what to expect.",
]


def training_data(report_rows: Iterable[Mapping[str, Any]], fake_source: str) -> Dict[str, Any]:
    """Per split: videos (real, fake, not usable) and identities (source videos), and the datasets, from the
    ingest report."""
    splits: Dict[str, Dict[str, Any]] = {}
    datasets = set()
    for row in report_rows:
        split = splits.setdefault(row["split"], {"real": 0, "fake": 0, "not_usable": 0, "identities": set()})
        datasets.add(row.get("dataset") or "unknown")
        if row["status"] != "ok":
            split["not_usable"] += 1
            continue
        split["fake" if row["label"] else "real"] += 1
        split["identities"].add(row.get("source_id"))
    return {
        "datasets": sorted(datasets),
        "fake_source": fake_source,
        "splits": {
            name: {**counts, "identities": len(counts["identities"])} for name, counts in sorted(splits.items())
        },
    }


def known_limits(card: Mapping[str, Any]) -> List[str]:
    """Limits that follow from how this version was made, stated from its own record."""
    limits = []
    if card["training"].get("weights") in (None, "", "none"):
        limits.append("Trained from scratch (no pretrained weights): it learns less than a pretrained backbone would.")
    if card["training"].get("sample_data"):
        limits.append("Trained and tested on generated sample videos only: figures on real-world media will differ.")
    if card["training_data"]["fake_source"] == "self_blended":
        limits.append("Trained on self-blended pseudo-fakes of real faces: it has never seen a real manipulation.")
    fitted = card.get("operating_point") or {}
    if fitted.get("fake_method") != operating_point.METHOD_EMPIRICAL:
        limits.append(f"Operating point: {fitted.get('notes', 'not fitted')}.")
    if card["training"].get("locator_epochs", defaults.LOCATOR_EPOCHS) and card["training_data"]["fake_source"] != (
        contract.FAKE_SOURCE_DATASET
    ):
        limits.append(
            "The explain map shows where a face looks pasted over, learned from self-blend masks and measured on "
            "sample fakes only (docs/explanations.md): a hint where to look, not proof of what was changed."
        )
    limits.append("Only faces MTCNN finds and the person rule accepts are judged; other content is not.")
    return limits


def build_card(
    model_name: str,
    version: Optional[int],
    training: Mapping[str, Any],
    data: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    fitted_point: Optional[Mapping[str, Any]],
    test_rates: Optional[Mapping[str, Any]],
    blessed: bool,
    training_start: Optional[Mapping[str, Any]] = None,
    forgetting: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """The card's JSON: every figure a person or a program needs to judge the version. `training_start`: where
    its training started (`report.training_start`); `forgetting`: the forgetting guard's per-span AUCs against
    the baseline (`report.forgetting_guard`)."""
    card = {
        "model_name": model_name,
        "version": version,
        "blessed": blessed,
        "training": dict(training),
        "training_start": dict(training_start) if training_start else None,
        "forgetting_guard": dict(forgetting) if forgetting else None,
        "training_data": dict(data),
        "evaluation": dict(evaluation),
        "operating_point": dict(fitted_point) if fitted_point else None,
        "test_rates": dict(test_rates) if test_rates else None,
        "intended_uses": INTENDED_USES,
        "out_of_scope_uses": OUT_OF_SCOPE_USES,
    }
    card["known_limits"] = known_limits(card)
    return card


_MARKDOWN = jinja2.Template(
    """# Model card: {{ c.model_name }}{% if c.version is not none %}, version {{ c.version }}{% endif %}

{{ "Blessed by the Evaluator and pushed." if c.blessed else "Not blessed." }}

## Training
{% for key, value in c.training | dictsort %}- {{ key }}: {{ value }}
{% endfor %}
{% if c.training_start %}Started from: {{ c.training_start.summary }}.
{% endif %}
## Training data
Datasets: {{ c.training_data.datasets | join(", ") }}; fakes: {{ c.training_data.fake_source }}.

| split | real videos | fake videos | identities | not usable |
|---|---|---|---|---|
{% for name, s in c.training_data.splits | dictsort %}| {{ name }} | {{ s.real }} | {{ s.fake }} | {{ s.identities }} \
| {{ s.not_usable }} |
{% endfor %}
## Test metrics
{% for key, value in c.evaluation | dictsort %}- {{ key }}: {{ fmt(value) }}
{% endfor %}{% if c.forgetting_guard %}
Forgetting guard (AUC per span against the baseline, allowed drop {{ fmt(c.forgetting_guard.max_auc_drop) }}): \
{{ "held" if c.forgetting_guard.held else "FAILED" }}
{% for s in c.forgetting_guard.spans %}- span {{ s.span }}: {{ fmt(s.candidate_auc) }} against \
{{ fmt(s.baseline_auc) }}{% if not s.held %} (drop beyond the bound){% endif %}
{% endfor %}{% endif %}
## Operating point
{% if c.operating_point %}- fake at calibrated P(fake) >= {{ fmt(c.operating_point.fake_threshold) }}, \
real under {{ fmt(c.operating_point.real_threshold) }}, uncertain between
- fitted on {{ c.operating_point.real_videos }} real and {{ c.operating_point.fake_videos }} fake held-out videos, \
false-alarm budget {{ c.operating_point.false_alarm_budget }}, miss budget {{ c.operating_point.miss_budget }}
- {{ c.operating_point.notes }}
{% else %}No operating point was fitted: every verdict is `uncertain`.
{% endif %}{% if c.test_rates %}
On the test split (95 % intervals):
{% for key in ["fakes_caught", "reals_accused", "reals_cleared", "uncertain"] %}{% set r = c.test_rates[key] %}\
- {{ key }}: {{ r.count }} of {{ r.of }} ({{ fmt(r.ci95[0]) }}-{{ fmt(r.ci95[1]) }})
{% endfor %}- expected calibration error: {{ fmt(c.test_rates.ece_raw) }} raw, \
{{ fmt(c.test_rates.ece_calibrated) }} calibrated
{% endif %}
{% if c.edge_exports %}## Edge exports
{% if c.edge_exports.checked_on %}{% set checked = c.edge_exports.checked_on %}\
Checked on {{ checked.faces }} faces of the {{ checked.split }} split \
against the SavedModel ({{ fmt(c.edge_exports.savedmodel.latency_ms_per_face) }} ms per face, \
test AUC {{ c.edge_exports.savedmodel.test_auc }}); only those marked pushed ship (docs/edge.md).
{% endif %}{% for runtime, e in c.edge_exports.exports | dictsort %}- {{ runtime }}: {{ e.status }}\
{% if e.size_bytes %}, {{ e.size_bytes }} bytes, {{ fmt(e.latency_ms_per_face) }} ms per face, \
test AUC {{ e.test_auc }}, largest |difference| {{ e.max_abs_difference }}{% endif %} ({{ e.reason }})
{% endfor %}
{% endif %}## Intended uses
{% for use in c.intended_uses %}- {{ use }}
{% endfor %}
## Out-of-scope uses
{% for use in c.out_of_scope_uses %}- {{ use }}
{% endfor %}
## Known limits
{% for limit in c.known_limits %}- {{ limit }}
{% endfor %}"""
)


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def render_markdown(card: Mapping[str, Any]) -> str:
    return _MARKDOWN.render(c=card, fmt=_fmt)


def render_html(card: Mapping[str, Any]) -> str:
    """A standalone page: the Markdown's text, escaped, in a readable layout (no Markdown library needed)."""
    title = html.escape(f"Model card: {card['model_name']}")
    body = html.escape(render_markdown(card))
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "pre{white-space:pre-wrap;font-family:inherit;line-height:1.5}</style></head>"
        f"<body><pre>{body}</pre></body></html>"
    )


def write_card(version_folder: str, card: Mapping[str, Any]) -> List[str]:
    """Writes the card's JSON, Markdown and HTML into `<version_folder>/assets.extra/`; returns their paths."""
    folder = os.path.join(version_folder, CARD_DIR)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, text in (
        (CARD_JSON, json.dumps(card, indent=1, sort_keys=True, default=str)),
        (CARD_MARKDOWN, render_markdown(card)),
        (CARD_HTML, render_html(card)),
    ):
        path = os.path.join(folder, name)
        with open(path, "w") as f:
            f.write(text)
        paths.append(path)
    return paths


def _read(version_folder: str, name: str) -> Optional[str]:
    path = os.path.join(version_folder, CARD_DIR, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read()


def read_card(version_folder: str) -> Optional[dict]:
    text = _read(version_folder, CARD_JSON)
    return None if text is None else json.loads(text)


def read_card_html(version_folder: str) -> Optional[str]:
    return _read(version_folder, CARD_HTML)
