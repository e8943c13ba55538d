"""Decoding constrained to the context grammar: whatever the CET's weights, its reply is a well-formed context.

`ContextGrammar` is the one spec of what the CET may write for one input (see `cet.model.context` for the text
form): which sections are allowed (task contexts: goal, interface, examples, constraints, knowledge, pitfalls;
bug reports add failure, suspects, checks), the retrieved chunk ids that Knowledge lines may cite (as literal
alternatives; no Knowledge section when nothing was retrieved), optional per-section *choices* (every bullet, or
line, of that section is then exactly one of the given strings: signatures and examples copied from the input;
for Knowledge, `[chunk-id] quote` lines citing retrieved chunks), at most `max_bullets` bullets a section and
`max_line_chars` characters a free line. Sections come in the order of `FIELDS`, each optional, at least one, or
the reply is `NOTHING_TO_ADD` alone (an empty context on purpose; `nothing_to_add=False` rules it out);
Goal is one line; Failure up to `max_failure_lines` lines of at most `max_failure_chars` (a failure report's lines
are long and indented, as the gold debugging contexts keep them). A free line starts with neither a blank nor
'#' (a failure line may be indented, then the same) and holds no line break of any kind (`str.splitlines` splits
on more than "\\n"), so it never reads as a heading.
Every reply the grammar admits, and every prefix of one cut at a line end with a section body in it
(`cut_to_lines`), is read by `parse_context` without an issue.

`to_gbnf()` writes it as llama.cpp's GBNF (the `grammar` field of a request); `to_lark()` writes the same rules in
llguidance's Lark, which the transformers path enforces (`GrammarLogitsProcessor`): llguidance (a Rust library
that llama.cpp, vLLM and SGLang use too) computes, per step, which of the tokenizer's tokens keep the reply inside
the grammar.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cet.errors import CetError
from cet.model.context import FIELDS, HEADINGS, LIST_FIELDS, NOTHING_TO_ADD

TASK_SECTIONS = ("goal", "interface", "examples", "constraints", "knowledge", "pitfalls")
BUG_SECTIONS = (*TASK_SECTIONS, "failure", "suspects", "checks")
# str.splitlines splits on all of these: a free line may hold none of them (or it would become two lines)
LINE_BREAKS = "".join(ch for ch in map(chr, range(0x3001)) if len(f"a{ch}b".splitlines()) == 2)
# what `\s` matches at the start of a line (blanks then '#' would read as a heading): no free line starts with one
_BLANKS = "".join(ch for ch in map(chr, range(0x3001)) if ch.isspace() and ch not in LINE_BREAKS)
FAILURE_INDENT = 12  # spaces a failure line may start with (traceback lines are indented)
_CHUNK_ID = re.compile(r"^[^\]\s]+$")  # what parse_context reads inside `[...]`
_KNOWLEDGE = re.compile(r"^\[([^\]\s]+)\] \S")  # a knowledge choice: `[chunk-id] quote`


@dataclass
class ContextGrammar:
    """What the CET may write for one input (see the module docstring): `to_gbnf()` for llama.cpp, `to_lark()` for
    llguidance."""

    sections: Sequence[str] = TASK_SECTIONS
    chunk_ids: Sequence[str] = ()
    choices: Mapping[str, Sequence[str]] = field(default_factory=dict)
    max_bullets: int = 4
    max_line_chars: int = 200  # the gold contexts' goals are clipped at 200 (data/gold_context.py)
    max_failure_lines: int = 12
    max_failure_chars: int = 600  # gold_context.FAILURE_CHARS
    nothing_to_add: bool = True  # the reply may be NOTHING_TO_ADD alone

    def __post_init__(self) -> None:
        unknown = [s for s in [*self.sections, *self.choices] if s not in FIELDS]
        if unknown:
            raise ValueError(f"unknown context sections {unknown} (known: {', '.join(FIELDS)})")
        if min(self.max_bullets, self.max_line_chars, self.max_failure_lines, self.max_failure_chars) < 1:
            raise ValueError("max_bullets, max_line_chars, max_failure_lines and max_failure_chars must be at least 1")
        self.chunk_ids = tuple(dict.fromkeys(c for c in self.chunk_ids if _CHUNK_ID.match(c)))
        self.choices = {name: _clean_choices(values, single_line=name not in LIST_FIELDS)
                        for name, values in self.choices.items()}
        if "knowledge" in self.choices:  # `[chunk-id] quote` lines, citing retrieved chunks only
            self.choices["knowledge"] = [c for c in self.choices["knowledge"] if _cites(c, self.chunk_ids)]
        wanted = set(self.sections)
        self.sections = tuple(
            name for name in FIELDS if name in wanted
            and not (name == "knowledge" and not self.chunk_ids)  # nothing retrieved: nothing to cite
            and not (name in self.choices and not self.choices[name]))  # choices given, none usable
        if not self.sections:
            raise ValueError("the context grammar allows no section")

    @classmethod
    def for_input(cls, hits: Iterable[Any] = (), *, bug_report: bool = False,
                  choices: Mapping[str, Sequence[str]] | None = None, **limits: Any) -> ContextGrammar:
        """The grammar for one CET input: its retrieved hits (their ids may be cited), whether it is a bug report
        (code or an error report given: failure, suspects and checks are allowed), per-section choices."""
        limits.setdefault("nothing_to_add", not bug_report)  # a bug report or partial code always needs a context
        return cls(BUG_SECTIONS if bug_report else TASK_SECTIONS, [h.id for h in hits], dict(choices or {}),
                   **limits)

    def to_gbnf(self) -> str:
        """llama.cpp's GBNF for this grammar."""
        return "".join(f"{name} ::= {body}\n" for name, body in self._rules(lark=False))

    def to_lark(self) -> str:
        """The same rules in llguidance's Lark (the structure as rules, each line's text one regex terminal), written
        here rather than converted by llguidance's GBNF reader, which folds the whole grammar into terminals and
        misreads short escapes like \\u0085 (tests check the two forms accept and refuse the same replies)."""
        return "%llguidance {}\n" + "".join(f"{name}: {body}\n" for name, body in self._rules(lark=True))

    def _rules(self, lark: bool) -> list[tuple[str, str]]:
        """(name, body) of every rule, in GBNF or Lark spelling (the bodies differ only in names)."""

        def rule(name: str) -> str:  # structure: GBNF names, or Lark rules (lower case, no '-')
            return name.replace("-", "_") if lark else name

        def terminal(name: str) -> str:  # one lexeme: a Lark terminal (upper case)
            return name.replace("-", "_").upper() if lark else name

        text, chunk_id = terminal("text"), terminal("chunk-id")
        names = [rule(s) for s in self.sections]
        alternatives = [" ".join([names[i], *(f"{n}?" for n in names[i + 1:])]) for i in range(len(names))]
        if self.nothing_to_add:
            alternatives.append(_literal(f"{NOTHING_TO_ADD}\n"))
        rules = [("start" if lark else "root", " | ".join(alternatives))]
        for name in self.sections:
            heading = _literal(f"## {HEADINGS[name]}\n")
            options = self.choices.get(name)
            choice = terminal(f"{name}-choice")
            line = choice if options is not None else text
            if name == "goal":
                rules.append((rule(name), f'{heading} {line} "\\n"'))
            elif name == "failure":
                rules.append((rule(name), f"{heading} {rule(name + '-line')}{{1,{self.max_failure_lines}}}"))
                failure_text = terminal("failure-text") if options is None else line
                rules.append((rule(name + "-line"), f'{failure_text} "\\n"'))
            else:
                rules.append((rule(name), f"{heading} {rule(name + '-item')}{{1,{self.max_bullets}}}"))
                if name == "knowledge" and options is None:
                    rules.append((rule(name + "-item"), f'"- [" {chunk_id} "] " {text} "\\n"'))
                else:
                    rules.append((rule(name + "-item"), f'"- " {line} "\\n"'))
            if options is not None:
                rules.append((choice, " | ".join(_literal(o) for o in options)))
        if "knowledge" in self.sections and "knowledge" not in self.choices:
            rules.append((chunk_id, " | ".join(_literal(c) for c in self.chunk_ids)))
        first = f"[^{_char_class(LINE_BREAKS + _BLANKS + '#')}]"
        rest = f"[^{_char_class(LINE_BREAKS)}]"
        failure = "failure" in self.sections and "failure" not in self.choices
        indent, failure_rest = f"[ ]{{0,{FAILURE_INDENT}}}", f"{{0,{self.max_failure_chars - 1}}}"
        if lark:
            rules.append((text, f"/{first}{rest}{{0,{self.max_line_chars - 1}}}/"))
            if failure:
                rules.append((terminal("failure-text"), f"/{indent}{first}{rest}{failure_rest}/"))
        else:
            rules.append((text, f"first rest{{0,{self.max_line_chars - 1}}}"))
            if failure:
                rules.append(("failure-text", f"{indent} first rest{failure_rest}"))
            rules += [("first", first), ("rest", rest)]
        return rules


def _cites(choice: str, chunk_ids: Sequence[str]) -> bool:
    match = _KNOWLEDGE.match(choice)
    return bool(match) and match.group(1) in chunk_ids


def _clean_choices(values: Sequence[str], single_line: bool) -> list[str]:
    """Choices as one-line strings (blanks collapsed, as parse_context strips them), without repeats; a one-line
    section (goal, failure) cannot take a line that starts with '#' (it would read as a heading)."""
    out = []
    for value in values:
        text = " ".join(str(value).split())
        if text and not (single_line and text.startswith("#")):
            out.append(text)
    return list(dict.fromkeys(out))


def _literal(text: str) -> str:
    """A string literal, for GBNF and Lark alike (escapes: \\n \\\\ \\" and \\xNN / \\uNNNN)."""
    return '"' + "".join(_escape(ch) for ch in text) + '"'


def _escape(ch: str) -> str:
    if ch in '"\\':
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    return ch if ch.isprintable() else _hex(ch)


def _char_class(chars: str) -> str:
    """Characters for inside `[...]`: printable ASCII as is (but for ] \\ ^ -), the rest as hex escapes."""
    return "".join(ch if " " <= ch <= "~" and ch not in "]\\^-" else _hex(ch) for ch in chars)


def _hex(ch: str) -> str:
    # \xNN below 0x100, \uNNNN above: what both llama.cpp's GBNF and llguidance's Lark (Rust regex) read
    code = ord(ch)
    return f"\\x{code:02X}" if code < 0x100 else f"\\u{code:04X}" if code < 0x10000 else f"\\U{code:08X}"


# ----------------------------------------------------------------------------------- transformers (llguidance)
_LOCK = threading.Lock()
_TOKENIZERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_COMPILED: dict[str, str] = {}


def _llguidance() -> Any:
    try:
        import llguidance
        import llguidance.hf  # noqa: F401 - from_tokenizer
    except ImportError as e:
        raise CetError(f"constrained decoding with transformers needs llguidance ({e}): pip install -r "
                       "requirements.txt, or set cet.constrained: false") from None
    return llguidance


def ll_tokenizer(tokenizer: Any) -> Any:
    """llguidance's view of a Hugging Face (fast) tokenizer, built once per tokenizer (0.3-2 s)."""
    llguidance = _llguidance()
    with _LOCK:
        cached = _TOKENIZERS.get(tokenizer)
    if cached is None:
        try:
            cached = llguidance.hf.from_tokenizer(tokenizer)
        except ValueError as e:
            raise CetError(f"constrained decoding needs a fast tokenizer: {e}") from None
        with _LOCK:
            _TOKENIZERS[tokenizer] = cached
    return cached


def compiled(lark: str) -> str:
    """A Lark grammar (`ContextGrammar.to_lark()`) as an llguidance grammar (cached)."""
    llguidance = _llguidance()
    with _LOCK:
        grammar = _COMPILED.get(lark)
    if grammar is None:
        grammar = llguidance.grammar_from("lark", lark)
        with _LOCK:
            if len(_COMPILED) > 256:
                _COMPILED.clear()
            _COMPILED[lark] = grammar
    return grammar


class GrammarLogitsProcessor:
    """A transformers logits processor that keeps each row of a batch inside its own grammar (None: that row is
    free). Greedy decoding through it is as deterministic as without it. Rows whose matcher fails (which the masks
    should prevent) are listed in `errors`, by row."""

    def __init__(self, tokenizer: Any, grammars: Sequence[ContextGrammar | None]) -> None:
        import numpy as np

        llguidance = _llguidance()
        self._np = np
        lltok = ll_tokenizer(tokenizer)
        self.vocab = lltok.vocab_size
        self.matchers: list[Any] = []
        self.errors: dict[int, str] = {}
        for grammar in grammars:
            matcher = None if grammar is None else \
                llguidance.LLMatcher(lltok, compiled(grammar.to_lark()), log_level=0)
            if matcher is not None and matcher.is_error():
                raise CetError(f"the context grammar is rejected by llguidance: {matcher.get_error()}")
            self.matchers.append(matcher)
        self._started = False

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        np = self._np
        for row, matcher in enumerate(self.matchers):
            if matcher is None or row in self.errors:
                continue
            if self._started and not matcher.is_stopped():
                token = int(input_ids[row, -1])
                if not matcher.consume_token(token):
                    self.errors[row] = f"token {token} left the grammar: {matcher.get_error()}"
                    continue
            if matcher.is_stopped() and not matcher.is_error():
                continue  # done (it consumed the end of sequence): transformers pads this row from now on
            bits = np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8)
            allowed = np.unpackbits(bits, bitorder="little")[:self.vocab].astype(bool)
            if not allowed.any():
                self.errors[row] = f"no token can continue the grammar: {matcher.get_error() or 'dead end'}"
                continue
            row_scores = scores[row]
            row_scores[len(allowed):] = float("-inf")  # ids past the tokenizer's vocabulary (padding rows)
            row_scores[:len(allowed)].masked_fill_(~torch.from_numpy(allowed).to(scores.device), float("-inf"))
        self._started = True
        return scores


def cut_to_lines(text: str) -> str:
    """A reply cut short (the token limit came first) back to its last complete line, without a heading left with
    nothing under it: a prefix the grammar's sections read whole."""
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]  # the unfinished last line
    lines = [line for line in lines if line != ""]
    while lines and lines[-1].startswith("## "):
        lines.pop()
    return "\n".join(lines) + ("\n" if lines else "")
