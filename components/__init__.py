"""KFP v2 components, one per odqa stage. Each is a thin wrapper over the stage's library function.

The container image is ONE setting, ODQA_IMAGE, read when this package is imported (i.e. when the
pipeline is compiled); every component uses it as `base_image`.
"""

import os

DEFAULT_IMAGE = "ghcr.io/odqa/odqa:0.1.0"
IMAGE = os.environ.get("ODQA_IMAGE", DEFAULT_IMAGE)
