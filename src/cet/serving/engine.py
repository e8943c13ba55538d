"""The CET behind `cet context` and the service: loaded once, it engineers one context per request from the task,
the code so far and the error, with what the knowledge base retrieves and the playbook items that match."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.errors import CetError


@dataclass
class Engineered:
    """One request's context: the CET's reply (parsed), what was retrieved, the generator prompt it renders."""

    reply: Any
    hits: list[Any]
    prompt: str | None

    @property
    def context(self) -> Any:
        return self.reply.parsed.context if self.reply.parsed is not None else None

    def sections(self) -> list[str]:
        from cet.model.context import FIELDS

        context = self.context
        return [name for name in FIELDS if context is not None and getattr(context, name)]


SERIAL = threading.Lock()  # the service's models and its knowledge base's connection: one request at a time


def search_text(task: str, error: str | None = None) -> str:
    """What a request searches the knowledge base with: its statement (as training and evaluation search with the
    task view's statement), and the error when there is one."""
    from cet.data.task_input import split_request

    parts = split_request(task)
    error = error or parts.error
    return parts.statement if not error else f"{parts.statement}\n{error}"


def serving_input(cfg: CetConfig, task: str, hits: list[Any], playbook: Any, code: str | None = None,
                  error: str | None = None) -> Any:
    """What the served CET reads for a request: the request read back into statement, interface, visible tests,
    code and error (`split_request`: a message written as the evaluation writes a task gives exactly the input
    the CET was trained and evaluated on), the hits, within the input budget, and (a CET after Phase 3) the
    playbook items that match the task. Retraining from feedback builds the same input for a served task."""
    from cet.data.task_input import split_request
    from cet.model.prompts import build_input

    parts = split_request(task)
    inp = build_input(parts.statement, hits, interface=parts.interface, visible_tests=parts.visible_tests,
                      code=code or parts.code, error=error or parts.error, budget=cfg.cet.input_tokens)
    return replace(inp, playbook=playbook.texts_for(parts.statement, parts.interface, parts.visible_tests))


class ContextEngine:
    """A CET checkpoint (or the untrained base, when asked for), a retriever unless `retrieval` is off, and the
    checkpoint's playbook; its generation engine stays loaded between requests until `close`. One request at a
    time (`SERIAL`: the model and the store's connection are not shared across threads)."""

    def __init__(self, cfg: CetConfig, checkpoint: str | Path | None = None, base: bool = False,
                 retrieval: bool = True, retriever: Any | None = None) -> None:
        from cet.data.playbook import Playbook
        from cet.model.cet import CETModel

        self.cfg = cfg
        self.cet = CETModel.open(cfg, checkpoint, base=base)  # before retrieval: no checkpoint, no work done
        self.retriever = retriever  # given: searched as it is (e.g. a HeldOutRetriever); else the configured KB's
        if retriever is None and retrieval:
            from cet.knowledge.pipeline import open_retriever

            self.retriever = open_retriever(cfg)
        self.playbook = Playbook.load(self.cet.checkpoint / "playbook.json") if self.cet.checkpoint else Playbook()

    @property
    def version(self) -> str:
        """What served a context: the checkpoint's phase and path, or the untrained base."""
        if self.cet.checkpoint is None:
            return "base"
        return f"{self.cet.info.get('phase', 'cet')}@{Path(self.cet.checkpoint).name}"  # no filesystem path

    def engineer(self, task: str, code: str | None = None, error: str | None = None) -> Engineered:
        from cet.data.gold_context import section_choices
        from cet.model.context import render_prompt

        if not task.strip():
            raise CetError("the task is empty")
        with SERIAL:
            hits = self.retriever.search(search_text(task, error), k=self.cfg.cet.top_k) \
                if self.retriever is not None else []
            inp = serving_input(self.cfg, task, hits, self.playbook, code=code, error=error)
            reply, = self.cet.engineer([{"input": inp, "choices": section_choices(inp)}])
        parsed = reply.parsed
        prompt = render_prompt(task, parsed.context, code=code, error=error) if parsed else None
        return Engineered(reply, list(hits), prompt)

    def close(self) -> None:
        """Free the generation engine (the next request loads it again)."""
        self.cet.close_engine()
