"""Token ids of a dataset's split, made once and kept in the store for every step that reads it.

A split is tokenized once per (tokenizer, max length): every cell of a grid and every
epoch of a training reads the same padded ``int32`` array instead of tokenizing its texts
again. The cache lives beside the steps (``cache/tokens/<key>.npz``), keyed by the staged
dataset (content-addressed), the split, the tokenizer's full definition and the length, so
it is never stale; one object, written atomically, so never partial.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jobs.contract.staging import read_split
from jobs.contract.steps import CACHE
from jobs.storage import Store


@dataclass(frozen=True)
class Tokens:
    """Texts as token ids, padded to ``max_length``; ``lengths`` counts the real tokens."""

    ids: np.ndarray
    """int32 [n, max_length]."""
    lengths: np.ndarray
    """int32 [n]."""
    pad_id: int

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, rows: Sequence[int] | np.ndarray) -> Tokens:
        rows = np.asarray(rows, dtype=np.int64)
        return Tokens(self.ids[rows], self.lengths[rows], self.pad_id)


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> Tokens:
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding="max_length",
                    return_attention_mask=True, return_token_type_ids=False, return_tensors="np")
    ids = np.asarray(enc["input_ids"], dtype=np.int32)
    lengths = np.asarray(enc["attention_mask"], dtype=np.int32).sum(axis=1).astype(np.int32)
    return Tokens(ids, lengths, int(tokenizer.pad_token_id))


def tokenizer_fingerprint(tokenizer) -> str:
    """Everything that decides the ids: the fast tokenizer's whole definition (vocabulary,
    normalizer, special tokens), else the vocabulary and the class."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(f"{type(tokenizer).__name__}\n{text}".encode()).hexdigest()


def _key(dataset_prefix: str, split: str, fingerprint: str, max_length: int) -> str:
    payload = json.dumps([dataset_prefix, split, fingerprint, max_length])
    return f"{CACHE}/tokens/{hashlib.sha256(payload.encode()).hexdigest()[:24]}.npz"


def to_bytes(tokens: Tokens) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, ids=tokens.ids, lengths=tokens.lengths, pad_id=np.int32(tokens.pad_id))
    return buf.getvalue()


def from_bytes(data: bytes) -> Tokens:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return Tokens(z["ids"], z["lengths"], int(z["pad_id"]))


_MEMO: dict[tuple[str, str, str, str, int], Tokens] = {}


def split_tokens(store: Store, dataset_prefix: str, split: str, tokenizer, max_length: int) -> Tokens:
    """The split's tokens: from this process's memory, else the store's cache, else made (and kept)."""
    fingerprint = tokenizer_fingerprint(tokenizer)
    memo_key = (store.root, dataset_prefix, split, fingerprint, max_length)
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    key = _key(dataset_prefix, split, fingerprint, max_length)
    if store.exists(key):
        tokens = from_bytes(store.read_bytes(key))
    else:
        tokens = tokenize(tokenizer, read_split(store, dataset_prefix, split).texts, max_length)
        store.write_bytes(key, to_bytes(tokens))
    _MEMO[memo_key] = tokens
    return tokens
