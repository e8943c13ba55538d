"""The CET model: the GGUF → torch conversion, LoRA checkpoints that reload exactly, TRL training that resumes,
and the adapters exported to llama.cpp generating what transformers generates."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import yaml
from transformers import TrainerCallback

from cet.config import dump_config, load_config
from cet.errors import CetError
from cet.evaluation.ablation import model_digest
from cet.model.base import STAMP, convert_gguf, resolve_base
from cet.model.cet import CONFIG_FILE, MANIFEST, CETModel
from cet.model.training import data_version, plain_step_throughput, sft_example, train_sft
from cet.phases.phase2 import Phase2Options


def tiny_cfg(base: Path, tmp_path: Path, **train):
    return load_config(cet={"base_model": str(base), "device": "cpu", "checkpoints_dir": str(tmp_path / "cet"),
                            "train": {"batch_size": 2, "epochs": 3, "save_steps": 2, "learning_rate": 5e-3,
                                      "warmup_ratio": 0.0, **train}},
                       run={"runs_dir": str(tmp_path / "runs")})


def examples(n: int = 6) -> list[dict]:
    return [sft_example([{"role": "user", "content": f"Task {i}: add numbers"}],
                        f"## Goal\nAdd the numbers of task {i}.\n## Interface\n- def add(a, b)") for i in range(n)]


def perturb(cet: CETModel, scale: float = 0.05, seed: int = 1) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in cet.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, scale)


def logits(cet: CETModel, text: str = "def add(a, b):") -> torch.Tensor:
    cet.model.eval()
    ids = cet.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return cet.model(**ids).logits


def test_conversion_is_cached_and_stamped(smollm2_torch: Path):
    stamp = json.loads((smollm2_torch / STAMP).read_text())
    assert stamp["catalog_name"] == "smollm2-135m-instruct" and len(stamp["gguf_sha256"]) == 64
    assert (smollm2_torch / "config.json").is_file() and (smollm2_torch / "model.safetensors").is_file()
    assert convert_gguf("smollm2-135m-instruct", load_config()) == smollm2_torch  # the stamp matches: no redo
    assert resolve_base(load_config()) == str(smollm2_torch)


def test_bad_base_gets_one_clear_error(tmp_path: Path):
    cfg = load_config()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CetError, match="no config.json"):
        resolve_base(cfg, str(tmp_path / "empty"))
    with pytest.raises(CetError, match="neither a catalog model"):
        resolve_base(cfg, "./no/such/dir")


def test_checkpoint_reloads_exactly(tiny_base: Path, tmp_path: Path):
    cfg = tiny_cfg(tiny_base, tmp_path)
    cet = CETModel.from_base(cfg)
    before = logits(cet)
    perturb(cet)
    after = logits(cet)
    assert not torch.allclose(before, after)  # the adapters do something
    saved = cet.save(tmp_path / "ck", "phase1", "v-123", note="x")
    manifest = json.loads((saved / MANIFEST).read_text())
    assert manifest["phase"] == "phase1" and manifest["data_version"] == "v-123" and manifest["base"] == str(tiny_base)
    assert manifest["lora"]["r"] == cfg.cet.lora.r and not (tmp_path / "ck.partial").exists()
    # the settings it was trained under travel with it: the whole typed config, and the phase's options
    assert yaml.safe_load((saved / CONFIG_FILE).read_text()) == yaml.safe_load(dump_config(cfg, masked=True))
    assert yaml.safe_load((saved / CONFIG_FILE).read_text())["cet"] == cfg.model_dump(mode="json")["cet"]
    assert manifest["options"] is None
    cet.cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"seed": 99}),  # trained under other settings
                                     "kb": cfg.kb.model_copy(update={"db": "postgresql://cet:s3cret@db:5432/kb"})})
    again = cet.save(tmp_path / "ck2", "phase2", "v-124", Phase2Options(epochs=7))
    options = json.loads((again / MANIFEST).read_text())["options"]
    assert options == json.loads(json.dumps(asdict(Phase2Options(epochs=7)))) and options["epochs"] == 7
    written = yaml.safe_load((again / CONFIG_FILE).read_text())
    assert written["run"]["seed"] == 99 and written["kb"]["db"] == "postgresql://cet:***@db:5432/kb"
    assert written["kb"]["embedding"] == cfg.model_dump(mode="json")["kb"]["embedding"]  # the rest as it was
    assert "s3cret" not in (again / CONFIG_FILE).read_text()  # a checkpoint travels: never a database password
    assert model_digest(again) == model_digest(saved)  # the same weights: bookkeeping is not what it computes
    cet.cfg = cfg
    reloaded = CETModel.load(saved, cfg)
    assert torch.equal(logits(reloaded), after)
    assert reloaded.generate([[{"role": "user", "content": "hi"}]], max_new_tokens=5) == \
        cet.generate([[{"role": "user", "content": "hi"}]], max_new_tokens=5)


def test_open_needs_a_trained_checkpoint_or_asks_for_the_base(tiny_base: Path, tmp_path: Path):
    cfg = tiny_cfg(tiny_base, tmp_path)
    with pytest.raises(CetError, match="no trained CET checkpoint.*--base"):
        CETModel.open(cfg)  # never a silent fall back to the untrained base
    base = CETModel.open(cfg, base=True)
    assert base.info["phase"] == "base" and base.checkpoint is None
    saved = base.save(Path(cfg.cet.checkpoints_dir) / "phase1", "phase1", "v-1")
    opened = CETModel.open(cfg)
    assert opened.checkpoint == saved and opened.info["phase"] == "phase1"
    with pytest.raises(CetError, match="not both"):
        CETModel.open(cfg, saved, base=True)


def test_not_a_checkpoint_is_a_clear_error(tmp_path: Path):
    with pytest.raises(CetError, match="not a CET checkpoint"):
        CETModel.load(tmp_path, load_config())


class StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_training_learns_and_resumes_after_an_interruption(tiny_base: Path, tmp_path: Path):
    cfg = tiny_cfg(tiny_base, tmp_path)
    data = examples()
    cet = CETModel.from_base(cfg)
    with pytest.raises(KeyboardInterrupt):
        train_sft(cet, data, cfg.cet.train, tmp_path / "run", quiet=True, callbacks=[StopAt(5)])
    assert (tmp_path / "run" / "trainer" / "checkpoint-4").is_dir()
    cet = CETModel.from_base(cfg)
    report = train_sft(cet, data, cfg.cet.train, tmp_path / "run", quiet=True)
    assert report.resumed_from and report.resumed_from.endswith("checkpoint-4")
    assert report.total_steps == 9 and report.steps == 5 and report.tokens > 0 and report.dropped == 0
    fresh = CETModel.from_base(cfg)
    full = train_sft(fresh, data, cfg.cet.train, tmp_path / "other", quiet=True)
    assert full.steps == 9 and full.loss_last < full.loss_first
    # the resumed run ends where an uninterrupted one does
    assert torch.allclose(logits(cet), logits(fresh), atol=1e-5)
    assert data_version(data) == data_version(examples()) != data_version(examples(5))


def test_examples_past_max_length_are_counted_not_fatal(tiny_base: Path, tmp_path: Path):
    cfg = tiny_cfg(tiny_base, tmp_path, max_length=32)
    long_prompt = [sft_example([{"role": "user", "content": "word " * 200}], "short answer")]
    report = train_sft(CETModel.from_base(cfg), long_prompt, cfg.cet.train, tmp_path / "run", quiet=True)
    assert report.steps == 0 and report.dropped == 1


def test_plain_step_baseline_measures_the_same_batches(tiny_base: Path, tmp_path: Path):
    cfg = tiny_cfg(tiny_base, tmp_path)
    cet = CETModel.from_base(cfg)
    before = logits(cet)
    result = plain_step_throughput(cet, examples(), cfg.cet.train, steps=2)
    assert result["steps"] == 2 and result["tokens"] > 0 and result["tokens_per_s"] > 0
    assert torch.equal(logits(cet), before)  # measured on a copy: the CET itself is untouched


@pytest.mark.slow
def test_adapters_exported_to_llamacpp_generate_like_transformers():
    """Random, strong adapters on the real SmolLM2, on q/k only (where llama.cpp permutes rows): llama.cpp with the
    exported GGUF adapter writes what transformers writes, and differs from llama.cpp without it."""
    from cet.llm.base import GenerationParams, Message
    from cet.llm.catalog import model_path
    from cet.llm.providers.llamacpp import LlamaCppLLM

    cfg = load_config(cet={"lora": {"target_modules": ["q_proj", "k_proj"]}, "inference": "transformers"},
                      llm={"n_threads": 2})
    cet = CETModel.from_base(cfg)
    perturb(cet, scale=0.5)
    prompts = ["What is a list comprehension?", "Explain binary search.", "How do I open a file?"]
    reference = cet.generate([[{"role": "user", "content": p}] for p in prompts], max_new_tokens=24)
    cet.cfg = load_config(cet={"inference": "llamacpp"}, llm={"n_threads": 2})
    assert cet.inference_backend() == "llamacpp"
    exported = cet.generate([[{"role": "user", "content": p}] for p in prompts], max_new_tokens=24)
    cet.close_engine()
    plain = LlamaCppLLM(model_path("smollm2-135m-instruct", cfg.llm), n_threads=2)
    try:
        base = [plain.chat([Message("user", p)], GenerationParams(max_tokens=24)).text.strip() for p in prompts]
    finally:
        plain.close()
    same = sum(a.split()[:4] == b.split()[:4] for a, b in zip(reference, exported, strict=True))
    assert same >= 2, (reference, exported)
    assert sum(a.split()[:4] == b.split()[:4] for a, b in zip(reference, base, strict=True)) < same


def test_preference_training_moves_toward_the_chosen_reply_and_leaves_no_reference_adapter(tiny_base: Path,
                                                                                           tmp_path: Path):
    from cet.model.preference import REFERENCE_ADAPTER, preference_pair, train_dpo

    cfg = tiny_cfg(tiny_base, tmp_path, epochs=4, checkpoint_every=0)
    cet = CETModel.from_base(cfg)
    perturb(cet)  # a trained adapter: TRL's frozen copy of it is the reference
    prompt = [{"role": "user", "content": "Task: add two numbers"}]
    pairs = [preference_pair(prompt, "## Nothing to add", "## Pitfalls\n- guard every index"),
             preference_pair([{"role": "user", "content": "Task: reverse a word"}], "## Nothing to add",
                             "## Goal\nReverse.")]

    def margin() -> float:  # log p(chosen) - log p(rejected) for the first pair
        cet.model.eval()
        scores = []
        for reply in ("## Nothing to add", "## Pitfalls\n- guard every index"):
            text = cet.tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": reply}],
                                                     tokenize=False)
            ids = cet.tokenizer(text, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                logp = torch.log_softmax(cet.model(input_ids=ids).logits[0, :-1], -1)
            scores.append(logp.gather(1, ids[0, 1:, None]).sum().item())
        return scores[0] - scores[1]

    before = margin()
    report = train_dpo(cet, pairs, cfg.cet.train, tmp_path / "run", quiet=True, beta=0.5)
    assert report.steps >= 2 and report.loss_first is not None and report.dropped == 0 and report.tokens > 0
    assert margin() > before  # the chosen reply became likelier relative to the rejected one
    assert REFERENCE_ADAPTER not in cet.model.peft_config  # the checkpoint holds the CET's adapter alone
    saved = cet.save(tmp_path / "ckpt", "phase3", "v-dpo")
    assert not (saved / REFERENCE_ADAPTER).exists()
    assert torch.allclose(logits(CETModel.load(saved, cfg)), logits(cet), atol=1e-5)
    with pytest.raises(CetError, match="no preference pairs"):
        train_dpo(cet, [], cfg.cet.train, tmp_path / "run2", quiet=True)
