"""The repository stands alone: a clone with nothing beside it has all its tests need."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.fake_telegram import SPEC_PATH

ROOT = Path(__file__).resolve().parent.parent


def test_the_bot_api_spec_the_fake_checks_against_is_vendored_with_its_license() -> None:
    assert SPEC_PATH.is_relative_to(ROOT)
    assert SPEC_PATH.is_file()
    license_text = SPEC_PATH.with_suffix(".LICENSE").read_text()
    assert "MIT" in license_text or "Permission is hereby granted" in license_text


def test_no_tracked_file_reads_a_folder_beside_the_repository() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    outside = re.compile(r"\.\./shared|parents\[\d\]\s*/\s*[\"']shared")
    offenders = [name for name in tracked
                 if name.endswith((".py", ".toml", ".cfg", "Makefile", ".sh")) or
                 name.startswith(".ci/")
                 if outside.search((ROOT / name).read_text(errors="replace"))]
    assert offenders == []
