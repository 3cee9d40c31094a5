"""``python -m claude_worker``: the same as the ``claude-worker`` command."""

import sys

from claude_worker import main

sys.exit(main())
