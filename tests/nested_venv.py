"""A throwaway venv for tests that install a package for real (a wheel, a plugin with an entry point).

``python -m venv --system-site-packages`` is not enough: run from a venv, it links the *base* interpreter's
packages, not the running venv's, so hatchling and this checkout's boocoder_bridge are missing. Instead the new
venv gets one ``.pth`` file that adds the running interpreter's site dirs (processing their own ``.pth`` files, so
an editable install is seen too). That works the same from a venv and from a system Python. Packages installed
into the new venv come first on ``sys.path``, ahead of everything added.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path


def _outer_site_dirs() -> list[str]:
    """This interpreter's site dirs, in its own ``sys.path`` order (a user site comes before the system's)."""
    dirs = [*site.getsitepackages(), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    order = {os.path.realpath(p): i for i, p in reversed(list(enumerate(sys.path)))}
    dirs = sorted(dict.fromkeys(d for d in dirs if Path(d).is_dir()),
                  key=lambda d: order.get(os.path.realpath(d), len(order)))
    return dirs


def make_venv(path: Path) -> Path:
    """Create a venv at ``path`` that also sees this interpreter's packages; return its ``python``."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    lines = [f"import site; site.addsitedir({d!r})" for d in _outer_site_dirs()]
    (Path(purelib) / "_outer_site.pth").write_text("\n".join(lines) + "\n")
    return python


def pip_install(python: Path, *args: str) -> None:
    """``pip install`` of local files into the venv of ``python``, with this interpreter's pip (the venv has
    none). Hermetic: no index, no cache, no pip config files of the user or machine."""
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index",
                    "--no-cache-dir", *args], check=True, timeout=300, env=env)
