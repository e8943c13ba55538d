"""Context strategies the service can serve, so they can be compared in production (the arms of an experiment):

    cet        a CET checkpoint's engineered context (`ContextEngine`)
    template   the rule-based template built from the same input (data/baselines.rule_based_context)
    naive_rag  the retrieved chunks, quoted as they come (what naive RAG hands a generator)
    none       no context: the generator gets the task as given

Each answers `Served`: the context, what was retrieved, the generator prompt it renders, and whether it is usable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from cet.config import CetConfig
from cet.model.context import FIELDS, EngineeredContext, KnowledgeRef, render_prompt

STRATEGIES = ("cet", "template", "naive_rag", "none")
QUOTE_CHARS = 600  # of each chunk naive RAG quotes


@dataclass
class Served:
    context: EngineeredContext
    hits: list[Any] = field(default_factory=list)
    prompt: str = ""
    valid: bool = True
    issues: list[str] = field(default_factory=list)
    nothing_to_add: bool = False
    error: str | None = None  # the strategy produced no usable context (the CET's reply failed)

    def sections(self) -> list[str]:
        return [name for name in FIELDS if getattr(self.context, name)]


class Strategy(Protocol):
    name: str
    version: str

    def serve(self, task: str, code: str | None, error: str | None) -> Served: ...


class CETStrategy:
    """A CET checkpoint (see `ContextEngine`)."""

    name = "cet"

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.version = engine.version

    def serve(self, task: str, code: str | None, error: str | None) -> Served:
        done = self.engine.engineer(task, code=code, error=error)
        parsed = done.reply.parsed
        if done.reply.error or parsed is None:
            return Served(EngineeredContext(), done.hits, error=done.reply.error or "unreadable reply", valid=False)
        return Served(parsed.context, done.hits, done.prompt or "", parsed.valid, list(parsed.issues),
                      parsed.nothing_to_add)


class _Retrieving:
    """What the unlearned strategies share: the retriever (or none) and the CET's input budget."""

    def __init__(self, cfg: CetConfig, retriever: Any | None) -> None:
        self.cfg, self.retriever = cfg, retriever

    def hits(self, task: str, error: str | None) -> list[Any]:
        from cet.serving.engine import SERIAL, search_text

        if self.retriever is None:
            return []
        with SERIAL:  # the retriever may be the CET engine's: one thread at a time on its connection
            return list(self.retriever.search(search_text(task, error), k=self.cfg.cet.top_k))


class TemplateStrategy(_Retrieving):
    name, version = "template", "rule-based"

    def serve(self, task: str, code: str | None, error: str | None) -> Served:
        from cet.data.baselines import rule_based_context
        from cet.data.playbook import Playbook
        from cet.serving.engine import serving_input

        hits = self.hits(task, error)
        context = rule_based_context(serving_input(self.cfg, task, hits, Playbook(), code=code, error=error))
        return Served(context, hits, render_prompt(task, context, code=code, error=error))


class NaiveRagStrategy(_Retrieving):
    name, version = "naive_rag", "top-k chunks"

    def serve(self, task: str, code: str | None, error: str | None) -> Served:
        hits = self.hits(task, error)
        context = EngineeredContext(knowledge=[KnowledgeRef(h.id, " ".join(h.text.split())[:QUOTE_CHARS])
                                               for h in hits])
        return Served(context, hits, render_prompt(task, context, code=code, error=error))


class NoContextStrategy:
    name, version = "none", "raw task"

    def serve(self, task: str, code: str | None, error: str | None) -> Served:
        return Served(EngineeredContext(), [], render_prompt(task, None, code=code, error=error), nothing_to_add=True)


def make_strategy(name: str, cfg: CetConfig, *, checkpoint: str | None = None, base: bool = False,
                  retriever: Any | None = None, retrieval: bool = True) -> Strategy:
    """The strategy `name` (one of STRATEGIES); "cet" loads its checkpoint (or the base, when asked) and searches
    `retriever` when given, else the configured knowledge base unless `retrieval` is off."""
    if name == "cet":
        from cet.serving.engine import ContextEngine

        return CETStrategy(ContextEngine(cfg, checkpoint, base=base, retrieval=retrieval, retriever=retriever))
    if name == "template":
        return TemplateStrategy(cfg, retriever)
    if name == "naive_rag":
        return NaiveRagStrategy(cfg, retriever)
    if name == "none":
        return NoContextStrategy()
    raise ValueError(f"unknown context strategy {name!r}; choose from {', '.join(STRATEGIES)}")
