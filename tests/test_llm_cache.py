"""The persistent response cache: keys, round trips, corrupt rows, threads, and a writer killed mid-run."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cet.llm.base import Completion, GenerationParams, LLMError, Message
from cet.llm.cache import ResponseCache, request_key

MESSAGES = [Message("system", "be brief"), Message("user", "What does zip() do?")]


def _completion(text: str = "It pairs items.", **changes) -> Completion:
    base = dict(text=text, model="smollm2-135m-instruct", provider="llamacpp", prompt_tokens=12,
                completion_tokens=5, latency_s=0.25, cost_usd=0.0, finish_reason="stop",
                parsed={"a": [1, 2]}, extra={"seed": 0})
    return Completion(**{**base, **changes})


def test_round_trip_marks_cached(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    key = request_key("smollm2-135m-instruct", "llamacpp", GenerationParams(), MESSAGES)
    assert cache.get(key) is None
    original = _completion()
    assert cache.put(key, original)
    hit = cache.get(key)
    assert hit is not None and hit.cached is True and original.cached is False
    assert {**hit.to_dict(), "cached": False} == original.to_dict()
    assert cache.stats()["hits"] == 1 and cache.stats()["misses"] == 1 and len(cache) == 1


def test_key_covers_model_provider_params_and_input() -> None:
    p = GenerationParams()
    key = request_key("m", "llamacpp", p, MESSAGES)
    assert len(key) == 64 and key == request_key("m", "llamacpp", GenerationParams(), list(MESSAGES))
    different = [
        request_key("m2", "llamacpp", p, MESSAGES),
        request_key("m", "openai", p, MESSAGES),
        request_key("m", "llamacpp", GenerationParams(temperature=0.7), MESSAGES),
        request_key("m", "llamacpp", GenerationParams(seed=1), MESSAGES),
        request_key("m", "llamacpp", GenerationParams(stop=("\n",)), MESSAGES),
        request_key("m", "llamacpp", GenerationParams(json_schema={"type": "object"}), MESSAGES),
        request_key("m", "llamacpp", p, MESSAGES[1:]),
        request_key("m", "llamacpp", p, [Message("user", "be brief"), MESSAGES[1]]),  # same text, other role
        request_key("m", "llamacpp", p, "What does zip() do?"),  # a prompt, not messages
    ]
    assert len({key, *different}) == len(different) + 1
    # the timeout does not change the reply, so it does not change the key
    assert request_key("m", "llamacpp", GenerationParams(timeout_s=5), MESSAGES) == key
    # nor does the order of a schema's keys
    s1 = GenerationParams(json_schema={"type": "object", "required": ["a"]})
    s2 = GenerationParams(json_schema={"required": ["a"], "type": "object"})
    assert request_key("m", "p", s1, "x") == request_key("m", "p", s2, "x")


def test_persists_across_processes_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "c.sqlite"  # the folder is created
    key = request_key("m", "p", GenerationParams(), "hello")
    with ResponseCache(path) as cache:
        cache.put(key, _completion("hi there"))
    code = textwrap.dedent(f"""
        from cet.llm.cache import ResponseCache
        c = ResponseCache({str(path)!r})
        hit = c.get({key!r})
        print(hit.text, hit.cached)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "hi there True"
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_disabled_cache_never_hits() -> None:
    cache = ResponseCache(None)
    assert not cache.enabled
    assert cache.put("k", _completion()) is False
    assert cache.get("k") is None and len(cache) == 0
    assert cache.stats()["enabled"] is False


@pytest.mark.parametrize("stored", [
    "not json at all {",
    '"just a string"',
    '{"text": "no other fields"}',
    '{"text": 3, "model": "m", "provider": "p", "prompt_tokens": 1, "completion_tokens": 1, "latency_s": 0.1}',
    '{"text": "t", "model": "m", "provider": "p", "prompt_tokens": "many", "completion_tokens": 1, '
    '"latency_s": 0.1}',
])
def test_a_corrupt_row_is_a_miss_and_is_replaced(tmp_path: Path, stored: str) -> None:
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path)
    good, bad = request_key("m", "p", GenerationParams(), "good"), request_key("m", "p", GenerationParams(), "bad")
    cache.put(good, _completion("fine"))
    cache.put(bad, _completion("to be damaged"))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE responses SET completion = ? WHERE key = ?", (stored, bad))
    assert cache.get(bad) is None
    assert cache.stats()["corrupt"] == 1
    assert cache.get(good).text == "fine"  # the rest of the cache is intact
    cache.put(bad, _completion("answered again"))
    assert cache.get(bad).text == "answered again"


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a SQLite file" * 100)
    with pytest.raises(LLMError, match="cannot open the LLM response cache"):
        ResponseCache(path)


def test_thread_safe_under_concurrent_writers_and_readers(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for i in range(40):
                key = request_key("m", "p", GenerationParams(), f"{w}-{i}")
                cache.put(key, _completion(f"answer {w}-{i}"))
                assert cache.get(key).text == f"answer {w}-{i}"
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(cache) == 240


def test_a_writer_killed_mid_run_loses_nothing_it_had_cached(tmp_path: Path) -> None:
    """Every put is committed when it returns: SIGKILL (the harshest interrupt) loses no entry it reported."""
    path = tmp_path / "c.sqlite"
    code = textwrap.dedent(f"""
        import sys
        from cet.llm.base import Completion, GenerationParams
        from cet.llm.cache import ResponseCache, request_key
        c = ResponseCache({str(path)!r})
        i = 0
        while True:
            key = request_key("m", "p", GenerationParams(), str(i))
            c.put(key, Completion(text=str(i), model="m", provider="p", prompt_tokens=1, completion_tokens=1,
                                  latency_s=0.0))
            print(key, flush=True)
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    written = []
    try:
        while len(written) < 200:
            written.append(proc.stdout.readline().strip())
    finally:
        proc.kill()
        proc.wait()
    cache = ResponseCache(path)
    assert all(cache.get(key) is not None for key in written)
    assert cache.stats()["corrupt"] == 0


def test_processes_opening_one_fresh_cache_at_the_same_moment_all_open_it(tmp_path: Path) -> None:
    """Ray workers open the same fresh cache at once: SQLite answers the WAL switch with 'database is
    locked' without waiting, and every worker must still open it (this failed one run in four)."""
    path = tmp_path / "fresh.sqlite"
    code = textwrap.dedent(f"""
        import sys, time
        from cet.llm.cache import ResponseCache, request_key
        from cet.llm.base import Completion, GenerationParams
        start = float(sys.argv[1])
        while time.time() < start:
            pass
        c = ResponseCache({str(path)!r})
        key = request_key("m", "p", GenerationParams(), sys.argv[2])
        c.put(key, Completion(text=sys.argv[2], model="m", provider="p", prompt_tokens=1, completion_tokens=1,
                              latency_s=0.0))
    """)
    for round_ in range(5):
        start = time.time() + 2.0
        procs = [subprocess.Popen([sys.executable, "-c", code, str(start), f"r{round_}-{i}"],
                                  stderr=subprocess.PIPE, text=True) for i in range(6)]
        errors = [p.communicate()[1] for p in procs]
        assert all(p.returncode == 0 for p in procs), [e for e in errors if e][:1]
        path.unlink()
        for extra in ("-wal", "-shm"):
            Path(str(path) + extra).unlink(missing_ok=True)
