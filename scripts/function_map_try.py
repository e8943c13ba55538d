import sys, time
from pathlib import Path
from cet.knowledge.function_map import static_map, traced_map, compare, PythonRepo
from cet.knowledge.test_mapping import is_test_file
root = Path(sys.argv[1])
files = {str(p.relative_to(root)): p.read_text(errors="replace") for p in root.rglob("*.py") if "docs" not in p.parts and ".tox" not in p.parts}
tests = [p for p in files if is_test_file(p) and Path(p).name.startswith("test_")]
t=time.time(); pred = static_map(files); ts=time.time()-t
t=time.time(); truth = traced_map(root, files, tests); td=time.time()-t
print(root.name, "static", round(ts,1), "s dynamic", round(td,1), "s", compare(pred, truth))
import json; json.dump({"pred":{k:sorted(v) for k,v in pred.items()}, "truth":{k:sorted(v) for k,v in truth.items()}}, open(f"/tmp/fm_{root.name}.json","w"))
