"""Rows and batches: packing (best-fit decreasing, position ids reset per sample) or padding.

A packed row holds several samples; each sample's position ids restart at 0, and with
`use_cache=False` transformers builds a block-diagonal mask from them, so no token attends
across samples (checked by tests/data/test_pack.py against unpacked logits).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

IGNORE = -100


@dataclass
class TokenizedSet:
    """Flat storage of samples: ids[offsets[i]:offsets[i+1]] is sample i."""

    ids: np.ndarray  # int32
    trained: np.ndarray  # bool
    offsets: np.ndarray  # int64, len = n + 1
    labels: np.ndarray | None = None  # bool per sample, for unpaired preference data (KTO): a good answer?

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        """Tokens per sample."""
        return np.diff(self.offsets)

    def sample(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(token ids, trained mask) of sample i."""
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.ids[a:b], self.trained[a:b]


def pack_rows(lengths: np.ndarray, capacity: int) -> list[list[int]]:
    """Group sample indices into rows of at most `capacity` tokens (best-fit decreasing).

    Deterministic: ties are broken by sample index.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i))
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (remaining capacity, row index)
    for i in order:
        n = int(lengths[i])
        pos = bisect.bisect_left(free, (n, -1))
        if pos < len(free):
            room, r = free.pop(pos)
            rows[r].append(i)
            bisect.insort(free, (room - n, r))
        else:
            rows.append([i])
            bisect.insort(free, (capacity - n, len(rows) - 1))
    return rows


def make_rows(data: TokenizedSet, packing: bool, capacity: int, group: int = 1) -> list[list[int]]:
    """Rows of sample indices: packed to `capacity` tokens, or one sample per row. With group=2 (preference
    pairs: samples 2i and 2i+1) a pair always shares its row (unpadded: its micro-batch, see collate)."""
    if group == 1:
        return pack_rows(data.lengths(), capacity) if packing else [[i] for i in range(len(data))]
    units = data.lengths().reshape(-1, group).sum(1)
    grouped = pack_rows(units, capacity) if packing else [[u] for u in range(len(units))]
    return [[u * group + j for u in row for j in range(group)] for row in grouped]


def collate(data: TokenizedSet, rows: list[list[int]], pad_id: int, packing: bool) -> dict[str, np.ndarray]:
    """Build a micro-batch: input_ids, labels, position_ids (+ attention_mask when padding). Unpacked, a
    row of several samples (a preference pair) becomes one padded row per sample, in order."""
    if not packing:
        rows = [[i] for row in rows for i in row]
    seqs = []
    for row in rows:
        ids, pos, lab = [], [], []
        for i in row:
            s_ids, s_tr = data.sample(i)
            ids.append(s_ids)
            pos.append(np.arange(len(s_ids), dtype=np.int64))
            lab.append(np.where(s_tr, s_ids, IGNORE))
        seqs.append((np.concatenate(ids), np.concatenate(pos), np.concatenate(lab)))
    width = max(len(s[0]) for s in seqs)
    batch = len(seqs)
    input_ids = np.full((batch, width), pad_id, dtype=np.int64)
    labels = np.full((batch, width), IGNORE, dtype=np.int64)
    position_ids = np.zeros((batch, width), dtype=np.int64)
    attention = np.zeros((batch, width), dtype=np.int64)
    for b, (ids, pos, lab) in enumerate(seqs):
        n = len(ids)
        input_ids[b, :n], labels[b, :n], position_ids[b, :n], attention[b, :n] = ids, lab, pos, 1
        # Padding in a packed row is one more (ignored) sample starting at position 0.
        position_ids[b, n:] = np.arange(width - n)
    out = {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}
    if not packing:
        out["attention_mask"] = attention
    return out
