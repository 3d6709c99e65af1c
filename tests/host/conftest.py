"""Fixtures for tests that run the pack inside a real ComfyUI.

Everything under tests/host is skipped unless ``COMFYUI_PATH`` names a ComfyUI
checkout (CI has none): each test module is then collected, without being
imported (so nothing imports torch or ComfyUI), as one item that skips, however
pytest was invoked (repo root, ``tests/host``, or one file; exit status 0).

Fixtures (session scope):

* ``comfy_base``: a ComfyUI base directory (``pathlib.Path``) holding the tiny
  Wan 2.1 models (see ``tiny_models``) and ``custom_nodes/comfyui-miga`` linked
  to this repository; ComfyUI's CLI args in this process already point at it.
* ``comfy``: ``harness.Comfy``, ComfyUI initialised in-process on ``comfy_base``
  (core + custom nodes loaded, tiny text-encoder patch applied).
* ``vc2_checkpoint``: the tiny VideoCrafter2 checkpoint (``tiny_models.write_tiny_vc2``)
  written into ``comfy_base``'s models/checkpoints under the VC2 template's name.
* ``comfy_server``: ``harness.ComfyServer``, a ``main.py`` server process on its
  own base directory sharing ``comfy_base``'s models; started on first use.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402  (standard library only until its functions are called)

SKIP_REASON = "COMFYUI_PATH is not set: no ComfyUI to host the pack"


class _NeedsComfyUI(pytest.Item):
    """Stands for a whole test module that cannot run here; it only reports a skip."""

    def runtest(self):
        pytest.skip(SKIP_REASON)

    def reportinfo(self):
        return self.path, None, self.name


class _UnimportedModule(pytest.File):
    """A test module collected without being imported, as one skipped item."""

    def collect(self):
        yield _NeedsComfyUI.from_parent(self, name="needs_comfyui")


def pytest_pycollect_makemodule(module_path, parent):
    if harness.comfyui_path() is None:
        return _UnimportedModule.from_parent(parent, path=module_path)
    return None


@pytest.fixture(scope="session")
def comfy_base(tmp_path_factory) -> Path:
    base = harness.prepare_base_dir(tmp_path_factory.mktemp("comfy_base"))
    harness.configure(base)
    import tiny_models

    tiny_models.write_tiny_models(base)
    return base


@pytest.fixture(scope="session")
def comfy(comfy_base) -> "harness.Comfy":
    import tiny_models

    tiny_models.patch_tiny_text_encoder()
    return harness.init_comfy(comfy_base)


@pytest.fixture(scope="session")
def vc2_checkpoint(comfy, comfy_base) -> Path:
    """The tiny VideoCrafter2 checkpoint in ``comfy_base``'s models/checkpoints (it needs the imported pack)."""
    import tiny_models

    return tiny_models.write_tiny_vc2(comfy_base, comfy.pack_submodule("nodes.vc2_unet"))


@pytest.fixture(scope="session")
def comfy_server(comfy_base, tmp_path_factory) -> "harness.ComfyServer":
    base = harness.prepare_base_dir(tmp_path_factory.mktemp("comfy_server"), models_from=comfy_base)
    with harness.start_server(base) as srv:
        yield srv
