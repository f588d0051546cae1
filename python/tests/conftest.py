"""Shared fixtures: paths, the loaded model, and the C oracle (compiled here from
c_oracle.c against the same libkne, independent of the Python wrapper)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("KNE_SHARED") or ROOT / ".." / "shared").resolve()
LLAMA = SHARED / "models" / "kne-llama-tiny"
GPT2 = SHARED / "models" / "kne-gpt2-tiny"
LIBRARY = Path(os.environ.get("KNE_LIBRARY") or ROOT / "build" / "libkne.so")
LIBDIR = LIBRARY.resolve().parent
os.environ.setdefault("KNE_LIBRARY", str(LIBRARY))

# The parity scenario (small, so the suite stays fast)
PROMPT = "The mother tongue of Danielle Darrieux is"
TARGET = "English"
STEPS = 8
KEEP = 0.02
MAX_STEPS = 6
TEXTS = [
    "The mother tongue of Danielle Darrieux is",
    "Hello, world!  Two  spaces and\ttabs.",
    "naïve café — 東京 😀",
    "The capital of France is Paris.",
    " leading space",
    "x",
]


def cc() -> str:
    for c in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if c and shutil.which(c):
            return c
    pytest.skip("no C compiler")


def compile_c(src: Path, exe: Path, *extra: str) -> Path:
    cmd = [cc(), "-std=c99", "-O2", "-I", str(ROOT / "include"), str(src), "-o", str(exe),
           *extra]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    return exe


@pytest.fixture(scope="session")
def model():
    import kne
    m = kne.Model(str(LLAMA))
    yield m
    m.close()


@pytest.fixture(scope="session")
def oracle(tmp_path_factory):
    """Runs c_oracle on the parity scenario; returns the directory of its outputs."""
    d = tmp_path_factory.mktemp("oracle")
    exe = compile_c(ROOT / "python" / "tests" / "c_oracle.c", d / "c_oracle",
                    f"-L{LIBDIR}", f"-Wl,-rpath,{LIBDIR}", "-lkne")
    texts = d / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = d / "out"
    out.mkdir()
    r = subprocess.run([str(exe), str(LLAMA), str(out), PROMPT, TARGET, str(STEPS), str(KEEP),
                        str(MAX_STEPS), str(texts)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return out
