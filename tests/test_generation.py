"""Generation on the tiny model: batched candidates, exact scores, left padding, seeds, streaming, cancel."""

from __future__ import annotations

import threading

import pytest
import torch

from chatbot.checkpoint import load_chatbot
from chatbot.format import build_inputs, encode_text
from chatbot.generation import (
    GenerationStream,
    _CancelFlag,
    generate_candidates,
    left_pad,
    reply_length,
    stop_token_ids,
)
from chatbot.sampling import PRESETS


@pytest.fixture(scope="module")
def lm(tiny_chatbot):
    return load_chatbot(tiny_chatbot)


def prompt_for(lm, *utterances):
    history = [encode_text(lm.tokenizer, u) for u in utterances]
    return build_inputs(lm.ids, history, None, lm.format, reserve=32).input_ids


def run(lm, prompts, settings):
    stops = stop_token_ids(lm.tokenizer, dialogue=True)
    return generate_candidates(lm.model, lm.tokenizer, prompts, settings, stop_ids=stops, pad_id=lm.ids.pad)


def model_logprob(lm, prompt, candidate):
    """Sum of log p(token) of the candidate's scored tokens, from one plain forward pass."""
    reply = list(candidate.token_ids)
    if candidate.stop_id is not None:
        reply.append(candidate.stop_id)
    ids = torch.tensor([prompt + reply])
    with torch.no_grad():
        logprobs = torch.log_softmax(lm.model(ids).logits[0].float(), dim=-1)
    return sum(float(logprobs[len(prompt) - 1 + i, t]) for i, t in enumerate(reply))


def test_stop_tokens_cover_end_of_turn_and_speakers(lm):
    ids = lm.ids
    assert stop_token_ids(lm.tokenizer, dialogue=True) == sorted({ids.eot, ids.eos, ids.user, ids.bot, ids.persona})
    assert stop_token_ids(lm.tokenizer, dialogue=False) == [ids.eos]


def test_helpers():
    input_ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert input_ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert reply_length([4, 5, 9, 0, 0], {9}) == (3, True)
    assert reply_length([4, 5], {9}) == (2, False)


def test_n_candidates_per_prompt_in_one_call(lm, monkeypatch):
    calls = []
    original = lm.model.generate
    monkeypatch.setattr(lm.model, "generate", lambda **kw: calls.append(kw) or original(**kw))
    prompts = [prompt_for(lm, "hi, how are you?"), prompt_for(lm, "where are you from?", "a town.", "nice!")]
    result = run(lm, prompts, PRESETS["top-p"].replace(max_new_tokens=6, seed=0))
    assert len(calls) == 1 and calls[0]["num_return_sequences"] == 4
    assert [len(c) for c in result.candidates] == [4, 4]
    assert result.new_tokens == sum(c.n_tokens for cs in result.candidates for c in cs)


@pytest.mark.parametrize("preset", ["greedy", "top-p", "diverse", "beam-5"])
def test_scores_are_the_models_length_normalised_logprob(lm, preset):
    prompt = prompt_for(lm, "hi, how are you?")
    result = run(lm, [prompt], PRESETS[preset].replace(max_new_tokens=6, seed=1))
    for candidate in result.candidates[0]:
        expected = model_logprob(lm, prompt, candidate)
        assert candidate.logprob == pytest.approx(expected, abs=1e-3)
        assert candidate.score == pytest.approx(expected / candidate.n_tokens, abs=1e-3)


def test_left_padded_batch_gives_the_same_greedy_replies(lm):
    short, long = prompt_for(lm, "hi"), prompt_for(lm, "what do you do for fun?", "i hike.", "where do you hike?")
    settings = PRESETS["greedy"].replace(max_new_tokens=8)
    together = run(lm, [short, long], settings).candidates
    alone = [run(lm, [p], settings).candidates[0] for p in (short, long)]
    for batched, single in zip(together, alone, strict=True):
        assert batched[0].token_ids == single[0].token_ids
        assert batched[0].score == pytest.approx(single[0].score, abs=1e-4)


def test_same_seed_same_candidates(lm):
    prompt = prompt_for(lm, "do you have any pets?")
    settings = PRESETS["diverse"].replace(max_new_tokens=8, seed=42)
    first = [c.token_ids for c in run(lm, [prompt], settings).candidates[0]]
    again = [c.token_ids for c in run(lm, [prompt], settings).candidates[0]]
    other = [c.token_ids for c in run(lm, [prompt], settings.replace(seed=43)).candidates[0]]
    assert first == again
    assert first != other


def make_stream(lm, prompt, settings, cancel=None):
    stops = stop_token_ids(lm.tokenizer, dialogue=True)
    return GenerationStream(
        lm.model, lm.tokenizer, prompt, settings, stop_ids=stops, pad_id=lm.ids.pad, cancel_event=cancel
    )


def test_stream_yields_pieces_that_make_the_reply(lm):
    prompt = prompt_for(lm, "hi, how are you?")
    settings = PRESETS["top-p-stream"].replace(max_new_tokens=20, min_new_tokens=20, seed=5)
    stream = make_stream(lm, prompt, settings)
    pieces = list(stream)
    assert len(pieces) > 1  # incremental, not one block at the end
    assert "".join(pieces).strip() == stream.result.text
    assert stream.result.n_tokens == 20
    # the streamed reply is the batched path's reply for the same seed
    batched = run(lm, [prompt], settings).candidates[0][0]
    assert batched.token_ids == stream.result.token_ids


def test_cancel_stops_within_one_token(lm):
    prompt = prompt_for(lm, "hi, how are you?")
    settings = PRESETS["top-p-stream"].replace(max_new_tokens=30, min_new_tokens=30, seed=5)
    cancel = threading.Event()
    calls = []

    def press_stop_during_the_fifth_forward(module, args, output):
        calls.append(1)
        if len(calls) == 5:
            cancel.set()

    hook = lm.model.register_forward_hook(press_stop_during_the_fifth_forward)
    try:
        stream = make_stream(lm, prompt, settings, cancel=cancel)
        list(stream)
    finally:
        hook.remove()
    # forward 5 produced token 5; the stopping check right after it ends generation
    assert stream.result.n_tokens == 5
    assert len(calls) == 5
    assert stream.cancelled and not stream.result.finished


def test_cancel_before_the_first_token(lm):
    cancel = threading.Event()
    cancel.set()
    stream = make_stream(lm, prompt_for(lm, "hi"), PRESETS["top-p-stream"].replace(max_new_tokens=30), cancel)
    assert list(stream) == []
    assert stream.result.n_tokens <= 1


def test_closing_the_iterator_stops_generation(lm):
    settings = PRESETS["top-p-stream"].replace(max_new_tokens=60, min_new_tokens=60, seed=2)
    stream = make_stream(lm, prompt_for(lm, "hi"), settings)
    pieces = iter(stream)
    next(pieces)
    pieces.close()  # a UI that stops listening must not leave a thread generating
    assert stream.cancelled and stream.result.n_tokens < 60


def test_cancel_flag_is_per_batch():
    event = threading.Event()
    flag = _CancelFlag(event)
    assert flag(torch.zeros((3, 4), dtype=torch.long), None).tolist() == [False] * 3
    event.set()
    assert flag(torch.zeros((3, 4), dtype=torch.long), None).tolist() == [True] * 3


def test_streaming_beam_search_is_refused(lm):
    with pytest.raises(ValueError, match="beam"):
        make_stream(lm, prompt_for(lm, "hi"), PRESETS["beam-5"])


def test_scores_include_the_end_of_turn_token(tiny_chatbot):
    eager = load_chatbot(tiny_chatbot)  # a private copy: its weights are changed below
    head = eager.model.lm_head
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[eager.ids.eot] = 4.0  # end-of-turn becomes likely, so some replies end early
    eager.model.lm_head = biased
    prompt = prompt_for(eager, "hi, how are you?")
    result = run(eager, [prompt], PRESETS["diverse"].replace(max_new_tokens=12, seed=3))
    finished = [c for c in result.candidates[0] if c.finished]
    assert finished, "the biased model should end some replies"
    for candidate in finished:
        assert candidate.stop_id == eager.ids.eot
        assert candidate.n_tokens == len(candidate.token_ids) + 1
        assert candidate.logprob == pytest.approx(model_logprob(eager, prompt, candidate), abs=1e-3)


def test_the_false_padding_warning_is_dropped_only_inside_our_generate_calls():
    """generate drops an all-ones mask, then feeds finished rows the pad token: GPT2Model's warning is noise there."""
    import logging

    from chatbot.generation import _finished_rows_padding_quiet

    source = logging.getLogger("transformers.modeling_utils")
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler, level = Collect(), source.level
    source.addHandler(handler)
    source.setLevel(logging.WARNING)  # other tests may have turned transformers' verbosity down
    warning = "We strongly recommend passing in an `attention_mask` since your input_ids may be padded."
    try:
        with _finished_rows_padding_quiet():
            source.warning(warning)
            source.warning("another warning")
            other_thread = threading.Thread(target=source.warning, args=(warning,))  # not inside our call
            other_thread.start()
            other_thread.join()
        source.warning(warning)
    finally:
        source.removeHandler(handler)
        source.setLevel(level)
    assert seen == ["another warning", warning, warning]
