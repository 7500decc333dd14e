"""The lean GPT-2 decode loop against transformers' ``generate``: same tokens, same draws, same fall-backs."""

from __future__ import annotations

import pytest
import torch

from chatbot.checkpoint import load_chatbot
from chatbot.fastdecode import DecodePlan, decode_plan, fast_decode, lean_model, prefill_buckets

GREEDY = {"do_sample": False}
TOP_P = {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "top_k": 0}
TOP_K = {"do_sample": True, "temperature": 0.8, "top_k": 20, "top_p": 1.0}
TOP_K_P = {"do_sample": True, "temperature": 1.3, "top_k": 30, "top_p": 0.8}


def random_gpt2(seed: int = 0):
    """A random 2-layer GPT-2 with large initial weights: unlike a default-initialised one, it does not
    repeat one token forever, so a wrong cache or position shows in its replies."""
    from transformers import GenerationConfig

    from training.model import new_gpt2

    model = new_gpt2(vocab_size=300, context=64, seed=seed, initializer_range=0.3).eval()
    model.generation_config = GenerationConfig(eos_token_id=[298, 299], pad_token_id=0)
    return model


@pytest.fixture(scope="module")
def tiny():
    return random_gpt2()


def kwargs(model, sampling: dict, n: int = 1, new: int = 12, min_new: int = 0, stops=None) -> dict:
    """generate's keywords as chatbot.generation builds them, for a given sampler."""
    stops = list(model.generation_config.eos_token_id) if stops is None else stops
    return {"num_beams": 1, "num_return_sequences": n, "max_new_tokens": new, "min_new_tokens": min_new,
            "eos_token_id": stops, "pad_token_id": model.generation_config.pad_token_id, "use_cache": True,
            **sampling}  # fmt: skip


def prompts_of(lengths: list[int], seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(10, 300, (n,), generator=g).tolist() for n in lengths]


def with_generate(model, prompts: list[list[int]], kw: dict, seed: int = 0) -> list[list[int]]:
    """generate's rows (left-padded batch), each cut after its first stop token."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, **kw)[:, width:].tolist()
    stops = set(kw["eos_token_id"])
    return [row[: next((i + 1 for i, t in enumerate(row) if t in stops), len(row))] for row in out]


def with_fast(model, prompts: list[list[int]], kw: dict, seed: int = 0, **options) -> list[list[int]]:
    plan = decode_plan(model, kw, [len(p) for p in prompts])
    assert isinstance(plan, DecodePlan), plan
    torch.manual_seed(seed)
    return fast_decode(model, prompts, plan, **options).tokens


@pytest.mark.parametrize("lengths", [[7], [30], [5, 5]])
def test_greedy_equals_generate_on_a_random_tiny_model(tiny, lengths):
    prompts = prompts_of(lengths)
    kw = kwargs(tiny, GREEDY, new=20, stops=[])
    ours = with_fast(tiny, prompts, kw)
    assert ours == with_generate(tiny, prompts, kw)
    assert all(len(set(row)) >= 4 for row in ours)  # varied replies: a broken cache would show


@pytest.mark.parametrize("sampling", [TOP_P, TOP_K, TOP_K_P], ids=["top-p", "top-k", "top-k+top-p"])
@pytest.mark.parametrize("seed", [0, 7])
def test_seeded_sampling_equals_generate(tiny, sampling, seed):
    prompts = prompts_of([9, 9], seed=seed)
    kw = kwargs(tiny, sampling, n=3, new=16, min_new=4)
    ours = with_fast(tiny, prompts, kw, seed=seed)
    assert ours == with_generate(tiny, prompts, kw, seed=seed)
    assert len({tuple(row) for row in ours}) > 1  # the rows really are different draws
    assert all(len(row) >= 4 for row in ours)  # min_new_tokens held the stop tokens back


def test_batched_greedy_equals_one_at_a_time_as_rows_finish(tiny):
    prompts = prompts_of([3, 11, 25])
    alone = with_fast(tiny, prompts[1:2], kwargs(tiny, GREEDY, new=20))[0]
    stop = alone[2]  # a stop token that ends the second prompt's reply at its third token, not the others'
    kw = kwargs(tiny, GREEDY, new=20, stops=[stop])
    batched = with_fast(tiny, prompts, kw)
    assert batched == [with_fast(tiny, [p], kw)[0] for p in prompts]
    assert batched[1] == alone[: alone.index(stop) + 1]
    assert any(len(row) > len(batched[1]) for row in batched)  # the others went on after it left


def test_prefill_buckets_group_prompts_of_similar_length():
    assert prefill_buckets([5, 30, 7, 12, 3, 9], size=4) == [[4, 0, 2, 5], [3, 1]]
    assert prefill_buckets([8], size=4) == [[0]]


def test_padded_prefill_buckets_equal_prompts_alone(tiny):
    prompts = prompts_of([4, 21, 9, 30, 6, 13, 2], seed=5)  # two buckets, each padded to its longest prompt
    kw = kwargs(tiny, GREEDY, new=15, stops=[])
    assert with_fast(tiny, prompts, kw) == [with_fast(tiny, [p], kw)[0] for p in prompts]
    lean = lean_model(tiny)
    with torch.inference_mode():
        together, _ = lean.prefill(prompts[:3])
        alone = torch.cat([lean.prefill([p])[0] for p in prompts[:3]])
    assert torch.allclose(together, alone, atol=1e-4)
    assert not torch.equal(together[0], together[1])  # each row is its own prompt's, not a neighbour's


def test_default_model_greedy_equals_generate():
    model = load_chatbot(None).model
    prompts = prompts_of([40, 12], seed=3)
    kw = kwargs(model, GREEDY, new=30)
    assert with_fast(model, prompts[:1], kw) == with_generate(model, prompts[:1], kw)
    assert with_fast(model, prompts, kw) == [with_generate(model, [p], kw)[0] for p in prompts]


def test_log_probs_are_the_models(tiny):
    prompt = prompts_of([6])[0]
    plan = decode_plan(tiny, kwargs(tiny, GREEDY, new=5), [6])
    out = fast_decode(tiny, [prompt], plan)
    with torch.inference_mode():
        logits = tiny(torch.tensor([prompt + out.tokens[0]])).logits[0, len(prompt) - 1 : -1]
    expected = logits.log_softmax(-1).gather(1, torch.tensor(out.tokens[0])[:, None])[:, 0]
    assert torch.allclose(out.logprobs[0], expected, atol=1e-4)


def test_stop_request_and_streamed_tokens(tiny):
    seen: list[list[int]] = []
    plan = decode_plan(tiny, kwargs(tiny, GREEDY, new=20, stops=[]), [8])
    out = fast_decode(tiny, prompts_of([8]), plan, should_stop=lambda: len(seen) == 3, on_tokens=lambda t: seen.append(t.tolist()))
    assert [t for (t,) in seen] == out.tokens[0] and len(out.tokens[0]) == 3


def test_weights_changed_in_place_are_picked_up():
    model = random_gpt2(seed=1)
    prompts = prompts_of([10])
    kw = kwargs(model, GREEDY, new=10)
    before = with_fast(model, prompts, kw)
    with torch.no_grad():
        # tied to wte; a per-token scale changes which logit is largest
        model.lm_head.weight.mul_(torch.rand((model.lm_head.weight.shape[0], 1), generator=torch.Generator().manual_seed(1)) * 4)
    assert with_fast(model, prompts, kw) == with_generate(model, prompts, kw) != before
    assert not lean_model(model).stale


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"num_beams": 3, "do_sample": False}, "beam search"),
        ({"repetition_penalty": 1.3}, "RepetitionPenaltyLogitsProcessor"),
        ({"no_repeat_ngram_size": 3}, "NoRepeatNGramLogitsProcessor"),
        ({"min_p": 0.1}, "MinPLogitsWarper"),
        ({"max_new_tokens": 500}, "window"),
    ],
)
def test_what_it_cannot_reproduce_goes_to_generate(tiny, change, reason):
    plan = decode_plan(tiny, kwargs(tiny, TOP_P) | change, [10])
    assert isinstance(plan, str) and reason in plan


def test_other_models_go_to_generate():
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    neo = GPTNeoForCausalLM(GPTNeoConfig(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2,
                                         attention_types=[[["global"], 1]], max_position_embeddings=32)).eval()  # fmt: skip
    assert "not a GPT-2 model" in decode_plan(neo, kwargs(neo, GREEDY, stops=[0]), [4])
    eager = random_gpt2()
    eager.config._attn_implementation = "eager"
    assert "attention implementation" in decode_plan(eager, kwargs(eager, GREEDY), [4])


def test_an_output_layer_with_a_bias_is_served_exactly():
    model = random_gpt2(seed=2)
    head = torch.nn.Linear(32, 300, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.copy_(torch.linspace(-3, 3, 300))
    model.lm_head = head
    prompts, kw = prompts_of([8]), kwargs(model, TOP_K, n=2, new=10)
    assert with_fast(model, prompts, kw, seed=4) == with_generate(model, prompts, kw, seed=4)


def test_hooks_and_an_own_generate_go_to_generate():
    model = random_gpt2()
    hook = model.transformer.h[0].register_forward_hook(lambda *args: None)
    assert "forward hooks" in decode_plan(model, kwargs(model, GREEDY), [4])
    hook.remove()
    model.generate = lambda **kw: None  # a wrapper around generate: it must keep being called
    assert "its own generate" in decode_plan(model, kwargs(model, GREEDY), [4])


def test_reply_path_and_stream_name_the_fast_path_and_stop_on_request(tiny_chatbot):
    import threading

    from chatbot.generation import GenerationStream, generate_candidates, stop_token_ids
    from chatbot.sampling import PRESETS

    lm = load_chatbot(tiny_chatbot)
    stops = stop_token_ids(lm.tokenizer, dialogue=True)
    prompt = lm.tokenizer.encode("hi, how are you?")
    settings = PRESETS["top-p"].replace(max_new_tokens=8, seed=1)
    result = generate_candidates(lm.model, lm.tokenizer, [prompt], settings, stop_ids=stops, pad_id=lm.ids.pad)
    assert [c.path for c in result.candidates[0]] == ["fast"] * settings.num_candidates
    assert result.candidates[0][0].to_dict()["path"] == "fast"

    cancel = threading.Event()
    cancel.set()  # Stop pressed before the first token: the loop checks it after each token
    stream_settings = settings.replace(num_candidates=1, max_new_tokens=30, min_new_tokens=30)
    stream = GenerationStream(lm.model, lm.tokenizer, prompt, stream_settings, stop_ids=stops, pad_id=lm.ids.pad,
                              cancel_event=cancel)  # fmt: skip
    list(stream)
    assert stream.path == "fast" and stream.result.path == "fast"
    assert stream.cancelled and not stream.result.finished and stream.result.n_tokens == 1

    whole = GenerationStream(lm.model, lm.tokenizer, prompt, stream_settings, stop_ids=stops, pad_id=lm.ids.pad)
    text = "".join(whole)
    assert whole.result.n_tokens == 30 and text.strip() == whole.result.text  # every token streamed, then ended


def test_a_replys_timings_and_speed_line_name_the_decoder(tiny_chatbot):
    from chatbot.app.render import reply_stats
    from chatbot.conversation import Chatbot
    from chatbot.sampling import PRESETS

    bot = Chatbot.load(tiny_chatbot)
    reply = bot.generate_reply(["hi, how are you?"], settings=PRESETS["top-p"].replace(max_new_tokens=6, seed=1))
    assert reply.to_dict()["timings"]["path"] == "fast"
    assert "decoder: fast)" in reply_stats(reply)
    beams = bot.generate_reply(["hi, how are you?"], settings=PRESETS["beam-5"].replace(max_new_tokens=6))
    assert beams.to_dict()["timings"]["path"] == "generate" and "decoder: generate)" in reply_stats(beams)
