"""Entry point of lab/virtlab (python3 -m vlab)."""
import sys

from vlab.cli import main

sys.exit(main(sys.argv[1:]))
