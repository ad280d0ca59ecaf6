"""Generate the site's pages that come from the code (run by the ``gen-files`` plugin of
``mkdocs.yml``; nothing here is written to disk, only into the build's virtual ``docs/``).

- ``methods/``: one page per ``UnlearnModule`` subclass of ``unlearning.methods``, found by
  ``docs/introspect.py``: the class's reference (mkdocstrings) and every config that names it,
  read from ``configs/`` (full scale, CPU preset, score preset and its search space, others); a
  category with no config says so. A new method file gets its page with no edit here.
- ``cli.md``: the ``--help`` of ``unlearning`` and of each of its subcommands.
- ``api/``: one reference page per module of the package.
- ``readme.md``, ``examples/README.md``, ``benchmarks/``: the READMEs and the benchmark results as
  they are in the repository, with the figures and files they link to, so that they never drift.
  The README links the site's own pages as ``docs/<page>.md`` (right on GitHub); its copy here
  links them as ``<page>.md``.

The ``literate-nav`` plugin makes each generated folder's nav from its files (index first, then
by name). Problems (a module that does not import, a config naming no class) are logged as
warnings: ``mkdocs build --strict`` fails.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "unlearning"
log = logging.getLogger(f"mkdocs.plugins.{__name__}")

#: where a method's configs live, in the order its page shows them: (title, folder, what it is)
CONFIG_KINDS = (
    ("Full scale", "configs/unlearn/", "ResNet-18 on all of CIFAR-10, for GPU users"),
    ("CPU preset", "configs/cpu/unlearn/", "the small CNN on a 10k-image CIFAR-10 subset, minutes on a CPU"),
    ("Score preset", "configs/score/methods/",
     "the budget and hyperparameters of `unlearning score` / `leaderboard` on the 4,000-image setting"),
)
SPACE_SUFFIX = ".space.yaml"


def introspect() -> dict:
    """Run ``docs/introspect.py`` in a subprocess and return its JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "introspect.json"
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "COLUMNS": "100", "PYTHONPATH": path}
        proc = subprocess.run([sys.executable, str(ROOT / "docs" / "introspect.py"), str(out)], cwd=ROOT, env=env,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"docs/introspect.py failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        data = json.loads(out.read_text())
    for error in data["errors"]:
        log.warning("docs: %s", error)
    return data


def write(path: str, text: str) -> None:
    with mkdocs_gen_files.open(path, "w") as f:
        f.write(text)


def mirror(rel: str, seen: set[str]) -> None:
    """Copy a repository file into the site at the same path, and, for Markdown, every repository
    file it links to (figures, other READMEs)."""
    if rel in seen:
        return
    seen.add(rel)
    source = ROOT / rel
    with mkdocs_gen_files.open(rel, "wb") as f:
        f.write(source.read_bytes())
    if source.suffix != ".md":
        return
    for link in re.findall(r"\]\(([^)\s]+)\)", source.read_text()):
        if re.match(r"^[a-z]+:|^#|^/", link):
            continue
        target = (source.parent / link.split("#", 1)[0]).resolve()
        if target.is_file() and target.is_relative_to(ROOT):
            mirror(target.relative_to(ROOT).as_posix(), seen)


def plain_roles(text: str) -> str:
    """A docstring's Sphinx roles as inline code (for text outside mkdocstrings)."""
    def shown(match: re.Match[str]) -> str:
        target = match.group(1)
        return f"`{target.lstrip('~').rsplit('.', 1)[-1]}`" if target.startswith("~") else f"`{target}`"

    return re.sub(r":[a-z]+:`([^`]+)`", shown, text)


def slug(name: str) -> str:
    return name.lower()


def yaml_block(rel: str) -> str:
    text = (ROOT / rel).read_text().rstrip("\n")
    fence = "````" if "```" in text else "```"
    return f'{fence} yaml title="{rel}"\n{text}\n{fence}\n'


def streams_line(m: dict) -> str:
    extra = ", ".join(m["extra_streams"]) or "none"
    return f"trains on **{', '.join(m['train_streams'])}**; also reads **{extra}**"


def method_page(m: dict, configs: dict[str, str], stage_classes: dict[str, str]) -> str:
    """The Markdown of one method's page."""
    retain_free = "retain" not in m["train_streams"] + m["extra_streams"]
    facts = [
        ("Class", f"`{m['path']}`" + ("" if m["exported"] else " (not exported by `unlearning.methods` yet)")),
        ("Config `class_path`", f"`{m['name']}`" if m["exported"] else f"`{m['path']}`"),
        ("Data streams", streams_line(m) + (" (retain-free: never sees a retain example)" if retain_free else "")),
        ("Frozen original", "yes (`self.original_net`)" if m["uses_original"] else "no"),
        ("Resumable", "yes (`--ckpt_path last`)" if m["resumable"] else
         "no: `on_train_start` changes the weights; rerun with `--overwrite true`"),
        ("Base classes", ", ".join(f"[`{b.rsplit('.', 1)[-1]}`][{b}]" if b.startswith(PACKAGE) else f"`{b}`"
                                   for b in m["bases"])),
    ]
    if m["stages"]:
        facts.append(("One-time stages", ", ".join(f"`{arg}`: `{cls}`" for arg, cls in m["stages"].items())))
    lines = [f"# {m['name']}", "", "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in facts], ""]
    lines += ["## Reference", "", f"::: {m['path']}", "    options:", "      show_root_heading: false",
              "      heading_level: 3", ""]
    mine = sorted(rel for rel, cls in configs.items() if cls == m["path"])
    lines += ["## Configs", "",
              (f"Every YAML file under `configs/` whose `model.class_path` names `{m['name']}`; run one with "
               "`unlearning fit -c FILE` (a score preset with `unlearning score --method FILE`, see the "
               "[CLI reference](../cli.md))."), ""]
    shown: set[str] = set()
    for title, folder, what in CONFIG_KINDS:
        lines += [f"### {title}", "", f"`{folder}`: {what}.", ""]
        files = [rel for rel in mine if rel.startswith(folder) and "/" not in rel[len(folder):]]
        if not files:
            lines += ['!!! note "No config yet"', "",
                      f"    No file in `{folder}` names `{m['name']}` yet.", ""]
        for rel in files:
            shown.add(rel)
            lines.append(yaml_block(rel))
            space = rel[: -len(".yaml")] + SPACE_SUFFIX
            if folder == "configs/score/methods/":
                if (ROOT / space).is_file():
                    lines += ["Its search space for `unlearning tune`:", "", yaml_block(space)]
                else:
                    lines += [f"No search space (`{space}`) beside it.", ""]
    others = [rel for rel in mine if rel not in shown]
    if others:
        lines += ["### Other configs", "", "Toy problems, examples and other variants.", ""]
        lines += [yaml_block(rel) for rel in others]
    for arg, stage in m["stages"].items():
        stage_path = stage_classes.get(stage, stage)
        lines += [f"## One-time stage: `{arg}`", "",
                  f"Trained once per original and passed to the method as `{arg}` (the checkpoint path).", "",
                  f"::: {stage_path}", "    options:", "      show_root_heading: true", "      heading_level: 3", ""]
        stage_configs = sorted(rel for rel, cls in configs.items() if cls == stage_path)
        lines += [yaml_block(rel) for rel in stage_configs] or ["No config names this stage yet.", ""]
    return "\n".join(lines) + "\n"


def methods_pages(data: dict) -> set[str]:
    """``methods/``: an overview table and one page per method; returns the documented class paths."""
    methods, configs = data["methods"], data["configs"]
    stage_classes = data.get("stage_classes", {})
    rows = ["# Methods", "",
            ("Every unlearning algorithm of `unlearning.methods`: each page is generated from the class's "
             "docstring and the configs that name it. A method of your own is a subclass of "
             "[`UnlearnModule`][unlearning.modules.unlearn.UnlearnModule]; see the "
             "[home page](../index.md#your-own-method). The [algorithms](../algorithms.md) page says "
             "where each comes from and what it does."), ""]
    documented: set[str] = set()
    for m in methods:
        documented.add(m["path"])
        documented.update(stage_classes.get(s, s) for s in m["stages"].values())
        write(f"methods/{slug(m['name'])}.md", method_page(m, configs, stage_classes))
        kinds = [title.replace("Full", "full").replace("Score", "score") for title, folder, _ in CONFIG_KINDS
                 if any(cls == m["path"] and rel.startswith(folder) for rel, cls in configs.items())]
        streams = " + ".join(m["train_streams"])
        if m["extra_streams"]:
            streams += f" (reads {', '.join(m['extra_streams'])})"
        rows += [(f"- [**{m['name']}**]({slug(m['name'])}.md): trains on {streams}; "
                  f"configs: {', '.join(kinds) or 'none yet'}."),
                 f"  {plain_roles(m['summary'])}", ""]
    write("methods/index.md", "\n".join(rows) + "\n")
    return documented


def cli_page(data: dict) -> None:
    help_texts: dict[str, str] = data["help"]
    lines = ["# CLI reference", "",
             ("Every stage is a subcommand of `unlearning` (also `python -m unlearning`). The texts below are "
              "the commands' own `--help`, generated when this site was built. Every subcommand takes a "
              "YAML config (`-c FILE`) and dotted overrides (`--trainer.max_epochs 3`); `-v` anywhere (or "
              "`UNLEARNING_VERBOSE=1`) shows what Lightning prints besides the progress bar: seeds, devices, "
              "model summaries, tips."), ""]
    for sub, text in help_texts.items():
        command = f"unlearning {sub} --help" if sub else "unlearning --help"
        lines += [f"## `{command}`" if sub else "## `unlearning`", ""]
        fence = "````" if "```" in text else "```"
        block = [f"{fence} text", *text.rstrip("\n").split("\n"), fence]
        if len(text) > 20000:  # LightningCLI's subcommands list every Trainer argument
            lines += [f'??? example "{command} (long: every Trainer, model and data argument)"', "",
                      *["    " + ln if ln else "" for ln in block], ""]
        else:
            lines += [*block, ""]
    write("cli.md", "\n".join(lines) + "\n")


def module_paths() -> list[tuple[str, Path]]:
    """``(dotted name, file)`` of every module of the package, from the source tree."""
    out = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        elif parts[-1].startswith("_") or parts[-1] == "__main__":
            continue
        if any(p.startswith("_") for p in parts[1:]):
            continue
        out.append((".".join(parts), path))
    return out


def defined_names(path: Path) -> tuple[set[str], list[str]]:
    """The classes a module's file defines, and every public name it defines itself (classes,
    functions, assignments; not what it imports), in source order."""
    try:
        tree = ast.parse(path.read_text())
    except SyntaxError:
        return set(), []
    classes, names = set(), []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            classes.add(node.name)
            names.append(node.name)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return classes, [n for n in dict.fromkeys(names) if not n.startswith("_")]


def api_pages(documented: set[str]) -> None:
    """``api/``: one page per module; classes with a method page are linked, not rendered twice."""
    for name, path in module_paths():
        page = "api/" + name.replace(".", "/") + ("/index.md" if path.name == "__init__.py" else ".md")
        classes, names = defined_names(path)
        elsewhere = sorted(c for c in classes if f"{name}.{c}" in documented)
        lines = [f"# `{name}`", "", f"::: {name}", "    options:", "      show_root_heading: false"]
        if path.name == "__init__.py":
            # a package's page shows what its __init__ defines; what it re-exports has its own page
            own = [n for n in names if n not in elsewhere]
            lines += ["      members:", *[f"        - {n}" for n in own]] if own else ["      members: false"]
        elif elsewhere:
            lines += ["      filters:", '        - "!^_"', *[f'        - "!^{c}$"' for c in elsewhere]]
        if elsewhere:
            links = ", ".join(f"[`{c}`][{name}.{c}]" for c in elsewhere)
            lines += ["", f"Documented on their method pages: {links}."]
        write(page, "\n".join(lines) + "\n")


def benchmark_pages(seen: set[str]) -> None:
    """``benchmarks/``: each script's purpose and command, with its committed results and figures."""
    results = ROOT / "benchmarks" / "results"
    result_pages = sorted(p for p in results.glob("*.md"))
    figures = sorted(p.name for p in results.glob("*.png"))
    lines = ["# Benchmarks", "",
             ("Rerunnable scripts under `benchmarks/`; what they last wrote is committed under "
              "`benchmarks/results/` and shown here as it is."), ""]
    placed: set[str] = set()
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        doc = ast.get_docstring(ast.parse(script.read_text())) or ""
        stem = script.stem
        lines += [f"## `{script.name}`", "", plain_roles(doc.split("\n\n", 1)[0].replace("\n", " ")), "",
                  f"```bash\npython benchmarks/{script.name}      # --help lists its flags\n```", ""]
        mine = [p for p in result_pages if p.stem.startswith(stem)]
        referenced: list[str] = []
        for page in mine:
            mirror(page.relative_to(ROOT).as_posix(), seen)
            title = next((ln[2:] for ln in page.read_text().splitlines() if ln.startswith("# ")), page.stem)
            lines.append(f"- [{title}](results/{page.name})")
            referenced += re.findall(r"\]\(([^)/\s]+\.png)\)", page.read_text())
        if mine:
            lines.append("")
        for fig in figures:
            if (fig.startswith(stem) or fig in referenced) and fig not in placed:
                placed.add(fig)
                mirror(f"benchmarks/results/{fig}", seen)
                lines += [f"![{fig}](results/{fig})", ""]
    for page in result_pages:
        if page.relative_to(ROOT).as_posix() not in seen:
            mirror(page.relative_to(ROOT).as_posix(), seen)
    rest = [fig for fig in figures if fig not in placed]
    if rest:
        lines += ["## Other figures", ""]
        for fig in rest:
            mirror(f"benchmarks/results/{fig}", seen)
            lines += [f"![{fig}](results/{fig})", ""]
    write("benchmarks/index.md", "\n".join(lines) + "\n")


def main() -> None:
    data = introspect()
    documented = methods_pages(data)
    cli_page(data)
    api_pages(documented)
    seen: set[str] = set()
    # the READMEs as they are, with what they link to; the README's links to docs/ are the site's pages
    readme = (ROOT / "README.md").read_text()
    write("readme.md", re.sub(r"\]\(docs/", "](", readme))
    for link in re.findall(r"\]\(([^)\s]+)\)", readme):
        target = ROOT / link.split("#", 1)[0]
        if not re.match(r"^[a-z]+:|^#|^docs/", link) and target.is_file():
            mirror(target.relative_to(ROOT).as_posix(), seen)
    mirror("examples/README.md", seen)
    for fig in sorted((ROOT / "examples" / "figures").glob("*.png")):
        mirror(fig.relative_to(ROOT).as_posix(), seen)
    benchmark_pages(seen)


main()
