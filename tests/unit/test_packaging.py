"""setup.py tells the truth: installed versions within its bounds, declared
dependencies = imported ones, console scripts that resolve, and no module
that only imports on POSIX.

The bounds are read from ``setup.py`` itself (parsed, not imported), so a
bound changed there is checked here without repeating its number.
"""

import ast
import importlib
import importlib.metadata
import json
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "setup.py"
#: Where the code lives whose imports must be declared.
SOURCES = ("audiollm_lobes", "recipes", "benchmarks", "tests")
#: Declared although nothing imports it, and why.
NOT_IMPORTED = {
    "torchaudio": "SpeechBrain loads audio through it",
    "accelerate": "transformers needs it for CausalLM(device_map=...)",
    "ruff": "a tool run on the code, not imported",
}
#: Modules that exist on POSIX only; import them guarded or not at all.
POSIX_ONLY = {"fcntl", "resource", "termios", "pwd", "grp"}


def setup_arguments():
    """The literal keyword arguments of the ``setup(...)`` call in setup.py,
    with module-level constants (``INSTALL_REQUIRES = [...]``) resolved."""
    tree = ast.parse(SETUP.read_text(encoding="utf-8"))
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    constants[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    pass
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "setup"
        ):
            args = {}
            for kw in node.keywords:
                if isinstance(kw.value, ast.Name):
                    args[kw.arg] = constants[kw.value.id]
                else:
                    try:
                        args[kw.arg] = ast.literal_eval(kw.value)
                    except ValueError:
                        pass
            return args
    raise AssertionError("no setup(...) call in setup.py")


def requirements(args, extras=()):
    """Parsed requirements whose environment markers apply here."""
    lines = list(args["install_requires"])
    for extra in extras:
        lines += args["extras_require"][extra]
    reqs = [Requirement(line) for line in lines]
    return [r for r in reqs if r.marker is None or r.marker.evaluate()]


def canonical(name):
    return name.lower().replace("_", "-")


def top_level_imports(path):
    """``{module: [(line, guarded)]}`` of a file's absolute imports, where
    ``guarded`` says the import sits in a ``try`` that catches
    ``ImportError``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded_lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            caught = [
                ast.unparse(h.type or ast.Name("")) for h in node.handlers
            ]
            if any("ImportError" in c or c == "" for c in caught):
                for inner in node.body:
                    for sub in ast.walk(inner):
                        guarded_lines.add(getattr(sub, "lineno", None))
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            found.setdefault(name.split(".")[0], []).append(
                (node.lineno, node.lineno in guarded_lines)
            )
    return found


def imports_by_file():
    files = [p for src in SOURCES for p in sorted((ROOT / src).rglob("*.py"))]
    return {path: top_level_imports(path) for path in files}


def third_party(module, path):
    """Whether ``module`` is neither the standard library, nor this project,
    nor a helper module next to ``path`` (recipe helpers, conftest)."""
    if module in sys.stdlib_module_names or module == "audiollm_lobes":
        return False
    local = [path.parent / f"{module}.py", path.parent / module]
    in_tests = (ROOT / "tests" / f"{module}.py").is_file()
    return not (any(p.exists() for p in local) or in_tests)


def imported_distributions():
    """``{distribution: first file importing it}`` for third-party
    imports, mapped through the installed packages' metadata (a guarded
    import of a package that is not installed here is left out)."""
    owners = importlib.metadata.packages_distributions()
    used = {}
    for path, modules in imports_by_file().items():
        for module, sites in modules.items():
            if not third_party(module, path):
                continue
            dists = owners.get(module)
            if not dists and all(guarded for _, guarded in sites):
                continue
            assert dists, (
                f"{path.relative_to(ROOT)} imports {module!r}, which no "
                "installed distribution provides"
            )
            for dist in dists:
                used.setdefault(canonical(dist), path.relative_to(ROOT))
    return used


def test_installed_versions_satisfy_the_declared_bounds():
    args = setup_arguments()
    too_old_or_new = []
    for req in requirements(args):
        installed = importlib.metadata.version(req.name)
        if not req.specifier.contains(installed, prereleases=True):
            too_old_or_new.append(f"{req.name} {installed} (setup.py: {req})")
    assert not too_old_or_new, (
        "installed versions outside setup.py's bounds: "
        + "; ".join(too_old_or_new)
    )


def test_the_core_libraries_have_lower_bounds():
    """The libraries whose APIs the code depends on are bounded below."""
    args = setup_arguments()
    reqs = {canonical(r.name): r for r in requirements(args)}
    for name in ("torch", "transformers", "speechbrain", "peft"):
        assert any(s.operator == ">=" for s in reqs[name].specifier), name
    # lal.py uses transformers internals: bounded above as well
    assert any(s.operator == "<" for s in reqs["transformers"].specifier)


def test_every_imported_distribution_is_declared():
    args = setup_arguments()
    declared = {
        canonical(r.name)
        for r in requirements(args, extras=args["extras_require"])
    }
    # a platform-marked requirement counts as declared on every platform
    declared |= {
        canonical(Requirement(line).name) for line in args["install_requires"]
    }
    used = imported_distributions()
    undeclared = {d: str(f) for d, f in used.items() if d not in declared}
    assert not undeclared, f"imported but not in setup.py: {undeclared}"


def test_every_declared_distribution_is_imported():
    args = setup_arguments()
    lines = list(args["install_requires"])
    for extra in args["extras_require"].values():
        lines += extra
    used = imported_distributions()
    unused = [
        Requirement(line).name
        for line in lines
        if canonical(Requirement(line).name) not in used
        and Requirement(line).name not in NOT_IMPORTED
    ]
    assert not unused, f"declared in setup.py, imported nowhere: {unused}"


def test_console_scripts_resolve_to_functions_returning_exit_codes():
    scripts = setup_arguments()["entry_points"]["console_scripts"]
    names = {}
    for line in scripts:
        name, target = (part.strip() for part in line.split("="))
        module, func = target.split(":")
        names[name] = getattr(importlib.import_module(module), func)
    assert set(names) == {
        "audiollm-toyworld",
        "audiollm-compare",
        "audiollm-generate",
        "audiollm-export",
    }
    for name, main in names.items():
        with pytest.raises(SystemExit) as exit_info:  # argparse's --help
            main(["--help"])
        assert exit_info.value.code == 0, name


def test_compare_script_returns_zero_and_prints_the_table(tmp_path, capsys):
    from audiollm_lobes.compare import main

    runs = []
    for name, wer in (("dps", 10.0), ("lora", 12.5)):
        run = tmp_path / name / "1234"
        run.mkdir(parents=True)
        summary = {"experiment": name, "test": {"asr": {"wer": wer, "n": 5}}}
        (run / "summary.json").write_text(json.dumps(summary))
        runs.append(str(run))
    assert main(runs) == 0
    out = capsys.readouterr().out
    assert "| asr | wer ↓ | 10.00 | 12.50 | 5 |" in out
    assert "| task | metric | dps | lora |" in out


def test_the_license_is_apache_2():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert setup_arguments()["license"] == "Apache-2.0"


def test_the_package_imports_on_any_os():
    """No module of the package imports a POSIX-only module unguarded."""
    offenders = []
    for path, modules in imports_by_file().items():
        if ROOT / "audiollm_lobes" not in path.parents:
            continue
        for module in POSIX_ONLY & set(modules):
            for line, guarded in modules[module]:
                if not guarded:
                    rel = path.relative_to(ROOT)
                    offenders.append(f"{rel}:{line} imports {module}")
    assert not offenders, offenders


def test_the_toy_world_build_lock_is_exclusive(tmp_path):
    import filelock

    from audiollm_lobes.toyworld.world import _build_lock

    root = tmp_path / "tiny"
    with _build_lock(root):
        other = filelock.FileLock(str(tmp_path / ".tiny.lock"), timeout=0)
        with pytest.raises(filelock.Timeout):
            other.acquire()
    with filelock.FileLock(str(tmp_path / ".tiny.lock"), timeout=0):
        pass  # released on exit
