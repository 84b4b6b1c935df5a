"""How far a recipe's labels are from RLIPv2's on the flow fixture: relations in both, only in one, confidences.

Runs RECIPE on the fixture's images, boxes and captions (`caption.enabled=false`) with the reduced R-Tagger
the fixture was made with, exports `--format rlipv2 --min-confidence 0.05` and compares it with RLIPv2's own
output (tests/rlipv2_flow/fixtures/, written by make_flow_reference.py). Needs sgpipe's environment; run it
from the repository root:

    python tools/rlipv2_reference/flow_distance.py pipelines/coco.yaml --set verify.assignment=all_pairs
    python tools/rlipv2_reference/flow_distance.py pipelines/rlipv2_coco.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sgpipe.config import load_config  # noqa: E402
from sgpipe.models.device import one_thread  # noqa: E402
from sgpipe.run.lifecycle import RunOptions, run_pipeline  # noqa: E402
from sgpipe.tools.export import export  # noqa: E402
from tests.helpers.ray_local import local_ray  # noqa: E402
from tests.helpers.rlipv2_flow import flow_distance, load_flow_fixture, write_flow_inputs, write_flow_tagger  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="section.key=value")
    parser.add_argument("--fixture", default="coco", choices=("coco", "o365"))
    parser.add_argument("--work", type=Path, help="keep the run here (default: a temporary folder)")
    options = parser.parse_args()
    fixture = load_flow_fixture(options.fixture)
    with tempfile.TemporaryDirectory() as scratch:
        work = options.work or Path(scratch)
        inputs = write_flow_inputs(fixture, work / "inputs")
        tagger = write_flow_tagger(fixture, work / "rtagger")
        config = load_config(options.recipe, [
            f"source.instances={inputs['instances']}", f"source.images={inputs['images']}",
            f"source.captions={inputs['captions']}", "caption.enabled=false", f"verify.checkpoint={tagger}",
            f"output.dir={work / 'out'}", "run.workers=1", "run.gpus_per_worker=0", "run.cpus_per_worker=1",
            "run.device=cpu", *options.overrides,
        ])
        with one_thread(), local_ray(num_cpus=2):  # a Ray of its own, never one running on the machine
            run_pipeline(config, RunOptions(progress=False))
        export(work / "out", "rlipv2", work / "labels.json", min_confidence=0.05)
        distance = flow_distance(fixture["output"], json.loads((work / "labels.json").read_text()))
    print(json.dumps({"recipe": str(options.recipe), "overrides": options.overrides, **distance.summary()}))


if __name__ == "__main__":
    main()
