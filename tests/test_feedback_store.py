"""The feedback store, the same on both backends (SQLite by default, PostgreSQL by URL): outcomes recorded once
from many threads, reopened intact, conflicts and unknown requests refused, and the views the experiment, the
guardrails, drift and retraining read."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cet.serving.feedback import FeedbackConflict, PostgresFeedbackStore, UnknownRequest, open_feedback_store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "feedback.sqlite")
    return request.getfixturevalue("db_url")


def test_feedback_from_many_threads_is_neither_lost_nor_doubled(where: str) -> None:
    store = open_feedback_store(where)
    assert isinstance(store, PostgresFeedbackStore) == where.startswith("postgresql://")
    ids = [store.record_request(arm="cet", model_version="v", task=f"t{i}", context="", sections=[], chunk_ids=[])
           for i in range(40)]
    errors: list[Exception] = []

    def send(offset: int) -> None:
        for request_id in ids[offset:] + ids[:offset]:  # every thread sends every outcome, in its own order
            try:
                store.record_feedback(request_id, True, {"passed": 1, "total": 1}, None)
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(e)

    threads = [threading.Thread(target=send, args=(n * 5,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and store.counts() == {"requests": 40, "feedback": 40}
    store.close()
    reopened = open_feedback_store(where)  # durable: a new connection sees all of it
    assert reopened.counts() == {"requests": 40, "feedback": 40}
    assert reopened.record_feedback(ids[1], True, {"passed": 1, "total": 1}, None)["duplicate"]
    with pytest.raises(FeedbackConflict):
        reopened.record_feedback(ids[0], False, None, None)
    with pytest.raises(UnknownRequest):
        reopened.feedback("missing")
    with pytest.raises(UnknownRequest):
        reopened.record_feedback("missing", True, None, None)
    reopened.close()


def test_the_views_read_in_order_of_arrival(where: str) -> None:
    store = open_feedback_store(where)
    try:
        served = []
        for i in range(6):
            arm = "a" if i % 2 else "b"
            served.append(store.record_request(arm=arm, model_version="v", task=f"task {i}", context=f"ctx {i}",
                                               sections=["goal"], chunk_ids=["c1"], unit=f"u{i % 3}" if i else "",
                                               latency_ms=10.0 * i, experiment="e" if i < 5 else None))
        for i in (3, 0, 1, 5):  # outcomes arrive out of order
            store.record_feedback(served[i], i % 3 == 0, None, None, compiled=i != 1, security_findings=i)
        assert store.outcomes("e") == [("a", True, "u0"), ("b", True, served[0]), ("a", False, "u1")]
        assert len(store.outcomes(None)) == 4
        assert [r["task"] for r in store.served_outcomes()] == ["task 0", "task 1", "task 3", "task 5"]
        assert store.requests_by_arm() == {"a": 3, "b": 3}
        assert store.window(2, newest=False) == [("task 0", True), ("task 1", False)]
        assert store.window(2, newest=True) == [("task 4", None), ("task 5", False)]
        signals = store.arm_signals("a", 10)
        assert signals["latency_ms"] == [50.0, 30.0, 10.0] and signals["compiled"] == [True, True, False]
        assert signals["security_findings"] == [5, 3, 1]
        recorded = store.feedback(served[3])
        assert recorded["sections"] == ["goal"] and recorded["feedback"]["passed"] is True
    finally:
        store.close()
