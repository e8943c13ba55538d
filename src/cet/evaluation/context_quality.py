"""Intrinsic quality of one engineered context, measured without running the generator.

- preservation: how much of what the task says (signature, examples, constraints, relevant knowledge,
  see `TaskFacts`) the context still carries, per fact family, and `recall` over the families present;
- noise reduction: how many injected distractor sentences the context leaves out;
- compression: tokens out / tokens in;
- grounding: whether cited chunks were retrieved, and whether the APIs it names exist (in the task, the
  code, the chunks, Python's builtins, the methods of the basic types or the standard library);
- structure: whether the text parsed cleanly.

All matching is lexical and deliberately simple (content words, whitespace-normalised substrings); the
numbers are for comparing contexts and checkpoints with each other, not absolute truths.
"""

from __future__ import annotations

import builtins
import importlib
import keyword
import re
import sys
from collections.abc import Callable, Collection, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from cet.data.task_facts import TaskFacts
from cet.model.context import EngineeredContext, ParsedContext

CONSTRAINT_COVERAGE = 0.5  # share of a constraint's content words the context must hold
NOISE_SURVIVAL = 0.6  # share of a noise sentence's content words one context line must hold
FAMILIES = ("signature", "examples", "constraints", "knowledge")

STOP_WORDS = frozenset("""
about above after again against also because been before being below between both could does doing down
during each even every from further given have having here into itself just like made make many more most
much must need only other over same should some such than that their them then there these they this those
through under until upon very want were what when where which while will with within without would your
""".split())

_WORD = re.compile(r"[a-z0-9_]+")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_API = re.compile(r"(?<![\w.])(\.?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(\()?")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_BASIC_TYPES = (str, list, dict, set, tuple, int)
_NO_IMPORT = frozenset({"antigravity", "this", "turtle", "turtledemo", "tkinter", "idlelib", "__hello__",
                        "__phello__"})


def content_words(text: str) -> set[str]:
    """Lowercase words of four or more characters, minus a small stop list."""
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 4 and w not in STOP_WORDS}


def _squash(text: str) -> str:
    """Text with all whitespace removed: `fib( 10 )` and `fib(10)` compare equal."""
    return "".join(str(text).split())


def context_lines(ctx: EngineeredContext) -> list[str]:
    """Every line of content the context holds (no headings, no chunk ids): what the generator reads."""
    lines: list[str] = []
    for text in (ctx.goal, *ctx.interface, *ctx.examples, *ctx.constraints, *(k.quote for k in ctx.knowledge),
                 *ctx.pitfalls, ctx.failure, *ctx.suspects, *ctx.checks):
        lines += [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines


def _covered(sentence: str, haystack: str, share: float) -> bool:
    """Whether `haystack` holds at least `share` of the sentence's content words (or, for a sentence
    without content words, the sentence itself)."""
    words = content_words(sentence)
    if not words:
        return bool(_squash(sentence)) and _squash(sentence).lower() in _squash(haystack).lower()
    return len(words & content_words(haystack)) / len(words) >= share


def _has_word(name: str, text: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text) is not None


def _signature_recall(ctx: EngineeredContext, facts: TaskFacts) -> float | None:
    """Half for the entry point (every dotted part named in the interface), half for the share of
    parameter names there; the whole score for whichever of the two the facts have."""
    interface = "\n".join(ctx.interface)
    parts: list[float] = []
    if facts.entry_point:
        parts.append(float(all(_has_word(p, interface) for p in facts.entry_point.split(".") if p)))
    params = [p.lstrip("*") for p in facts.parameters if p.lstrip("*") not in ("", "self", "cls")]
    if params:
        parts.append(sum(_has_word(p, interface) for p in params) / len(params))
    return sum(parts) / len(parts) if parts else None


def _split_example(example: str) -> tuple[str, str | None]:
    """`call == expected` or `call raises Error(...)` -> (call, expected); a bare assertion -> (text, None)."""
    text = re.sub(r"^\s*assert\s+", "", example.strip())
    for separator in (" == ", " raises "):
        if separator in text:
            call, expected = text.split(separator, 1)
            return call.strip(), expected.strip()
    return text, None


def _trivial(value: str) -> bool:
    """Expected values too common to prove anything by appearing somewhere (True, 0, [], 'a', ...)."""
    bare = value.strip("'\"")
    return value in ("True", "False", "None", "[]", "{}", "()", "''", '""') or len(bare) <= 1


def _example_kept(example: str, text: str) -> bool:
    call, expected = _split_example(example)
    squashed = _squash(text)
    if _squash(call) and _squash(call) in squashed:
        return True
    return expected is not None and not _trivial(expected) and _squash(expected) in squashed


def _fraction(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def information_preservation(ctx: EngineeredContext, facts: TaskFacts) -> dict[str, float | None]:
    """Per fact family, the share of the task's facts the context keeps, and `recall`, their mean.

    - signature: see `_signature_recall` (entry point and parameter names in the interface lines);
    - examples: examples and errors whose call (left of ` == ` / ` raises `) appears in the context, or
      whose expected value does (anywhere; trivial values such as True or 0 do not count);
    - constraints: constraint sentences with at least half of their content words in the context;
    - knowledge: relevant chunk ids that the context cites.
    A family with nothing to find is None and is left out of `recall` (None when every family is).
    """
    lines = context_lines(ctx)
    text = "\n".join(lines)
    cited = set(ctx.cited_chunk_ids())
    scores: dict[str, float | None] = {
        "signature": _signature_recall(ctx, facts),
        "examples": _fraction([_example_kept(e, text) for e in [*facts.examples, *facts.errors]]),
        "constraints": _fraction([_covered(c, text, CONSTRAINT_COVERAGE) for c in facts.constraints]),
        "knowledge": _fraction([cid in cited for cid in facts.relevant_chunk_ids]),
    }
    present = [v for v in scores.values() if v is not None]
    scores["recall"] = sum(present) / len(present) if present else None
    return scores


def noise_reduction(ctx: EngineeredContext, noise_sentences: Sequence[str]) -> float | None:
    """Share of the injected noise sentences that do not survive into the context; None without noise.

    A sentence survives when one context line holds at least 60% of its content words.
    """
    if not noise_sentences:
        return None
    lines = context_lines(ctx)
    survived = [any(_covered(s, line, NOISE_SURVIVAL) for line in lines) for s in noise_sentences]
    return 1.0 - sum(survived) / len(survived)


def count_tokens_simple(text: str) -> int:
    """Default token count: runs of word characters plus each punctuation mark (whitespace separates)."""
    return len(_TOKEN.findall(text or ""))


def compression(ctx_text: str, input_text: str, count_tokens: Callable[[str], int] | None = None) -> float | None:
    """Tokens out / tokens in (below 1.0: the context is shorter than its input); None for an empty input.

    `count_tokens` defaults to `count_tokens_simple`; pass a tokenizer's counter for model tokens.
    """
    counter = count_tokens or count_tokens_simple
    tokens_in = counter(input_text)
    return counter(ctx_text) / tokens_in if tokens_in else None


def _plural_marker(name: str, after: str) -> bool:
    """`item(s)` in prose: a plain lowercase word, not a builtin, followed by `s)` and no more word."""
    return (after[:2] == "s)" and not after[2:3].isalnum() and name.isalpha() and name.islower()
            and not hasattr(builtins, name))


def mentioned_apis(ctx: EngineeredContext) -> list[str]:
    """API-like names in the interface, examples, constraints, pitfalls, checks and knowledge quotes:
    identifiers called (`sorted(`), methods called (`.append(`) and dotted names (`str.join`, `math.gcd`).

    Keywords (`if(`), plural markers (`item(s)`, but not a builtin's call such as `len(s)`) and dotted
    prose with one-letter parts (`e.g`) are skipped.
    """
    texts = [*ctx.interface, *ctx.examples, *ctx.constraints, *ctx.pitfalls, *ctx.checks,
             *(k.quote for k in ctx.knowledge)]
    names: list[str] = []
    for text in texts:
        for match in _API.finditer(text):
            name, called = match.group(1), match.group(2) is not None
            if called and _plural_marker(name, text[match.end():match.end() + 3]):
                continue
            dotted = "." in name.lstrip(".")
            if name.startswith(".") and not called:
                continue
            if not called and (not dotted or any(len(p) < 2 for p in name.split("."))):
                continue
            if name.lstrip(".") in keyword.kwlist:
                continue
            if name not in names:
                names.append(name)
    return names


@lru_cache(maxsize=1)
def _basic_attributes() -> frozenset[str]:
    return frozenset(a for t in _BASIC_TYPES for a in dir(t))


@lru_cache(maxsize=1024)
def _resolves(dotted: str) -> bool | None:
    """Whether a dotted name rooted at a builtin or a stdlib module exists (None: the root is neither).

    Stdlib modules are imported to look the attribute up, except a few with side effects on import,
    whose names are taken on trust.
    """
    head, *rest = dotted.split(".")
    if hasattr(builtins, head):
        obj: Any = getattr(builtins, head)
    elif head in sys.stdlib_module_names:
        if head in _NO_IMPORT:
            return True
        try:
            obj = importlib.import_module(head)
        except Exception:  # noqa: BLE001 - a module that does not import here still exists
            return True
    else:
        return None
    prefix = head
    for part in rest:
        prefix = f"{prefix}.{part}"
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module(prefix)
        except Exception:  # noqa: BLE001 - not a submodule either
            return False
    return True


def api_known(name: str, source_names: Collection[str]) -> bool:
    """Whether an API name exists: named in the sources, a builtin, a method of str/list/dict/set/tuple/int,
    a stdlib module, or a dotted name that resolves from one of those (`xs.append`: its last part decides)."""
    bare = name.lstrip(".")
    if bare in source_names:
        return True
    if "." not in bare:
        return hasattr(builtins, bare) or bare in _basic_attributes() or bare in sys.stdlib_module_names
    resolved = _resolves(bare)
    if resolved is not None:
        return resolved
    last = bare.rsplit(".", 1)[1]
    return last in source_names or last in _basic_attributes()


def _source_names(source_texts: Sequence[str]) -> set[str]:
    """Every identifier and dotted name in the sources, with each dotted name's parts."""
    names: set[str] = set()
    for text in source_texts:
        for name in _IDENTIFIER.findall(text or ""):
            names.add(name)
            names.update(name.split("."))
    return names


def grounding(ctx: EngineeredContext, retrieved_ids: Collection[str], source_texts: Sequence[str]) -> dict[str, Any]:
    """`citations`: share of cited chunk ids that were retrieved (None when nothing is cited);
    `apis`: share of mentioned API names that exist (see `api_known`; None when none is mentioned);
    `unknown_apis`: the names not found."""
    cited = ctx.cited_chunk_ids()
    retrieved = set(retrieved_ids)
    apis = mentioned_apis(ctx)
    known = _source_names(source_texts)
    unknown = [name for name in apis if not api_known(name, known)]
    return {
        "citations": sum(cid in retrieved for cid in cited) / len(cited) if cited else None,
        "apis": 1.0 - len(unknown) / len(apis) if apis else None,
        "unknown_apis": unknown,
    }


def structure(parsed: ParsedContext) -> dict[str, Any]:
    """Whether the text parsed cleanly, how many known sections it had and how many problems."""
    return {"valid": parsed.valid, "sections": parsed.sections, "issues": len(parsed.issues)}


def context_quality(parsed: ParsedContext, facts: TaskFacts, input_text: str, retrieved_ids: Collection[str],
                    source_texts: Sequence[str], noise_sentences: Sequence[str] = (),
                    count_tokens: Callable[[str], int] | None = None) -> dict[str, Any]:
    """All intrinsic metrics of one parsed context, as one row for `aggregate`.

    Compression is measured on the context's canonical text (`to_text()`) against `input_text`.
    """
    ctx = parsed.context
    preservation = information_preservation(ctx, facts)
    grounded = grounding(ctx, retrieved_ids, source_texts)
    shape = structure(parsed)
    return {
        "preservation": {name: preservation[name] for name in FAMILIES},
        "recall": preservation["recall"],
        "noise_reduction": noise_reduction(ctx, noise_sentences),
        "compression": compression(ctx.to_text(), input_text, count_tokens),
        "grounding_citations": grounded["citations"],
        "grounding_apis": grounded["apis"],
        "unknown_apis": grounded["unknown_apis"],
        "structure_valid": shape["valid"],
        "sections": shape["sections"],
        "parse_issues": shape["issues"],
    }


def _numeric(row: dict[str, Any], prefix: str = "") -> dict[str, float | None]:
    """A row's metrics as numbers (bools as 0/1) or None, nested dicts flattened as `outer.inner`; lists skipped."""
    values: dict[str, float | None] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            values.update(_numeric(value, f"{prefix}{key}."))
        elif value is None or isinstance(value, bool | int | float):
            values[f"{prefix}{key}"] = None if value is None else float(value)
    return values


def aggregate(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per numeric metric across contexts: mean and count of the values that are not None, and a 95%
    bootstrap CI (the retrieval evaluation's: 2000 rounds, fixed seed); mean and CI are None when no row
    has a value. Nested metrics are named `outer.inner` (e.g. `preservation.examples`)."""
    from cet.evaluation.retrieval_eval import _bootstrap_ci  # imported here: it pulls in the retriever

    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in _numeric(row).items():
            column = columns.setdefault(key, [])
            if value is not None:
                column.append(value)
    return {
        key: {"mean": float(np.mean(values)) if values else None, "n": len(values),
              "ci95": _bootstrap_ci(np.array(values)) if values else None}
        for key, values in columns.items()
    }
