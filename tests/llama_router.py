"""A real llama.cpp ``llama-server`` that can run as a router (it swaps models itself), built once into the test cache.

xllamacpp (PyPI) disables router mode, and no package of llama.cpp exists for Debian here, so the tests build
``llama-server`` from the llama.cpp source tree that PyPI's ``llama-cpp-python`` sdist carries (0.3.36 has
``vendor/llama.cpp/tools/server/server-models.cpp``, the router). Statically linked (``-DBUILD_SHARED_LIBS=OFF``),
so the one binary is copied out of the build tree and the tree is deleted. Takes about 10 minutes on 2 cores,
once per version: ``python3 -m tests.llama_router`` builds it (``.ci/run`` does, before the suite).
Needs ``cmake`` and ``g++``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from boocoder_bridge.demo.router import LLAMA_CPP_PYTHON_VERSION, built_binary
from tests.downloads import notice

BUILD_TIME = "about 7 minutes on 2 idle cores"  # 393 s from an empty cache on 2 idle cores (46 min under heavy load)
CMAKE_FLAGS = ["-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
               "-DGGML_NATIVE=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF"]


def llama_server_binary() -> Path:
    """The cached ``llama-server``; builds it the first time (a lock keeps concurrent runs from building twice).
    Its place (by version, in the download cache) is :func:`boocoder_bridge.demo.router.built_binary`."""
    binary = built_binary()
    if binary.exists():
        return binary
    for tool in ("cmake", "g++"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is needed to build llama-server for the router tests (apt-get install {tool})")
    binary.parent.mkdir(parents=True, exist_ok=True)
    with open(binary.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():  # another process built it while this one waited
            return binary
        _build(binary)
    return binary


def _build(binary: Path) -> None:
    started = time.monotonic()
    notice(f"building llama-server from llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}'s llama.cpp source "
           f"({BUILD_TIME}) into {binary.parent}, once")
    with tempfile.TemporaryDirectory(dir=binary.parent, prefix="build-") as work:
        src = Path(work)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--no-binary", "llama-cpp-python", f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}",
                        "-d", str(src)], check=True, timeout=600)
        archive = next(src.glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(archive) as tar:
            tar.extractall(src, filter="data")
        tree = src / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}" / "vendor" / "llama.cpp"
        nice = ["nice", "-n", "19"] if shutil.which("nice") else []
        jobs = str(min(os.cpu_count() or 1, 2))
        subprocess.run([*nice, "cmake", "-S", str(tree), "-B", str(tree / "build"), *CMAKE_FLAGS],
                       check=True, timeout=600, stdout=subprocess.DEVNULL)
        subprocess.run([*nice, "cmake", "--build", str(tree / "build"), "--target", "llama-server", "-j", jobs],
                       check=True, timeout=3600, stdout=subprocess.DEVNULL)
        partial = binary.with_name("llama-server.partial")
        shutil.copy2(tree / "build" / "bin" / "llama-server", partial)
        os.replace(partial, binary)
    notice(f"llama-server built in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    print(llama_server_binary())
