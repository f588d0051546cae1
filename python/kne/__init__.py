"""kne: Python bindings (ctypes) for libkne, which edits facts inside LLMs by the
Knowledge Neuronal Ensemble method.

    import kne
    with kne.Model("../shared/models/kne-llama-tiny") as model:
        prompt = "The mother tongue of Danielle Darrieux is"
        ens = model.locate([(prompt, "English")])
        ed = model.editor(ens)
        report = ed.apply([(prompt, "English")])
        print(model.generate(prompt, max_tokens=3))
        ed.revert()

The shared library is found through KNE_LIBRARY, then beside this package, then the
system loader; see docs/python.md.
"""
from ._version import __version__
from .errors import KneError, Status
from . import _lib
from .model import (MODULES, EditReport, Editor, Ensemble, Fact, FactLike, Model, module_bit,
                    module_name)

__all__ = ["__version__", "library_version", "library_path", "KneError", "Status", "Model",
           "Ensemble", "Editor", "EditReport", "Fact", "FactLike", "MODULES", "module_bit",
           "module_name"]


def library_version() -> str:
    """The loaded libkne's version string, e.g. "0.1.0"."""
    return _lib.kne_version().decode()


def library_path() -> str:
    """The path (or loader name) libkne was loaded from."""
    return _lib.LIB_PATH
