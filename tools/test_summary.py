"""Closing line of `make test`: tests passed/failed over every stage's JUnit file, plus
the stages that failed without tests (sanity, lint, build ...). Exit 1 if anything failed."""
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(junit_dir, failed_stages):
    passed = failed = skipped = reruns = 0
    for path in sorted(Path(junit_dir).glob("*.xml")):
        root = ET.parse(path).getroot()
        # pytest-rerunfailures writes a retried test (lab/integration: guest kernel oops only)
        # once per attempt, under the same name.
        names = [(case.get("classname"), case.get("name")) for case in root.iter("testcase")]
        reruns += len(names) - len(set(names))
        for suite in root.iter("testsuite"):
            tests = int(suite.get("tests", 0))
            bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skip = int(suite.get("skipped", 0))
            passed += tests - bad - skip
            failed += bad
            skipped += skip
    if failed_stages:
        print("failed stages: %s" % " ".join(failed_stages))
    print("make test: %d passed, %d failed, %d skipped%s" % (
        passed, failed + len(failed_stages), skipped,
        ", %d rerun after a guest kernel oops" % reruns if reruns else ""))
    return 1 if failed or failed_stages or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
