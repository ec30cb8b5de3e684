"""Process-wide test settings: one torch thread (2-core machines; see core/engine/device.py)."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

torch.set_num_threads(1)
