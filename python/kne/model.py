"""Model, Ensemble and Editor: Python objects over the libkne handles.

Every C failure raises :class:`kne.KneError`; a closed model, a freed editor or
ensemble, or ``None`` where an object is needed raise ``KneError`` too (never a
crash). Objects keep their model alive, and closing a model first closes the
editors and ensembles made from it (the C contract: they must be freed first).

Threads: ctypes releases the GIL during each C call, so the C threading contract
(docs/threads.md) carries over: forward/generate/tokenize from many threads at once,
also while an editor applies an edit; one apply/revert at a time per model.
"""
from __future__ import annotations

import ctypes
import math
import os
import weakref
from ctypes import byref, c_char_p, c_size_t
from dataclasses import dataclass
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence,
                    Tuple, TypeVar, Union)

import numpy as np

from . import _lib as L
from ._handle import Handle
from .errors import KneError, Status

_C = TypeVar("_C", bound="_Closable")

__all__ = ["Model", "Ensemble", "Editor", "EditReport", "Fact", "FactLike", "MODULES",
           "module_bit", "module_name"]

PathLike = Union[str, bytes, "os.PathLike[str]"]
Progress = Optional[Callable[[float], Optional[bool]]]
"""A progress callback: called with a fraction in [0, 1]; return False to cancel
(None or True continues). An exception raised in it cancels and is re-raised."""

#: Module names, in bit order (bit i = 1 << i).
MODULES: Tuple[str, ...] = ("attn.q", "attn.k", "attn.v", "attn.o", "mlp.gate", "mlp.up", "mlp.down")

_DTYPES = {"auto": 0, "f32": 1, "float32": 1, "f16": 2, "float16": 2, "half": 2,
           "bf16": 3, "bfloat16": 3}
_OBJECTIVES = {"prob": 0, "logprob": 1}
_I32_MIN, _I32_MAX = -(2 ** 31), 2 ** 31 - 1


# ------------------------------------------------------------------ helpers

def _check(status: int, what: str) -> None:
    if status != 0:
        msg = L.last_error()
        if not msg:
            raw = L.kne_status_str(status)
            msg = raw.decode() if raw else ""
        raise KneError(status, f"{what}: {msg}" if msg and not msg.startswith(what) else (msg or what))


def _cstr(value: Any, name: str) -> bytes:
    """A str/bytes argument as NUL-free bytes for C."""
    if isinstance(value, str):
        try:
            b = value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise KneError(Status.ENCODING, f"{name} is not encodable as UTF-8: {e}") from None
    elif isinstance(value, (bytes, bytearray)):
        b = bytes(value)
    elif value is None:
        raise KneError(Status.INVALID_ARG, f"{name} is None")
    else:
        raise TypeError(f"{name} must be str or bytes, not {type(value).__name__}")
    if b"\0" in b:
        raise KneError(Status.INVALID_ARG, f"{name} contains a NUL character")
    return b


def _path(value: Any, name: str = "path") -> bytes:
    if value is None:
        raise KneError(Status.INVALID_ARG, f"{name} is None")
    if isinstance(value, (str, bytes, os.PathLike)):
        b = os.fsencode(value)
    else:
        raise TypeError(f"{name} must be a path (str, bytes or os.PathLike), not {type(value).__name__}")
    if b"\0" in b:
        raise KneError(Status.INVALID_ARG, f"{name} contains a NUL character")
    return b


def _int(value: Any, name: str, lo: int = _I32_MIN, hi: int = _I32_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    v = int(value)
    if not lo <= v <= hi:
        raise KneError(Status.INVALID_ARG, f"{name} = {v} is outside [{lo}, {hi}]")
    return v


def _float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    return float(value)


def _ids(ids: Any) -> np.ndarray:
    """Token ids as a contiguous int32 array (range-checked against int32 only; the
    library checks the vocabulary)."""
    if ids is None:
        raise KneError(Status.INVALID_ARG, "ids is None")
    if isinstance(ids, (str, bytes)):
        raise TypeError("ids must be a sequence of ints (tokenize text first)")
    if isinstance(ids, np.ndarray):
        a = ids
    else:
        try:
            seq = list(ids)
        except TypeError:
            raise TypeError(f"ids must be a sequence of ints, not {type(ids).__name__}") from None
        for x in seq:
            if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
                raise TypeError(f"token ids must be ints, not {type(x).__name__}")
        if any(not _I32_MIN <= int(x) <= _I32_MAX for x in seq):
            raise KneError(Status.INVALID_ARG, "a token id is outside the int32 range")
        a = np.asarray([int(x) for x in seq], dtype=np.int64) if seq else np.zeros(0, np.int64)
    if a.ndim != 1:
        raise KneError(Status.INVALID_ARG, f"ids must be one-dimensional, got shape {a.shape}")
    if a.size and a.dtype.kind not in "iu":
        raise TypeError(f"token ids must be integers, not {a.dtype}")
    if a.size and (a.min() < _I32_MIN or a.max() > _I32_MAX):
        raise KneError(Status.INVALID_ARG, "a token id is outside the int32 range")
    return np.ascontiguousarray(a, dtype=np.int32)


def _ptr(a: np.ndarray, ctype: Any) -> Any:
    return a.ctypes.data_as(ctypes.POINTER(ctype))


def module_bit(module: Union[str, int]) -> int:
    """The KNE_MODULE_* bit of a module name ("mlp.down") or a bit (returned as is)."""
    if isinstance(module, bool):
        raise TypeError("module must be a name or a KNE_MODULE_* bit")
    if isinstance(module, (int, np.integer)):
        return _int(module, "module", 0, 2 ** 32 - 1)
    name = _cstr(module, "module")
    bit = int(L.kne_module_from_name(name))
    if bit == 0:
        raise KneError(Status.INVALID_ARG, f"unknown module {module!r}; known: {', '.join(MODULES)}")
    return bit


def module_name(bit: int) -> str:
    """The name of one KNE_MODULE_* bit, e.g. 64 -> "mlp.down"."""
    raw = L.kne_module_name(_int(bit, "module", 0, 2 ** 32 - 1))
    if raw is None:
        raise KneError(Status.INVALID_ARG, f"{bit} is not one module bit")
    return raw.decode()


def _modules(modules: Union[str, int, Iterable[Union[str, int]]]) -> int:
    if isinstance(modules, str) and modules == "all":
        return 0x7F
    if isinstance(modules, (str, bytes, int, np.integer)):
        return module_bit(modules)
    if modules is None:
        raise KneError(Status.INVALID_ARG, "modules is None")
    bits = 0
    for m in modules:
        bits |= module_bit(m)
    return bits


class _Closable:
    """Context-manager and finaliser behaviour shared by Model, Ensemble and Editor:
    each defines close(); leaving a with-block or being collected calls it."""

    def close(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown or a half-built object
            pass


class _Progress:
    """Wraps a Python progress callable as a kne_progress_fn, remembering an exception."""

    def __init__(self, fn: Progress) -> None:
        if fn is not None and not callable(fn):
            raise TypeError("progress must be callable")
        self.fn = fn
        self.error: Optional[BaseException] = None
        self.c = L.kne_progress_fn(self._call) if fn is not None else L.kne_progress_fn()

    def _call(self, fraction: float, _user: Any) -> bool:
        try:
            r = self.fn(float(fraction))  # type: ignore[misc]
            return True if r is None else bool(r)
        except BaseException as e:  # noqa: BLE001 - re-raised after the C call
            self.error = e
            return False

    def reraise(self) -> None:
        if self.error is not None:
            e, self.error = self.error, None
            raise e


# -------------------------------------------------------------------- facts

@dataclass(frozen=True)
class Fact:
    """A fact to locate or edit: ``prompt`` followed by ``target`` (joined with one
    space); ``subject`` optional (the subject's text as it appears in the prompt)."""

    prompt: str
    target: str
    subject: Optional[str] = None


FactLike = Union[Fact, Tuple[str, str], Tuple[str, str, Optional[str]], Mapping[str, Any]]


def _one_fact(f: Any) -> Tuple[bytes, bytes, Optional[bytes]]:
    if isinstance(f, Fact):
        p, t, s = f.prompt, f.target, f.subject
    elif isinstance(f, Mapping):
        p = f.get("prompt")
        t = f.get("target", f.get("target_new"))
        s = f.get("subject")
        if isinstance(t, Mapping):  # CounterFact's {"str": ...}
            t = t.get("str")
    elif isinstance(f, (tuple, list)) and len(f) in (2, 3):
        p, t = f[0], f[1]
        s = f[2] if len(f) == 3 else None
    elif f is None:
        raise KneError(Status.INVALID_ARG, "a fact is None")
    else:
        raise TypeError("a fact is a (prompt, target[, subject]) tuple, a dict with prompt/target"
                        f"[/subject], or kne.Fact; got {type(f).__name__}")
    return (_cstr(p, "prompt"), _cstr(t, "target"), None if s is None else _cstr(s, "subject"))


def _facts(facts: Any) -> Tuple[Any, int, list]:
    """(kne_fact array or None, count, keep-alive list)."""
    if facts is None:
        raise KneError(Status.INVALID_ARG, "facts is None")
    if isinstance(facts, (Fact, Mapping)) or (
            isinstance(facts, tuple) and len(facts) in (2, 3) and isinstance(facts[0], (str, bytes))):
        facts = [facts]  # a single fact
    if isinstance(facts, (str, bytes)):
        raise TypeError("facts must be a list of (prompt, target[, subject]) facts")
    rows = [_one_fact(f) for f in facts]
    if not rows:
        return None, 0, []
    arr = (L.kne_fact * len(rows))()
    for i, (p, t, s) in enumerate(rows):
        arr[i].prompt, arr[i].target, arr[i].subject = p, t, s
    return arr, len(rows), rows


# -------------------------------------------------------------------- model

class Model(_Closable):
    """A causal LM loaded by libkne (Llama, GPT-J, GPT-2 Hugging Face checkpoints).

    Args:
        path: checkpoint directory (config.json, safetensors, tokenizer.json).
        device: "cpu" (default), "cuda" or "cuda:N".
        dtype: "auto" (CPU: float32; CUDA: the checkpoint's), "f32", "f16", "bf16",
            or a KNE_DTYPE_* int.
        n_threads: CPU threads for libtorch's pool, 0 = all cores.
        progress: optional callback per loaded tensor (see :data:`Progress`).

    Raises:
        KneError: NOT_FOUND, FORMAT, DTYPE, DEVICE, ... as kne_model_load returns.

    Use as a context manager or call :meth:`close`; editors and ensembles made from
    the model are closed with it.
    """

    def __init__(self, path: PathLike, device: str = "cpu", dtype: Union[str, int] = "auto",
                 n_threads: int = 0, progress: Progress = None) -> None:
        self._h: Optional[Handle] = None
        self._children: "weakref.WeakSet[Any]" = weakref.WeakSet()
        bpath = _path(path)
        p = L.default_params("kne_model_default_params", L.kne_model_params)
        p.device = _cstr(device, "device")
        if isinstance(dtype, str):
            if dtype.lower() not in _DTYPES:
                raise KneError(Status.INVALID_ARG, f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
            p.dtype = _DTYPES[dtype.lower()]
        else:
            p.dtype = _int(dtype, "dtype")
        p.n_threads = _int(n_threads, "n_threads")
        prog = _Progress(progress)
        p.progress = prog.c
        out = L.kne_model_p()
        st = L.kne_model_load(byref(out), bpath, byref(p))
        prog.reraise()
        _check(st, "kne_model_load")
        if not out.value:
            raise KneError(Status.BACKEND, "kne_model_load returned no model")
        self._h = Handle(out.value, L.kne_model_free, "model")
        self.path: str = os.fsdecode(bpath)

    # ---- lifetime
    def close(self) -> None:
        """Frees the model, after closing every editor and ensemble made from it.
        Idempotent. Further calls on the model raise KneError(STATE)."""
        if self._h is None:
            return
        for child in list(self._children):
            child.close()
        self._h.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._h is None or self._h.closed

    def _use(self):
        if self._h is None:
            raise KneError(Status.STATE, "the model is closed")
        return self._h.use()

    def _adopt(self, child: Any) -> None:
        self._children.add(child)

    def __repr__(self) -> str:
        if self.closed:
            return "<kne.Model closed>"
        return f"<kne.Model {self.arch} {self.path!r} on {self.device}, {self.n_layers} layers>"

    # ---- shape
    def _q(self, fn: Callable[[int], Any]) -> Any:
        with self._use() as m:
            return fn(m)

    @property
    def n_vocab(self) -> int:
        """Vocabulary size (logits per position)."""
        return int(self._q(L.kne_model_n_vocab))

    @property
    def n_layers(self) -> int:
        """Number of transformer blocks."""
        return int(self._q(L.kne_model_n_layers))

    @property
    def n_embd(self) -> int:
        """Hidden size."""
        return int(self._q(L.kne_model_n_embd))

    @property
    def n_ctx(self) -> int:
        """Maximum positions."""
        return int(self._q(L.kne_model_n_ctx))

    @property
    def arch(self) -> str:
        """"llama", "gptj" or "gpt2"."""
        return self._q(L.kne_model_arch).decode()

    @property
    def device(self) -> str:
        """Device of the weights, e.g. "cpu"."""
        return self._q(L.kne_model_device).decode()

    @property
    def bos(self) -> int:
        """The tokenizer's BOS id, -1 if none."""
        return int(self._q(lambda m: L.kne_tokenizer_bos(L.kne_model_tokenizer(m))))

    @property
    def eos(self) -> int:
        """The tokenizer's EOS id, -1 if none."""
        return int(self._q(lambda m: L.kne_tokenizer_eos(L.kne_model_tokenizer(m))))

    # ---- tokenizer
    def tokenize(self, text: Union[str, bytes], add_special: bool = True) -> List[int]:
        """Encodes UTF-8 text into token ids; ``add_special`` applies the
        post-processor (e.g. Llama's BOS)."""
        b = _cstr(text, "text")
        cap = len(b) + 8
        with self._use() as m:
            while True:
                buf = (ctypes.c_int32 * cap)()
                n = c_size_t(0)
                st = L.kne_tokenize(m, b, 1 if add_special else 0, buf, cap, byref(n))
                if st == Status.BUFFER_TOO_SMALL and n.value > cap:
                    cap = n.value
                    continue
                _check(st, "kne_tokenize")
                return list(buf[: n.value])

    def detokenize(self, ids: Union[Sequence[int], np.ndarray], errors: str = "replace") -> str:
        """Decodes ids into text (bytes that are not valid UTF-8 are handled per
        ``errors``, as in :meth:`bytes.decode`)."""
        return self.detokenize_bytes(ids).decode("utf-8", errors)

    def detokenize_bytes(self, ids: Union[Sequence[int], np.ndarray]) -> bytes:
        """Decodes ids into the library's raw UTF-8 bytes."""
        a = _ids(ids)
        cap = 16 * len(a) + 16
        with self._use() as m:
            while True:
                buf = ctypes.create_string_buffer(cap)
                n = c_size_t(0)
                st = L.kne_detokenize(m, _ptr(a, ctypes.c_int32), len(a), buf, cap, byref(n))
                if st == Status.BUFFER_TOO_SMALL and n.value + 1 > cap:
                    cap = n.value + 1
                    continue
                _check(st, "kne_detokenize")
                return buf.raw[: n.value]

    # ---- inference
    def _check_len(self, n: int) -> None:
        if n > self.n_ctx:  # before allocating n x n_vocab floats
            raise KneError(Status.TOO_LONG, f"{n} tokens exceed the model's context of {self.n_ctx}")

    def forward(self, ids: Union[Sequence[int], np.ndarray]) -> np.ndarray:
        """Logits of every position: float32 array [len(ids), n_vocab]."""
        a = _ids(ids)
        self._check_len(len(a))
        with self._use() as m:
            out = np.empty((len(a), int(L.kne_model_n_vocab(m))), dtype=np.float32)
            _check(L.kne_model_forward(m, _ptr(a, ctypes.c_int32), len(a), _ptr(out, ctypes.c_float)),
                   "kne_model_forward")
        return out

    def token_logprobs(self, ids: Union[Sequence[int], np.ndarray]) -> np.ndarray:
        """log p(ids[i+1] | ids[..i]) for each i: float64 array [len(ids) - 1]."""
        a = _ids(ids)
        self._check_len(len(a))
        out = np.zeros(max(len(a) - 1, 1), dtype=np.float64)
        with self._use() as m:
            _check(L.kne_model_token_logprobs(m, _ptr(a, ctypes.c_int32), len(a),
                                              _ptr(out, ctypes.c_double)), "kne_model_token_logprobs")
        return out[: max(len(a) - 1, 0)]

    def generate_ids(self, ids: Union[Sequence[int], np.ndarray], max_tokens: int = 20, top_k: int = 1,
                     temperature: float = 1.0, seed: int = 0, stop_at_eos: bool = True) -> List[int]:
        """Continues token ids; returns the new ids. Greedy by default (top_k=1)."""
        a = _ids(ids)
        p = L.default_params("kne_generate_default_params", L.kne_generate_params)
        p.max_tokens = _int(max_tokens, "max_tokens")
        p.top_k = _int(top_k, "top_k")
        p.temperature = _float(temperature, "temperature")
        p.seed = _int(seed, "seed", 0, 2 ** 64 - 1)
        p.stop_at_eos = bool(stop_at_eos)
        with self._use() as m:
            cap = max(0, min(p.max_tokens, int(L.kne_model_n_ctx(m))))
            out = (ctypes.c_int32 * max(cap, 1))()
            n = c_size_t(0)
            _check(L.kne_model_generate(m, _ptr(a, ctypes.c_int32), len(a), byref(p), out, cap, byref(n)),
                   "kne_model_generate")
        return list(out[: n.value])

    def generate(self, prompt: Union[str, Sequence[int]], max_tokens: int = 20, top_k: int = 1,
                 temperature: float = 1.0, seed: int = 0, stop_at_eos: bool = True) -> str:
        """Continues a prompt (text, tokenized with special tokens, or ids) and returns
        the continuation's text, without the EOS that ended it. Greedy by default."""
        ids = self.tokenize(prompt) if isinstance(prompt, (str, bytes)) else prompt
        new = self.generate_ids(ids, max_tokens=max_tokens, top_k=top_k, temperature=temperature,
                                seed=seed, stop_at_eos=stop_at_eos)
        if new and stop_at_eos and new[-1] == self.eos:
            new = new[:-1]  # the EOS that ended generation is not part of the text
        return self.detokenize(new) if new else ""

    def save(self, path: PathLike, shard_bytes: int = 0) -> None:
        """Writes the model with its applied edits as a Hugging Face checkpoint into
        ``path`` (which must not exist); ``shard_bytes`` 0 = one file."""
        b = _path(path)
        with self._use() as m:
            _check(L.kne_model_save(m, b, _int(shard_bytes, "shard_bytes", 0, 2 ** 64 - 1)), "kne_model_save")

    # ---- KNE
    def locate(self, facts: Union[FactLike, Iterable[FactLike]], steps: Optional[int] = None,
               keep: Optional[float] = None,
               modules: Union[None, str, int, Iterable[Union[str, int]]] = None,
               layers: Optional[Tuple[int, int]] = None, objective: Optional[str] = None,
               progress: Progress = None) -> "Ensemble":
        """Attributes neurons for the facts and keeps the top ``keep`` fraction.

        Args (None = the library's default, kne_locate_default_params):
            facts: (prompt, target[, subject]) tuples, dicts or :class:`Fact`.
            steps: Riemann steps m.
            keep: fraction kept by the global quantile, in (0, 1].
            modules: module names ("mlp.down", "attn.o", ... or "all") or bits.
            layers: half-open (begin, end) layer range; None = all layers.
            objective: "prob" (the paper's) or "logprob".
            progress: optional callback; may cancel.
        """
        arr, n, keep_alive = _facts(facts)
        p = L.default_params("kne_locate_default_params", L.kne_locate_params)
        if steps is not None:
            p.steps = _int(steps, "steps")
        if keep is not None:
            p.keep = _float(keep, "keep")
        if modules is not None:
            p.modules = _modules(modules)
        if layers is not None:
            if not isinstance(layers, (tuple, list)) or len(layers) != 2:
                raise TypeError("layers must be a (begin, end) pair")
            p.layer_begin, p.layer_end = _int(layers[0], "layer_begin"), _int(layers[1], "layer_end")
        if objective is not None:
            if objective not in _OBJECTIVES:
                raise KneError(Status.INVALID_ARG, f"objective must be one of {sorted(_OBJECTIVES)}")
            p.objective = _OBJECTIVES[objective]
        prog = _Progress(progress)
        p.progress = prog.c
        out = L.kne_ensemble_p()
        with self._use() as m:
            st = L.kne_locate(byref(out), m, arr, n, byref(p))
        prog.reraise()
        _check(st, "kne_locate")
        del keep_alive
        return Ensemble._wrap(self, out.value)

    def editor(self, ensemble: "Ensemble", alpha: Optional[float] = None, lr: Optional[float] = None,
               max_steps: Optional[int] = None, stop_loss: Optional[float] = None,
               weight_decay: Optional[float] = None, neighbour_weight: Optional[float] = None,
               n_neighbours: Optional[int] = None,
               preserve: Union[None, int, str, Iterable[str]] = None, preserve_tol: Optional[float] = None,
               neighbour_subjects: Optional[Sequence[str]] = None, progress: Progress = None) -> "Editor":
        """Creates an :class:`Editor` for the ensemble's neurons (None = the library's
        default for that parameter, kne_edit_default_params). See :class:`Editor`."""
        return Editor(self, ensemble, alpha=alpha, lr=lr, max_steps=max_steps, stop_loss=stop_loss,
                      weight_decay=weight_decay, neighbour_weight=neighbour_weight,
                      n_neighbours=n_neighbours, preserve=preserve, preserve_tol=preserve_tol,
                      neighbour_subjects=neighbour_subjects, progress=progress)


def _as_model(model: Any) -> Model:
    if model is None:
        raise KneError(Status.INVALID_ARG, "model is None")
    if not isinstance(model, Model):
        raise TypeError(f"expected kne.Model, got {type(model).__name__}")
    return model


# ----------------------------------------------------------------- ensemble

class Ensemble(_Closable):
    """A set of neurons (rows of linear maps) found by :meth:`Model.locate`, loaded
    with :meth:`load`, built with :meth:`from_rows` or merged with ``|``."""

    def __init__(self) -> None:  # use Model.locate / Ensemble.load / from_rows
        raise TypeError("create ensembles with Model.locate, Ensemble.load or Ensemble.from_rows")

    @classmethod
    def _wrap(cls, model: Model, ptr: Optional[int]) -> "Ensemble":
        if not ptr:
            raise KneError(Status.BACKEND, "the library returned no ensemble")
        self = object.__new__(cls)
        self.model = model  # keeps the model alive
        self._h = Handle(ptr, L.kne_ensemble_free, "ensemble")
        model._adopt(self)
        return self

    @classmethod
    def load(cls, model: Model, path: PathLike) -> "Ensemble":
        """Reads an ensemble saved by :meth:`save`; KneError(MISMATCH) if it was made
        for another model."""
        model = _as_model(model)
        b = _path(path)
        out = L.kne_ensemble_p()
        with model._use() as m:
            _check(L.kne_ensemble_load(byref(out), m, b), "kne_ensemble_load")
        return cls._wrap(model, out.value)

    @classmethod
    def from_rows(cls, model: Model, layer: int, module: Union[str, int],
                  rows: Union[Sequence[int], np.ndarray]) -> "Ensemble":
        """An ensemble of the given rows of one (layer, module), e.g. all rows of a
        layer for plain fine-tuning."""
        model = _as_model(model)
        a = _ids(rows)
        out = L.kne_ensemble_p()
        with model._use() as m:
            _check(L.kne_ensemble_from_rows(byref(out), m, _int(layer, "layer"), module_bit(module),
                                            _ptr(a, ctypes.c_int32), len(a)), "kne_ensemble_from_rows")
        return cls._wrap(model, out.value)

    def close(self) -> None:
        """Frees the ensemble (idempotent); editors made from it keep their copy."""
        h = getattr(self, "_h", None)
        if h is not None:
            h.close()

    @property
    def closed(self) -> bool:
        """True once closed (or its model was closed)."""
        return self._h.closed

    @property
    def size(self) -> int:
        """Total number of selected neurons."""
        with self._h.use() as e:
            return int(L.kne_ensemble_size(e))

    def __len__(self) -> int:
        return self.size

    @property
    def n_layers(self) -> int:
        """Layer count of the model the ensemble was made for."""
        with self._h.use() as e:
            return int(L.kne_ensemble_n_layers(e))

    @property
    def threshold(self) -> float:
        """The score threshold t_p used for selection."""
        with self._h.use() as e:
            return float(L.kne_ensemble_threshold(e))

    def rows(self, layer: int, module: Union[str, int] = "mlp.down") -> np.ndarray:
        """Selected rows of one (layer, module), ascending: int32 array (a copy)."""
        p = ctypes.POINTER(ctypes.c_int32)()
        n = c_size_t(0)
        with self._h.use() as e:
            _check(L.kne_ensemble_rows(e, _int(layer, "layer"), module_bit(module), byref(p), byref(n)),
                   "kne_ensemble_rows")
            return np.ctypeslib.as_array(p, (n.value,)).copy() if n.value else np.zeros(0, np.int32)

    def scores(self, layer: int, module: Union[str, int] = "mlp.down") -> np.ndarray:
        """Attribution score of every neuron of one (layer, module): float32 array (a
        copy); empty where the ensemble holds no scores."""
        p = ctypes.POINTER(ctypes.c_float)()
        n = c_size_t(0)
        with self._h.use() as e:
            _check(L.kne_ensemble_scores(e, _int(layer, "layer"), module_bit(module), byref(p), byref(n)),
                   "kne_ensemble_scores")
            return np.ctypeslib.as_array(p, (n.value,)).copy() if n.value else np.zeros(0, np.float32)

    def items(self) -> Iterator[Tuple[int, str, np.ndarray]]:
        """(layer, module name, rows) for every (layer, module) holding rows."""
        for layer in range(self.n_layers):
            for i, name in enumerate(MODULES):
                r = self.rows(layer, 1 << i)
                if len(r):
                    yield layer, name, r

    def save(self, path: PathLike) -> None:
        """Writes the ensemble as JSON (rows, scores, threshold, model fingerprint)."""
        b = _path(path)
        with self._h.use() as e:
            _check(L.kne_ensemble_save(e, b), "kne_ensemble_save")

    def merge(self, other: "Ensemble") -> "Ensemble":
        """The union with another ensemble of the same model (a new ensemble)."""
        if other is None:
            raise KneError(Status.INVALID_ARG, "other ensemble is None")
        if not isinstance(other, Ensemble):
            raise TypeError(f"expected kne.Ensemble, got {type(other).__name__}")
        out = L.kne_ensemble_p()
        with self._h.use() as a, other._h.use() as b:
            _check(L.kne_ensemble_merge(byref(out), a, b), "kne_ensemble_merge")
        return Ensemble._wrap(self.model, out.value)

    __or__ = merge

    def __repr__(self) -> str:
        return "<kne.Ensemble closed>" if self.closed else f"<kne.Ensemble {self.size} neurons>"


# ------------------------------------------------------------------- editor

@dataclass(frozen=True)
class EditReport:
    """What :meth:`Editor.apply` did."""

    steps: int            #: optimisation steps taken
    initial_loss: float   #: target NLL before the edit
    loss: float           #: target NLL at the last step
    rows: int             #: weight rows written
    seconds: float        #: wall time of kne_apply


_PRESERVE = {"context": L.KNE_PRESERVE_CONTEXT, "generic": L.KNE_PRESERVE_GENERIC,
             "neighbours": L.KNE_PRESERVE_NEIGHBOURS}


def _preserve(value: Union[int, str, Iterable[str]]) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return _int(value, "preserve", 0, 2 ** 32 - 1)
    names = [value] if isinstance(value, str) else list(value)
    bits = 0
    for n in names:
        if n not in _PRESERVE:
            raise KneError(Status.INVALID_ARG, f"unknown preserve key {n!r}; known: {', '.join(_PRESERVE)}")
        bits |= _PRESERVE[n]
    return bits


class Editor(_Closable):
    """Trains and writes KNE edits on a model's ensemble neurons (see
    :meth:`Model.editor`). Edits revert LIFO with :meth:`revert`; closing the editor
    keeps its applied edits in the model.

    Args (None = the library's default):
        alpha: scale of the update, W + alpha/sqrt(n) dW.
        lr: Adam learning rate.
        max_steps: Adam steps at most.
        stop_loss: stop when the target NLL (mean per token) is below.
        weight_decay: L2 on W_kne.
        neighbour_weight, n_neighbours, neighbour_subjects: the neighbour KL term.
        preserve: keys whose outputs the edit keeps exact: "context", "generic",
            "neighbours" (or a list of them, or KNE_PRESERVE_* bits); preserve_tol.
        progress: called per step with the fraction done; may cancel.
    """

    def __init__(self, model: Model, ensemble: Ensemble, alpha: Optional[float] = None,
                 lr: Optional[float] = None, max_steps: Optional[int] = None,
                 stop_loss: Optional[float] = None, weight_decay: Optional[float] = None,
                 neighbour_weight: Optional[float] = None, n_neighbours: Optional[int] = None,
                 preserve: Union[None, int, str, Iterable[str]] = None, preserve_tol: Optional[float] = None,
                 neighbour_subjects: Optional[Sequence[str]] = None, progress: Progress = None) -> None:
        self._h: Optional[Handle] = None
        model = _as_model(model)
        if ensemble is None:
            raise KneError(Status.INVALID_ARG, "ensemble is None")
        if not isinstance(ensemble, Ensemble):
            raise TypeError(f"expected kne.Ensemble, got {type(ensemble).__name__}")
        p = L.default_params("kne_edit_default_params", L.kne_edit_params)
        for name, v in (("alpha", alpha), ("lr", lr), ("stop_loss", stop_loss),
                        ("weight_decay", weight_decay), ("neighbour_weight", neighbour_weight),
                        ("preserve_tol", preserve_tol)):
            if v is not None:
                setattr(p, name, _float(v, name))
        if preserve is not None:
            p.preserve = _preserve(preserve)
        self._subjects = None  # kept alive with the editor
        if neighbour_subjects is not None:
            if isinstance(neighbour_subjects, (str, bytes)):
                raise TypeError("neighbour_subjects must be a list of strings")
            subj = [_cstr(s, "neighbour subject") for s in neighbour_subjects]
            self._subjects = (ctypes.c_char_p * max(len(subj), 1))(*subj)
            p.neighbour_subjects = ctypes.cast(self._subjects, ctypes.POINTER(ctypes.c_char_p))
            p.n_neighbour_subjects = len(subj)
        if max_steps is not None:
            p.max_steps = _int(max_steps, "max_steps")
        if n_neighbours is not None:
            p.n_neighbours = _int(n_neighbours, "n_neighbours")
        self._progress = _Progress(progress)  # kept alive: called during apply
        p.progress = self._progress.c
        out = L.kne_editor_p()
        with model._use() as m, ensemble._h.use() as e:
            _check(L.kne_editor_new(byref(out), m, e, byref(p)), "kne_editor_new")
        if not out.value:
            raise KneError(Status.BACKEND, "kne_editor_new returned no editor")
        self.model = model  # keeps the model alive
        self.params: Dict[str, Any] = {
            f: getattr(p, f) for f in ("alpha", "lr", "max_steps", "stop_loss", "weight_decay", "preserve",
                                       "preserve_tol", "neighbour_weight", "n_neighbours")}
        self._h = Handle(out.value, L.kne_editor_free, "editor")
        model._adopt(self)

    def _use(self):
        if self._h is None:
            raise KneError(Status.STATE, "the editor is closed")
        return self._h.use()

    def apply(self, facts: Union[FactLike, Iterable[FactLike]]) -> EditReport:
        """Trains the edit on the facts (one batch) and writes the rows into the model.
        All-or-nothing: on error the model is unchanged."""
        arr, n, keep_alive = _facts(facts)
        rep = L.kne_edit_report()
        rep.struct_size = ctypes.sizeof(L.kne_edit_report)
        with self.model._use(), self._use() as ed:
            st = L.kne_apply(ed, arr, n, byref(rep))
        self._progress.reraise()
        _check(st, "kne_apply")
        del keep_alive
        return EditReport(steps=int(rep.steps), initial_loss=float(rep.initial_loss), loss=float(rep.loss),
                          rows=int(rep.rows), seconds=float(rep.seconds))

    def revert(self) -> None:
        """Restores the rows changed by the last not-yet-reverted apply, bit for bit;
        KneError(STATE) when there is nothing to revert."""
        with self.model._use(), self._use() as ed:
            _check(L.kne_editor_revert(ed), "kne_editor_revert")

    @property
    def n_applied(self) -> int:
        """Number of applied edits not reverted."""
        with self._use() as ed:
            return int(L.kne_editor_n_applied(ed))

    def close(self) -> None:
        """Frees the editor (idempotent); its applied edits stay in the model."""
        if self._h is not None:
            self._h.close()

    @property
    def closed(self) -> bool:
        """True once closed (or its model was closed)."""
        return self._h is None or self._h.closed

    def __repr__(self) -> str:
        return "<kne.Editor closed>" if self.closed else f"<kne.Editor {self.n_applied} applied>"
