"""What can be checked of deploy/ here: the Dockerfile under hadolint, the systemd hardening, the
Kubernetes manifests' shape, the CloudFormation templates under cfn-lint and what they promise."""

from __future__ import annotations

import configparser
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.decode import decode
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from monitor.config import parse
from monitor.service.check import run as check

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
TEMPLATES = sorted((DEPLOY / "cloudformation").glob("*.yaml"))


def test_the_dockerfile_passes_hadolint_and_runs_unprivileged_behind_an_init() -> None:
    dockerfile = DEPLOY / "Dockerfile"
    linted = subprocess.run([BIN / "hadolint", str(dockerfile)], capture_output=True, text=True, check=False)
    assert linted.returncode == 0, linted.stdout
    text = dockerfile.read_text()
    assert "USER 10001:10001" in text
    assert 'ENTRYPOINT ["dumb-init", "--", "trailguard"]' in text  # exec form: SIGTERM reaches `trailguard run`
    assert "HEALTHCHECK" in text
    assert "/livez" in text
    assert 'VOLUME ["/var/lib/trailguard"]' in text
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[1] == "*"  # everything out, then only what the image needs
    let_in = {line.removeprefix("!") for line in ignored if line.startswith("!")}
    assert let_in == {"pyproject.toml", "README.md", "LICENSE", "deploy/constraints.txt", "monitor/", "detectors/"}
    copied = [line.split()[1:-1] for line in text.splitlines() if line.startswith("COPY ") and "--from" not in line]
    for source in (s for sources in copied for s in sources):
        assert (ROOT / source).exists(), source
        assert source in let_in or f"{source.rstrip('/')}/" in let_in, f"{source}: COPY'd but left out by .dockerignore"
    assert "pip install --no-cache-dir -c constraints.txt ." in text  # the tested versions, not the newest


def test_the_pins_are_the_runtime_tree_the_tests_ran_with() -> None:
    sys.path.insert(0, str(DEPLOY))
    try:
        import constraints  # noqa: PLC0415  (deploy/constraints.py, not a package)
    finally:
        sys.path.remove(str(DEPLOY))
    assert (DEPLOY / "constraints.txt").read_text() == constraints.text(), "run: make constraints"
    pins = dict(line.split("==") for line in constraints.text().splitlines()[1:])
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in map(Requirement, declared):
        assert pins[canonicalize_name(requirement.name)] in requirement.specifier, requirement


def test_the_systemd_unit_is_hardened() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / "trailguard.service")
    service = unit["Service"]
    assert service["User"] == "trailguard"
    assert (service["ProtectSystem"], service["NoNewPrivileges"], service["PrivateTmp"]) == ("strict", "yes", "yes")
    assert service["StateDirectory"] == "trailguard"
    assert service["EnvironmentFile"] == "/etc/trailguard/trailguard.env"
    assert service["CapabilityBoundingSet"] == ""
    assert service["ExecStart"].endswith("--config /etc/trailguard/trailguard.toml run")
    env = (DEPLOY / "systemd" / "trailguard.env.example").read_text()
    assert "SLACK_BOT_TOKEN=\n" in env  # a place for the secret, never a value
    assert "AWS_SECRET_ACCESS_KEY" not in env


def manifests() -> dict[str, Any]:
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "trailguard.yaml").read_text()))
    return {doc["kind"]: doc for doc in docs}


def test_kubernetes_runs_one_non_root_replica_with_probes_state_and_a_role() -> None:
    found = manifests()
    assert set(found) == {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
    }
    spec = found["Deployment"]["spec"]
    assert (spec["replicas"], spec["strategy"]["type"]) == (1, "Recreate")
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == found["ServiceAccount"]["metadata"]["name"]
    assert "eks.amazonaws.com/role-arn" in found["ServiceAccount"]["metadata"]["annotations"]
    assert (pod["securityContext"]["runAsNonRoot"], pod["securityContext"]["runAsUser"]) == (True, 10001)
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    probes = {name: container[name]["httpGet"]["path"] for name in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes == {"startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/healthz"}
    assert container["ports"] == [{"name": "metrics", "containerPort": 9108}]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == found["PersistentVolumeClaim"]["metadata"]["name"]
    assert mounts["state"] == "/var/lib/trailguard"
    assert volumes["slack"]["secret"]["secretName"] == found["Secret"]["metadata"]["name"]
    assert found["Secret"]["stringData"] == {"bot-token": ""}  # filled in the cluster, never here
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SLACK_BOT_TOKEN_FILE"].startswith(mounts["slack"])
    assert found["Service"]["spec"]["ports"][0]["port"] == 9108


def test_the_kubernetes_configuration_is_valid() -> None:
    text = manifests()["ConfigMap"]["data"]["trailguard.toml"]
    cfg = parse(tomllib.loads(text), "configmap")
    assert cfg.state == Path("/var/lib/trailguard/state.db")
    assert not check(cfg, offline=True).failed


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_passes(template: Path) -> None:
    linted = subprocess.run([BIN / "cfn-lint", str(template)], capture_output=True, text=True, check=False)
    assert linted.returncode == 0, linted.stdout


def resources(name: str) -> dict[str, Any]:
    template, matches = decode(str(DEPLOY / "cloudformation" / name))
    assert matches == []
    return dict(template["Resources"])


def test_the_trail_bucket_is_private_versioned_tls_only_and_organization_scoped() -> None:
    found = resources("log-archive.yaml")
    bucket = found["TrailBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["LifecycleConfiguration"]["Rules"][0]["Status"] == "Enabled"
    statements = {s["Sid"]: s for s in found["TrailBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]}
    assert statements["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert "aws:PrincipalOrgID" in statements["DenyOutsideTheOrganization"]["Condition"]["StringNotEquals"]
    queue = found["LogFileQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
    monitor = found["MonitorRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    sids = [s["Sid"] for s in monitor if isinstance(s, dict) and "Sid" in s]
    assert sids == ["ListTrailLogs", "ReadTrailLogs", "ConsumeTrailNotifications", "AssumeReadRoles"]


def test_the_organization_trail_covers_every_region_and_account_with_validation() -> None:
    trail = resources("organization-trail.yaml")["OrganizationTrail"]["Properties"]
    assert (trail["IsOrganizationTrail"], trail["IsMultiRegionTrail"], trail["EnableLogFileValidation"]) == (
        True,
        True,
        True,
    )
    key = resources("organization-trail.yaml")["TrailKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    decrypt = next(s for s in key["KeyPolicy"]["Statement"] if s["Sid"] == "TrailGuardDecryptsThroughS3")
    assert "kms:ViaService" in decrypt["Condition"]["StringEquals"]


def test_the_member_read_role_reads_only() -> None:
    role = resources("member-read-role.yaml")["ReadRole"]["Properties"]
    actions = [
        a
        for s in role["Policies"][0]["PolicyDocument"]["Statement"]
        if isinstance(s, dict) and "Action" in s
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    assert all(a.split(":")[1].startswith(("Get", "List", "Generate", "Lookup")) for a in actions)
