"""Run RLIPv2's own `MixedRelDetection` on an annotation file; print what it yields, one JSON line.

    python tests/helpers/rlipv2_official.py RLIPV2_REPO ANNO_FILE DATASET FOLDER THRESHOLD [KEEP_NAMES_FILE]

RLIPV2_REPO is a checkout of github.com/JacobYuan7/RLIPv2 (its datasets/ and util/ suffice). Its
`datasets/mixed_dataset.py` is imported as it is; only the modules it imports but never calls on this
path are stand-ins: torchvision (its transforms, unused with `transforms=None`) and cv2. The
`datasets` package's `__init__` (which imports every other dataset) is skipped. Meant for a
subprocess: the stand-ins must not leak into other code.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import sys
import types
from pathlib import Path
from unittest import mock


class _StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Any `torchvision...` or `cv2...` module: a MagicMock (torchvision reports version 0.28.0)."""

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torchvision", "cv2"):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = mock.MagicMock(__version__="0.28.0", __path__=[], __name__=spec.name, __spec__=spec)
        return module

    def exec_module(self, module) -> None:
        pass


def _stand_ins(repo: Path) -> None:
    sys.meta_path.insert(0, _StandIns())
    package = types.ModuleType("datasets")
    package.__path__ = [str(repo / "datasets")]
    sys.modules["datasets"] = package
    sys.path.insert(0, str(repo))


def main() -> None:
    repo, anno_file, dataset, folder, threshold = sys.argv[1:6]
    keep_names = sys.argv[6] if len(sys.argv) > 6 else None
    _stand_ins(Path(repo))
    from datasets.mixed_dataset import MixedRelDetection

    folders = {"vg_folder": None, "coco2017_folder": None, "o365_folder": None}
    folders[{"vg": "vg_folder", "coco2017": "coco2017_folder", "o365": "o365_folder"}[dataset]] = Path(folder)
    data = MixedRelDetection(
        img_set="pretrain",
        anno_file=anno_file,
        transforms=None,
        num_queries=200,
        keep_names_freq_file=keep_names,
        dataset=[dataset],
        relation_threshold=float(threshold),
        use_all_text_labels=keep_names is not None,
        **folders,
    )
    items = []
    for index in range(len(data)):
        image, target = data[index]
        objects, verbs = target["obj_classes"], target["verb_classes"]
        triplets = sorted(
            [objects[int(s)], verbs[v], objects[int(o)]]
            for s, o, row in zip(target["sub_labels"], target["obj_labels"], target["verb_labels"].tolist())
            for v, on in enumerate(row)
            if on
        )
        items.append({"image_id": target["image_id"], "size": list(image.size), "triplets": triplets})
    print(json.dumps(items))


if __name__ == "__main__":
    main()
