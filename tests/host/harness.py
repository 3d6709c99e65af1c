"""Run the pack inside a real ComfyUI (v0.8.0): in-process, or as a server over HTTP.

Needs ``COMFYUI_PATH`` pointing at a ComfyUI checkout (never modified here; its
``.pyc`` files go to a cache outside it). Nothing here runs at import time, and
nothing from ComfyUI is imported until :func:`configure` is called.

In-process (one ComfyUI per process: ``folder_paths`` fixes its base directory
when first imported)::

    base = prepare_base_dir(tmp)              # custom_nodes/comfyui-miga -> repo
    configure(base)                           # cli args: cpu, base dir, sqlite file
    tiny_models.write_tiny_models(base)       # optional, needs configure() first
    comfy = init_comfy(base)                  # loads core + custom nodes
    comfy.validate(prompt)  -> Validation
    comfy.execute(prompt)   -> Execution      # raises PromptValidationError / PromptExecutionError

Over HTTP (a fresh ``python main.py`` process, the tiny text-encoder patch applied)::

    with start_server(base) as srv:
        prompt_id = srv.post_prompt(prompt)   # raises PromptRejected on HTTP 400
        entry = srv.wait_history(prompt_id)   # the /history entry; raises on error status
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Folder name of the pack under ``<base>/custom_nodes`` (what ComfyUI calls the module).
PACK_NAME = "comfyui-miga"
#: ``RELATIVE_PYTHON_MODULE`` ComfyUI stamps on every node class the pack registers.
PACK_MODULE = f"custom_nodes.{PACK_NAME}"
SERVER_SCRIPT = Path(__file__).with_name("run_comfyui.py")
PYCACHE_DIR = Path(tempfile.gettempdir()) / "comfyui-miga-host-pycache"
#: torch intra-op threads for host runs (in-process and server). The tiny models gain
#: nothing from more, and with 2 threads on a 2-core machine that is busy elsewhere
#: every op waits for the slower thread (a text encode went from 0.4 s to 10 s).
TORCH_THREADS = int(os.environ.get("MIGA_HOST_TORCH_THREADS", "1"))

# Top-level ComfyUI modules whose names another sys.path entry may shadow
# (the pack has its own ``nodes`` package, and the repo root is on sys.path in pytest).
_COMFY_TOP_LEVEL = (
    "nodes", "utils", "server", "execution", "folder_paths", "app", "comfy", "comfy_extras",
    "comfy_api", "comfy_execution", "comfy_config", "latent_preview", "node_helpers", "protocol",
    "middleware", "main", "cuda_malloc", "comfyui_version", "hook_breaker_ac10a0",
)


class HarnessError(RuntimeError):
    """The harness could not set ComfyUI up as asked."""


class PromptValidationError(AssertionError):
    """ComfyUI refused the prompt (``execution.validate_prompt`` / HTTP 400)."""

    def __init__(self, error: dict, node_errors: dict):
        self.error = error
        self.node_errors = node_errors
        super().__init__(f"prompt rejected: {json.dumps(error)}; node_errors: {json.dumps(node_errors)}")


class PromptExecutionError(AssertionError):
    """The prompt passed validation but a node raised while it ran."""

    def __init__(self, error: dict | None, messages: list):
        self.error = error or {}
        self.messages = messages
        detail = self.error
        text = (f"node {detail.get('node_id')} ({detail.get('node_type')}) raised "
                f"{detail.get('exception_type')}: {detail.get('exception_message')}\n"
                f"{''.join(detail.get('traceback', []))}") if detail else f"execution failed: {messages}"
        super().__init__(text)


# PromptRejected is the HTTP flavour of the same thing.
PromptRejected = PromptValidationError


def comfyui_path() -> Path | None:
    """The ComfyUI checkout named by ``COMFYUI_PATH``, or None when unset."""
    value = os.environ.get("COMFYUI_PATH")
    return Path(value).resolve() if value else None


def _require_comfyui_path() -> Path:
    path = comfyui_path()
    if path is None or not (path / "main.py").is_file():
        raise HarnessError(f"COMFYUI_PATH={os.environ.get('COMFYUI_PATH')!r} is not a ComfyUI checkout")
    return path


def prepare_base_dir(base_dir: str | Path, models_from: str | Path | None = None) -> Path:
    """Create a ComfyUI base directory with the pack linked in as a custom node.

    ``<base>/custom_nodes/comfyui-miga`` becomes a symlink to the repository root,
    so ComfyUI imports the pack exactly as an installed one. With ``models_from``,
    ``<base>/models`` is a symlink to that base directory's models.
    """
    base = Path(base_dir).resolve()
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / PACK_NAME
    if not link.is_symlink():
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    if models_from is not None and not (base / "models").exists():
        (base / "models").symlink_to(Path(models_from).resolve() / "models", target_is_directory=True)
    return base


def _evict_shadowing_modules(comfy_root: Path) -> None:
    for name in list(sys.modules):
        top = name.split(".", 1)[0]
        if top not in _COMFY_TOP_LEVEL:
            continue
        origin = getattr(sys.modules[name], "__file__", None) or ""
        if origin and not Path(origin).resolve().is_relative_to(comfy_root):
            log.warning("dropping module %s (%s): it shadows ComfyUI's %s", name, origin, top)
            del sys.modules[name]


def configure(base_dir: str | Path) -> None:
    """Put ComfyUI first on ``sys.path``, set its CLI args for a CPU run in ``base_dir``
    and torch to :data:`TORCH_THREADS` threads.

    Must run before anything imports ``folder_paths`` or ``comfy.model_management``
    (both read the args at import time). Calling it again with the same base is a
    no-op; with a different base after ComfyUI is imported it raises.
    """
    comfy_root = _require_comfyui_path()
    base = str(Path(base_dir).resolve())
    if sys.pycache_prefix is None:
        sys.pycache_prefix = str(PYCACHE_DIR)  # keep the ComfyUI checkout free of __pycache__
    if "folder_paths" in sys.modules:
        from comfy.cli_args import args
        if args.base_directory != base:
            raise HarnessError(f"ComfyUI already configured for {args.base_directory}, not {base}")
        return
    _evict_shadowing_modules(comfy_root)
    if str(comfy_root) in sys.path:
        sys.path.remove(str(comfy_root))
    sys.path.insert(0, str(comfy_root))

    import torch
    from comfy.cli_args import args

    torch.set_num_threads(TORCH_THREADS)
    args.cpu = True
    args.base_directory = base
    args.database_url = f"sqlite:///{base}/db.sqlite"
    args.disable_api_nodes = True


class _RecordingServer:
    """What ``execution.PromptExecutor`` needs of a PromptServer; records every event it is sent."""

    def __init__(self) -> None:
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets_metadata: dict = {}
        self.events: list[tuple[str, Any]] = []

    def send_sync(self, event, data, sid=None) -> None:
        self.events.append((event, data))

    def send_progress_text(self, text, node_id, sid=None) -> None:
        self.events.append(("progress_text", {"text": text, "node": node_id}))

    def queue_updated(self) -> None:
        pass


@dataclass
class Validation:
    """``execution.validate_prompt``'s answer."""

    ok: bool
    error: dict | None
    outputs: list[str]
    node_errors: dict


@dataclass
class Execution:
    """One finished in-process run."""

    prompt_id: str
    success: bool
    outputs: dict[str, dict]          #: node id -> UI output (what /history shows under "outputs")
    messages: list[tuple[str, dict]]  #: executor status messages (execution_start ... success/error)
    events: list[tuple[str, Any]] = field(default_factory=list)  #: everything sent to the server

    @property
    def error(self) -> dict | None:
        """The ``execution_error`` message data, if a node raised."""
        return next((d for e, d in self.messages if e == "execution_error"), None)


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


class Comfy:
    """An initialised in-process ComfyUI. Build with :func:`init_comfy`."""

    def __init__(self, base_dir: Path, import_failed: list[str], load_log: list[str]):
        import execution
        import nodes
        from comfy.cli_args import args

        self.base_dir = base_dir
        self.nodes = nodes
        #: comfy_extras modules that failed to import (ComfyUI's own list).
        self.import_failed = import_failed
        #: Log lines from custom-node loading that mention the pack (import errors land here).
        self.pack_load_log = [line for line in load_log if PACK_NAME in line]
        self.server = _RecordingServer()
        self._executor = execution.PromptExecutor(
            self.server, cache_type=execution.CacheType.CLASSIC,
            cache_args={"lru": args.cache_lru, "ram": args.cache_ram},
        )

    @property
    def node_types(self) -> list[str]:
        """Every registered node type (core and custom)."""
        return sorted(self.nodes.NODE_CLASS_MAPPINGS)

    @property
    def pack_node_types(self) -> list[str]:
        """Node types registered by the pack."""
        return sorted(k for k, v in self.nodes.NODE_CLASS_MAPPINGS.items()
                      if getattr(v, "RELATIVE_PYTHON_MODULE", None) == PACK_MODULE)

    @property
    def pack_loaded(self) -> bool:
        """Whether ComfyUI imported the pack without error."""
        return PACK_NAME in self.nodes.LOADED_MODULE_DIRS

    @property
    def pack_module(self):
        """The pack's package as ComfyUI imported it (None if it failed).

        ComfyUI names it after its path, so it is a different module object from
        a plain ``import miga_core`` through pytest's ``pythonpath``: compare
        classes from here (``comfy.pack_submodule("miga_core").MigaValueError``).
        """
        import folder_paths

        path = os.path.join(folder_paths.get_folder_paths("custom_nodes")[0], PACK_NAME)
        return sys.modules.get(path.replace(".", "_x_"))

    def pack_submodule(self, name: str):
        """Import ``<pack>.<name>`` (e.g. ``"nodes.host"``, ``"miga_core"``) from the loaded pack."""
        import importlib

        if self.pack_module is None:
            raise HarnessError("the pack is not loaded:\n" + "\n".join(self.pack_load_log))
        return importlib.import_module(f"{self.pack_module.__name__}.{name}")

    def validate(self, prompt: dict) -> Validation:
        """Validate an API-format prompt exactly as ``POST /prompt`` does: on-prompt handlers first, in the same task."""
        import execution
        import server

        async def post() -> tuple:
            data = server.PromptServer.instance.trigger_on_prompt({"prompt": prompt})
            return await execution.validate_prompt(str(data.get("prompt_id", uuid.uuid4())), data["prompt"], None)

        ok, error, outputs, node_errors = asyncio.run(post())
        return Validation(ok, error, outputs, node_errors)

    def execute(self, prompt: dict, check: bool = True) -> Execution:
        """Validate, then run an API-format prompt on the shared executor (outputs are cached like the server's).

        With ``check`` (default) a rejected prompt raises :class:`PromptValidationError`
        and a failing node :class:`PromptExecutionError`; otherwise a rejected prompt
        still raises and a failed run is returned with ``success`` False.
        """
        validation = self.validate(prompt)
        if not validation.ok:
            raise PromptValidationError(validation.error, validation.node_errors)
        prompt_id = str(uuid.uuid4())
        self.server.events = []
        self.server.last_prompt_id = prompt_id
        self._executor.execute(prompt, prompt_id, {}, validation.outputs)
        result = self._executor.history_result
        run = Execution(prompt_id, self._executor.success, result["outputs"],
                        list(self._executor.status_messages), list(self.server.events))
        if check and not run.success:
            raise PromptExecutionError(run.error, run.messages)
        return run

    def reset_cache(self) -> None:
        """Drop every cached node output (as ``POST /free`` with ``free_memory`` does)."""
        self._executor.reset()


_COMFY: Comfy | None = None


def _progress_hook(server: _RecordingServer):
    """A ProgressBar hook like ``main.hijack_progress``: honours interrupts, records progress."""
    import comfy.model_management
    from comfy_execution.progress import get_progress_state
    from comfy_execution.utils import get_executing_context

    def hook(value, total, preview_image, prompt_id=None, node_id=None):
        context = get_executing_context()
        if node_id is None and context is not None:
            node_id = context.node_id
        if prompt_id is None:
            prompt_id = context.prompt_id if context is not None else server.last_prompt_id
        comfy.model_management.throw_exception_if_processing_interrupted()
        get_progress_state().update_progress(node_id, value, total, preview_image)
        server.send_sync("progress", {"value": value, "max": total, "prompt_id": prompt_id, "node": node_id})

    return hook


def init_comfy(base_dir: str | Path) -> Comfy:
    """Start ComfyUI in this process (once) for ``base_dir``, loading core and custom nodes.

    Mirrors ``main.start_comfyui``: a ``PromptServer`` instance exists (custom nodes
    may register routes on it at import), built-in extra nodes and custom nodes are
    loaded, API nodes are not. The pack loading is allowed to fail: check
    :attr:`Comfy.pack_loaded` / :attr:`Comfy.pack_load_log`.
    """
    global _COMFY
    base = prepare_base_dir(base_dir)
    configure(base)
    if _COMFY is not None:
        return _COMFY

    import utils.extra_config  # noqa: F401  (before `nodes`, which reorders sys.path)
    import comfy.utils
    import nodes
    import server

    loop = asyncio.new_event_loop()
    server.PromptServer(loop)
    capture = _LogCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    try:
        import_failed = loop.run_until_complete(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    finally:
        root.removeHandler(capture)
        loop.close()
    _COMFY = Comfy(base, import_failed, capture.records)
    comfy.utils.set_progress_bar_global_hook(_progress_hook(_COMFY.server))
    if not _COMFY.pack_loaded:
        log.warning("the pack did not load as a custom node:\n%s", "\n".join(_COMFY.pack_load_log))
    return _COMFY


# --------------------------------------------------------------------------- HTTP


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """A ComfyUI server process and a small urllib client for it."""

    def __init__(self, url: str, process: subprocess.Popen, log_path: Path, base_dir: Path):
        self.url = url
        self.process = process
        self.log_path = log_path
        self.base_dir = base_dir

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's combined stdout/stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def request(self, path: str, data: dict | None = None, timeout: float = 30) -> tuple[int, Any]:
        """GET (or POST JSON when ``data`` is given) ``path``; return ``(status, decoded JSON or bytes)``."""
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(self.url + path, data=body,
                                     headers={"Content-Type": "application/json"} if body else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        return status, (json.loads(raw) if "json" in ctype else raw)

    def get_json(self, path: str) -> Any:
        status, payload = self.request(path)
        if status != 200:
            raise HarnessError(f"GET {path} -> {status}: {payload!r}")
        return payload

    def object_info(self) -> dict:
        """``GET /object_info``: every registered node type and its schema."""
        return self.get_json("/object_info")

    def post_prompt(self, prompt: dict, client_id: str | None = None) -> str:
        """Queue an API-format prompt; return its id. HTTP 400 raises :class:`PromptRejected`."""
        status, payload = self.request("/prompt", {"prompt": prompt, "client_id": client_id or uuid.uuid4().hex})
        if status == 400:
            raise PromptRejected(payload.get("error", {}), payload.get("node_errors", {}))
        if status != 200:
            raise HarnessError(f"POST /prompt -> {status}: {payload!r}")
        return payload["prompt_id"]

    def wait_history(self, prompt_id: str, timeout: float = 120, check: bool = True) -> dict:
        """Poll ``/history/<id>`` until the prompt finished; return its entry (outputs, status, meta).

        With ``check`` a run whose status is not success raises :class:`PromptExecutionError`.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get_json(f"/history/{prompt_id}").get(prompt_id)
            if entry is not None and entry.get("status", {}).get("completed") is not None:
                status = entry["status"]
                if check and status.get("status_str") != "success":
                    messages = [tuple(m) for m in status.get("messages", [])]
                    error = next((d for e, d in messages if e == "execution_error"), None)
                    raise PromptExecutionError(error, messages)
                return entry
            if self.process.poll() is not None:
                raise HarnessError(f"server exited ({self.process.returncode}):\n{self.log_tail()}")
            time.sleep(0.2)
        raise HarnessError(f"prompt {prompt_id} not finished after {timeout}s:\n{self.log_tail()}")

    def view(self, image: dict) -> bytes:
        """Download one output file as listed in a history entry (``filename``/``subfolder``/``type``)."""
        query = urllib.parse.urlencode({k: image.get(k, "") for k in ("filename", "subfolder", "type")})
        status, payload = self.request(f"/view?{query}")
        if status != 200:
            raise HarnessError(f"GET /view?{query} -> {status}")
        return payload


@contextlib.contextmanager
def start_server(base_dir: str | Path, timeout: float = 120, extra_args: tuple[str, ...] = ()) -> Iterator[ComfyServer]:
    """Run ``python main.py --cpu --listen 127.0.0.1 --port <free> --base-directory <base> ...``.

    Runs through ``run_comfyui.py`` (applies :func:`tiny_models.patch_tiny_text_encoder`
    first), with ``--database-url sqlite:///<base>/db.sqlite --disable-api-nodes`` and
    ``OMP_NUM_THREADS`` = :data:`TORCH_THREADS`.
    Yields once the HTTP API answers; stops the process on exit. Its output goes to
    ``<base>/server-<port>.log``.
    """
    comfy_root = _require_comfyui_path()
    base = prepare_base_dir(base_dir)
    port = free_port()
    command = [
        sys.executable, str(SERVER_SCRIPT), "--cpu", "--listen", "127.0.0.1", "--port", str(port),
        "--base-directory", str(base), "--database-url", f"sqlite:///{base}/db.sqlite",
        "--disable-api-nodes", *extra_args,
    ]
    env = {**os.environ, "COMFYUI_PATH": str(comfy_root), "PYTHONUNBUFFERED": "1",
           "OMP_NUM_THREADS": str(TORCH_THREADS)}
    env.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE_DIR))
    log_path = base / f"server-{port}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, cwd=comfy_root, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    srv = ComfyServer(f"http://127.0.0.1:{port}", process, log_path, base)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise HarnessError(f"server exited ({process.returncode}) while starting:\n{srv.log_tail()}")
            try:
                if srv.request("/system_stats", timeout=2)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                pass
            if time.monotonic() > deadline:
                raise HarnessError(f"server not ready after {timeout}s:\n{srv.log_tail()}")
            time.sleep(0.25)
        log.info("ComfyUI server ready at %s", srv.url)
        yield srv
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
