"""A cell no search here found (a published one, a pasted genotype) stored as a finished run
that holds only its genotype, so that it is evaluated exactly as a found cell is: the same
``RunManager.evaluate``, worker process, presets and store rows, listed on the Runs page."""
from __future__ import annotations

import time
from typing import Any

from core.engine.config import make_config
from core.engine.evalnet import architecture_size, validate_genotype
from core.engine.genotype import Genotype

GROUP = "published cells"   # the group such runs are listed under
SOURCE = "genotype text"    # their summary's "source": no search produced them


def genotype_run(store: Any, genotype: Genotype, name: str, preset: str = "demo") -> int:
    """The id of a finished run holding ``genotype`` under ``name``: an existing one with the
    same name and genotype, else a new one. Its config is the ``preset`` search config of the
    DARTS method, which gives the evaluation its dataset and image size."""
    validate_genotype(genotype)
    text = str(genotype)
    for run in store.list_runs(group=GROUP):
        if run.name == name and run.genotype == text:
            return run.id
    run_id = store.create_run(make_config(preset, "darts"), name=name, group=GROUP,
                              status="finished")
    now = time.time()
    store.update_run(run_id, genotype=text, size=architecture_size(genotype), started=now,
                     finished=now, summary={"source": SOURCE})
    return run_id
