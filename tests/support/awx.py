"""Run the playbook of an AWX job template the way AWX runs a job, with ansible-runner.

AWX prepares a private data directory for every job: the project (a checkout of this repository) in
`project/`, the inventory in `inventory/`, the project's collections in `requirements_collections/`,
the survey's answers as extra vars, and runs `ansible-playbook` in the project with the template's
limit (`--check` for a job of type check). ansible-runner is AWX's own runner of that directory; its
artifacts (status, return code, the playbook's stats, the output) are what AWX shows.

The pure part - a template and answers to the runner's arguments, the artifacts to a verdict - is
unit-tested (tests/unit/extensions/test_awx_runner.py); `prepare` and `run` touch files and the lab.
"""
import copy
import os
import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SURVEYS = REPO / "extensions" / "awx" / "surveys.yml"


class SurveyError(ValueError):
    """A launch AWX would refuse: an unknown answer, a missing required one, one out of bounds."""


def load_templates(path=SURVEYS):
    """The job templates extensions/awx/configure.yml creates: each template of surveys.yml, and for those
    with `check_mode_template` its "(dry run)" twin of job type check."""
    templates = []
    for template in yaml.safe_load(Path(path).read_text())["awx_job_templates"]:
        templates.append(dict(template, job_type="run"))
        if template.get("check_mode_template"):
            templates.append(dict(copy.deepcopy(template), name=template["name"] + " (dry run)", job_type="check"))
    return templates


def answer(question, value):
    """A survey answer typed as AWX passes it in the extra vars: integer and float numbers within their
    bounds, a multiple choice as its choice's text, text as text within its length bounds."""
    kind, var = question["type"], question["variable"]
    if kind in ("integer", "float"):
        try:
            number = int(value) if kind == "integer" else float(value)
        except (TypeError, ValueError):
            raise SurveyError("%s: %r is not %s" % (var, value, "an integer" if kind == "integer" else "a number"))
        if not question.get("min", number) <= number <= question.get("max", number):
            raise SurveyError("%s: %s is outside %s..%s" % (var, number, question.get("min"), question.get("max")))
        return number
    if kind == "multiplechoice":
        if str(value) not in [str(choice) for choice in question["choices"]]:
            raise SurveyError("%s: %r is not one of %s" % (var, value, question["choices"]))
        return str(value)
    if kind == "multiselect":
        values = [str(item) for item in (value if isinstance(value, list) else [value])]
        wrong = [item for item in values if item not in [str(choice) for choice in question["choices"]]]
        if wrong:
            raise SurveyError("%s: %s not among %s" % (var, wrong, question["choices"]))
        return values
    text = str(value)
    if not question.get("min", 0) <= len(text) <= question.get("max", len(text)):
        raise SurveyError("%s: %d characters, outside %s..%s" % (var, len(text), question.get("min"), question.get("max")))
    return text


def survey_extra_vars(template, answers=None):
    """The extra vars of a launch: each question's answer, else its default. An optional question with
    neither is left out, as AWX leaves it out; a required one is refused, as is an answer to no question."""
    answers = dict(answers or {})
    questions = dict((question["variable"], question) for question in template.get("survey", []))
    unknown = sorted(set(answers) - set(questions))
    if unknown:
        raise SurveyError("%s has no question for %s" % (template["name"], ", ".join(unknown)))
    extra = {}
    for var, question in questions.items():
        if var in answers:
            value = answers[var]
        elif question.get("default") not in (None, ""):
            value = question["default"]
        elif question.get("required"):
            raise SurveyError("%s: %s is required and has no default" % (template["name"], var))
        else:
            continue
        extra[var] = answer(question, value)
    return extra


def runner_arguments(template, private_data_dir, answers=None, limit=None, bin_dir=None):
    """Keyword arguments of ansible_runner.run() for one launch of ``template`` from the directory
    `prepare` made: the playbook in the project, the inventory, the survey's extra vars, the limit (only
    if the template asks for it on launch), `--check` for a job of type check, the project's collections;
    ``bin_dir``: where ansible-playbook is, put first on PATH (default: PATH as it is)."""
    private_data_dir = Path(private_data_dir)
    if limit and not template.get("ask_limit_on_launch"):
        raise SurveyError("%s does not ask for a limit on launch" % template["name"])
    arguments = {
        "private_data_dir": str(private_data_dir),
        "project_dir": str(private_data_dir / "project"),
        "playbook": template["playbook"],
        "inventory": str(private_data_dir / "inventory" / "hosts.yml"),
        "extravars": survey_extra_vars(template, answers),
        "envvars": {"ANSIBLE_COLLECTIONS_PATH": str(private_data_dir / "requirements_collections"),
                    "ANSIBLE_NOCOLOR": "1"},
        "quiet": True,
    }
    if limit or template.get("limit"):
        arguments["limit"] = limit or template["limit"]
    if template.get("job_type") == "check":
        arguments["cmdline"] = "--check"
    if bin_dir:
        arguments["envvars"]["PATH"] = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
    return arguments


def problems(status, rc, stats, stdout):
    """Why a finished run is not a clean success: AWX's verdict (status, return code), the playbook's
    stats (it reached its end, no host failed or was unreachable, some task ran) and no [WARNING] in the
    output. [] for a clean run."""
    found = []
    if status != "successful":
        found.append("status %s" % status)
    if rc != 0:
        found.append("return code %s" % rc)
    if not stats:
        found.append("no playbook stats: the playbook did not run to its end")
    else:
        for key, what in (("failures", "failed"), ("dark", "unreachable")):
            if stats.get(key):
                found.append("%s: %s" % (what, ", ".join(sorted(stats[key]))))
        if not stats.get("ok") and not stats.get("changed"):
            found.append("no task ran on any host")
    warnings = [line.strip() for line in stdout.splitlines() if "[WARNING]" in line]
    if warnings:
        found.append("warnings: %s" % " | ".join(warnings))
    return found


def prepare(root, inventory, repo=REPO):
    """AWX's private data directory in ``root``: `project/` with the files git tracks (and the untracked
    ones it does not ignore) as they are in ``repo``, `inventory/hosts.yml`, and the project as the
    collection kvmops.migration in `requirements_collections/` (AWX installs the project's collections
    there; here it is the project itself)."""
    root = Path(root)
    project = root / "project"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=str(repo),
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = Path(repo) / name
        if source.is_file():
            target = project / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(str(source), str(target))
    (root / "inventory").mkdir(parents=True, exist_ok=True)
    shutil.copy(str(inventory), str(root / "inventory" / "hosts.yml"))
    collection = root / "requirements_collections" / "ansible_collections" / "kvmops" / "migration"
    collection.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(str(project), str(collection))
    return root


def run(template, private_data_dir, answers=None, limit=None, bin_dir=None):
    """Run one launch; (runner, its output, problems)."""
    import ansible_runner  # only the lab tests need it installed

    runner = ansible_runner.run(**runner_arguments(template, private_data_dir, answers, limit, bin_dir))
    with runner.stdout as handle:
        stdout = handle.read()
    return runner, stdout, problems(runner.status, runner.rc, runner.stats, stdout)
