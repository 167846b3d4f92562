"""The documentation: generated reference pages are current, and the README stays a short door."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))

import gen  # noqa: E402  (docs/gen.py: not a package)


def test_generated_reference_pages_are_current() -> None:
    """`python3 docs/gen.py --check` as a user runs it: exit 1 and the page's name when the code moved on."""
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "gen.py"), "--check"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_check_names_a_stale_page(tmp_path, monkeypatch) -> None:
    for name, build in gen.PAGES.items():
        (tmp_path / name).write_text(build())
    (tmp_path / "hooks.md").write_text("old\n")
    monkeypatch.setattr(gen, "OUT", tmp_path)
    assert gen.main(["--check"]) == 1
    assert (tmp_path / "hooks.md").read_text() == "old\n"  # --check changes nothing
    assert gen.main([]) == 0 and gen.main(["--check"]) == 0


def test_the_cli_page_has_every_command_and_option_of_the_parser() -> None:
    from boocoder_bridge.cli import build_parser

    page = gen.cli_page()
    for name, parser in gen._parsers(build_parser(), "boocoder-bridge"):
        assert f"## `{name}`" in page
        for action in parser._actions:
            for option in action.option_strings:
                assert option in page, (name, option)


def test_the_hook_page_has_every_hook_with_its_arguments() -> None:
    from boocoder_bridge import hookspecs

    page = gen.hooks_page()
    specs = [(name, fn) for name, fn in vars(hookspecs).items() if hasattr(fn, "boocoder_bridge_spec")]
    assert len(specs) >= 7
    for name, fn in specs:
        row = next(line for line in page.splitlines() if line.startswith(f"| `{name}("))
        assert f"`{name}({', '.join(inspect.signature(fn).parameters)})`" in row
        assert ("may refuse" in row) == (name in hookspecs.MAY_REFUSE)


def test_the_limits_page_states_every_setting_and_exit_code() -> None:
    from boocoder_bridge import errors, settings

    page = gen.limits_page()
    names = [n for n in vars(settings) if n.isupper() and not n.startswith("_") and n != "TYPE_CHECKING"]
    assert names
    for name in names:
        assert f"| `{name}` |" in page, name
    assert f"`{settings.MAX_BODY_BYTES:,} (16 MiB)`" in page
    for cls in (errors.StateError, errors.OpencodeTimeoutError):
        assert f"| `{cls.__name__}` | {cls.exit_code} | {cls.http_status} |" in page


def test_the_readme_is_a_short_door_with_the_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    command = readme.split("\n# all tests", 1)[1].split("\n")[1]  # the line .ci/run runs
    assert "pytest" in command
    # What a newcomer runs touches only 127.0.0.1 or hosts they name: never the example fleet's real hosts.
    assert "fleet.example.json" not in readme
    assert not re.search(r"\b100\.\d+\.\d+\.\d+", readme)
