"""`python -m tidechain ARGS` is `tide ARGS`."""

import sys

from tidechain.tide import main

sys.exit(main())
