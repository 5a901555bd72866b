"""Shared fixtures: tiny random BERT models built offline, in seconds."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The executor modules are importable by their own names, as jina's py_modules loads them; a Flow's
# spawned executor processes inherit sys.path and can then unpickle references to them.
for _executor_dir in ("executors/encoder", "executors/tuner"):
    if str(ROOT / _executor_dir) not in sys.path:
        sys.path.insert(0, str(ROOT / _executor_dir))

# Nothing in the test suite may reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Executors in test Flows start by spawn: a fork after torch has run threads here can deadlock the child.
os.environ.setdefault("JINA_MP_START_METHOD", "spawn")
os.environ.setdefault("JINA_HIDE_SURVEY", "1")

WORDS = (
    "the a an is are was of to in on for and or not what how why who when where which do does can "
    "i you we they it this that my your learn python guitar play music cat cats dog dogs car cars "
    "train trains fast slow best way good bad new old big small red blue green house city country "
    "food eat cook water drink sky sun rain snow money bank credit score health tea coffee book read"
).split()


def build_tiny_model(directory: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """Write a random BERT with a small WordPiece vocabulary as a Hugging Face directory."""
    import json

    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    directory.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789?.,!'")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *letters, *[f"##{c}" for c in letters]]
    (directory / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 64})
    )
    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert tokenizer.tokenize("how do cats learn") == ["how", "do", "cats", "learn"]
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=hidden * 2,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    BertModel(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="session", autouse=True)
def _tiny_models_are_in_the_catalogue(tmp_path_factory):
    """Tests build their tiny models under the session's temporary directory: offer it as a model root.

    Set in ``os.environ`` itself, so that the executors of test Flows (spawned processes) inherit it.
    """
    os.environ["TUNERFLOW_MODEL_ROOTS"] = str(tmp_path_factory.getbasetemp())


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own tunerflow cache (ONNX exports, unpacked zips)."""
    monkeypatch.setenv("TUNERFLOW_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


TEXTS = [
    "how do i learn python ?",
    "what is the best way to learn guitar",
    "cats and dogs",
    "why is the sky blue",
    "a",
    "the best way to cook food fast and cheap in a small city house with water",
    "credit score",
    "",
]
