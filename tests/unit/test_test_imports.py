"""A test module imports no other test module: what tests share lives in tests/factories.py,
tests/support/ or tests/services/, so a test file can change or go without breaking another."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
TEST_PACKAGES = ("tests.unit", "tests.integration")


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):  # function-level imports count too
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_no_module_under_tests_imports_a_test_module() -> None:
    offenders = {
        f"{path.relative_to(TESTS.parent)}:{line}: imports {'.'.join(name.split('.')[:3])}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, name in _imported_modules(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if name.startswith(tuple(f"{pkg}.test_" for pkg in TEST_PACKAGES))
    }
    assert not offenders, "move what is shared to tests/factories.py or tests/support/:\n" + "\n".join(sorted(offenders))
