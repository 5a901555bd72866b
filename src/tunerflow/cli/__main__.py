import sys

from tunerflow.cli.main import main

sys.exit(main())
