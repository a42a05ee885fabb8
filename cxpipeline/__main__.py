import sys

from cxpipeline.cli import main

sys.exit(main())
