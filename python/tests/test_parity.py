"""The Python results equal the C results bit for bit (kne-llama-tiny): struct
layouts, tokens, text, logits, log-probs, ensemble rows and scores, the edit report,
post-edit logits and generation, and the reverted logits."""
import ctypes

import numpy as np
import pytest

import kne
from kne import _lib

from conftest import KEEP, MAX_STEPS, PROMPT, STEPS, TARGET, TEXTS


def _f32(path, shape):
    return np.fromfile(path, dtype=np.float32).reshape(shape)


def test_struct_sizes_match_c(oracle):
    for line in (oracle / "sizes.txt").read_text().splitlines():
        name, size = line.split()
        assert ctypes.sizeof(getattr(_lib, name)) == int(size), name


def test_tokens_and_text(model, oracle):
    lines = (oracle / "tokens.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(TEXTS)
    for text, line in zip(TEXTS, lines):
        ids_sp, text_sp, ids_plain, text_plain = line.split("\t")
        assert model.tokenize(text, add_special=True) == [int(x) for x in ids_sp.split()]
        assert model.tokenize(text, add_special=False) == [int(x) for x in ids_plain.split()]
        assert model.detokenize_bytes(model.tokenize(text)) == bytes.fromhex(text_sp)
        assert model.detokenize(model.tokenize(text, add_special=False)) == \
            bytes.fromhex(text_plain).decode("utf-8", "replace")


def test_logits_and_logprobs(model, oracle):
    ids = model.tokenize(PROMPT)
    lg = model.forward(ids)
    assert lg.dtype == np.float32 and lg.shape == (len(ids), model.n_vocab)
    ref = _f32(oracle / "logits_pre.bin", lg.shape)
    assert np.array_equal(lg.view(np.uint32), ref.view(np.uint32))
    lp = model.token_logprobs(ids)
    assert np.array_equal(lp, np.fromfile(oracle / "logprobs_pre.bin", dtype=np.float64))
    # a numpy int64 array gives the same as a list
    assert np.array_equal(model.forward(np.asarray(ids, dtype=np.int64)), lg)


def test_locate_edit_revert(model, oracle):
    ids = model.tokenize(PROMPT)
    pre = model.forward(ids)
    ens = model.locate([(PROMPT, TARGET)], steps=STEPS, keep=KEEP)
    # rows of every (layer, module), and the scores
    rows_txt = (oracle / "rows.txt").read_text().splitlines()
    assert rows_txt[0] == f"size {ens.size}"
    scores = []
    for line in rows_txt[1:]:
        parts = line.split()
        layer, module, rows = int(parts[0]), parts[1], [int(x) for x in parts[2:]]
        got = ens.rows(layer, module)
        assert got.dtype == np.int32 and got.tolist() == rows, (layer, module)
        scores.append(ens.scores(layer, module))
    ref_scores = np.fromfile(oracle / "scores.bin", dtype=np.float32)
    assert np.array_equal(np.concatenate(scores).view(np.uint32), ref_scores.view(np.uint32))
    assert ens.size == sum(len(r) for _, _, r in ens.items()) > 0

    ed = model.editor(ens, max_steps=MAX_STEPS)
    rep = ed.apply([(PROMPT, TARGET)])
    steps, init_loss, loss, nrows = (oracle / "report.txt").read_text().split()
    assert rep.steps == int(steps) and rep.rows == int(nrows)
    assert rep.initial_loss == float.fromhex(init_loss) and rep.loss == float.fromhex(loss)
    assert rep.loss < rep.initial_loss and rep.seconds > 0
    assert ed.n_applied == 1
    post = model.forward(ids)
    assert np.array_equal(post.view(np.uint32), _f32(oracle / "logits_post.bin", post.shape).view(np.uint32))
    assert not np.array_equal(post, pre)
    gen = [int(x) for x in (oracle / "gen_post.txt").read_text().split()]
    assert model.generate_ids(ids, max_tokens=5) == gen
    ed.revert()
    assert ed.n_applied == 0
    back = model.forward(ids)
    assert np.array_equal(back.view(np.uint32), pre.view(np.uint32))
    assert np.array_equal(back.view(np.uint32), _f32(oracle / "logits_reverted.bin", back.shape).view(np.uint32))
    ed.close()
    ens.close()
