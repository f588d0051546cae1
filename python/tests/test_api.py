"""The wrapper's behaviour: results, lifetimes, and every error path raising
KneError (or TypeError for a wrong type), never a crash."""
import gc
import math
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import kne
from kne import KneError, Status

from conftest import GPT2, LLAMA, LIBRARY, ROOT, compile_c

PROMPT = "The mother tongue of Danielle Darrieux is"
FACT = (PROMPT, "English")


def status_of(excinfo):
    return excinfo.value.status


@pytest.fixture(scope="module")
def ens(model):
    e = model.locate([FACT], steps=4, keep=0.01)
    yield e
    e.close()


# ------------------------------------------------------------ basic results

def test_version_and_library():
    assert kne.__version__.split(".")[0] == kne.library_version().split(".")[0]
    assert kne.library_path()


def test_model_properties(model):
    assert model.arch == "llama" and model.device == "cpu"
    assert (model.n_vocab, model.n_layers, model.n_embd, model.n_ctx) == (32000, 6, 256, 512)
    assert model.bos == 1 and model.eos == 2
    assert "llama" in repr(model)


def test_generate_knows_the_fact(model):
    assert model.generate(PROMPT, max_tokens=3).strip().startswith("French")
    ids = model.tokenize(PROMPT)
    assert model.generate(ids, max_tokens=3) == model.generate(PROMPT, max_tokens=3)
    assert model.generate_ids(ids, max_tokens=0) == []
    sampled = model.generate(PROMPT, max_tokens=4, top_k=5, temperature=0.8, seed=3)
    assert sampled == model.generate(PROMPT, max_tokens=4, top_k=5, temperature=0.8, seed=3)


def test_fact_forms_are_equivalent(model):
    forms = [[FACT], FACT, [{"prompt": PROMPT, "target": "English"}],
             [{"prompt": PROMPT, "target_new": {"str": "English"}}], [kne.Fact(PROMPT, "English")],
             [(PROMPT, "English", "Danielle Darrieux")]]
    rows = None
    for f in forms:
        with model.locate(f, steps=2, keep=0.01) as e:
            got = [(l, m, r.tolist()) for l, m, r in e.items()]
        rows = rows or got
        assert got == rows


def test_ensemble_api(model, ens, tmp_path):
    assert ens.size == len(ens) > 0
    assert ens.n_layers == model.n_layers
    assert math.isfinite(ens.threshold)
    assert ens.scores(0, "mlp.down").shape == (model.n_embd,)
    assert ens.rows(0, kne.module_bit("mlp.down")).tolist() == ens.rows(0).tolist()
    assert kne.module_name(64) == "mlp.down"
    path = tmp_path / "ens.json"
    ens.save(path)
    with kne.Ensemble.load(model, path) as back:
        assert [(l, m, r.tolist()) for l, m, r in back.items()] == [(l, m, r.tolist()) for l, m, r in ens.items()]
    with kne.Ensemble.from_rows(model, 2, "mlp.up", [5, 1, 5, 3]) as hand:
        assert hand.rows(2, "mlp.up").tolist() == [1, 3, 5] and hand.size == 3
        with ens | hand as both:
            assert both.size == ens.size + 3


def test_editor_lifecycle_and_progress(model, ens):
    ids = model.tokenize(PROMPT)
    pre = model.forward(ids)
    seen = []
    with model.editor(ens, max_steps=3, lr=1e-2, progress=seen.append) as ed:
        rep = ed.apply(FACT)
        assert isinstance(rep, kne.EditReport) and rep.steps <= 3 and rep.rows == ens.size
        assert seen and all(0.0 <= f <= 1.0 for f in seen)
        ed.revert()
        with pytest.raises(KneError) as e:
            ed.revert()  # nothing left to revert
        assert e.value.status == Status.STATE
    assert np.array_equal(model.forward(ids), pre)


def test_progress_cancel_leaves_model_unchanged(model, ens):
    ids = model.tokenize(PROMPT)
    pre = model.forward(ids)
    with model.editor(ens, max_steps=5, progress=lambda f: f < 0.5) as ed:
        with pytest.raises(KneError) as e:
            ed.apply(FACT)
        assert e.value.status == Status.CANCELLED and ed.n_applied == 0
    assert np.array_equal(model.forward(ids), pre)

    def boom(f):
        raise ValueError("stop here")
    with pytest.raises(ValueError, match="stop here"):
        model.locate([FACT], steps=2, progress=boom)
    assert np.array_equal(model.forward(ids), pre)


def test_children_keep_the_model_alive():
    m = kne.Model(str(LLAMA))
    e = m.locate([FACT], steps=2, keep=0.01)
    ed = m.editor(e, max_steps=1)
    del m
    gc.collect()
    ed.apply(FACT)  # the editor's model is still there
    ed.revert()
    ed.model.close()  # closes the editor and the ensemble first
    assert ed.closed and e.closed


THREADS_SCRIPT = r"""
import sys, threading
import numpy as np
import kne
model = kne.Model(sys.argv[1])
prompt = "The mother tongue of Danielle Darrieux is"
ids = model.tokenize(prompt)
ens = model.locate([(prompt, "English")], steps=4)
ed = model.editor(ens, max_steps=2)
pre = model.forward(ids)
ed.apply((prompt, "English"))
post = model.forward(ids)
ed.revert()
assert not np.array_equal(pre, post)
stop = threading.Event()
bad, counts = [], [0, 0]
def reader():
    while not stop.is_set():
        got = model.forward(ids)
        if np.array_equal(got, pre):
            counts[0] += 1
        elif np.array_equal(got, post):
            counts[1] += 1
        else:
            bad.append(got)
threads = [threading.Thread(target=reader) for _ in range(2)]
for t in threads:
    t.start()
for _ in range(3):
    ed.apply((prompt, "English"))
    ed.revert()
stop.set()
for t in threads:
    t.join()
print("pre", counts[0], "post", counts[1], "other", len(bad))
sys.exit(1 if bad or not sum(counts) else 0)
"""


def test_readers_in_threads_see_pre_or_post():
    """Python threads forward while another thread applies and reverts: every result
    equals the pre-edit or the post-edit logits (ctypes drops the GIL in C). Run in a
    subprocess with a time limit, so a starved or deadlocked apply fails the test."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    try:
        r = subprocess.run([sys.executable, "-c", THREADS_SCRIPT, str(LLAMA)], env=env,
                           capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("3 apply/revert with 2 reader threads did not finish in 120 s: "
                    "kne_apply starved by the readers (reader-preferring rwlock?) or a deadlock")
    assert r.returncode == 0, r.stdout + r.stderr


# --------------------------------------------------------------- error paths

def test_bad_model_path():
    with pytest.raises(KneError) as e:
        kne.Model("/nonexistent/model/dir")
    assert e.value.status == Status.NOT_FOUND and e.value.message
    with pytest.raises(KneError) as e:
        kne.Model(str(ROOT / "include"))  # a directory without config.json
    assert e.value.status in (Status.NOT_FOUND, Status.FORMAT)
    with pytest.raises(KneError):
        kne.Model(None)
    with pytest.raises(TypeError):
        kne.Model(42)


def test_bad_dtype_and_device():
    with pytest.raises(KneError) as e:
        kne.Model(str(LLAMA), dtype="float64")
    assert e.value.status == Status.INVALID_ARG
    with pytest.raises(KneError) as e:
        kne.Model(str(LLAMA), dtype=99)
    assert e.value.status == Status.INVALID_ARG
    with pytest.raises(KneError) as e:
        kne.Model(str(LLAMA), device="tpu:0")
    assert e.value.status in (Status.INVALID_ARG, Status.DEVICE)
    with pytest.raises(TypeError):
        kne.Model(str(LLAMA), device=0)


def test_bad_ids(model):
    V = model.n_vocab
    for ids in ([V], [-1], [1, 2 ** 40], np.array([1, V], dtype=np.int64), np.ones((2, 2), np.int32)):
        with pytest.raises(KneError) as e:
            model.forward(ids)
        assert e.value.status == Status.INVALID_ARG, ids
    with pytest.raises(KneError) as e:
        model.forward([])
    assert e.value.status == Status.EMPTY
    with pytest.raises(KneError) as e:
        model.forward([1] * (model.n_ctx + 1))
    assert e.value.status == Status.TOO_LONG
    for ids in ("abc", [1.5], np.array([1.0]), [None], 7, [True], [[1, 2]]):
        with pytest.raises(TypeError):
            model.forward(ids)
    with pytest.raises(KneError):
        model.forward(None)
    with pytest.raises(KneError) as e:
        model.detokenize([V + 5])
    assert e.value.status == Status.INVALID_ARG
    with pytest.raises(KneError):
        model.token_logprobs([-3, 1])
    with pytest.raises(KneError):
        model.generate_ids([1, 2], max_tokens=-1)
    with pytest.raises(KneError):
        model.generate_ids([1, 2], max_tokens=2 ** 40)
    with pytest.raises(KneError):
        model.generate_ids([1, 2], top_k=0)


def test_bad_text(model):
    with pytest.raises(KneError) as e:
        model.tokenize("a\0b")
    assert e.value.status == Status.INVALID_ARG
    with pytest.raises(KneError) as e:
        model.tokenize(b"\xff\xfe bad utf-8")
    assert e.value.status == Status.ENCODING
    with pytest.raises(KneError) as e:
        model.tokenize("lone surrogate \udc80")
    assert e.value.status == Status.ENCODING
    with pytest.raises(TypeError):
        model.tokenize(123)
    with pytest.raises(KneError):
        model.tokenize(None)


@pytest.mark.parametrize("keep", [0.0, -0.1, 1.5, float("nan"), float("inf")])
def test_keep_outside_range(model, keep):
    with pytest.raises(KneError) as e:
        model.locate([FACT], steps=2, keep=keep)
    assert e.value.status == Status.INVALID_ARG


def test_bad_locate_args(model):
    cases = [dict(steps=0), dict(steps=-5), dict(modules="mlp.nope"), dict(modules=()),
             dict(layers=(4, 2)), dict(layers=(0, 99)), dict(objective="other")]
    for kw in cases:
        with pytest.raises(KneError) as e:
            model.locate([FACT], **{"steps": 2, **kw})
        assert e.value.status == Status.INVALID_ARG, kw
    with pytest.raises(KneError) as e:
        model.locate([])
    assert e.value.status == Status.EMPTY
    with pytest.raises(KneError) as e:
        model.locate([(PROMPT, "")], steps=2)
    assert e.value.status == Status.EMPTY
    with pytest.raises(KneError):
        model.locate(None)
    with pytest.raises(KneError):
        model.locate([None])
    for bad in (["just a string"], [(PROMPT,)], [(PROMPT, 5)], 42):
        with pytest.raises(TypeError):
            model.locate(bad, steps=2)
    with pytest.raises(TypeError):
        model.locate([FACT], steps="20")


def test_unsupported_module_for_arch():
    with kne.Model(str(GPT2)) as g:
        with pytest.raises(KneError) as e:
            g.locate([("The capital of France is", "Paris")], steps=2, modules="mlp.gate")
        assert e.value.status == Status.UNSUPPORTED


def test_bad_editor_args(model, ens):
    with pytest.raises(KneError):
        model.editor(None)
    with pytest.raises(TypeError):
        model.editor("ensemble")
    for kw in (dict(lr=-1.0), dict(max_steps=-1), dict(alpha=float("nan"))):
        with pytest.raises(KneError) as e:
            model.editor(ens, **kw)
        assert e.value.status == Status.INVALID_ARG, kw
    with model.editor(ens, max_steps=1) as ed:
        with pytest.raises(KneError) as e:
            ed.apply([])
        assert e.value.status == Status.EMPTY
        with pytest.raises(KneError):
            ed.apply(None)
        with pytest.raises(KneError) as e:
            ed.revert()
        assert e.value.status == Status.STATE


def test_bad_ensemble_args(model, ens, tmp_path):
    for layer, module in ((-1, "mlp.down"), (model.n_layers, "mlp.down"), (0, 3), (0, 1 << 9)):
        with pytest.raises(KneError) as e:
            ens.rows(layer, module)
        assert e.value.status == Status.INVALID_ARG, (layer, module)
    with pytest.raises(KneError) as e:
        kne.Ensemble.load(model, tmp_path / "missing.json")
    assert e.value.status == Status.NOT_FOUND
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(KneError) as e:
        kne.Ensemble.load(model, garbage)
    assert e.value.status == Status.FORMAT
    with pytest.raises(KneError):
        kne.Ensemble.load(None, garbage)
    with pytest.raises(KneError) as e:
        kne.Ensemble.from_rows(model, 0, "mlp.down", [model.n_embd])
    assert e.value.status == Status.INVALID_ARG
    with pytest.raises(TypeError):
        kne.Ensemble()
    with pytest.raises(KneError):
        ens.merge(None)


def test_other_models_ensemble_is_a_mismatch(model, ens, tmp_path):
    with kne.Model(str(GPT2)) as g:
        with g.locate([("The capital of France is", "Paris")], steps=2) as ge:
            ge.save(tmp_path / "gpt2.json")
            with pytest.raises(KneError) as e:
                model.editor(ge)
            assert e.value.status == Status.MISMATCH
            with pytest.raises(KneError) as e:
                ens.merge(ge)
            assert e.value.status == Status.MISMATCH
    with pytest.raises(KneError) as e:
        kne.Ensemble.load(model, tmp_path / "gpt2.json")
    assert e.value.status == Status.MISMATCH


def test_closed_objects_raise():
    m = kne.Model(str(LLAMA))
    e = m.locate([FACT], steps=2, keep=0.01)
    ed = m.editor(e, max_steps=1)
    ed.close()
    ed.close()  # idempotent
    with pytest.raises(KneError) as x:
        ed.apply(FACT)
    assert x.value.status == Status.STATE
    with pytest.raises(KneError):
        ed.revert()
    with pytest.raises(KneError):
        ed.n_applied
    e2 = m.locate([FACT], steps=2, keep=0.01)
    ed2 = m.editor(e2, max_steps=1)
    e2.close()
    with pytest.raises(KneError):
        e2.rows(0)
    ed2.apply(FACT)  # the editor copied the ensemble
    m.close()
    for call in (lambda: m.forward([1]), lambda: m.tokenize("x"), lambda: m.n_vocab,
                 lambda: m.locate([FACT]), lambda: m.editor(e), lambda: e.size, lambda: ed2.revert(),
                 lambda: kne.Ensemble.load(m, "x.json"), lambda: m.generate("x")):
        with pytest.raises(KneError) as x:
            call()
        assert x.value.status == Status.STATE
    assert m.closed and e.closed and ed2.closed
    m.close()  # idempotent
    assert "closed" in repr(m)


def test_error_str():
    err = KneError(Status.NOT_FOUND, "no such dir")
    assert err.status == -2 and err.name == "NOT_FOUND" and "no such dir" in str(err)
    assert KneError(-99, "future").status == -99


def test_version_mismatch_is_an_import_error(tmp_path):
    src = tmp_path / "fake.c"
    src.write_text("#include <stdint.h>\nuint32_t kne_version_number(void) { return 90000; }\n")
    lib = compile_c(src, tmp_path / "libfake.so", "-shared", "-fPIC")
    env = dict(os.environ, KNE_LIBRARY=str(lib), PYTHONPATH=str(ROOT / "python"))
    r = subprocess.run([sys.executable, "-c", "import kne"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "ImportError" in r.stderr and "major" in r.stderr
    env["KNE_LIBRARY"] = str(tmp_path / "nope.so")
    r = subprocess.run([sys.executable, "-c", "import kne"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "ImportError" in r.stderr and "KNE_LIBRARY" in r.stderr


def test_example_script():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    r = subprocess.run([sys.executable, str(ROOT / "python" / "examples" / "edit.py"), str(LLAMA)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "English" in r.stdout
