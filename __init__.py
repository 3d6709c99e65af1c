"""comfyui-miga: long, consistent videos from short-clip video models in ComfyUI (MIGA, arXiv 2605.18233).

ComfyUI loads this folder from ``custom_nodes`` and calls :func:`comfy_entrypoint`; the math lives
in :mod:`miga_core`, the nodes in :mod:`nodes` (see README.md). Nothing is imported at import
time, so the folder also imports cleanly outside ComfyUI (e.g. as pytest's root package).
"""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    """ComfyUI's V3 entry point: the extension listing the MIGA nodes."""
    from .nodes import MigaExtension

    return MigaExtension()
