import sys

from serving.model_server.server import main

sys.exit(main())
