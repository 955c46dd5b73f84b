"""`python -m gateway ...` is the same as the `emgate` command."""

import sys

from gateway.cli import main

sys.exit(main())
