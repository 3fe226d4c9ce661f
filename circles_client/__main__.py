"""`python -m circles_client`: the `circles` command line."""

import sys

from circles_client.cli import main

sys.exit(main())
