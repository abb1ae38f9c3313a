"""The package loads the library the environment names, and lists what the tool lists."""

import json
import os
from pathlib import Path

import cleval
from conftest import run_cli


def test_the_library_named_by_cleval_library_is_loaded():
    named = os.environ.get("CLEVAL_LIBRARY")
    if named:
        assert Path(cleval.library_path).resolve() == Path(named).resolve()
    assert Path(cleval.library_path).name.startswith("libcleval.so")


def test_version_is_the_tools():
    code, out, _ = run_cli("--version")
    assert code == 0
    assert out.split() == ["cleval", cleval.version()]


def test_devices_are_the_tools():
    code, out, _ = run_cli("devices", "--json", "-")
    assert code == 0
    assert cleval.devices() == json.loads(out)
