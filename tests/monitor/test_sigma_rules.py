"""Sigma rules through the commands: `rules check` says what loads and why the rest does not; `scan --rules` runs
them beside the catalog, in worker processes too; `[sigma]` in the configuration adds them, chosen and disabled
by id or tag."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cloudtrail import PROD, console_login, event, iam_user, root
from tests.faults.conftest import trailguard


def write_rule(folder: Path, name: str, detection: dict[str, object], tags: list[str], ident: str) -> None:
    document = {
        "title": f"Rule {name}",
        "id": ident,
        "tags": tags,
        "logsource": {"product": "aws", "service": "cloudtrail"},
        "detection": detection,
        "level": "high",
    }
    (folder / f"{name}.yml").write_text(yaml.safe_dump(document))


def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    stop = {"sel": {"eventName": "StopLogging"}, "condition": "sel"}
    write_rule(folder, "stop", stop, ["attack.t1562.008"], "aaaaaaaa-0000-4000-8000-000000000001")
    root_login = {"sel": {"eventName": "ConsoleLogin", "userIdentity.type": "Root"}, "condition": "sel"}
    write_rule(folder, "root", root_login, ["attack.t1078.004"], "aaaaaaaa-0000-4000-8000-000000000002")
    write_rule(folder, "bad", {"sel": {"status": "x"}, "condition": "sel"}, [], "aaaaaaaa-0000-4000-8000-000000000003")
    (folder / "notes.yml").write_text("just: some yaml\n")
    return folder


def test_rules_check_lists_each_rule_loaded_or_why_not(tmp_path: Path) -> None:
    folder = rules(tmp_path)
    done = trailguard("rules", "check", str(folder))
    assert done.code == 2
    lines = done.out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["loaded", "loaded", "refused", "refused"]
    assert f"{folder / 'bad.yml'}: unknown field 'status'" in done.out
    assert f"{folder / 'notes.yml'}: not a Sigma rule" in done.out
    assert done.err.splitlines()[-1] == "2 rules loaded, 2 refused"
    (folder / "bad.yml").unlink()
    (folder / "notes.yml").unlink()
    assert trailguard("rules", "check", str(folder)).code == 0


def test_scan_runs_the_rules_beside_the_catalog_in_worker_processes(tmp_path: Path) -> None:
    folder, trail = rules(tmp_path), tmp_path / "trail"
    trail.mkdir()
    for n, record in enumerate(
        [console_login(root(PROD)), event("StopLogging", "cloudtrail.amazonaws.com", iam_user())]
    ):
        (trail / f"{n}.json").write_text(json.dumps({"Records": [record]}))
    (trail / "2.json").write_text(json.dumps({"Records": [event("ListBuckets", "s3.amazonaws.com", iam_user())]}))
    done = trailguard("scan", str(trail), "--rules", str(folder), "--workers", "2")
    found = {json.loads(line)["detector"] for line in done.out.splitlines()}
    assert {"sigma-aaaaaaaa-0000-4000-8000-000000000001", "sigma-aaaaaaaa-0000-4000-8000-000000000002"} <= found
    assert {"root-usage", "cloudtrail-changes"} <= found  # the catalog still runs
    assert f"rule not loaded: {folder / 'bad.yml'}: unknown field 'status'" in done.err.splitlines()
    assert done.code == 0


def test_the_configuration_adds_rules_less_those_disabled_by_id_or_tag(tmp_path: Path) -> None:
    folder = rules(tmp_path)
    config = tmp_path / "trailguard.toml"
    config.write_text(f'[sigma]\npaths = ["{folder}"]\ndisabled = ["attack.t1078.004"]\n')
    listed = trailguard("detectors", config=config).out
    assert "sigma-aaaaaaaa-0000-4000-8000-000000000001" in listed
    assert "sigma-aaaaaaaa-0000-4000-8000-000000000002" not in listed  # disabled by its tag
    config.write_text(f'[sigma]\npaths = ["{folder}"]\ndisabled = ["sigma-aaaaaaaa-0000-4000-8000-000000000001"]\n')
    listed = trailguard("detectors", config=config).out
    assert "sigma-aaaaaaaa-0000-4000-8000-000000000001" not in listed
    assert "sigma-aaaaaaaa-0000-4000-8000-000000000002" in listed
    config.write_text(f'[sigma]\npaths = ["{folder}"]\nenabled = ["attack.t1562.008"]\n')
    listed = trailguard("detectors", config=config).out
    assert "sigma-aaaaaaaa-0000-4000-8000-000000000001" in listed  # enabled by its tag
    assert "sigma-aaaaaaaa-0000-4000-8000-000000000002" not in listed


def test_check_reports_the_configured_rules_and_names_each_one_not_loaded(tmp_path: Path) -> None:
    folder = rules(tmp_path)
    config = tmp_path / "trailguard.toml"
    config.write_text(f'[sigma]\npaths = ["{folder}"]\n')
    done = trailguard("check", "--offline", config=config)
    assert "ok sigma: 2 rules run as detectors" in done.out.splitlines()
    assert f"WARN sigma rule not loaded: {folder / 'bad.yml'}: unknown field 'status'" in done.out.splitlines()


def test_detect_names_each_rule_it_could_not_load(tmp_path: Path) -> None:
    folder = rules(tmp_path)
    lake, state = tmp_path / "lake", tmp_path / "state.db"
    lake.mkdir()  # a lake with no events yet
    done = trailguard("detect", "--lake", str(lake), "--state", str(state), "--since", "1d", "--rules", str(folder))
    assert f"warning: rule not loaded: {folder / 'bad.yml'}: unknown field 'status'" in done.err.splitlines()


def test_a_mistyped_rule_path_is_an_error_on_the_command_line_and_a_warning_in_the_configuration(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "rulez"
    for command in (("scan", str(tmp_path), "--rules", str(missing)), ("rules", "check", str(missing))):
        done = trailguard(*command)
        assert done.code == 2
        assert done.err.splitlines()[-1].endswith(f"no such file or folder: '{missing}'")
    config = tmp_path / "trailguard.toml"
    config.write_text(f'[sigma]\npaths = ["{missing}"]\n')
    checked = trailguard("check", "--offline", config=config)
    assert f"WARN sigma rule not loaded: {missing}: no such file or folder" in checked.out.splitlines()
