"""The sampling panel (a preset dropdown and one control per setting) and the conversion between its
widgets' values and :class:`~chatbot.sampling.SamplingSettings`; also how a setting is named and ranked.
"""

from __future__ import annotations

import gradio as gr

from chatbot.arena.leaderboard import preset_names, presets_json, short_name
from chatbot.errors import ChatbotError
from chatbot.sampling import DEFAULT_PRESET, STRATEGIES, SamplingSettings

# the sampling fields shown as controls, in panel order; the rest come from the chosen preset
CONTROL_FIELDS = (
    "strategy",
    "temperature",
    "top_p",
    "top_k",
    "num_beams",
    "length_penalty",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "max_new_tokens",
    "num_candidates",
    "seed",
)


def sampling_panel(presets: dict[str, SamplingSettings], default: str, title: str):
    """A preset dropdown and one control per CONTROL_FIELDS entry; returns (dropdown, controls)."""
    s = presets[default]
    preset = gr.Dropdown(choices=list(presets), value=default, label=f"{title} preset")
    strategy = gr.Radio(list(STRATEGIES), value=s.strategy, label="Strategy")
    temperature = gr.Slider(0.05, 2.0, value=s.temperature, step=0.05, label="Temperature", info="sampling only")
    top_p = gr.Slider(0.05, 1.0, value=s.top_p, step=0.01, label="Top-p (nucleus)", info="1 = off")
    top_k = gr.Slider(0, 200, value=s.top_k, step=1, label="Top-k", info="0 = off")
    max_new_tokens = gr.Slider(1, 100, value=s.max_new_tokens, step=1, label="Max new tokens")
    num_candidates = gr.Slider(
        1, 16, value=s.num_candidates, step=1, label="Candidates", info="filtered and ranked; 1 streams word by word"
    )
    with gr.Accordion("More settings", open=False):
        num_beams = gr.Slider(1, 10, value=s.num_beams, step=1, label="Beams", info="beam search only")
        length_penalty = gr.Slider(-2.0, 3.0, value=s.length_penalty, step=0.1, label="Length penalty", info="beam")
        repetition_penalty = gr.Slider(0.5, 2.0, value=s.repetition_penalty, step=0.05, label="Repetition penalty")
        no_repeat = gr.Slider(0, 6, value=s.no_repeat_ngram_size, step=1, label="No-repeat n-gram size", info="0 = off")
        seed = gr.Textbox(value="" if s.seed is None else str(s.seed), label="Seed", info="blank = random")
    controls = {
        "strategy": strategy,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "num_beams": num_beams,
        "length_penalty": length_penalty,
        "repetition_penalty": repetition_penalty,
        "no_repeat_ngram_size": no_repeat,
        "max_new_tokens": max_new_tokens,
        "num_candidates": num_candidates,
        "seed": seed,
    }
    return preset, [controls[name] for name in CONTROL_FIELDS]


def parse_seed(value) -> int | None:
    """A seed box's value: blank or None is no seed; "42" and 42.0 are 42.

    Anything else (a fraction, "1e30", "inf", "nan", a negative number, text) is one line naming the range.
    """
    from chatbot.sampling import SEED_MAX

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    try:
        seed = int(text)  # exact for every integer; float() would round large seeds
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            number = float("nan")
        # 42.0 from a number box is 42; inf, nan and fractions are no seed
        seed = int(number) if number.is_integer() else None
    if seed is None or not 0 <= seed <= SEED_MAX:
        raise ChatbotError(f"seed must be a whole number from 0 to {SEED_MAX}, or blank for a random one (got {text})")
    return seed


def settings_from_controls(presets: dict[str, SamplingSettings], preset: str, *values) -> SamplingSettings:
    """Validated settings from a panel: the preset, overridden by every control (CONTROL_FIELDS order)."""
    base = presets.get(preset) or presets[DEFAULT_PRESET]
    changes = dict(zip(CONTROL_FIELDS, values, strict=True))
    changes["seed"] = parse_seed(changes["seed"])
    for name in ("top_k", "num_beams", "no_repeat_ngram_size", "max_new_tokens", "num_candidates"):
        changes[name] = int(changes[name])
    for name in ("temperature", "top_p", "length_penalty", "repetition_penalty"):
        changes[name] = float(changes[name])
    # what the strategy implies, as the CLI does: greedy gives one reply, beams bound the candidates
    if changes["strategy"] == "greedy":
        changes["num_candidates"] = 1
    elif changes["strategy"] == "beam":
        changes["num_candidates"] = min(changes["num_candidates"], changes["num_beams"])
    changes["min_new_tokens"] = min(base.min_new_tokens, changes["max_new_tokens"])
    return base.replace(**changes)


def controls_from_settings(settings: SamplingSettings) -> list:
    """Control values for a panel showing ``settings`` (CONTROL_FIELDS order)."""
    return [getattr(settings, name) for name in CONTROL_FIELDS]


def preset_controls(presets: dict[str, SamplingSettings], preset: str) -> list:
    """What a panel's controls show when ``preset`` is picked; the seed box is text (blank = random)."""
    values = controls_from_settings(presets[preset])
    values[-1] = "" if values[-1] is None else str(values[-1])
    return values


def ranking_identity(settings: SamplingSettings) -> str:
    """The identity a vote is ranked under: the seed is the draw, not the setting, so it is left out."""
    return settings.replace(seed=None).identity


def setting_label(settings: SamplingSettings, presets: dict[str, SamplingSettings]) -> str:
    """The name the leaderboard uses: the preset's ('top-p'), or the nearest preset and what differs."""
    return short_name(ranking_identity(settings), preset_names(presets), presets_json(presets))
