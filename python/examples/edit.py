#!/usr/bin/env python3
"""Edit one fact from Python: locate its neurons, apply the new answer, print the
greedy answer before and after, then revert.

    KNE_LIBRARY=$PWD/build/libkne.so PYTHONPATH=python \\
        python3 python/examples/edit.py ../shared/models/kne-llama-tiny
"""
import sys

import kne

PROMPT = "The mother tongue of Danielle Darrieux is"
FACT = (PROMPT, "English", "Danielle Darrieux")  # (prompt, target, subject)


def main(model_dir: str) -> int:
    with kne.Model(model_dir) as model:
        print(f"{PROMPT} ...")
        before = model.generate(PROMPT, max_tokens=8)
        print(f"  before:   {before}")
        ens = model.locate([FACT], steps=20, keep=0.01, modules=("mlp.down",))
        editor = model.editor(ens, max_steps=25)
        report = editor.apply([FACT])
        after = model.generate(PROMPT, max_tokens=8)
        print(f"  edited:   {after}   ({ens.size} neurons, {report.steps} steps, "
              f"loss {report.initial_loss:.3f} -> {report.loss:.3f}, {report.seconds:.2f} s)")
        editor.revert()
        reverted = model.generate(PROMPT, max_tokens=8)
        print(f"  reverted: {reverted}")
        return 0 if "English" in after and reverted == before else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} MODEL_DIR")
    sys.exit(main(sys.argv[1]))
