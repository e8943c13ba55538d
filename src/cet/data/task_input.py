"""What every condition is given about a task, in one place: the statement, the interface (stub or signature) and
the visible tests (`TaskView`), the hidden task that decides the verdict, and the `CETInput` the CET and the
rule-based template both read (the view and the retrieved chunks, cut to the CET's token budget).

    raw text      = statement + interface + visible tests (uncut): the raw condition's task, and the task part of
                    every other condition's prompt
    CETInput      = the same, cut by tokens with the parts that matter kept, plus the retrieved chunks
    hidden task   = the task with only its hidden tests: every verdict runs on it
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cet.execution.tasks import CodingTask
from cet.execution.test_split import TestSplit, split_tests
from cet.model.prompts import INPUT_TOKENS, CETInput, TokenCounter, approx_tokens, build_input


@dataclass(frozen=True)
class TaskView:
    task: CodingTask
    split: TestSplit
    statement: str  # the statement as given (a degraded or noisy copy for robustness runs)
    interface: str  # the stub / signature, when the statement does not already show it

    @property
    def visible_tests(self) -> str:
        return self.split.visible_text

    @property
    def hidden(self) -> CodingTask:
        return self.split.hidden

    def raw_text(self) -> str:
        """The task as a developer gives it: statement, interface and visible tests, uncut."""
        parts = [self.statement.strip()]
        if self.interface:
            parts.append(f"Interface:\n{self.interface}")
        if self.visible_tests:
            parts.append(f"Visible tests:\n{self.visible_tests}")
        return "\n\n".join(parts)


@dataclass(frozen=True)
class RequestParts:
    """A developer's request read back into the parts a `TaskView` gives the CET (`split_request`)."""

    statement: str
    interface: str = ""
    visible_tests: str = ""
    code: str | None = None
    error: str | None = None


_SECTION = re.compile(r"\n\n(?=(?:Interface|Visible tests|Tests|Code so far|Error report):\n)")
_SECTION_FIELDS = {"Interface": "interface", "Visible tests": "visible_tests", "Tests": "visible_tests",
                   "Code so far": "code", "Error report": "error"}
_INSTRUCTION = re.compile(r"\n*Write the complete [\w+#.-]+ solution in one ```[\w+#.-]* code block\.\s*$")
_FENCE = re.compile(r"^```[\w+#.-]*\n(.*?)\n?```$", re.S)


def split_request(text: str) -> RequestParts:
    """The statement, interface, visible tests, code and error of a request written as `TaskView.raw_text` and
    `render_prompt` write them (what a replay, or a client that follows that shape, sends), so the served CET reads
    the input it was trained on; text without those section headers is all statement."""
    body = _INSTRUCTION.sub("", text.strip())
    body = body.removeprefix("Task:\n").strip()
    statement, *sections = _SECTION.split(body)
    found: dict[str, str] = {}
    for section in sections:
        header, _, content = section.partition(":\n")
        name = _SECTION_FIELDS[header]
        content = content.strip()
        if name == "code" and (fenced := _FENCE.match(content)):
            content = fenced.group(1)
        found[name] = f"{found[name]}\n{content}" if name in found else content
    return RequestParts(statement.strip(), found.get("interface", ""), found.get("visible_tests", ""),
                        found.get("code"), found.get("error"))


def _shown(signature: str, statement: str) -> bool:
    squash = "".join(statement.split())
    return all("".join(line.split()).rstrip(":") in squash for line in signature.splitlines() if line.strip())


def task_view(task: CodingTask, visible: int, statement: str | None = None) -> TaskView:
    """The view of `task` with its first `visible` test cases shown (`execution.test_split`); `statement`
    replaces the task's own (a degraded copy) without changing the tests."""
    text = task.statement if statement is None else statement
    signature = (task.signature or "").strip()
    interface = signature if signature and not _shown(signature, text) else ""
    return TaskView(task, split_tests(task, visible), text, interface)


def cet_input(view: TaskView, hits: Sequence[Any] = (), *, code: str | None = None, error: str | None = None,
              budget: int = INPUT_TOKENS, count: TokenCounter = approx_tokens) -> CETInput:
    """What the CET (and the template) read for this view: cut to `budget` tokens, chunks included."""
    return build_input(view.statement, hits, interface=view.interface, visible_tests=view.visible_tests,
                       code=code, error=error, budget=budget, count=count)


_LITERAL = re.compile(r"'[^'\n]{1,80}'|\"[^\"\n]{1,80}\"|(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")


def hidden_strings(view: TaskView) -> list[str]:
    """The literals (strings and numbers) of the hidden tests, most frequent first: labels that rank which input
    facts a training target puts first (gold_context's `important`). They never become target text, and they are
    read here by a plain scan, apart from the evaluation's own extractor of hidden-test facts."""
    counts = Counter(m.strip("'\"") for m in _LITERAL.findall(view.hidden.tests))
    return [value for value, _ in counts.most_common() if value.strip()]
