"""The interface every inference backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from tunerflow.format import Architecture, ArtifactConfig, ModelSpec
from tunerflow.inference.batching import check_texts, length_sorted_batches, tokenize

# Padded tokens per forward pass by default (rows x longest text of the batch). Measured on 2 AVX-512 cores
# (bench/RESULTS.md, "Serving overhead"): 1,024 runs as fast as 32 texts a batch; 4,096 at 0.59x, 16,384 at
# 0.30x (activations leave the cache). Batches of long texts shrink, batches of short ones grow.
DEFAULT_MAX_TOKENS = 1024


class InferenceBackend(ABC):
    """Embeds texts. Subclasses implement :meth:`forward` on one padded batch.

    Every backend checks its spec against the model's architecture with the
    same :meth:`ModelSpec.check`, so no backend accepts a setting another refuses.

    Attributes:
        spec: the model's pooling, normalisation, max length and dimension.
        batch_size: at most this many texts per forward pass unless :meth:`embed` is told otherwise.
        max_tokens: at most this many padded tokens per forward pass (None: no limit but ``batch_size``).
        name: the backend's name (a :class:`~tunerflow.options.Backend` value).
        artifact: the artifact's config when the model came from one, else None.
        auto: what ``backend: auto`` chose and why (a :class:`~tunerflow.inference.auto.Choice`), else None.
    """

    name = "base"
    auto = None  # set by open_backend when the backend was chosen by ``auto``

    def __init__(
        self,
        tokenizer,
        spec: ModelSpec,
        architecture: Architecture,
        batch_size: int = 32,
        artifact: ArtifactConfig | None = None,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.tokenizer = tokenizer
        self.spec = spec.check(architecture)
        self.batch_size = int(batch_size)
        self.max_tokens = None if max_tokens is None else int(max_tokens)
        self.artifact = artifact
        self.pad_id = int(tokenizer.pad_token_id or 0)

    @property
    def dimension(self) -> int:
        return self.spec.dimension

    def runtime(self) -> dict:
        """How the library runs the model, as it reports it (for ``/info``): library, version, threads
        and the backend's own settings."""
        return {}

    @abstractmethod
    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Pooled float32 embeddings of shape (batch, dimension) for one padded batch."""

    def embed(self, texts: Sequence[str], batch_size: int | None = None, normalize: bool | None = None) -> np.ndarray:
        """Embed ``texts`` in their order; returns float32 of shape (len(texts), dimension).

        Args:
            texts: the texts.
            batch_size: overrides the backend's batch size for this call.
            normalize: overrides the model's normalisation for this call.
        """
        texts = check_texts(texts)
        output = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return output
        token_ids = tokenize(self.tokenizer, texts, self.spec.max_length)
        for positions, input_ids, attention_mask in length_sorted_batches(
            token_ids, batch_size or self.batch_size, self.pad_id, self.max_tokens
        ):
            output[positions] = self.forward(input_ids, attention_mask)
        if self.spec.normalize if normalize is None else normalize:
            output /= np.maximum(np.linalg.norm(output, axis=1, keepdims=True), 1e-12)
        return output
