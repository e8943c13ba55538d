import sys, json
from pathlib import Path
from cet.knowledge.function_map import static_map, compare
root = Path(sys.argv[1])
files = {str(p.relative_to(root)): p.read_text(errors="replace") for p in root.rglob("*.py") if "docs" not in p.parts}
truth = {k: set(v) for k, v in json.load(open(f"/tmp/fm_{root.name}.json"))["truth"].items()}
pred = static_map(files)
r = compare(pred, truth)
print(root.name, {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()})
