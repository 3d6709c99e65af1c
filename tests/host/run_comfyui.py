"""Run ComfyUI's ``main.py`` as ``__main__`` with the tiny text-encoder patch applied.

Usage: ``COMFYUI_PATH=<checkout> python run_comfyui.py <main.py arguments>``
(``harness.start_server`` does this). The process then looks exactly like
``python main.py ...`` started in the checkout, except that
``tiny_models.patch_tiny_text_encoder()`` runs right after ComfyUI first imports
``comfy.sd``. Deferring it keeps main.py's start-up order intact (it warns when
torch is imported before its prestartup step, and it must enable argument parsing
before the first ``comfy.cli_args`` import).
"""

import importlib.abc
import importlib.util
import os
import runpy
import sys

_TARGET = "comfy.sd"


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the real loader of ``comfy.sd`` to patch it once executed."""

    def find_spec(self, name, path, target=None):
        if name != _TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            import tiny_models

            tiny_models.patch_tiny_text_encoder(module)

        spec.loader.exec_module = exec_module
        return spec


def main() -> None:
    comfy_root = os.path.abspath(os.environ["COMFYUI_PATH"])
    here = os.path.dirname(os.path.abspath(__file__))
    main_py = os.path.join(comfy_root, "main.py")

    sys.argv = [main_py, *sys.argv[1:]]
    sys.path[0] = comfy_root  # what `python main.py` would have put there
    sys.path.append(here)     # for tiny_models only, behind everything else
    os.chdir(comfy_root)
    sys.meta_path.insert(0, _PatchAfterImport())

    runpy.run_path(main_py, run_name="__main__")


if __name__ == "__main__":
    main()
