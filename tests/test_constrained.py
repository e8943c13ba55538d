"""Constrained decoding of the CET's context: the grammar's GBNF, what it admits (random walks through llguidance
with the real tokenizer all parse as valid contexts), and the untrained base CET (the worst case) writing valid
contexts on llama.cpp and on transformers, choices honoured and only retrieved chunks cited; greedy and
deterministic; a failed generation is an error, never an empty context; `cet context` without a checkpoint."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from cet.config import load_config
from cet.knowledge.records import Hit
from cet.model.cet import CETModel, EngineeredReply
from cet.model.constrained import BUG_SECTIONS, TASK_SECTIONS, ContextGrammar, compiled, cut_to_lines, ll_tokenizer
from cet.model.context import NOTHING_TO_ADD, parse_context
from cet.model.prompts import CETInput


def hit(chunk_id: str, title: str, text: str) -> Hit:
    return Hit(id=chunk_id, source="exercism", title=title, path=f"{title}.md", score=0.5, text=text, metadata={})


FIB_HITS = [
    hit("9a1c0e5b7d3f2a41-0", "fibonacci", "The Fibonacci sequence starts 0, 1 and each term is the sum of the two "
        "before it. An iterative loop avoids Python's recursion limit."),
    hit("9a1c0e5b7d3f2a41-1", "fibonacci", "Raise ValueError for a negative index; fib(0) is 0 and fib(1) is 1."),
    hit("0b4d8e2f6a1c3e57-0", "memoization", "functools.lru_cache memoizes a recursive function."),
    hit("0b4d8e2f6a1c3e57-2", "big integers", "Python integers have arbitrary precision, so fib(100) is exact."),
    hit("77c2d9a0e4b1f368-3", "loops", "A for loop over range(n) runs n times."),
]
FIB = {"task": "# Fibonacci\n\nWrite `fib(n)` returning the n-th Fibonacci number.\n\n## Interface\n\n```python\n"
               "def fib(n: int) -> int: ...\n```\n\nExamples: `fib(0) == 0`, `fib(1) == 1`, `fib(10) == 55`.\n"
               "A negative n raises ValueError.",
       "hits": FIB_HITS,
       "choices": {"interface": ["def fib(n: int) -> int"],
                   "examples": ["fib(0) == 0", "fib(1) == 1", "fib(10) == 55",
                                'fib(-1) raises ValueError("negative")']}}
BUG = {"task": "add(a, b) should return the sum of a and b, but the tests fail.",
       "code": "def add(a, b):\n    return a - b\n",
       "error": "FAILED test_add.py::test_small - assert add(1, 2) == 3\nE   assert -1 == 3",
       "hits": FIB_HITS[3:]}
REVERSE = {"input": CETInput(task="Reverse a string. An empty string stays empty.", interface="def reverse(text)",
                             visible_tests="assert reverse('robot') == 'tobor'"),
           "choices": {"interface": ["def reverse(text)"],
                       "examples": ["reverse('robot') == 'tobor'", "reverse('') == ''"],
                       "constraints": ["an empty string stays empty"]}}
ITEMS = [FIB, BUG, REVERSE]


def item_hits(item: dict) -> list[Hit]:
    return list(item["input"].hits) if "input" in item else list(item.get("hits", []))


def is_bug(item: dict) -> bool:
    inp = item.get("input")
    return bool(inp.code or inp.error) if inp is not None else bool(item.get("code") or item.get("error"))


def assert_follows(reply: EngineeredReply, item: dict) -> None:
    """A valid context that honours the item's choices, cites only its retrieved chunks and uses only the sections
    its kind allows."""
    assert reply.error is None and reply.parsed is not None, reply
    assert reply.parsed.valid, (reply.parsed.issues, reply.raw)
    ctx = reply.parsed.context
    for section, options in item.get("choices", {}).items():
        assert set(getattr(ctx, section)) <= set(options), (section, reply.raw)
    assert set(ctx.cited_chunk_ids()) <= {h.id for h in item_hits(item)}
    if not item_hits(item):
        assert not ctx.knowledge
    if not is_bug(item):
        assert not (ctx.failure or ctx.suspects or ctx.checks), reply.raw


# ------------------------------------------------------------------------------------------------- the grammar


def test_gbnf_lists_the_sections_in_order_and_only_retrieved_ids():
    grammar = ContextGrammar.for_input(FIB_HITS + [hit("has space", "x", "y")], choices=FIB["choices"])
    gbnf = grammar.to_gbnf()
    assert grammar.sections == TASK_SECTIONS
    root = gbnf.splitlines()[0]
    assert root.startswith("root ::= goal interface? examples? constraints? knowledge? pitfalls? | interface ")
    assert root.endswith('| pitfalls | "## Nothing to add\\n"')  # or the one reply of an empty context
    assert f'chunk-id ::= {" | ".join(json.dumps(h.id) for h in FIB_HITS)}\n' in gbnf  # not "has space"
    assert 'examples-choice ::= "fib(0) == 0" | "fib(1) == 1" | "fib(10) == 55" | ' \
           '"fib(-1) raises ValueError(\\"negative\\")"' in gbnf
    assert 'examples-item ::= "- " examples-choice "\\n"' in gbnf and "examples ::= \"## Examples\\n\" " \
        "examples-item{1,4}" in gbnf
    assert "text ::= first rest{0,199}" in gbnf
    assert "failure" not in gbnf and "suspects" not in gbnf


def test_sections_follow_the_input():
    assert ContextGrammar.for_input([], bug_report=False).sections == ("goal", "interface", "examples", "constraints",
                                                                       "pitfalls")  # nothing to cite
    assert ContextGrammar.for_input(FIB_HITS, bug_report=True).sections == BUG_SECTIONS
    # a section whose choices are all unusable is closed; knowledge choices must cite a retrieved chunk
    grammar = ContextGrammar.for_input(FIB_HITS, choices={"interface": ["  ", ""], "knowledge": [
        f"[{FIB_HITS[0].id}] An iterative loop avoids the limit.", "[not-retrieved-0] invented"]})
    assert "interface" not in grammar.sections
    assert grammar.choices["knowledge"] == [f"[{FIB_HITS[0].id}] An iterative loop avoids the limit."]
    with pytest.raises(ValueError, match="unknown context sections"):
        ContextGrammar(sections=("goal", "summary"))
    with pytest.raises(ValueError, match="allows no section"):
        ContextGrammar(sections=("knowledge",))


@pytest.fixture(scope="module")
def tokenizer(smollm2_torch: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_torch))


def accepts(tokenizer, grammar: str, text: str) -> bool:
    """Whether llguidance takes `text` as a whole reply of `grammar` (an llguidance grammar)."""
    import llguidance

    matcher = llguidance.LLMatcher(ll_tokenizer(tokenizer), grammar, log_level=0)
    return matcher.consume_tokens(tokenizer.encode(text, add_special_tokens=False)) and matcher.is_accepting()


def test_the_grammar_admits_contexts_and_refuses_what_would_not_parse(tokenizer):
    import llguidance

    grammar = ContextGrammar.for_input(FIB_HITS, choices={"interface": FIB["choices"]["interface"]})
    lark = compiled(grammar.to_lark())
    gbnf = llguidance.grammar_from("gbnf", grammar.to_gbnf())  # llguidance's own reader of llama.cpp's text
    good = (f"## Goal\nReturn the n-th Fibonacci number.\n## Interface\n- def fib(n: int) -> int\n"
            f"## Knowledge\n- [{FIB_HITS[0].id}] An iterative loop avoids the recursion limit.\n")
    assert accepts(tokenizer, lark, good) and accepts(tokenizer, gbnf, good)
    assert parse_context(good, grammar.chunk_ids).valid
    bad = {
        "a heading inside a line": "## Goal\n# Fibonacci\n",
        "blanks then a heading": "## Goal\n   ## Fibonacci\n",
        "prose first": "Sure! Here is the context.\n## Goal\nx\n",
        "an unretrieved chunk": "## Goal\nx\n## Knowledge\n- [deadbeef-0] invented\n",
        "a bullet that is not a choice": "## Interface\n- def fib(n)\n",
        "sections out of order": "## Pitfalls\n- x\n## Goal\ny\n",
        "an unknown section": "## Summary\nx\n",
        "a bug section in a task": "## Goal\nx\n## Failure\ny\n",
        "two goal lines": "## Goal\nx\ny\n",
        "a line past max_line_chars": "## Goal\n" + "x" * 201 + "\n",
        "five bullets": "## Pitfalls\n" + "- p\n" * 5,
        "a unicode line break": "## Goal\nx\u2028## Pitfalls\n",
        "nothing": "",
        "nothing to add, and something": "## Nothing to add\n## Goal\nx\n",
    }
    for why, text in bad.items():
        assert not accepts(tokenizer, lark, text), why
        assert not accepts(tokenizer, gbnf, text), why  # the GBNF and the Lark form draw the same line
    assert accepts(tokenizer, lark, "## Goal\n" + "x" * 200 + "\n")
    # an empty context on purpose: the one reply that says so, read as valid and empty
    assert accepts(tokenizer, lark, NOTHING_TO_ADD + "\n") and accepts(tokenizer, gbnf, NOTHING_TO_ADD + "\n")
    strict = ContextGrammar.for_input(FIB_HITS, nothing_to_add=False)
    assert not accepts(tokenizer, compiled(strict.to_lark()), NOTHING_TO_ADD + "\n")
    empty = parse_context(NOTHING_TO_ADD + "\n", grammar.chunk_ids)
    assert empty.valid and empty.nothing_to_add and empty.context.is_empty()
    # a failure report keeps its indented, long lines; never one that reads as a heading
    bug = ContextGrammar.for_input(BUG["hits"], bug_report=True)
    bug_forms = (compiled(bug.to_lark()), llguidance.grammar_from("gbnf", bug.to_gbnf()))
    failure = ("## Failure\nTraceback (most recent call last):\n  File \"test_add.py\", line 4, in test_small\n"
               f"    assert add(1, 2) == 3  # {'x' * 300}\nE   assert -1 == 3\n## Check\n- re-run add(1, 2)\n")
    assert parse_context(failure).valid
    for form in bug_forms:
        assert accepts(tokenizer, form, failure)
        assert not accepts(tokenizer, form, "## Failure\n  # not a heading\n")
        assert not accepts(tokenizer, form, NOTHING_TO_ADD + "\n")  # a bug report always needs a context
    odd = ['say("hi") \\ n', "zero\u200bwidth \x7f", "é € 😀"]  # quotes, backslashes, non-printables, unicode
    grammar = ContextGrammar(sections=("interface",), choices={"interface": odd})
    for form in (compiled(grammar.to_lark()), llguidance.grammar_from("gbnf", grammar.to_gbnf())):
        assert all(accepts(tokenizer, form, f"## Interface\n- {choice}\n") for choice in odd)
        assert not accepts(tokenizer, form, "## Interface\n- say(hi)\n")


def random_walk(tokenizer, grammar: ContextGrammar, rng: random.Random, max_tokens: int) -> tuple[str, bool]:
    """A reply drawn token by token among those the grammar allows (newline-bearing tokens favoured, so walks reach
    the structure): the worst case of a model that ignores the task entirely. (text, finished)."""
    import llguidance

    lltok = ll_tokenizer(tokenizer)
    matcher = llguidance.LLMatcher(lltok, compiled(grammar.to_lark()), log_level=0)
    newline = random_walk.newline_ids  # type: ignore[attr-defined]
    tokens: list[int] = []
    for _ in range(max_tokens):
        allowed = np.flatnonzero(np.unpackbits(np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8),
                                               bitorder="little")[:lltok.vocab_size])
        if tokenizer.eos_token_id in allowed and (len(allowed) == 1 or rng.random() < 0.15):
            return tokenizer.decode(tokens), True
        allowed = [int(t) for t in allowed if t != tokenizer.eos_token_id]
        breaking = [t for t in allowed if t in newline]
        token = rng.choice(breaking if breaking and rng.random() < 0.25 else allowed)
        assert matcher.consume_token(token), matcher.get_error()
        tokens.append(token)
    return tokenizer.decode(tokens), False


def test_every_reply_the_grammar_admits_parses_as_a_valid_context(tokenizer):
    random_walk.newline_ids = {i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i])}  # type: ignore
    rng = random.Random(7)
    cases = [(ContextGrammar.for_input(FIB_HITS, choices=FIB["choices"], max_line_chars=60), FIB),
             (ContextGrammar.for_input(BUG["hits"], bug_report=True, max_line_chars=60), BUG),
             (ContextGrammar.for_input((), choices=REVERSE["choices"], max_line_chars=60), REVERSE)]
    finished = 0
    for grammar, item in cases:
        for _ in range(8):
            text, done = random_walk(tokenizer, grammar, rng, max_tokens=160)
            finished += done
            cut = text if done else cut_to_lines(text)  # what engineer() reads of a reply cut by the token limit
            parsed = parse_context(cut, grammar.chunk_ids)
            if not done and not parsed.sections:
                continue  # cut before the first section was complete: engineer() reports that as an error
            assert parsed.valid, (parsed.issues, text)
            assert_follows(EngineeredReply(parsed, text), item)
    assert finished >= 8  # whole replies, not only cut ones


def test_cut_to_lines_keeps_whole_lines_and_drops_an_empty_heading():
    assert cut_to_lines("## Goal\nAdd numbers.\n## Interface\n- def add(a, b)\n- def ad") == \
        "## Goal\nAdd numbers.\n## Interface\n- def add(a, b)\n"
    assert cut_to_lines("## Goal\nAdd numbers.\n## Interface\n- de") == "## Goal\nAdd numbers.\n"
    assert cut_to_lines("## Goal\nAdd num") == ""


# ---------------------------------------------------------------------------- the base CET, constrained


@pytest.fixture(scope="module")
def base_cet(smollm2_torch: Path):
    """The untrained SmolLM2 CET (fresh LoRA adapters: the identity), on llama.cpp and on transformers."""
    cet = CETModel.open(load_config(cet={"device": "cpu"}), base=True)
    yield cet
    cet.close_engine()


def use(cet: CETModel, inference: str, **llm) -> None:
    cet.close_engine()
    cet.cfg = load_config(cet={"device": "cpu", "inference": inference, "max_new_tokens": 128},
                          llm={"n_threads": 1, **llm})


def test_a_batch_on_transformers_keeps_each_row_in_its_own_grammar(tiny_base: Path, tmp_path: Path):
    """A tiny random model (the real tokenizer): rows of one left-padded batch, each with its own grammar."""
    cfg = load_config(cet={"base_model": str(tiny_base), "device": "cpu", "max_new_tokens": 160,
                           "checkpoints_dir": str(tmp_path)})
    cet = CETModel.open(cfg, base=True)
    assert cet.inference_backend() == "transformers"
    replies = cet.engineer(ITEMS)
    for reply, item in zip(replies, ITEMS, strict=True):
        assert_follows(reply, item)
    assert [r.raw for r in cet.engineer(ITEMS)] == [r.raw for r in replies]  # greedy: the same again


@pytest.mark.slow
@pytest.mark.parametrize("inference", ["llamacpp", "transformers"])
def test_the_base_cet_writes_valid_contexts_on_both_backends(base_cet: CETModel, inference: str):
    use(base_cet, inference)
    assert base_cet.inference_backend() == inference
    replies = base_cet.engineer(ITEMS)
    for reply, item in zip(replies, ITEMS, strict=True):
        assert_follows(reply, item)
        assert reply.seconds > 0
    # unconstrained, the same model writes prose: the grammar is what makes the difference
    base_cet.cfg = load_config(cet={"device": "cpu", "inference": inference, "max_new_tokens": 48,
                                    "constrained": False}, llm={"n_threads": 1, "n_parallel": 4})
    free = base_cet.engineer(ITEMS[:1])[0]
    assert free.error is None and free.parsed is not None and not free.parsed.valid, free.raw


@pytest.mark.slow
def test_generation_is_greedy_and_deterministic(base_cet: CETModel):
    """One slot: the same input gives the same context, in a batch or alone. (Several slots batch requests
    together, and llama.cpp's arithmetic then depends on what shares the batch: see `_generate_llamacpp`.)"""
    use(base_cet, "llamacpp", n_parallel=1)
    first = base_cet.engineer(ITEMS)
    again = base_cet.engineer(ITEMS)
    alone = base_cet.engineer(ITEMS[1:2])
    assert [r.raw for r in first] == [r.raw for r in again] and alone[0].raw == first[1].raw
    assert [r.parsed.context for r in first] == [r.parsed.context for r in again]  # type: ignore[union-attr]
    assert all(r.raw for r in first)


@pytest.mark.slow
def test_the_llamacpp_provider_passes_the_grammar():
    from cet.llm.base import GenerationParams, Message
    from cet.llm.catalog import model_path
    from cet.llm.providers.llamacpp import LlamaCppLLM

    grammar = ContextGrammar.for_input(FIB_HITS, choices=FIB["choices"], max_line_chars=80)
    params = GenerationParams(max_tokens=160, grammar=grammar.to_gbnf())
    assert params.cache_key_part()["grammar"] == grammar.to_gbnf()  # another grammar, another cached reply
    llm = LlamaCppLLM(model_path("smollm2-135m-instruct", load_config().llm), n_threads=1)
    try:
        completion = llm.chat([Message("user", FIB["task"])], params)
    finally:
        llm.close()
    text = completion.text if completion.finish_reason != "length" else cut_to_lines(completion.text)
    assert_follows(EngineeredReply(parse_context(text, grammar.chunk_ids), completion.text), FIB)


@pytest.mark.slow
def test_a_failed_generation_is_an_error_not_an_empty_context(base_cet: CETModel):
    use(base_cet, "llamacpp", n_ctx=256, n_parallel=1)  # the prompt cannot fit
    reply, = base_cet.engineer([FIB])
    assert reply.parsed is None and reply.raw == ""
    assert reply.error and "too long" in reply.error


# ------------------------------------------------------------------------------------------------ the CLI


def test_cli_without_a_checkpoint_stops_and_base_is_explicit(run_cet, cet_env, tiny_base: Path, tmp_path: Path):
    env = cet_env(CET_CET__BASE_MODEL=str(tiny_base), CET_CET__CHECKPOINTS_DIR=str(tmp_path / "cet"),
                  CET_CET__MAX_NEW_TOKENS="200", CET_LLM__N_THREADS="1", CET_KB__DB=str(tmp_path / "kb.sqlite"))
    missing = run_cet("context", "Write add(a, b) returning the sum.", "--no-retrieval", env=env)
    assert missing.returncode == 2 and missing.stdout.strip() == "" and "Traceback" not in missing.stderr
    lines = [line for line in missing.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no trained CET checkpoint" in lines[0] and "--base" in lines[0], missing.stderr

    base = run_cet("context", "Write add(a, b) returning the sum.", "--no-retrieval", "--base", "--json", env=env)
    assert base.returncode == 0, base.stderr[-2000:]
    out = json.loads(base.stdout)
    assert out["valid"] is True and out["issues"] == [] and out["error"] is None, out
    assert out["seconds"] > 0 and out["constrained"] is True
    assert out["checkpoint"] == "base" and out["checkpoint_path"] is None
    assert parse_context(out["raw"]).sections >= 1 and "Task:\nWrite add" in out["prompt"]


@pytest.mark.slow
def test_cli_reports_a_failed_generation(run_cet, cet_env, tmp_path: Path):
    env = cet_env(CET_CET__CHECKPOINTS_DIR=str(tmp_path / "cet"), CET_LLM__N_CTX="256", CET_LLM__N_PARALLEL="1",
                  CET_CET__INFERENCE="llamacpp", CET_CET__DEVICE="cpu", CET_LLM__N_THREADS="1")
    task = "Write a function that sorts a list of words by length, then alphabetically. " * 12
    result = run_cet("context", task, "--no-retrieval", "--base", "--json", env=env)
    assert result.returncode == 4, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert out["valid"] is False and out["context"] is None and "too long" in out["error"]
    plain = run_cet("context", task, "--no-retrieval", "--base", env=env)
    assert plain.returncode == 4 and "the CET wrote no context" in plain.stderr and "Traceback" not in plain.stderr
