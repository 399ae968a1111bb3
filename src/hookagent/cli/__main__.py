"""``python -m hookagent.cli``: how ``up`` starts its API and worker processes."""

import sys

from hookagent.cli.main import main

sys.exit(main())
