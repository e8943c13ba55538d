"""The jury: a panel of LLM judges scores a response on a rubric; the sandbox, when it can, has the last word.

Each judge is asked for JSON of `JUDGE_SCHEMA` (structured output through `GenerationParams.json_schema`):
the four rubric criteria scored 1–5 (`correctness`, `completeness`, `grounding` in the retrieved context,
`idiom`) and a `verdict`, "pass" or "fail", plus an optional one-sentence `rationale`. The reply is read from
`Completion.parsed`, else parsed from the text (a ```json fence or the first JSON object in it). A judge
whose call fails (any `LLMError`, the budget included) or whose reply is not that JSON **abstains**: its vote
records why, and it counts in no verdict, score or agreement.

`Jury.evaluate(question, response, context_chunks, task)` → `JuryVerdict`:

- `panel_verdict`: the majority of the non-abstaining judges; a tie is "fail" (flagged `tie`): a response
  the panel does not agree passes, does not pass. None when every judge abstained.
- `mean_scores`: per criterion, over the non-abstaining judges.
- `agreement`: the share of non-abstaining judges that voted with the majority; `pairwise_agreement`: the
  share of agreeing judge pairs (Fleiss' P_i of this item); `high_consensus`: at least 2 judges voted and
  more than 80% of them agree.
- With a verifier (`ExecutionVerifier(executor)`), a task with tests, and code in the response (```python
  fences, else the whole response when it parses as Python; ```javascript fences for JavaScript tasks), the
  sandbox runs the task's tests on that code and votes too: its verdict is ground truth, so `verdict` is the
  verifier's and the panel's is kept beside it (`panel_verdict`, `panel_correct`). Without code the
  verifier abstains; when the sandbox itself cannot run, it abstains with the reason and the panel decides.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from cet.llm.agreement import agreement_report, item_agreement
from cet.llm.base import GenerationParams, Message
from cet.llm.team import Request, Team, TeamResult

if TYPE_CHECKING:
    from cet.execution.executor import Executor
    from cet.execution.tasks import CodingTask

CRITERIA = ("correctness", "completeness", "grounding", "idiom")
CRITERIA_TEXT = {
    "correctness": "is the answer (and its code) right: would it work and does it answer what was asked?",
    "completeness": "does it cover everything the question asks, edge cases included?",
    "grounding": "is it consistent with the retrieved context, without inventing APIs or facts it contradicts?",
    "idiom": "is the code clear, idiomatic Python (or idiomatic for its language)?",
}
Verdict = Literal["pass", "fail"]
HIGH_CONSENSUS = 0.8

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **{name: {"type": "integer", "minimum": 1, "maximum": 5} for name in CRITERIA},
        "verdict": {"type": "string", "enum": ["pass", "fail"]},
        "rationale": {"type": "string", "maxLength": 300},
    },
    "required": [*CRITERIA, "verdict"],
    "additionalProperties": False,
}

SYSTEM_PROMPT = (
    "You are a strict reviewer of answers to programming questions. You score an answer on a rubric and "
    "decide whether it passes. You reply with one JSON object and nothing else."
)


@dataclass
class JudgeVote:
    judge: str  # the model's name, or "sandbox" for the verifier
    kind: Literal["model", "verifier"] = "model"
    verdict: Verdict | None = None
    scores: dict[str, int] = field(default_factory=dict)
    rationale: str | None = None
    abstained: bool = False
    reason: str | None = None  # why it abstained
    raw: str | None = None  # the judge's reply (cut to 2,000 characters), for abstentions and audits
    cached: bool = False
    latency_s: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # the verifier's exit reason, test counts, reward

    @classmethod
    def abstention(cls, judge: str, reason: str, kind: Literal["model", "verifier"] = "model",
                   raw: str | None = None, **extra: Any) -> JudgeVote:
        return cls(judge=judge, kind=kind, abstained=True, reason=reason, raw=_cut(raw), **extra)


@dataclass
class JuryVerdict:
    verdict: Verdict | None  # the final verdict: the verifier's when it voted, else the panel's
    panel_verdict: Verdict | None
    votes: list[JudgeVote]  # the panel, in the order of the judges
    verifier: JudgeVote | None = None
    mean_scores: dict[str, float | None] = field(default_factory=dict)
    agreement: float | None = None
    pairwise_agreement: float | None = None
    high_consensus: bool = False
    tie: bool = False
    abstentions: int = 0
    code: str | None = None  # the code taken from the response, when any

    @property
    def source(self) -> Literal["verifier", "panel", "none"]:
        if self.verifier is not None and not self.verifier.abstained:
            return "verifier"
        return "panel" if self.panel_verdict is not None else "none"

    @property
    def panel_correct(self) -> bool | None:
        """Whether the panel agreed with the sandbox (None without both)."""
        if self.source != "verifier" or self.panel_verdict is None:
            return None
        return self.panel_verdict == self.verdict

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "source": self.source, "panel_correct": self.panel_correct}


# ---------------------------------------------------------------------------------------------- parsing replies
def parse_judgement(parsed: Any, text: str) -> dict[str, Any]:
    """The judge's scores and verdict from the structured value (or the text); ValueError saying what is wrong."""
    data = parsed if isinstance(parsed, dict) else _json_object(text)
    if not isinstance(data, dict):
        raise ValueError("no JSON object in the reply")
    lowered = {str(k).strip().lower(): v for k, v in data.items()}
    scores = {}
    for name in CRITERIA:
        if name not in lowered:
            raise ValueError(f"missing {name!r}")
        scores[name] = _score(name, lowered[name])
    verdict = _verdict(lowered.get("verdict"))
    rationale = lowered.get("rationale")
    return {"scores": scores, "verdict": verdict, "rationale": str(rationale)[:300] if rationale else None}


def _json_object(text: str) -> Any:
    text = text or ""
    fenced = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.DOTALL)
    candidates = [fenced.group(1)] if fenced else []
    decoder = json.JSONDecoder()
    for start in [m.start() for m in re.finditer(r"\{", text)][:20]:
        candidates.append(text[start:])
    for candidate in candidates:
        try:
            value, _ = decoder.raw_decode(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _score(name: str, value: Any) -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.0+)?\s*(/\s*5)?\s*", value):
        value = float(value.split("/")[0])
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError(f"{name} is {value!r}, not an integer 1-5")
    if not 1 <= int(value) <= 5:
        raise ValueError(f"{name} is {int(value)}, outside 1-5")
    return int(value)


def _verdict(value: Any) -> Verdict:
    if isinstance(value, bool):
        return "pass" if value else "fail"
    word = str(value).strip().lower() if value is not None else ""
    if word in ("pass", "passed", "yes", "accept", "true"):
        return "pass"
    if word in ("fail", "failed", "no", "reject", "false"):
        return "fail"
    raise ValueError(f"verdict is {value!r}, not 'pass' or 'fail'")


def _cut(text: str | None, limit: int = 2000) -> str | None:
    return text if text is None or len(text) <= limit else text[:limit] + "…"


# --------------------------------------------------------------------------------------------- code extraction
# a block runs to its closing fence, or to the end of a reply cut off at max_tokens
_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.DOTALL | re.MULTILINE)
_TAGS = {"python": {"python", "py", "python3", "py3"}, "javascript": {"javascript", "js", "node", "mjs", "cjs"}}


def extract_code(text: str, entry_point: str | None = None, language: str = "python", *,
                 repair: bool = True) -> str | None:
    """The code in a response: its ```python blocks (untagged blocks when there are none), joined when they
    parse together, else the longest that parses (preferring one defining `entry_point`), else the first;
    without fences, the whole text when it parses as Python with at least one real statement.
    With `repair` (the held-out evaluation, every condition alike) a block that does not parse is `salvage`d and
    the demonstration code after a solution dropped (`without_usage`); without it (the jury, whose verdict
    accepts the reply's text as a training target) the code is judged as written.
    For `language="javascript"`: its ```javascript/js blocks (else untagged ones) joined; no parsing."""
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(text or "")]
    tags = _TAGS.get(language, {language})
    chosen = [body for tag, body in blocks if tag in tags] or [body for tag, body in blocks if not tag]
    chosen = [body.strip("\n") for body in chosen if body.strip()]
    if chosen and language != "python":
        return "\n\n".join(chosen) + "\n"
    if language != "python":
        return None
    def finish(code: str) -> str:
        return (without_usage(code, entry_point) if repair else code) + "\n"

    if chosen:
        if repair:
            chosen = [salvage(body, entry_point) for body in chosen]
        joined = "\n\n".join(chosen)
        if _parses(joined) and (entry_point is None or len(chosen) == 1 or _defines(joined, entry_point)):
            return finish(joined)
        parsing = [body for body in chosen if _parses(body)]
        if entry_point:
            parsing = [body for body in parsing if _defines(body, entry_point)] or parsing
        return finish(max(parsing, key=len) if parsing else chosen[0])
    stripped = (text or "").strip()
    if stripped and _looks_like_code(stripped):
        return finish(stripped)
    return None


# a line that opens a top-level statement (not a clause of the one before it: else, except, finally, ...)
_TOP_LEVEL = re.compile(r"^(?![ \t#)\]}]|else\b|elif\b|except\b|finally\b|case\b)\S")


def salvage(code: str, entry_point: str | None = None) -> str:
    """A block that does not parse (a reply cut off at max_tokens, mostly in the examples or tests it writes after
    its solution) cut back to its longest prefix of whole top-level statements that parses and still defines
    `entry_point`; the block unchanged when none does (the sandbox then reports the syntax error)."""
    if _parses(code):
        return code
    lines = code.splitlines()
    for end in range(len(lines) - 1, 0, -1):
        if not _TOP_LEVEL.match(lines[end]):
            continue
        prefix = "\n".join(lines[:end]).rstrip()
        if prefix and _parses(prefix) and (entry_point is None or _defines(prefix, entry_point)):
            return prefix
    return code


def without_usage(code: str, entry_point: str | None) -> str:
    """Code meant to be imported by tests, without the demonstration a reply adds after its solution: module-level
    asserts, bare calls and prints, `if __name__ == "__main__":` blocks and loops, which run at import and crash it
    when they fail (the model's own wrong example is not the tests' verdict). Only when `entry_point` is given
    and still defined afterwards; everything else (imports, definitions, assignments) is kept as written."""
    if not entry_point:
        return code
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code
    definitions = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    defined = {node.name for node in tree.body if isinstance(node, definitions)}
    demo = [node for node in tree.body if _is_demonstration(node, defined)]
    if not demo:
        return code
    lines = code.splitlines()
    drop = {i for node in demo for i in range(node.lineno - 1, (node.end_lineno or node.lineno))}
    kept = [line for i, line in enumerate(lines) if i not in drop]
    while kept and (not kept[-1].strip() or kept[-1].lstrip().startswith("#")):  # "# Test cases" left behind
        kept.pop()
    kept = "\n".join(kept).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", kept) if _parses(kept) and _defines(kept, entry_point) else code


def _is_demonstration(node: ast.stmt, defined: set[str]) -> bool:
    """An assert; a bare call of print or of a function the code defines; a loop that asserts or prints; a
    `__main__` guard. A setup call (`sys.setrecursionlimit(...)`) or a loop filling a table is not one."""
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.Expr):
        return _demo_call(node.value, defined)
    if isinstance(node, ast.For | ast.While):
        return any(isinstance(n, ast.Assert) or _demo_call(n, {"print"}) for n in ast.walk(node))
    if isinstance(node, ast.If):
        test = node.test
        return isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
    return False


def _demo_call(node: ast.AST, names: set[str]) -> bool:
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):  # Solution().f(...)
        node = node.func.value
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names | {"print"}


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _defines(code: str, entry_point: str) -> bool:
    name = entry_point.split(".")[0]
    return re.search(rf"^\s*(async\s+def|def|class)\s+{re.escape(name)}\b", code, re.MULTILINE) is not None


def _looks_like_code(text: str) -> bool:
    """Parses, and is more than a bare name or constant (prose such as "Yes" or "42" parses too)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Name | ast.Constant))
               for node in tree.body)


# ----------------------------------------------------------------------------------------------------- verifier
class ExecutionVerifier:
    """The sandbox as a juror: the task's tests run on the response's code; `passed` is the verdict."""

    name = "sandbox"

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def applies(self, task: CodingTask | None) -> bool:
        return task is not None and bool(task.tests.strip())

    def vote(self, task: CodingTask, code: str | None) -> JudgeVote:
        if code is None:
            return JudgeVote.abstention(self.name, "the response contains no code", kind="verifier")
        try:
            result = self.executor.run(task, code)
        except Exception as e:  # noqa: BLE001 - the sandbox failing to run is not the solution failing
            return JudgeVote.abstention(self.name, f"the sandbox could not run: {type(e).__name__}: {e}",
                                        kind="verifier")
        tests = result.tests
        detail = {"exit_reason": result.exit_reason, "reward": result.reward, "isolation": result.isolation,
                  "tests_passed": tests.passed if tests else 0, "tests_total": tests.total if tests else 0,
                  "detail": result.detail}
        return JudgeVote(judge=self.name, kind="verifier", verdict="pass" if result.passed else "fail",
                         rationale=result.detail or result.exit_reason, latency_s=result.resources.wall_s
                         if result.resources else None, detail=detail)


# -------------------------------------------------------------------------------------------------------- jury
def context_text(chunks: Sequence[Any], max_chars: int = 1500, max_total: int = 6000) -> str:
    """Retrieved chunks (strings, dicts or objects with `text` and optional `title`) numbered and cut."""
    parts, total = [], 0
    for i, chunk in enumerate(chunks, 1):
        if isinstance(chunk, str):
            title, text = "", chunk
        elif isinstance(chunk, dict):
            title, text = str(chunk.get("title") or ""), str(chunk.get("text") or "")
        else:
            title, text = str(getattr(chunk, "title", "") or ""), str(getattr(chunk, "text", "") or "")
        if len(text) > max_chars:
            text = text[:max_chars] + " […]"
        part = f"[{i}] {title}\n{text}" if title else f"[{i}] {text}"
        if total + len(part) > max_total:
            parts.append(f"[… {len(chunks) - i + 1} more chunks left out]")
            break
        parts.append(part)
        total += len(part)
    return "\n\n".join(parts) if parts else "(no context was retrieved)"


def judge_messages(question: str, response: str, context_chunks: Sequence[Any] = ()) -> list[Message]:
    rubric = "\n".join(f"- {name} (1-5): {CRITERIA_TEXT[name]}" for name in CRITERIA)
    user = (
        f"Question:\n{question.strip()}\n\nRetrieved context:\n{context_text(context_chunks)}\n\n"
        f"Answer to review:\n{response.strip()}\n\n"
        f"Score the answer from 1 (very poor) to 5 (excellent) on each criterion:\n{rubric}\n"
        'Then give a verdict: "pass" if the answer is correct and usable as it is, otherwise "fail".\n'
        "Reply with only this JSON object:\n"
        '{"correctness": 1-5, "completeness": 1-5, "grounding": 1-5, "idiom": 1-5, '
        '"verdict": "pass" or "fail", "rationale": "one short sentence"}'
    )
    return [Message("system", SYSTEM_PROMPT), Message("user", user)]


class Jury:
    def __init__(self, team: Team, judges: Sequence[str] | None = None, verifier: ExecutionVerifier | None = None,
                 params: GenerationParams | None = None) -> None:
        self.team = team
        self.judges = list(judges) if judges is not None else team.models_for("judge")
        if not self.judges:
            raise ValueError("a jury needs at least one judge")
        if len(set(self.judges)) != len(self.judges):
            raise ValueError(f"a judge sits on the jury twice: {self.judges}")
        self.verifier = verifier
        base = params or team.params(max_tokens=200, temperature=0.0)
        self.params = GenerationParams(**{**asdict(base), "json_schema": JUDGE_SCHEMA,
                                          "stop": tuple(base.stop)})

    def evaluate(self, question: str, response: str, context_chunks: Sequence[Any] = (),
                 task: CodingTask | None = None) -> JuryVerdict:
        # judged as written (no repair): an accepted reply's text becomes a training target, so a reply cut at its
        # token limit or whose own example asserts fail must fail here, as it would when run
        code = extract_code(response, task.entry_point if task else None, task.language if task else "python",
                            repair=False)
        verifier_future = None
        pool = None
        if self.verifier is not None and self.verifier.applies(task):
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cet-verifier")
            verifier_future = pool.submit(self.verifier.vote, task, code)  # type: ignore[arg-type]
        try:
            messages = judge_messages(question, response, context_chunks)
            results = self.team.map(None, [Request(messages, self.params, model=judge) for judge in self.judges])
            votes = [self._vote(result) for result in results]
            verifier_vote = verifier_future.result() if verifier_future is not None else None
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        return self._combine(votes, verifier_vote, code)

    def _vote(self, result: TeamResult) -> JudgeVote:
        judge = result.request.model or result.model or "?"
        if not result.ok or result.completion is None:
            return JudgeVote.abstention(judge, f"{result.error_type}: {result.error}")
        completion = result.completion
        try:
            judgement = parse_judgement(completion.parsed, completion.text)
        except ValueError as e:
            return JudgeVote.abstention(judge, f"malformed judgement: {e}", raw=completion.text,
                                        cached=completion.cached, latency_s=completion.latency_s)
        return JudgeVote(judge=judge, verdict=judgement["verdict"], scores=judgement["scores"],
                         rationale=judgement["rationale"], raw=_cut(completion.text), cached=completion.cached,
                         latency_s=completion.latency_s)

    @staticmethod
    def _combine(votes: list[JudgeVote], verifier: JudgeVote | None, code: str | None) -> JuryVerdict:
        voting = [v for v in votes if not v.abstained]
        counts = Counter(v.verdict for v in voting)
        panel: Verdict | None = None
        tie = False
        agreement = None
        if voting:
            tie = counts["pass"] == counts["fail"]
            panel = "fail" if tie else counts.most_common(1)[0][0]
            agreement = max(counts.values()) / len(voting)
        mean_scores = {name: (sum(v.scores[name] for v in voting) / len(voting) if voting else None)
                       for name in CRITERIA}
        final = verifier.verdict if verifier is not None and not verifier.abstained else panel
        return JuryVerdict(
            verdict=final, panel_verdict=panel, votes=votes, verifier=verifier, mean_scores=mean_scores,
            agreement=agreement, pairwise_agreement=item_agreement([v.verdict for v in voting]),
            high_consensus=len(voting) >= 2 and agreement is not None and agreement > HIGH_CONSENSUS,
            tie=tie, abstentions=len(votes) - len(voting), code=code,
        )


def votes_by_item(verdicts: Sequence[JuryVerdict], what: str = "verdict") -> list[dict[str, Any]]:
    """The panel's ratings across items for `agreement_report`: `what` is "verdict" or a criterion;
    abstentions are missing ratings (None). The verifier is not a rater here."""
    if what != "verdict" and what not in CRITERIA:
        raise ValueError(f"unknown rating {what!r}: 'verdict' or one of {', '.join(CRITERIA)}")
    out = []
    for verdict in verdicts:
        item: dict[str, Any] = {}
        for vote in verdict.votes:
            if vote.abstained:
                item[vote.judge] = None
            else:
                item[vote.judge] = vote.verdict if what == "verdict" else vote.scores.get(what)
        out.append(item)
    return out


def panel_agreement(verdicts: Sequence[JuryVerdict]) -> dict[str, Any]:
    """Agreement of the panel over many evaluated items: on the verdict (nominal) and each criterion's scores
    (nominal and interval alpha); plus how often the panel matched the sandbox where the sandbox voted."""
    report: dict[str, Any] = {"verdict": agreement_report(votes_by_item(verdicts), interval=False)}
    for name in CRITERIA:
        report[name] = agreement_report(votes_by_item(verdicts, name), interval=True)
    checked = [v.panel_correct for v in verdicts if v.panel_correct is not None]
    report["panel_vs_verifier"] = {"items": len(checked),
                                   "accuracy": sum(checked) / len(checked) if checked else None}
    return report
