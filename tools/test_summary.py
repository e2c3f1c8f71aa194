"""Closing line of `make test`: tests passed/failed over every stage's JUnit file, plus
the stages that failed without tests (sanity, lint, build ...). Exit 1 if anything failed."""
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def rerun_causes(root):
    """{cause: count} of the retried tests in one JUnit file. pytest-rerunfailures writes a retried
    test once per attempt under the same name; the cause is the exception of the earlier attempt
    (make lab-test / make integration retry only GuestKernelOops, the known TCG signature)."""
    attempts = {}
    for case in root.iter("testcase"):
        attempts.setdefault((case.get("classname"), case.get("name")), []).append(case)
    causes = {}
    for cases in attempts.values():
        for case in cases[:-1]:
            problem = case.find("failure")
            if problem is None:
                problem = case.find("error")
            text = (problem.get("message", "") + (problem.text or "")) if problem is not None else ""
            cause = "the known TCG guest kernel oops" if "GuestKernelOops" in text else "another cause"
            causes[cause] = causes.get(cause, 0) + 1
    return causes


def main(junit_dir, failed_stages):
    passed = failed = skipped = 0
    reruns = {}
    for path in sorted(Path(junit_dir).glob("*.xml")):
        root = ET.parse(path).getroot()
        for cause, count in rerun_causes(root).items():
            reruns[cause] = reruns.get(cause, 0) + count
        for suite in root.iter("testsuite"):
            tests = int(suite.get("tests", 0))
            bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skip = int(suite.get("skipped", 0))
            passed += tests - bad - skip
            failed += bad
            skipped += skip
    if failed_stages:
        print("failed stages: %s" % " ".join(failed_stages))
    rerun_text = "".join(", %d rerun after %s" % (count, cause) for cause, count in sorted(reruns.items()))
    print("make test: %d passed, %d failed, %d skipped%s" % (passed, failed + len(failed_stages), skipped, rerun_text))
    return 1 if failed or failed_stages or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
