import sys

from audio2exp.cli import main

sys.exit(main())
