"""Test setup: put plugins/module_utils on sys.path so that `import rocket.manifest` works."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "module_utils"))
