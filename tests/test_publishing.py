"""The publishing files: CI and Pages workflows, license, citation, README badges.

The workflows cannot run here, so they are validated against the GitHub Actions
workflow schema (vendored by check-jsonschema: no download) and read for the steps
that matter.
"""

import pathlib
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def validate(schema, *paths):
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema,
         *map(str, paths)], capture_output=True, text=True)


def test_workflows_match_the_github_actions_schema():
    assert WORKFLOWS, "no workflow in .github/workflows"
    result = validate("vendor.github-workflows", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_can_fail(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("name: broken\non: push\njobs:\n  x:\n    steps: 3\n")
    assert validate("vendor.github-workflows", broken).returncode != 0


def load(name):
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def steps(workflow):
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_ci_runs_make_test_on_push_and_pull_request():
    workflow = load("test.yml")
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert "push" in triggers and "pull_request" in triggers
    assert any(step.get("run", "").strip() == "make test" for step in steps(workflow))


def test_pages_builds_on_main_and_deploys():
    workflow = load("pages.yml")
    assert workflow[True]["push"]["branches"] == ["main"]
    uses = [step.get("uses", "") for step in steps(workflow)]
    assert any(u.startswith("actions/upload-pages-artifact") for u in uses)
    assert any(u.startswith("actions/deploy-pages") for u in uses)
    assert workflow["permissions"]["pages"] == "write"


def test_citation_file_matches_its_schema():
    result = validate("vendor.citation-file-format", ROOT / "CITATION.cff")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("phrase", ["MIT License", "CC BY 4.0"])
def test_license_states_both_licenses(phrase):
    assert phrase in (ROOT / "LICENSE").read_text()
    config = (ROOT / "_config.yml").read_text()
    assert phrase.split()[0] in config, "the book's footer states the licenses"


@pytest.mark.parametrize("badge", ["actions/workflows/test.yml/badge.svg",
                                   "mybinder.org/badge_logo.svg", "colab-badge.svg",
                                   "badge/book-"])
def test_readme_has_badges(badge):
    assert badge in (ROOT / "README.md").read_text()
