"""The sampling panel, built from the field metadata (:data:`chatbot.sampling.FIELDS`): a preset dropdown,
a "differs from preset" line, one control per field in an accordion per group (in the order samplers
run), and "Save as preset". Used by the Chat tab and by both A/B panels.

Handlers never see controls by position: a panel's values reach them as one dict,
``{"preset": name, field: value, ...}`` (:meth:`SamplingPanel.values`); fields missing from it come
from the preset. In the page, gradio passes every control by keyword (``inputs_kwargs``), named
``<prefix><field>``, so the API takes them by name too.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from chatbot.app.access import disk_changes_allowed, refused
from chatbot.arena.leaderboard import preset_names, presets_json, short_name
from chatbot.errors import ChatbotError
from chatbot.sampling import (
    FIELDS,
    GROUPS,
    NO_NEUTRAL,
    PRESET_DESCRIPTIONS,
    FieldSpec,
    SamplingSettings,
    load_presets,
    save_preset,
)
from chatbot.sampling.panel import control_value, differs_line, settings_from_values, visible

if TYPE_CHECKING:
    from chatbot.app.chat_app import ChatApp

logger = logging.getLogger(__name__)

PRESET = "preset"  # the key of a panel's preset in its values (no sampling field has this name)
PRESETS_FILE = "presets.json"  # presets saved from the app, in the data folder
# the fields whose value shows or hides others: the strategy and every switch (dynamic_temperature, dry_multiplier, ...)
SWITCHES = tuple(dict.fromkeys(["strategy", *(spec.enabled_by for spec in FIELDS if spec.enabled_by)]))
SAVE_REFUSED = refused("Saving presets")


# -- values: a panel's dict <-> settings (pure, no widgets) -----------------------------------------


def settings_from_panel(presets: Mapping[str, SamplingSettings], values: Mapping[str, Any]) -> SamplingSettings:
    """Validated settings from a panel: its preset, then each field's value (cast by type), then what the
    strategy implies (greedy: one reply; beam: at most num_beams)."""
    name = values.get(PRESET)
    if name not in presets:
        raise ChatbotError(f"unknown preset {name!r}; pick one from the preset list (reload the page for new ones)")
    return settings_from_values(presets[name], {k: v for k, v in values.items() if k != PRESET})


def panel_values(settings: SamplingSettings) -> dict[str, Any]:
    """Every field's value as its control shows it (word lists and the seed as text)."""
    return {spec.name: control_value(spec, getattr(settings, spec.name)) for spec in FIELDS}


def open_groups(settings: SamplingSettings) -> set[str]:
    """The groups a panel opens for ``settings``: those holding a field that is part of its identity
    (the samplers the setting uses); the others start closed, so 40 controls fit on one screen."""
    used = settings.identity_fields()
    return {spec.group for spec in FIELDS if spec.name in used}


def shown_fields(settings: SamplingSettings) -> set[str]:
    """The fields a panel shows: the strategy picker, and each field that can change a reply under the
    chosen strategy and switches (``enabled_by``: dry_base shows once dry_multiplier is on)."""
    return {spec.name for spec in FIELDS if visible(spec, settings.strategy) and settings.is_active(spec)}


def shown_groups(settings: SamplingSettings) -> set[str]:
    """The groups with at least one shown field (the others are hidden)."""
    shown = shown_fields(settings)
    return {spec.group for spec in FIELDS if spec.name in shown}


def slider_range(spec: FieldSpec, value=None) -> tuple[float, float] | None:
    """A slider's (min, max): the UI range where the field has one, else its valid range; widened to hold
    ``value`` (a preset may go beyond the UI range). None: no finite range, so no slider."""
    low = spec.ui_low if spec.ui_low is not None else spec.low
    high = spec.ui_high if spec.ui_high is not None else spec.high
    if low is None or high is None:
        return None
    if spec.low_open and spec.ui_low is None:
        low += spec.step or 0.01  # the bound itself is invalid (temperature > 0)
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = min(low, value), max(high, value)
    return low, high


def control_help(spec: FieldSpec) -> str:
    """A control's help line: the field's help, and the value that turns it off."""
    # gradio renders help as Markdown, where '*' is emphasis: write the formulas' powers and products as ^ and ×
    text = spec.help.replace("**", "^").replace(" * ", " × ")
    if spec.numeric and spec.neutral not in (NO_NEUTRAL, None):
        return f"{text}; {spec.neutral:g} = off"
    return text


def differs_text(presets: Mapping[str, SamplingSettings], values: Mapping[str, Any]) -> str:
    """The line above a panel: the preset, and what the controls changed from it (or why they are invalid)."""
    try:
        settings = settings_from_panel(presets, values)
    except ChatbotError as exc:
        return f"⚠️ {exc}"
    return "**Preset** " + differs_line(settings, values[PRESET], presets)


def preset_info(presets: Mapping[str, SamplingSettings], name: str) -> str:
    return PRESET_DESCRIPTIONS.get(name) or ("your preset" if name in presets else "")


# -- presets saved from the app ----------------------------------------------------------------------


def presets_path(app: ChatApp) -> Path:
    return Path(app.config.data_dir) / PRESETS_FILE


def reload_presets(app: ChatApp) -> list[str]:
    """Add the presets saved in the data folder (by any tab, or an earlier run) to the app's; their names.

    A damaged file is logged and skipped: the page still opens with the presets it has.
    """
    path = presets_path(app)
    if path.is_file():
        try:
            app.presets.update(load_presets(path))
        except ChatbotError as exc:
            logger.warning("saved presets not loaded: %s", exc)
    return list(app.presets)


def save_panel_preset(app: ChatApp, name: str | None, values: Mapping[str, Any]) -> tuple[str, SamplingSettings]:
    """Save a panel's settings as preset ``name`` in the data folder; returns (name, settings).

    Refused (a ChatbotError naming the fix) when the app is reachable beyond this machine without a login,
    the same gate as clearing votes.
    """
    if not disk_changes_allowed(app.config):
        raise ChatbotError(SAVE_REFUSED)
    name = (name or "").strip()
    settings = settings_from_panel(app.presets, values)
    path = presets_path(app)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_preset(name, settings, path)  # refuses an empty or a built-in name
    app.presets[name] = settings
    logger.info("saved preset %r to %s", name, path)
    return name, settings


# -- the widgets ------------------------------------------------------------------------------------


@dataclass
class SamplingPanel:
    """One panel's widgets; ``prefix`` names its controls in a handler's keywords ("a_" -> "a_min_p")."""

    prefix: str
    preset: gr.Dropdown
    controls: dict[str, gr.components.Component]  # field name -> control, every field
    groups: dict[str, gr.Accordion]  # group -> its accordion
    differs: gr.Markdown

    def inputs(self) -> dict[str, gr.components.Component]:
        """The panel's widgets by keyword, for gradio's ``inputs_kwargs``."""
        return {self.prefix + PRESET: self.preset} | {self.prefix + n: c for n, c in self.controls.items()}

    def values(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """This panel's values out of a handler's keywords: ``{"preset": ..., field: value, ...}``."""
        return {key[len(self.prefix) :]: value for key, value in kwargs.items() if key.startswith(self.prefix)}


def _control(spec: FieldSpec, value, shown: bool):
    """The widget for one field, chosen by its kind; label, help and range from the metadata."""
    common = {"label": spec.label, "info": control_help(spec), "visible": shown}
    if spec.choices:
        return gr.Radio(list(spec.choices), value=value, **common)
    if spec.kind == "bool":
        return gr.Checkbox(value=value, **common)
    if spec.kind == "words" or spec.optional:
        return gr.Textbox(value=control_value(spec, value), max_lines=1, **common)
    if not _is_slider(spec):
        return gr.Number(value=value, precision=0 if spec.kind == "int" else None, **common)
    # no reset button: the preset menu resets, and a narrow A/B column needs the room for the help line
    return gr.Slider(*slider_range(spec, value), value=value, step=spec.step, buttons=[], **common)


def _is_slider(spec: FieldSpec) -> bool:
    # a number with a finite range; the optional seed is a text box (blank = random)
    return spec.numeric and not spec.optional and slider_range(spec) is not None


def _control_update(spec: FieldSpec, value):
    """A control's new value for a picked preset (a slider's range widened if the value needs it)."""
    shown = control_value(spec, value)
    if _is_slider(spec):
        low, high = slider_range(spec, value)
        return gr.update(value=shown, minimum=low, maximum=high)
    return gr.update(value=shown)


def panel_handler(fn: Callable, *panels: SamplingPanel) -> Callable:
    """``fn(*inputs, values_of_panel_1, ...)`` as a gradio handler that takes each panel's controls by
    keyword (``inputs_kwargs``) and hands ``fn`` one dict per panel; errors become one-line toasts."""
    from chatbot.app.errors import ui_errors

    fn = ui_errors(fn)
    split = len(panels)

    def call_args(args, kwargs):
        return (*args, *(panel.values(kwargs) for panel in panels))

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def handler(*args, **kwargs):
            yield from fn(*call_args(args, kwargs))
    else:

        @functools.wraps(fn)
        def handler(*args, **kwargs):
            return fn(*call_args(args, kwargs))

    # gradio names API parameters from the signature: fn's own leading parameters, then the keywords
    params = list(inspect.signature(fn).parameters.values())[:-split]
    handler.__signature__ = inspect.Signature([*params, inspect.Parameter("controls", inspect.Parameter.VAR_KEYWORD)])
    return handler


def sampling_panel(app: ChatApp, default: str, title: str, prefix: str = "") -> SamplingPanel:
    """A sampling panel showing preset ``default``, wired: picking a preset fills the controls, the strategy
    hides the fields it does not use, every change updates the "differs" line, and "Save as preset"
    writes the panel to the data folder. Place it inside a column; returns its widgets."""
    settings = app.presets[default]
    differs = gr.Markdown("**Preset** " + differs_line(settings, default, app.presets), elem_classes="differs")
    preset = gr.Dropdown(
        choices=list(app.presets), value=default, label=f"{title} preset", info=preset_info(app.presets, default)
    )
    controls, groups = {}, {}
    opened, shown, fields = open_groups(settings), shown_groups(settings), shown_fields(settings)
    for group, label in GROUPS.items():
        specs = [spec for spec in FIELDS if spec.group == group]
        with gr.Accordion(label, open=group in opened, visible=group in shown) as groups[group]:
            for spec in specs:
                controls[spec.name] = _control(spec, getattr(settings, spec.name), spec.name in fields)
    with gr.Row(equal_height=True):
        save_name = gr.Textbox(placeholder="new preset name", show_label=False, max_lines=1, scale=3, min_width=80)
        save = gr.Button("Save as preset", size="sm", scale=2, min_width=90)
    panel = SamplingPanel(prefix, preset, controls, groups, differs)
    _wire(app, panel, save_name, save)
    return panel


def preset_updates(app: ChatApp, panel: SamplingPanel, name: str) -> dict:
    """A preset was picked: every control shows its value, its groups open, its strategy's fields show."""
    settings = app.presets[name]
    updates = visibility_updates(panel, settings)
    for spec in FIELDS:  # each control's update: its visibility and the preset's value
        updates[panel.controls[spec.name]].update(_control_update(spec, getattr(settings, spec.name)))
    opened = open_groups(settings)
    for group, accordion in panel.groups.items():
        updates[accordion]["open"] = group in opened
    return updates | {panel.preset: gr.update(info=preset_info(app.presets, name))}


def visibility_updates(panel: SamplingPanel, settings: SamplingSettings) -> dict:
    """Show the controls and groups ``settings`` uses (its strategy and switches), hide the others."""
    fields, groups = shown_fields(settings), shown_groups(settings)
    updates = {panel.controls[s.name]: gr.update(visible=s.name in fields) for s in FIELDS}
    return updates | {acc: gr.update(visible=g in groups) for g, acc in panel.groups.items()}


def _wire(app: ChatApp, panel: SamplingPanel, save_name: gr.Textbox, save: gr.Button) -> None:
    """The panel's own events; none is part of the app's API."""
    from chatbot.app.errors import ui_errors

    quiet = {"api_visibility": "private", "show_progress": "hidden", "queue": False}
    switches = [panel.controls[name] for name in SWITCHES]

    def pick_preset(name: str) -> dict:
        return preset_updates(app, panel, name)

    def show_used(values: dict):
        try:
            return visibility_updates(panel, settings_from_panel(app.presets, values))
        except ChatbotError:  # a value being edited is invalid: the differs line says so, the panel stays
            return gr.skip()

    def refresh_differs(values: dict) -> str:
        return differs_text(app.presets, values)

    def save_preset_clicked(name: str, values: dict):
        saved, _ = save_panel_preset(app, name, values)
        gr.Info(f"Saved preset {saved!r} to {presets_path(app)}; other tabs list it after a page reload.")
        return gr.update(choices=list(app.presets), value=saved, info=preset_info(app.presets, saved)), ""

    def reload_choices():
        return gr.update(choices=reload_presets(app))

    controls, groups = list(panel.controls.values()), list(panel.groups.values())
    panel.preset.input(ui_errors(pick_preset), [panel.preset], [panel.preset, *controls, *groups], **quiet)
    # .input, not .change: show_used updates the switches themselves, and a radio whose update arrives
    # fires .change again, so a .change listener re-ran itself without end. A preset pick sets visibility itself.
    gr.on(
        [switch.input for switch in switches], panel_handler(show_used, panel), inputs_kwargs=panel.inputs(),
        outputs=[*controls, *groups], trigger_mode="always_last", **quiet,
    )  # fmt: skip
    gr.on(
        [panel.preset.change, *(control.change for control in controls)], panel_handler(refresh_differs, panel),
        inputs_kwargs=panel.inputs(), outputs=[panel.differs], trigger_mode="always_last", **quiet,
    )  # fmt: skip
    gr.on(
        [save.click, save_name.submit], panel_handler(save_preset_clicked, panel), [save_name],
        [panel.preset, save_name], inputs_kwargs=panel.inputs(), api_visibility="private",
    )  # fmt: skip
    gr.on(None, ui_errors(reload_choices), None, [panel.preset], **quiet)  # on page load: presets saved elsewhere


def parse_seed(value) -> int | None:
    """A seed box's value, read as the seed field reads it: blank, None, "none" or "random" is no seed; "42" and
    42.0 are 42.

    Anything else (a fraction, "1e30", "inf", "nan", a negative number, other text) is one line naming the range.
    """
    from chatbot.sampling import FIELD, SEED_MAX

    spec = FIELD["seed"]
    try:
        seed = spec.cast(value)
        spec.check(seed)
    except ChatbotError:
        text = str(value).strip()
        raise ChatbotError(
            f"seed must be a whole number from 0 to {SEED_MAX}, or blank for a random one (got {text})"
        ) from None
    return seed


def ranking_identity(settings: SamplingSettings) -> str:
    """The identity a vote is ranked under: the seed is the draw, not the setting, so it is left out."""
    return settings.replace(seed=None).identity


def setting_label(settings: SamplingSettings, presets: dict[str, SamplingSettings]) -> str:
    """The name the leaderboard uses: the preset's ('top-p'), or the nearest preset and what differs."""
    return short_name(ranking_identity(settings), preset_names(presets), presets_json(presets))
