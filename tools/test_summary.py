"""Closing line of `make test`: tests passed/failed over every stage's JUnit file, plus
the stages that failed without tests (sanity, lint, build ...). Exit 1 if anything failed."""
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(junit_dir, failed_stages):
    passed = failed = skipped = 0
    for path in sorted(Path(junit_dir).glob("*.xml")):
        for suite in ET.parse(path).getroot().iter("testsuite"):
            tests = int(suite.get("tests", 0))
            bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skip = int(suite.get("skipped", 0))
            passed += tests - bad - skip
            failed += bad
            skipped += skip
    if failed_stages:
        print("failed stages: %s" % " ".join(failed_stages))
    print("make test: %d passed, %d failed, %d skipped" % (passed, failed + len(failed_stages), skipped))
    return 1 if failed or failed_stages or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
