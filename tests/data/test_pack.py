"""Packing: rows respect capacity, and packed logits equal unpacked logits per sample."""

import numpy as np
import torch

from genai.data.pack import IGNORE, TokenizedSet, collate, pack_rows


def make_set(lengths, seed=0):
    rng = np.random.default_rng(seed)
    ids = [rng.integers(5, 300, n) for n in lengths]
    trained = [np.r_[False, rng.random(n - 1) > 0.3] for n in lengths]
    offsets = np.r_[0, np.cumsum(lengths)]
    return TokenizedSet(np.concatenate(ids).astype(np.int32), np.concatenate(trained), offsets)


def test_best_fit_rows_hold_every_sample_once_within_capacity():
    lengths = np.array([60, 5, 33, 31, 64, 2, 17, 40, 24, 8])
    rows = pack_rows(lengths, 64)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    assert all(lengths[r].sum() <= 64 for r in rows)
    assert len(rows) <= int(np.ceil(lengths.sum() / 64)) + 1


def test_packed_logits_equal_unpacked_per_sample(tiny_model_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    data = make_set([9, 14, 5, 11])
    rows = [[0, 1], [2, 3]]
    batch = {k: torch.from_numpy(v) for k, v in collate(data, rows, pad_id=0, packing=True).items()}
    assert "attention_mask" not in batch
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        for r, row in enumerate(rows):
            start = 0
            for i in row:
                ids, _ = data.sample(i)
                alone = model(input_ids=torch.from_numpy(ids.astype(np.int64))[None], use_cache=False).logits[0]
                torch.testing.assert_close(packed[r, start : start + len(ids)], alone, atol=1e-5, rtol=1e-5)
                start += len(ids)
    # Labels: masked at each sample start and for padding.
    labels = batch["labels"].numpy()
    assert labels[0, 0] == IGNORE and labels[0, 9] == IGNORE


def test_padded_batch_masks_padding():
    data = make_set([4, 7])
    b = collate(data, [[0], [1]], pad_id=0, packing=False)
    assert b["attention_mask"].tolist() == [[1] * 4 + [0] * 3, [1] * 7]
    assert (b["labels"][0, 4:] == IGNORE).all()
