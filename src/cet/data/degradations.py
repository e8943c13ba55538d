"""Degradations: seeded, pure rewrites that turn a precise requirement into the kind of vague, noisy, partial or
jumbled text a user actually writes, so the model learns to recover the precise context from it.

Every function takes its randomness from the `random.Random` it is given, so the same seed gives the same text,
and none returns an empty string for non-empty input.

The "noise" kind inserts developer chatter from one of two disjoint sets: `TRAIN_CHATTER` (the default, what Phase 2
trains the CET to drop) and `EVAL_CHATTER` (for the evaluation's noisy copies, so the noise-reduction metric is
measured on sentences the CET never saw in training). The sets share no sentence and no near-duplicate (content-word
Jaccard similarity < 0.5 between any two across the sets), and differ in topic, not only in wording.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

DEGRADATIONS: tuple[str, ...] = ("structure", "noise", "fragment", "ambiguous", "scramble")

TRAIN_CHATTER: tuple[str, ...] = (
    "I think this came up in the last sprint.",
    "Not sure if this matters, but the CI was flaky yesterday.",
    "Someone on the team mentioned this a while ago.",
    "We might revisit the naming later.",
    "This is kind of urgent, the demo is on Friday.",
    "I copied part of this from an old ticket.",
    "Let me know if anything is unclear.",
    "The previous version worked fine on my laptop.",
    "I haven't had time to look at the logs yet.",
    "Maybe there is a library for this already.",
)

EVAL_CHATTER: tuple[str, ...] = (
    "Sorry for the wall of text, I'm typing this between meetings.",
    "Our staging server has been down since Tuesday morning.",
    "Product wants this behind a feature flag eventually.",
    "I asked about this on the forum but nobody answered.",
    "My manager keeps asking me for an estimate.",
    "The original author left the company last spring.",
    "Ignore the weird indentation, my editor mangled it.",
    "We are moving everything to a new database next quarter.",
    "QA reported something similar in the mobile app.",
    "I'm still new to this codebase, so bear with me.",
    "Honestly the documentation here is pretty thin.",
    "The customer who asked for this is on holiday until Monday.",
    "There's a half-finished branch somewhere that tried this.",
    "Code review comments tend to pile up on changes like this.",
    "Apologies if this is a duplicate of an earlier request.",
    "I'll be offline tomorrow afternoon for a dentist appointment.",
)

CHATTER = TRAIN_CHATTER  # the name Phase 2 and older code import; the training set

FENCE = re.compile(r"^\s*(```|~~~)")
SENTENCE_END = re.compile(r"(?<=[.?!])\s+(?=\S)")
HEADING_MARK = re.compile(r"^#{1,6}\s+")
BULLET_MARK = re.compile(r"^(?:[-*+]|\d+[.)])\s+")
QUOTE_MARK = re.compile(r"^>(?!>)\s?")
DOCTEST_PROMPT = re.compile(r"^(?:>>>|\.\.\.)(?:\s|$)")
TYPO_WORD = re.compile(r"(?<![\w`(.])[A-Za-z]{5,}(?![\w`(])")
BACKTICK_SPAN = re.compile(r"`[^`\n]+`")
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w]|\.\d)")
SCALAR_TYPES = ("int", "str", "float", "bool", "integer", "string")
CONTAINER_TYPES = ("list", "dict", "tuple", "set", "array")
TYPE_NAME = re.compile(
    r"(?<![\w.])(" + "|".join(SCALAR_TYPES + CONTAINER_TYPES) + r")(s?)(?![\w(]|\.\w)", re.IGNORECASE
)
HEDGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bmust\b"), "should"),
    (re.compile(r"\balways\b"), "usually"),
    (re.compile(r"\bexactly\b"), "roughly"),
)


@dataclass(frozen=True)
class Unit:
    """One sentence of prose or one line of code, with the 0-based line it came from."""

    text: str
    line: int
    code: bool


def is_code_line(line: str) -> bool:
    """A line that reads as code: indented, or containing `def `, `return` or a call parenthesis."""
    return line[:1] in (" ", "\t") or "def " in line or "return" in line or "(" in line


def split_units(text: str) -> list[Unit]:
    """Lines, then prose lines into sentences; code-like lines and fenced code stay whole lines."""
    units: list[Unit] = []
    in_fence = False
    for number, line in enumerate(text.splitlines()):
        if FENCE.match(line):
            in_fence = not in_fence
            units.append(Unit(line.strip(), number, True))
            continue
        if not line.strip():
            continue
        if in_fence or is_code_line(line):
            units.append(Unit(line.rstrip(), number, True))
            continue
        marker = BULLET_MARK.match(line.strip())
        head = marker.group(0) if marker else ""
        parts = SENTENCE_END.split(line.strip()[len(head) :]) or [""]
        parts[0] = (head + parts[0]).strip()
        units.extend(Unit(part, number, False) for part in parts if part)
    return units


def join_units(units: list[Unit], lines: list[str]) -> str:
    """Units back into text: prose from one line joined by spaces, otherwise newlines (two across a blank line)."""
    if not units:
        return ""
    out = [units[0].text]
    for before, after in zip(units, units[1:], strict=False):
        if before.line == after.line and not (before.code or after.code):
            out.append(" ")
        elif before.line < after.line and any(not line.strip() for line in lines[before.line + 1 : after.line]):
            out.append("\n\n")
        else:
            out.append("\n")
        out.append(after.text)
    return "".join(out)


def remove_structure(text: str, rng: random.Random) -> str:
    """One run-on paragraph: no heading, bullet, quote or fence markers, no doctest prompts, no blank lines."""
    del rng  # deterministic without randomness; kept for the common signature
    words: list[str] = []
    in_fence = False
    for raw in text.splitlines():
        if FENCE.match(raw):
            in_fence = not in_fence
            continue
        line = raw.strip()
        if not in_fence:
            line = HEADING_MARK.sub("", line)
            line = QUOTE_MARK.sub("", line)
            line = BULLET_MARK.sub("", line)
        line = DOCTEST_PROMPT.sub("", line).strip()
        if line:
            words.append(line)
    return " ".join(" ".join(words).split())


def swap_letters(word: str, rng: random.Random) -> str:
    """The word with two adjacent, different letters swapped (unchanged if all its letters are equal)."""
    spots = [i for i in range(len(word) - 1) if word[i] != word[i + 1]]
    if not spots:
        return word
    i = rng.choice(spots)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def add_typos(sentence: str, rng: random.Random, rate: float = 0.05) -> str:
    """The sentence with about `rate` of its plain words longer than four letters given a swapped-letter typo."""
    return TYPO_WORD.sub(lambda m: swap_letters(m.group(0), rng) if rng.random() < rate else m.group(0), sentence)


def add_noise(text: str, rng: random.Random, chatter: Sequence[str] = TRAIN_CHATTER) -> str:
    """One to three irrelevant sentences from `chatter` (the training set unless told) at sentence boundaries
    (never inside code), plus a few typos in prose. Raises ValueError for an empty `chatter`."""
    if not chatter:
        raise ValueError("chatter must hold at least one sentence")
    units = [unit if unit.code else Unit(add_typos(unit.text, rng), unit.line, False) for unit in split_units(text)]
    if not units:
        return text
    for sentence in rng.sample(list(chatter), rng.randint(1, min(3, len(chatter)))):
        spots = [i for i in range(len(units) + 1) if not (0 < i < len(units) and units[i - 1].code and units[i].code)]
        at = rng.choice(spots)
        line = units[at - 1].line if at > 0 else units[0].line
        units.insert(at, Unit(sentence, line, False))
    return join_units(units, text.splitlines())


def truncate_words(sentence: str, rng: random.Random) -> str:
    """The first 50-70% of the sentence's words (at least one)."""
    words = sentence.split()
    keep = max(1, min(len(words) - 1, round(len(words) * rng.uniform(0.5, 0.7))))
    return " ".join(words[:keep])


def fragment(text: str, rng: random.Random) -> str:
    """A random 50-70% of the sentences and lines, in their original order (at least one)."""
    units = split_units(text)
    if len(units) < 2:
        return truncate_words(units[0].text, rng) if units else text
    keep = max(1, min(len(units) - 1, round(len(units) * rng.uniform(0.5, 0.7))))
    chosen = sorted(rng.sample(range(len(units)), keep))
    return join_units([units[i] for i in chosen], text.splitlines())


def vague_type(match: re.Match[str], rng: random.Random) -> str:
    """A vague word for the matched type name, keeping its plural and capital."""
    name, plural = match.group(1), match.group(2)
    word = "collection" if name.lower() in CONTAINER_TYPES else rng.choice(("value", "thing"))
    word += plural
    return word.capitalize() if name[0].isupper() else word


def vague_prose(segment: str, rng: random.Random) -> str:
    """The segment with numbers made "some"/"a few", type names made vague and firm words hedged."""
    segment = NUMBER.sub(lambda _: rng.choice(("some", "a few")), segment)
    segment = TYPE_NAME.sub(lambda m: vague_type(m, rng), segment)
    for pattern, hedge in HEDGES:
        segment = pattern.sub(hedge, segment)
    return segment


def vague_line(line: str, rng: random.Random, drop_rate: float = 0.5) -> str:
    """The line made vague outside backtick spans (and its list marker); each span becomes "it" with probability
    `drop_rate`."""
    marker = BULLET_MARK.match(line.lstrip())
    last = len(line) - len(line.lstrip()) + (marker.end() if marker else 0)
    out: list[str] = [line[:last]]
    for span in BACKTICK_SPAN.finditer(line):
        out.append(vague_prose(line[last : span.start()], rng))
        out.append("it" if rng.random() < drop_rate else span.group(0))
        last = span.end()
    out.append(vague_prose(line[last:], rng))
    return "".join(out)


def make_ambiguous(text: str, rng: random.Random) -> str:
    """Prose made vague (numbers, type names, backticked identifiers); code is touched only if prose has nothing."""
    lines = text.splitlines()
    code_lines = {unit.line for unit in split_units(text) if unit.code}
    result = [line if i in code_lines else vague_line(line, rng) for i, line in enumerate(lines)]
    if result == lines:
        result = [vague_line(line, rng, drop_rate=1.0) for line in lines]
    if result == lines:
        return "Something like this: " + text.lstrip()
    return "\n".join(result) + ("\n" if text.endswith("\n") else "")


def scramble(text: str, rng: random.Random, tries: int = 10) -> str:
    """The sentences and lines in a shuffled order, different from the original whenever the units differ."""
    units = split_units(text)
    if len(units) < 2:
        return text
    texts = [unit.text for unit in units]
    order = list(range(len(units)))
    for _ in range(tries):
        rng.shuffle(order)
        if [texts[i] for i in order] != texts:
            break
    else:
        order = list(range(len(units)))
        pairs = [(i, j) for i in order for j in order if i < j and texts[i] != texts[j]]
        if pairs:
            i, j = rng.choice(pairs)
            order[i], order[j] = j, i
    return join_units([units[i] for i in order], text.splitlines())


KINDS: dict[str, Callable[[str, random.Random], str]] = {
    "structure": remove_structure,
    "noise": add_noise,
    "fragment": fragment,
    "ambiguous": make_ambiguous,
    "scramble": scramble,
}


def degrade(text: str, kind: str, rng: random.Random, *, chatter: Sequence[str] = TRAIN_CHATTER) -> str:
    """The text degraded by one kind from `DEGRADATIONS`; the input itself if the result would be empty.
    `chatter` is the sentence set the "noise" kind draws from (`TRAIN_CHATTER` unless told; the evaluation passes
    `EVAL_CHATTER`); the other kinds ignore it."""
    if kind not in KINDS:
        raise ValueError(f"unknown degradation {kind!r}; known: {', '.join(DEGRADATIONS)}")
    result = add_noise(text, rng, chatter) if kind == "noise" else KINDS[kind](text, rng)
    return result if result.strip() else text


def degrade_randomly(text: str, rng: random.Random, n_kinds: int = 2, *,
                     chatter: Sequence[str] = TRAIN_CHATTER) -> tuple[str, list[str]]:
    """The text degraded by `n_kinds` distinct random kinds in sequence, and those kinds in the order applied
    (`chatter` as for `degrade`)."""
    if not 1 <= n_kinds <= len(DEGRADATIONS):
        raise ValueError(f"n_kinds must be between 1 and {len(DEGRADATIONS)}, got {n_kinds}")
    kinds = rng.sample(DEGRADATIONS, n_kinds)
    for kind in kinds:
        text = degrade(text, kind, rng, chatter=chatter)
    return text, kinds
