"""`python -m tokenbook` is the `tokenbook` command."""

import sys

from tokenbook.cli import main

sys.exit(main())
