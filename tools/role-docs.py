#!/usr/bin/env python3
"""Writes the variable table of each role's README.md from its meta/argument_specs.yml and
defaults/main.yml, between the markers below, so every variable is documented once.
  tools/role-docs.py          rewrite the READMEs
  tools/role-docs.py --check  exit 1 when a README is out of date (used by `make lint`)"""
import pathlib
import sys

import yaml

BEGIN, END = "<!-- variables:begin (tools/role-docs.py) -->", "<!-- variables:end -->"
root = pathlib.Path(__file__).resolve().parent.parent


def cell(text):
    return " ".join(str(text).split()).replace("|", "\\|")


def table(role):
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]
    # The main entry point; a role with none (called only through tasks_from) lists every entry point's options.
    spec = specs.get("main") or {"options": {k: v for entry in specs.values() for k, v in (entry.get("options") or {}).items()}}
    defaults_file = role / "defaults/main.yml"
    defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
    rows = ["| variable | type | default | description |", "| --- | --- | --- | --- |"]
    for name, opt in spec.get("options", {}).items():
        kind = opt.get("type", "str") + (f" of {opt['elements']}" if "elements" in opt else "")
        if "choices" in opt:
            kind += " (" + ", ".join(map(str, opt["choices"])) + ")"
        default = "required" if opt.get("required") else defaults.get(name, opt.get("default", ""))
        default = "(secret)" if opt.get("no_log") and default not in ("", "required") else default
        text = " ".join(opt.get("description", [])) if isinstance(opt.get("description"), list) else opt.get("description", "")
        rows.append(f"| `{name}` | {kind} | `{cell(yaml.safe_dump(default, default_flow_style=True).strip().removesuffix('...').strip())}` | {cell(text)} |")
    return "\n".join([BEGIN, *rows, END])


stale = []
for role in sorted((root / "roles").iterdir()):
    readme = role / "README.md"
    if not (role / "meta/argument_specs.yml").exists():
        continue
    old = readme.read_text() if readme.exists() else f"# Role `{role.name}`\n\n## Variables\n\n{BEGIN}\n{END}\n"
    if BEGIN not in old:
        old += f"\n## Variables\n\n{BEGIN}\n{END}\n"
    new = old[: old.index(BEGIN)] + table(role) + old[old.index(END) + len(END):]
    if new != old:
        stale.append(str(readme.relative_to(root)))
        if "--check" not in sys.argv:
            readme.write_text(new)
if stale and "--check" in sys.argv:
    sys.exit("out of date (run tools/role-docs.py): " + ", ".join(stale))
