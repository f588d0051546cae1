"""Loads libkne.so and declares the C prototypes and structs of kne.h (ctypes).

Lookup order: the ``KNE_LIBRARY`` environment variable (a path), a ``libkne.so*``
beside this package, then the system loader (``ctypes.util.find_library("kne")``,
``libkne.so.0``). The library's major version must equal the package's.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char_p, c_double, c_float,
                    c_int, c_int32, c_int64, c_size_t, c_uint32, c_uint64, c_void_p)
from typing import List, Optional

from ._version import __version__

VERSION_MAJOR = int(__version__.split(".")[0])

# opaque handles
kne_model_p = c_void_p
kne_tokenizer_p = c_void_p
kne_ensemble_p = c_void_p
kne_editor_p = c_void_p
kne_status = c_int  # a C enum: int-sized

kne_progress_fn = CFUNCTYPE(c_bool, c_float, c_void_p)


class kne_model_params(Structure):
    _fields_ = [("struct_size", c_uint32), ("device", c_char_p), ("dtype", c_int32),
                ("n_threads", c_int32), ("progress", kne_progress_fn),
                ("progress_user_data", c_void_p)]


class kne_generate_params(Structure):
    _fields_ = [("struct_size", c_uint32), ("max_tokens", c_int32), ("top_k", c_int32),
                ("temperature", c_float), ("seed", c_uint64), ("stop_at_eos", c_bool)]


class kne_fact(Structure):
    _fields_ = [("prompt", c_char_p), ("target", c_char_p), ("subject", c_char_p)]


class kne_locate_params(Structure):
    _fields_ = [("struct_size", c_uint32), ("steps", c_int32), ("keep", c_double),
                ("modules", c_uint32), ("layer_begin", c_int32), ("layer_end", c_int32),
                ("objective", c_int32), ("progress", kne_progress_fn),
                ("progress_user_data", c_void_p)]


KNE_PRESERVE_CONTEXT = 1 << 0
KNE_PRESERVE_GENERIC = 1 << 1
KNE_PRESERVE_NEIGHBOURS = 1 << 2


class kne_edit_params(Structure):
    _fields_ = [("struct_size", c_uint32), ("alpha", c_double), ("lr", c_double),
                ("max_steps", c_int32), ("stop_loss", c_double), ("weight_decay", c_double),
                ("preserve", c_uint32), ("preserve_tol", c_double),
                ("neighbour_weight", c_double), ("n_neighbours", c_int32),
                ("neighbour_subjects", POINTER(c_char_p)), ("n_neighbour_subjects", c_size_t),
                ("progress", kne_progress_fn), ("progress_user_data", c_void_p)]


class kne_edit_report(Structure):
    _fields_ = [("struct_size", c_uint32), ("steps", c_int32), ("initial_loss", c_double),
                ("loss", c_double), ("rows", c_int64), ("seconds", c_double)]


class _Returned(Structure):
    """Receives a *_default_params() struct returned by value. It is larger than any
    params struct, so a library whose struct grew cannot overflow it (structs over 16
    bytes are returned through a caller-provided buffer on x86-64 and AArch64); the
    struct_size it carries is then checked against this package's layout."""
    _fields_ = [("struct_size", c_uint32), ("_rest", ctypes.c_char * 1020)]


P_i32 = POINTER(c_int32)
P_f32 = POINTER(c_float)
P_f64 = POINTER(c_double)

# name: (restype, argtypes)
_PROTOTYPES = {
    "kne_version": (c_char_p, []),
    "kne_version_number": (c_uint32, []),
    "kne_status_str": (c_char_p, [kne_status]),
    "kne_last_error": (c_char_p, []),
    "kne_model_default_params": (_Returned, []),
    "kne_model_load": (kne_status, [POINTER(kne_model_p), c_char_p, POINTER(kne_model_params)]),
    "kne_model_free": (None, [kne_model_p]),
    "kne_model_n_vocab": (c_int32, [kne_model_p]),
    "kne_model_n_layers": (c_int32, [kne_model_p]),
    "kne_model_n_embd": (c_int32, [kne_model_p]),
    "kne_model_n_ctx": (c_int32, [kne_model_p]),
    "kne_model_arch": (c_char_p, [kne_model_p]),
    "kne_model_device": (c_char_p, [kne_model_p]),
    "kne_model_tokenizer": (kne_tokenizer_p, [kne_model_p]),
    "kne_model_forward": (kne_status, [kne_model_p, P_i32, c_size_t, P_f32]),
    "kne_model_token_logprobs": (kne_status, [kne_model_p, P_i32, c_size_t, P_f64]),
    "kne_generate_default_params": (_Returned, []),
    "kne_model_generate": (kne_status, [kne_model_p, P_i32, c_size_t, POINTER(kne_generate_params),
                                        P_i32, c_size_t, POINTER(c_size_t)]),
    "kne_model_save": (kne_status, [kne_model_p, c_char_p, c_uint64]),
    "kne_tokenizer_n_vocab": (c_int32, [kne_tokenizer_p]),
    "kne_tokenizer_bos": (c_int32, [kne_tokenizer_p]),
    "kne_tokenizer_eos": (c_int32, [kne_tokenizer_p]),
    "kne_tokenize": (kne_status, [kne_model_p, c_char_p, c_int, P_i32, c_size_t, POINTER(c_size_t)]),
    "kne_detokenize": (kne_status, [kne_model_p, P_i32, c_size_t, c_char_p, c_size_t, POINTER(c_size_t)]),
    "kne_module_name": (c_char_p, [c_uint32]),
    "kne_module_from_name": (c_uint32, [c_char_p]),
    "kne_locate_default_params": (_Returned, []),
    "kne_locate": (kne_status, [POINTER(kne_ensemble_p), kne_model_p, POINTER(kne_fact), c_size_t,
                                POINTER(kne_locate_params)]),
    "kne_ensemble_free": (None, [kne_ensemble_p]),
    "kne_ensemble_size": (c_size_t, [kne_ensemble_p]),
    "kne_ensemble_n_layers": (c_int32, [kne_ensemble_p]),
    "kne_ensemble_threshold": (c_double, [kne_ensemble_p]),
    "kne_ensemble_rows": (kne_status, [kne_ensemble_p, c_int32, c_uint32, POINTER(P_i32), POINTER(c_size_t)]),
    "kne_ensemble_scores": (kne_status, [kne_ensemble_p, c_int32, c_uint32, POINTER(P_f32), POINTER(c_size_t)]),
    "kne_ensemble_save": (kne_status, [kne_ensemble_p, c_char_p]),
    "kne_ensemble_load": (kne_status, [POINTER(kne_ensemble_p), kne_model_p, c_char_p]),
    "kne_ensemble_from_rows": (kne_status, [POINTER(kne_ensemble_p), kne_model_p, c_int32, c_uint32,
                                            P_i32, c_size_t]),
    "kne_ensemble_merge": (kne_status, [POINTER(kne_ensemble_p), kne_ensemble_p, kne_ensemble_p]),
    "kne_edit_default_params": (_Returned, []),
    "kne_editor_new": (kne_status, [POINTER(kne_editor_p), kne_model_p, kne_ensemble_p,
                                    POINTER(kne_edit_params)]),
    "kne_apply": (kne_status, [kne_editor_p, POINTER(kne_fact), c_size_t, POINTER(kne_edit_report)]),
    "kne_editor_revert": (kne_status, [kne_editor_p]),
    "kne_editor_n_applied": (c_size_t, [kne_editor_p]),
    "kne_editor_free": (None, [kne_editor_p]),
}


class _Missing:
    """Stands in for a function the loaded library does not export (an older build):
    calling it raises KneError(UNSUPPORTED) instead of failing at import."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args, **kwargs):
        from .errors import KneError, Status
        raise KneError(Status.UNSUPPORTED, f"{self.name} is not exported by the loaded libkne")


def _candidates() -> List[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    found = sorted(glob.glob(os.path.join(here, "libkne.so*")), key=len)
    sys_name = ctypes.util.find_library("kne")
    return found + ([sys_name] if sys_name else []) + ["libkne.so.%d" % VERSION_MAJOR, "libkne.so"]


def _open() -> ctypes.CDLL:
    env = os.environ.get("KNE_LIBRARY")
    if env:
        try:
            return ctypes.CDLL(env)
        except OSError as e:
            raise ImportError(f"kne: cannot load KNE_LIBRARY={env!r}: {e}") from e
    errors = []
    for name in _candidates():
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            errors.append(f"{name}: {e}")
    raise ImportError("kne: libkne.so not found. Set KNE_LIBRARY to its path (e.g. "
                      "KNE_LIBRARY=$PWD/build/libkne.so), copy it beside the kne package, or "
                      "install it system-wide (make install). Tried: " + "; ".join(errors))


def _bind(lib: ctypes.CDLL) -> None:
    for name, (res, args) in _PROTOTYPES.items():
        try:
            f = getattr(lib, name)
        except AttributeError:
            globals()[name] = _Missing(name)
            continue
        f.restype = res
        f.argtypes = args
        globals()[name] = f


lib = _open()
if not hasattr(lib, "kne_version_number"):
    raise ImportError(f"kne: {lib._name} does not look like libkne (no kne_version_number)")
lib.kne_version_number.restype = c_uint32
lib.kne_version_number.argtypes = []
LIB_VERSION_NUMBER: int = int(lib.kne_version_number())
if LIB_VERSION_NUMBER // 10000 != VERSION_MAJOR:
    raise ImportError(
        f"kne: the Python package is version {__version__} (major {VERSION_MAJOR}) but "
        f"{lib._name} is version {LIB_VERSION_NUMBER // 10000}.{LIB_VERSION_NUMBER // 100 % 100}."
        f"{LIB_VERSION_NUMBER % 100} (major {LIB_VERSION_NUMBER // 10000}); install matching "
        f"versions or point KNE_LIBRARY at a matching libkne.so")
_bind(lib)
LIB_PATH: str = lib._name


def last_error() -> str:
    """kne_last_error() of the calling thread, decoded."""
    msg: Optional[bytes] = kne_last_error()  # type: ignore[name-defined]  # noqa: F821
    return msg.decode("utf-8", "replace") if msg else ""


def default_params(func_name: str, cls: type) -> Structure:
    """cls filled by the library's func_name(); KneError(UNSUPPORTED) when the
    library's struct layout (its struct_size) differs from this package's."""
    from .errors import KneError, Status
    raw = globals()[func_name]()
    if raw.struct_size != ctypes.sizeof(cls):
        raise KneError(Status.UNSUPPORTED,
                       f"{func_name}: the library's struct is {raw.struct_size} bytes, this kne package "
                       f"expects {ctypes.sizeof(cls)}: the package and {LIB_PATH} come from different "
                       "versions of kne.h")
    out = cls()
    ctypes.memmove(ctypes.byref(out), ctypes.byref(raw), ctypes.sizeof(cls))
    return out
