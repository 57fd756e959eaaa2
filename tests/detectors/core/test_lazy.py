"""`Later`: a module loaded on first use, whose names then cost what the module's own cost."""

from __future__ import annotations

import copy
import os
import pickle
import sys
from pathlib import Path

import pytest

from detectors.core.lazy import Later


def test_a_module_loads_when_first_used_and_its_names_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lazy_probe.py").write_text("LOADS = []\nLOADS.append(1)\ndef answer():\n    return 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_probe", raising=False)
    probe = Later("lazy_probe")
    assert "lazy_probe" not in sys.modules
    assert probe.answer() == 42
    assert "lazy_probe" in sys.modules
    assert vars(probe)["answer"] is sys.modules["lazy_probe"].answer  # a hot loop looks it up in the instance
    assert probe.LOADS == [1]  # loaded once
    with pytest.raises(AttributeError):
        _ = probe.missing


def test_a_lazy_module_copies_and_pickles_as_its_name_and_hides_none_of_its_own() -> None:
    os_later = Later("os")
    assert os_later.name == os.name  # the module's `name`, not the promise's
    for copied in (copy.copy(os_later), copy.deepcopy(os_later), pickle.loads(pickle.dumps(os_later))):
        assert copied.sep == os.sep
