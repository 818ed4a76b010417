"""JupyterLab for the analysts (``make lab``): the book's notebooks, opened with a kernel named after the trial.

The kernel spec ("NCT06984497 book", ``nct06984497-book``) is installed into this environment (sys-prefix). Its
kernel is the build's: this environment's Python, this checkout's ``helpers`` (``PYTHONPATH``: an environment shared
by several checkouts imports the right one) and inline figures (``MPLBACKEND``, as ``pipeline.inline_figures``);
JupyterLab starts it in ``notebooks/``, the folder a build runs the chapters in. The server offers only that kernel,
so a notebook whose metadata names another Python kernel (the stored ``python3``) opens with it too.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from helpers import paths
from helpers.trial import Trial

DEFAULT_PORT = 8888


class LabError(RuntimeError):
    """JupyterLab cannot start; the message says why and what to do."""


def kernel_name(trial: Trial) -> str:
    """The kernel spec's name: a slug of the trial id (``nct06984497-book``), as Jupyter's names allow."""
    return re.sub(r"[^a-z0-9]+", "-", trial.id.lower()).strip("-") + "-book"


def display_name(trial: Trial) -> str:
    """The kernel's name as JupyterLab shows it: "NCT06984497 book"."""
    return f"{trial.id} book"


def kernel_env() -> dict[str, str]:
    """What the kernel's environment adds to the server's: this checkout's helpers, and figures drawn as a build
    draws them."""
    from helpers.pipeline import INLINE_BACKEND

    return {"PYTHONPATH": str(paths.ROOT / "src"), "MPLBACKEND": INLINE_BACKEND}


def install_kernel(trial: Trial, prefix: str | os.PathLike = sys.prefix) -> Path:
    """Install (or update) the trial's kernel spec under ``prefix``/share/jupyter/kernels; returns its folder."""
    from ipykernel.kernelspec import install

    return Path(install(kernel_name=kernel_name(trial), display_name=display_name(trial), prefix=str(prefix),
                        env=kernel_env()))


def lab_command(trial: Trial, port: int | None = None, browser: bool = True) -> list[str]:
    """The ``jupyter lab`` command: on notebooks/, on localhost only, offering the trial's kernel alone and as the
    default. An explicit ``port`` that is taken is an error rather than a move to the next one. As root (a container,
    CI), the server is allowed to run, as Jupyter otherwise refuses."""
    name = kernel_name(trial)
    root = ["--ServerApp.allow_root=True"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return [sys.executable, "-m", "jupyterlab",
            f"--ServerApp.root_dir={paths.NOTEBOOKS}",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port or DEFAULT_PORT}",
            f"--ServerApp.port_retries={0 if port else 50}",
            f"--ServerApp.open_browser={browser}",
            f"--KernelSpecManager.allowed_kernelspecs={name}",
            f"--MappingKernelManager.default_kernel_name={name}"] + root


def lab_env(prefix: str | os.PathLike = sys.prefix) -> dict[str, str]:
    """The server's environment: this one, with ``prefix``'s kernels on the search path when it is not this
    environment's own."""
    env = dict(os.environ)
    if Path(prefix).resolve() != Path(sys.prefix).resolve():
        share = str(Path(prefix) / "share" / "jupyter")
        env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [share, env.get("JUPYTER_PATH")]))
    return env


def start(trial: Trial, port: int | None = None, browser: bool = True, prefix: str | os.PathLike = sys.prefix,
          log=print) -> None:
    """Install the trial's kernel spec, then become ``jupyter lab`` (the process is replaced: Ctrl-C and signals
    reach the server itself, which shuts its kernels down)."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        raise LabError(f"JupyterLab is not installed in this environment ({sys.prefix}); `make lab` installs "
                       "requirements.lock, which pins it") from None
    folder = install_kernel(trial, prefix)
    log(f"kernel {display_name(trial)!r} ({kernel_name(trial)}) installed in {folder}")
    log(f"JupyterLab on {paths.NOTEBOOKS} (Ctrl-C twice to stop)")
    cmd = lab_command(trial, port, browser)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cmd[0], cmd, lab_env(prefix))
