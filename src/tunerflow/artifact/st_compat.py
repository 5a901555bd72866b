"""The sentence-transformers files that let ``SentenceTransformer(path)`` open an artifact."""

from __future__ import annotations

import json
from pathlib import Path

from tunerflow.format import HEAD_DIR, HeadInfo, ModelSpec
from tunerflow.options import Pooling


def write_st_files(directory: Path, spec: ModelSpec, head: HeadInfo | None = None) -> None:
    """Write modules.json, sentence_bert_config.json, 1_Pooling/config.json and config_sentence_transformers.json.

    A projection ``head`` adds a Dense module (bias-free, identity activation; its
    ``2_Dense/model.safetensors`` is written by the caller, and its
    ``config.json`` here). A normalised ``spec`` adds a Normalize module last; it
    has no settings, so its folder is not written (sentence-transformers does not read one).
    """
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if head is not None:
        modules.append({"idx": 2, "name": "2", "path": HEAD_DIR, "type": "sentence_transformers.models.Dense"})
        _write_json(
            directory / HEAD_DIR / "config.json",
            {
                "in_features": head.in_features,
                "out_features": head.out_features,
                "bias": False,
                "activation_function": "torch.nn.modules.linear.Identity",
            },
        )
    if spec.normalize:
        at = len(modules)
        modules.append(
            {"idx": at, "name": str(at), "path": f"{at}_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
    _write_json(directory / "modules.json", modules)
    _write_json(directory / "sentence_bert_config.json", {"max_seq_length": spec.max_length, "do_lower_case": False})
    _write_json(
        directory / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": head.in_features if head is not None else spec.dimension,
            "pooling_mode_cls_token": spec.pooling is Pooling.CLS,
            "pooling_mode_mean_tokens": spec.pooling is Pooling.MEAN,
            "pooling_mode_max_tokens": spec.pooling is Pooling.MAX,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    )
    _write_json(directory / "config_sentence_transformers.json", {"similarity_fn_name": "cosine"})


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
