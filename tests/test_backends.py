"""The openai backend without a server: capability mapping on recorded request bodies, errors, n, stops.

A fake server (``httpx.MockTransport``) records every request body and answers with canned JSON,
so each test states exactly what goes over the wire for each server kind.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from chatbot.backends.base import UNRANKED_NOTE, BackendError
from chatbot.backends.capabilities import SERVER_KINDS, UnsupportedSettingError, plan_request
from chatbot.backends.http import HttpClient, HttpSettings
from chatbot.backends.openai import OpenAIBackend, connect, detect_kind, remote_model
from chatbot.backends.prompts import ZWSP, CharTokenizer, chat_messages, cut_at_stop, held_back, neutralise
from chatbot.format import DialogueFormat, encode_text
from chatbot.replies import Prompt
from chatbot.sampling import NEUTRAL, SamplingSettings

TOP_P = SamplingSettings(strategy="sample", temperature=0.7, top_p=0.9, max_new_tokens=40, num_candidates=1)


class FakeServer:
    """Records request bodies; answers completions with ``texts`` in turn (one per choice)."""

    def __init__(self, models=None, texts=("hello there",), logprobs=None, status=200, raw=None, finish="stop"):
        self.models = models if models is not None else [{"id": "m", "object": "model", "owned_by": "vllm"}]
        self.texts, self.logprobs, self.status, self.raw, self.finish = list(texts), logprobs, status, raw, finish
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.times: list[tuple[float, float]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.paths.append(path)
        if path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": self.models})
        if not path.endswith("completions"):
            return httpx.Response(404, json={"detail": "Not Found"})
        start = time.perf_counter()
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.raw is not None:
            return httpx.Response(self.status, content=self.raw)
        if self.status != 200:
            return httpx.Response(self.status, json={"detail": "Unexpected fields in the request: {'top_k'}"})
        time.sleep(0.05)  # long enough for parallel requests to overlap
        self.times.append((start, time.perf_counter()))
        choices = []
        for i in range(body.get("n", 1)):
            text = self.texts[(len(self.bodies) - 1 + i) % len(self.texts)]
            choice = {"index": i, "text": text, "finish_reason": self.finish}
            if self.logprobs is not None:
                choice["logprobs"] = {"token_logprobs": self.logprobs[i % len(self.logprobs)]}
            choices.append(choice)
        return httpx.Response(200, json={"choices": choices, "usage": {"completion_tokens": 5}})


def backend_for(server: FakeServer, kind: str, model, **kwargs) -> OpenAIBackend:
    client = HttpClient("http://fake/v1", transport=httpx.MockTransport(server))
    return OpenAIBackend(client, SERVER_KINDS[kind], model, **kwargs)


@pytest.fixture(scope="module")
def dialogue_model(tiny_chatbot):
    return remote_model(Path(tiny_chatbot), {"id": tiny_chatbot})


def dialogue_prompt(model, history=("hi, how are you?",)) -> Prompt:
    from chatbot.format import build_inputs

    encoded = [encode_text(model.tokenizer, u) for u in history]
    built = build_inputs(model.ids, encoded, None, model.format, reserve=40)
    return Prompt(built.input_ids, built.kept_utterances, built.truncated)


# -- the capability table: recorded request bodies per server kind -------------------------------------


def test_vllm_body_sends_token_ids_n_and_logprobs(dialogue_model):
    server = FakeServer(texts=("a", "b", "c"))
    backend = backend_for(server, "vllm", dialogue_model)
    prompt = dialogue_prompt(dialogue_model)
    backend.generate([prompt], TOP_P.replace(num_candidates=3, seed=5, top_k=40, repetition_penalty=1.2))
    assert server.bodies == [
        {
            "model": dialogue_model.path,
            "prompt": prompt.input_ids,
            "temperature": 0.7,
            "top_p": 0.9,
            "max_tokens": 40,
            "top_k": 40,
            "repetition_penalty": 1.2,
            "min_tokens": 1,  # vLLM has it, so our min_new_tokens=1 is sent
            "seed": 5,
            "n": 3,
            "logprobs": 1,
            "stop": ["<|eot|>", "<|user|>", "<|bot|>", "<|persona|>"],
        }
    ]


def test_transformers_serve_body_puts_samplers_in_generation_config(dialogue_model):
    server = FakeServer()
    backend = backend_for(server, "transformers-serve", dialogue_model)
    backend.generate([dialogue_prompt(dialogue_model)], TOP_P.replace(seed=3, no_repeat_ngram_size=3))
    (body,) = server.bodies
    ids = dialogue_model.ids
    assert json.loads(body.pop("generation_config")) == {
        "do_sample": True,
        "top_k": 0,  # the model's GenerationConfig default is 50: sent even though neutral
        "repetition_penalty": 1.0,
        "no_repeat_ngram_size": 3,
        "min_new_tokens": 1,
        "eos_token_id": sorted({ids.eot, ids.user, ids.bot, ids.persona, ids.eos}),
        "pad_token_id": ids.pad,
    }
    assert isinstance(body.pop("prompt"), str)  # text only: it rejects token ids
    assert body == {
        "model": dialogue_model.path,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 40,
        "seed": 3,
        "stop": ["<|eot|>", "<|user|>", "<|bot|>", "<|persona|>"],
    }


def test_greedy_is_temperature_zero_without_top_p():
    plan = plan_request(SamplingSettings(strategy="greedy", num_candidates=1), SERVER_KINDS["openai-standard"])
    assert plan.body() == {"temperature": 0.0, "max_tokens": 40}


# The sampler-lab fields on top of the all-neutral settings: DRY and mirostat on, XTC off (its threshold
# is then not sent either), and the penalties at their neutral values (not sent).
LAB = NEUTRAL.replace(
    strategy="sample", num_candidates=1, temperature=0.8, top_p=1.0, max_new_tokens=30, min_p=0.05,
    dry_multiplier=0.8, dry_base=1.75, dry_allowed_length=2, xtc_threshold=0.1, xtc_probability=0.0,
    mirostat_mode=2, mirostat_tau=5.0, mirostat_eta=0.1,
)  # fmt: skip


def test_llama_cpp_gets_its_native_samplers_as_extra_body():
    plan = plan_request(LAB, SERVER_KINDS["llama.cpp"])
    assert plan.top_level == {"temperature": 0.8, "top_p": 1.0, "max_tokens": 30}
    assert plan.extra_body == {
        "min_p": 0.05,
        "dry_multiplier": 0.8,
        "dry_base": 1.75,
        "dry_allowed_length": 2,
        "mirostat": 2,
        "mirostat_tau": 5.0,
        "mirostat_eta": 0.1,
        "dry_sequence_breakers": ["\n", ":", '"', "*"],
    }


def test_vllm_refuses_dry_and_mirostat_naming_each_field():
    with pytest.raises(UnsupportedSettingError) as info:
        plan_request(LAB, SERVER_KINDS["vllm"])
    message = str(info.value)
    for name in ("dry_multiplier=0.8", "dry_base", "mirostat_mode=2", "mirostat_tau"):
        assert name in message
    assert "a vllm server" in message and "--allow-unsupported" in message
    assert "min_p" not in message  # vLLM has min_p


def test_unsupported_field_error_names_field_and_kind():
    with pytest.raises(UnsupportedSettingError, match=r"top_k=40 cannot be applied by a tgi server"):
        plan_request(TOP_P.replace(top_k=40), SERVER_KINDS["tgi"])


def test_other_meaning_is_refused_with_the_reason():
    settings = LAB.replace(presence_penalty=0.5)
    with pytest.raises(UnsupportedSettingError, match=r"presence_penalty=0.5 .*transformers-serve server: it logs"):
        plan_request(settings, SERVER_KINDS["transformers-serve"])


def test_allow_unsupported_sends_the_rest_and_records_a_warning(dialogue_model):
    server = FakeServer()
    backend = backend_for(server, "tgi", dialogue_model, allow_unsupported=True)
    settings = TOP_P.replace(top_k=40)
    backend.generate([dialogue_prompt(dialogue_model)], settings)
    assert "top_k" not in server.bodies[0]
    assert backend.warnings(settings) == ["not applied: top_k=40 cannot be applied by a tgi server: it has no top_k "
                                          "(or an equivalent) in its API"]  # fmt: skip


def test_beam_search_is_refused_where_the_server_cannot_do_it():
    beam = SamplingSettings(strategy="beam", num_beams=4, num_candidates=2)
    with pytest.raises(UnsupportedSettingError, match="strategy='beam' cannot be applied by a vllm server"):
        plan_request(beam, SERVER_KINDS["vllm"])
    with pytest.raises(UnsupportedSettingError, match="every candidate would be the same"):
        plan_request(beam, SERVER_KINDS["transformers-serve"])
    plan = plan_request(beam.replace(num_candidates=1), SERVER_KINDS["transformers-serve"])
    assert plan.generation_config["num_beams"] == 4 and plan.generation_config["do_sample"] is False


def test_several_models_need_api_model():
    models = [{"id": "a", "owned_by": "vllm"}, {"id": "b", "owned_by": "vllm"}]
    transport = httpx.MockTransport(FakeServer(models=models))
    with pytest.raises(BackendError, match="serves 2 models .*--api-model"):
        connect("http://fake/v1", transport=transport)
    assert connect("http://fake/v1", api_model="b", transport=transport).model.path == "b"


def test_api_key_comes_from_the_environment(monkeypatch):
    seen = []

    def handler(request):
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"data": [{"id": "m", "owned_by": "vllm"}]})

    monkeypatch.setenv("MY_KEY", "sk-test")
    connect("http://fake/v1", api_key_env="MY_KEY", transport=httpx.MockTransport(handler))
    assert seen == ["Bearer sk-test"]


@pytest.mark.parametrize("kind", sorted(SERVER_KINDS))
def test_no_active_field_of_any_preset_is_dropped_silently(kind):
    """Each field a preset uses is sent under the server's name, named in a warning, or tolerated by rule."""
    from chatbot.backends.capabilities import TOLERATED, sent_fields
    from chatbot.sampling import PRESETS

    server = SERVER_KINDS[kind]
    for name, settings in PRESETS.items():
        plan = plan_request(settings, server, allow_unsupported=True)
        sent = plan.top_level | plan.extra_body | plan.generation_config
        for field_name, value in sent_fields(settings, server).items():
            route = server.routes.get(field_name)
            if route is None and TOLERATED.get(field_name, ...) == value:
                continue  # min_new_tokens=1: an empty reply is rejected by the filters
            assert (route and route.name in sent) or any(f"{field_name}=" in w for w in plan.warnings), (
                name,
                field_name,
            )


# -- candidates: n, emulation with seeds, log-probabilities, stops ------------------------------------


def test_n_emulation_on_a_global_seed_server_is_sequential_with_distinct_seeds(dialogue_model):
    server = FakeServer(texts=("one", "two", "three"))
    backend = backend_for(server, "transformers-serve", dialogue_model, concurrency=4)
    result = backend.generate([dialogue_prompt(dialogue_model)], TOP_P.replace(num_candidates=3, seed=7))
    assert [b["seed"] for b in server.bodies] == [7, 8, 9]
    assert all("n" not in b for b in server.bodies)
    assert [c.text for c in result.candidates[0]] == ["one", "two", "three"]
    starts_and_ends = sorted(server.times)
    assert all(prev[1] <= nxt[0] for prev, nxt in zip(starts_and_ends, starts_and_ends[1:]))  # no overlap


def test_n_emulation_with_per_request_seeds_runs_in_parallel(dialogue_model):
    server = FakeServer(texts=("x",))
    backend = backend_for(server, "tgi", dialogue_model, concurrency=3)
    backend.generate([dialogue_prompt(dialogue_model)], TOP_P.replace(num_candidates=3, seed=None))
    seeds = [b["seed"] for b in server.bodies]
    assert len(set(seeds)) == 3 and max(seeds) - min(seeds) == 2  # a random base, then base + 1, base + 2
    times = sorted(server.times)
    assert any(nxt[0] < prev[1] for prev, nxt in zip(times, times[1:]))  # overlapped


def test_logprobs_rank_candidates_and_their_absence_keeps_order(dialogue_model):
    server = FakeServer(texts=("short one", "better one"), logprobs=[[-3.0, -3.0], [-0.5, -0.5]])
    backend = backend_for(server, "vllm", dialogue_model)
    (candidates,) = backend.generate([dialogue_prompt(dialogue_model)], TOP_P.replace(num_candidates=2)).candidates
    assert [c.logprob for c in candidates] == [-6.0, -1.0]
    assert [c.n_tokens for c in candidates] == [2, 2]
    assert backend.has_logprobs
    unranked = backend_for(FakeServer(), "transformers-serve", dialogue_model)
    assert not unranked.has_logprobs and "not ranked by likelihood" in UNRANKED_NOTE


def test_client_side_stop_cuts_at_our_end_of_turn(dialogue_model):
    server = FakeServer(texts=("fine, thanks<|eot|><|user|>and you?",), finish="length")
    backend = backend_for(server, "openai-standard", dialogue_model)
    (candidate,) = backend.generate([dialogue_prompt(dialogue_model)], TOP_P).candidates[0]
    assert candidate.text == "fine, thanks"
    assert candidate.finished  # ended at end-of-turn, even though the server ran to max_tokens


def test_cut_at_stop_and_held_back():
    assert cut_at_stop("a<|bot|>b<|eot|>", ["<|eot|>", "<|bot|>"]) == ("a", True)
    assert cut_at_stop("plain", ["<|eot|>"]) == ("plain", False)
    assert held_back("hello <|eo", ["<|eot|>"]) == 4
    assert held_back("hello", ["<|eot|>"]) == 0


# -- typed special tokens stay text ------------------------------------------------------------------


def test_neutralise_covers_ours_the_tokenizers_and_the_common_shape():
    text = neutralise("<|user|> <s> <|im_start|> plain", ["<s>"])
    assert text == f"<{ZWSP}|user|> <{ZWSP}s> <{ZWSP}|im_start|> plain"
    assert neutralise("no tokens | here <3") == "no tokens | here <3"


def test_chat_messages_put_the_persona_in_a_system_message():
    assert chat_messages(["hi", "hello!", "how are you?"], ["i like tea."]) == [
        {"role": "system", "content": "i like tea."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello!"},
        {"role": "user", "content": "how are you?"},
    ]


def test_char_tokenizer_budget_is_in_characters():
    from chatbot.format import TokenIds, build_inputs

    tok = CharTokenizer()
    ids = TokenIds.from_tokenizer(tok)
    built = build_inputs(ids, [encode_text(tok, "x" * 50), encode_text(tok, "hi <|bot|>")], None,
                         DialogueFormat(max_length=30))  # fmt: skip
    assert tok.decode(built.input_ids) == "<|user|>hi <|bot|><|eot|><|bot|>"  # typed text: characters
    assert built.input_ids.count(ids.bot) == 1 and built.truncated


# -- detection and failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "models, kind",
    [
        ([{"id": "/runs/x", "owned_by": "vllm", "max_model_len": 1024}], "vllm"),
        ([{"id": "m.gguf", "owned_by": "llamacpp", "meta": {"n_ctx_train": 2048}}], "llama.cpp"),
        ([{"id": "/runs/x", "owned_by": "local", "status": {"value": "loaded"}}], "transformers-serve"),
        ([{"id": "gpt-4o-mini", "owned_by": "system"}], "openai-standard"),
    ],
)
def test_server_kind_is_detected_from_the_model_list(models, kind):
    client = HttpClient("http://fake/v1", transport=httpx.MockTransport(FakeServer(models=models)))
    assert detect_kind(client, models) == kind


def test_tgi_is_detected_from_its_info_endpoint():
    def handler(request):
        if request.url.path == "/info":
            return httpx.Response(200, json={"model_id": "x", "router": "text-generation-router"})
        return httpx.Response(404, json={"error": "not found"})

    client = HttpClient("http://fake/v1", transport=httpx.MockTransport(handler))
    assert detect_kind(client, [{"id": "tgi", "owned_by": "tgi"}]) == "tgi"


def test_server_down_is_one_line_within_five_seconds():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    start = time.perf_counter()
    with pytest.raises(BackendError, match=r"cannot reach http://127.0.0.1:\d+/v1/models .*is the server running"):
        connect(f"http://127.0.0.1:{port}/v1")
    assert time.perf_counter() - start < 5


def test_http_error_shows_the_servers_own_message(dialogue_model):
    backend = backend_for(FakeServer(status=422), "vllm", dialogue_model)
    with pytest.raises(BackendError, match=r"HTTP 422: Unexpected fields in the request: \{'top_k'\}"):
        backend.generate([dialogue_prompt(dialogue_model)], TOP_P)


def test_retries_repeat_after_a_503_then_succeed(dialogue_model):
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(503, json={"error": {"message": "loading"}})
        return httpx.Response(200, json={"choices": [{"text": "ok", "finish_reason": "stop"}]})

    client = HttpClient("http://fake/v1", settings=HttpSettings(retries=1), transport=httpx.MockTransport(handler))
    backend = OpenAIBackend(client, SERVER_KINDS["vllm"], dialogue_model)
    assert backend.generate([dialogue_prompt(dialogue_model)], TOP_P).candidates[0][0].text == "ok"
    assert len(calls) == 2


# -- streaming ---------------------------------------------------------------------------------------


def _sse(pieces, finish="stop"):
    events = [{"choices": [{"index": 0, "text": p}]} for p in pieces]
    events.append({"choices": [{"index": 0, "text": "", "finish_reason": finish}], "usage": {"completion_tokens": 4}})
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode()


def test_stream_yields_pieces_and_stops_at_end_of_turn(dialogue_model):
    def handler(request):
        assert json.loads(request.content)["stream"] is True
        return httpx.Response(200, content=_sse(["fine", ", thanks", "<|e", "ot|>", "ignored"]))

    client = HttpClient("http://fake/v1", transport=httpx.MockTransport(handler))
    backend = OpenAIBackend(client, SERVER_KINDS["vllm"], dialogue_model)
    stream = backend.stream(dialogue_prompt(dialogue_model), TOP_P)
    assert list(stream) == ["fine", ", thanks"]
    assert stream.result.text == "fine, thanks" and stream.result.finished


def test_stream_cancel_stops_reading(dialogue_model):
    import threading

    def handler(request):
        return httpx.Response(200, content=_sse(["a ", "b ", "c ", "d "]))

    client = HttpClient("http://fake/v1", transport=httpx.MockTransport(handler))
    backend = OpenAIBackend(client, SERVER_KINDS["vllm"], dialogue_model)
    cancel = threading.Event()
    stream = backend.stream(dialogue_prompt(dialogue_model), TOP_P, cancel_event=cancel)
    shown = []
    for piece in stream:
        shown.append(piece)
        cancel.set()
    assert shown == ["a "]
    assert stream.result is not None and not stream.result.finished


# -- flags ----------------------------------------------------------------------------------------------


def test_backend_flags_parse_the_same_in_argparse_and_hfargumentparser():
    import argparse

    from transformers import HfArgumentParser

    from chatbot.backends.options import BackendOptions, add_backend_arguments, options_from_args

    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=2)  # serve's own flag: shared, not redeclared
    add_backend_arguments(parser)
    argv = ["--base-url", "http://127.0.0.1:8000/v1", "--allow-unsupported", "--concurrency", "3", "--retries", "0"]
    options = options_from_args(parser.parse_args(argv))
    assert (options.backend, options.concurrency, options.allow_unsupported, options.retries) == ("openai", 3, True, 0)
    (hf,) = HfArgumentParser(BackendOptions).parse_args_into_dataclasses(args=argv)
    assert hf == options


def test_backend_flags_keep_their_types_after_hfargumentparser_resolved_them():
    """HfArgumentParser (evaluate) replaces the fields' annotation text by types; serve and chat parse later."""
    import argparse

    from transformers import HfArgumentParser

    from chatbot.backends.options import BackendOptions, add_backend_arguments, options_from_args

    HfArgumentParser(BackendOptions)
    parser = argparse.ArgumentParser()
    add_backend_arguments(parser)
    options = options_from_args(parser.parse_args(["--base-url", "http://x/v1", "--retries", "0", "--timeout", "5"]))
    assert (options.retries, options.timeout, options.allow_unsupported) == (0, 5.0, False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backend": "openai"}, "--backend openai needs --base-url"),
        ({"base_url": "http://x/v1", "server_kind": "ollama"}, "--server-kind 'ollama': choose one of"),
        ({"base_url": "http://x/v1", "concurrency": 0}, "--concurrency must be >= 1"),
    ],
)
def test_impossible_backend_flags_are_one_line_errors(kwargs, message):
    from chatbot.backends.options import BackendOptions
    from chatbot.errors import SettingsError

    with pytest.raises(SettingsError, match=message):
        BackendOptions(**kwargs)


def test_describe_names_backend_kind_model_and_url(dialogue_model):
    backend = backend_for(FakeServer(), "vllm", dialogue_model)
    described = backend.describe()
    assert {k: described[k] for k in ("backend", "server_kind", "model", "base_url")} == {
        "backend": "openai", "server_kind": "vllm", "model": dialogue_model.path, "base_url": "http://fake/v1"
    }  # fmt: skip
    assert described["label"] == f"{dialogue_model.path} (served by a vllm server at http://fake/v1)"


@pytest.mark.parametrize("command", [["chat", "--once", "hi"], ["evaluate", "--data", "x.jsonl", "--output", "out"]])
def test_cli_reports_a_server_that_is_down_in_one_line(command, capsys):
    from chatbot.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    code = main([*command, "--base-url", f"http://127.0.0.1:{port}/v1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: cannot reach http://127.0.0.1:{port}/v1/models (ConnectError): is the server "
                                 "running?"]  # fmt: skip
    assert time.perf_counter() - start < 5
