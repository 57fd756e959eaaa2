import sys

from monitor.cli.main import console

sys.exit(console())
