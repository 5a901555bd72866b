"""A training step's forward pass: this rank's length chunks through the model, into one embedding matrix.

A step embeds its texts in chunks of similar lengths (little padding, see
:meth:`TrainSetup.chunks`). Looked up chunk by chunk, the vocabulary table
(30,522 x 384 for the bundled model) gets a dense gradient of its whole size
per chunk in the backward pass: zero-filled, then added into ``.grad``, once
for every chunk. Here the token vectors of all chunks come from *one* lookup,
so that happens once per step (bench/RESULTS.md, "Training on Zen 5"); the
chunks then go through the backbone as ``inputs_embeds``. Same arithmetic,
the same gradients up to rounding (the table's is summed in another order).

A backbone whose embeddings from ``inputs_embeds`` differ from those from
``input_ids`` (one that scales or offsets the looked-up vectors only on the ids
path) is checked once, at construction, and keeps the chunk-by-chunk lookup.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from tunerflow.inference.cpu_linear import linear_kernel
from tunerflow.modeling.embedding_model import EmbeddingModel
from tunerflow.options import DropoutKernel, LinearKernel
from tunerflow.training.cpu_dropout import dropout_kernel
from tunerflow.training.state import Chunk

log = logging.getLogger(__name__)


def takes_token_vectors(model: EmbeddingModel) -> bool:
    """True when ``model`` gives the same embeddings from looked-up token vectors as from token ids.

    Checked on two short padded texts in eval mode (no dropout); the model's mode is restored.
    """
    try:
        table = model.backbone.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return False
    if not isinstance(table, nn.Embedding):
        return False
    device = table.weight.device
    special = {getattr(model.backbone.config, name, None) for name in ("pad_token_id", "bos_token_id", "eos_token_id")}
    usable = [i for i in range(min(int(table.num_embeddings), 200)) if i not in special]
    if len(usable) < 8:
        return False
    ids = torch.tensor(usable[-8:], device=device).reshape(2, 4)  # no padding id: RoBERTa places those apart
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            from_ids = model(ids, mask)
            from_vectors = model(ids, mask, inputs_embeds=table(ids))
    except Exception as error:  # a backbone without inputs_embeds, or one that fails on it: the old lookup
        log.info("training: the model takes no token vectors (%s); one lookup per length chunk", error)
        return False
    finally:
        model.train(was_training)
    same = bool(torch.allclose(from_ids, from_vectors, rtol=1e-4, atol=1e-5))
    if not same:
        log.info("training: the model's embeddings differ from token vectors; one lookup per length chunk")
    return same


class StepForward(nn.Module):
    """``forward(chunks, share)``: the ``share`` texts' embeddings (float32), in the share's order.

    The module the loop calls once per step (under DDP with several ranks: one forward per
    backward, as DDP expects). It holds the model; its parameters are the model's. Its float32
    linear layers run on ``kernel`` (:func:`~tunerflow.inference.cpu_linear.linear_kernel`), and in
    training mode its dropout masks are drawn by ``dropout``
    (:func:`~tunerflow.training.cpu_dropout.dropout_kernel`).
    """

    def __init__(
        self,
        model: EmbeddingModel,
        kernel: LinearKernel = LinearKernel.BLAS,
        dropout: DropoutKernel = DropoutKernel.TORCH,
    ) -> None:
        super().__init__()
        self.model = model
        self.kernel = kernel  # what multiplies float32 linear layers (cpu_linear.linear_kernel)
        self.dropout = dropout  # what draws dropout masks (cpu_dropout.dropout_kernel)
        self.one_lookup = takes_token_vectors(model)

    def forward(self, chunks: list[Chunk], share: int) -> torch.Tensor:
        dropout = self.dropout if self.model.training else DropoutKernel.TORCH  # no masks to draw in eval mode
        with linear_kernel(self.kernel), dropout_kernel(dropout):
            return self._embed(chunks, share)

    def _embed(self, chunks: list[Chunk], share: int) -> torch.Tensor:
        model = self.model
        if not chunks:
            raise ValueError(f"a step's share of {share} texts came without length chunks")
        local = torch.empty((share, model.dimension), device=chunks[0][1].device)
        vectors: list[torch.Tensor | None] = [None] * len(chunks)
        if self.one_lookup and len(chunks) > 1:
            table = model.backbone.get_input_embeddings()
            looked_up = table(torch.cat([input_ids.reshape(-1) for _, input_ids, _ in chunks]))
            sizes = [input_ids.numel() for _, input_ids, _ in chunks]
            vectors = [
                part.view(*input_ids.shape, -1)
                for part, (_, input_ids, _) in zip(looked_up.split(sizes), chunks, strict=True)
            ]
        for (rows, input_ids, attention_mask), chunk_vectors in zip(chunks, vectors, strict=True):
            embeddings = model(input_ids, attention_mask, inputs_embeds=chunk_vectors)
            local = local.index_copy(0, rows, embeddings.float())  # the loss works in fp32
        return local


def step_forward_of(setup) -> StepForward:
    """``setup``'s :class:`StepForward` without DDP's wrapper (for rank 0's validation and evaluation, which
    must not sync with the other ranks); the loop's own default where the setup has none."""
    forward = setup.forward
    if forward is None:
        return StepForward(setup.model)
    return getattr(forward, "module", forward)
