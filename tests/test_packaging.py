"""`pip install .` gives a working command with the schemas inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.fakehost import FIXTURES
from tests.nested_venv import make_venv, pip_install

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_schemas_and_a_working_command(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(ROOT)], check=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("boocoder_bridge-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for schema in ("providers", "resolve", "models"):
        assert f"boocoder_bridge/schemas/{schema}.schema.json" in names
    for page_file in ("index.html", "picker.js", "picker.css"):  # the picker page serve shows at /
        assert f"boocoder_bridge/web/static/{page_file}" in names
    venv = tmp_path / "venv"
    pip_install(make_venv(venv), "--no-deps", "--force-reinstall", str(wheel))
    done = subprocess.run([venv / "bin" / "boocoder-bridge", "--registry", str(FIXTURES / "fleet.example.json"),
                           "validate"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    where = subprocess.run([venv / "bin" / "python", "-c", "import boocoder_bridge.jsonschemas as j;"
                            "print(j.schema_path('providers.schema.json'))"], capture_output=True, text=True,
                           cwd=tmp_path, check=True)
    assert str(venv) in where.stdout  # read from inside the installed package, not the checkout
