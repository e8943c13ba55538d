"""Splitting source files into definitions: Python via ast, other languages via tree-sitter or heuristics."""

from __future__ import annotations

import random
import textwrap
from types import SimpleNamespace

import pytest

from cet.knowledge import code_chunking
from cet.knowledge.code_chunking import (
    LANGUAGE_BY_EXTENSION,
    CodeDefinition,
    Node,
    detect_language,
    extract_imports,
    line_windows,
    python_used_names,
    split_definitions,
    top_level_names,
    tree_sitter_available,
)


def by_qualname(definitions: list[CodeDefinition]) -> dict[str, CodeDefinition]:
    return {d.qualname: d for d in definitions}


def spans(definitions: list[CodeDefinition]) -> list[tuple[str, str, int, int]]:
    return [(d.kind, d.qualname, d.start_line, d.end_line) for d in definitions]


@pytest.fixture
def no_grammars(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the grammar-free heuristic splitter, whatever grammars this machine has."""
    monkeypatch.setattr(code_chunking, "_parsers", lambda language: ())


PYTHON_SOURCE = textwrap.dedent(
    '''\
    """Module docstring."""
    import os
    from .helpers import slug

    LIMIT = 10


    # Adds numbers.
    @cache
    @trace(level=2)
    def add(a, b):
        """Return a + b."""
        return helper(a) + os.path.join(b)


    class Calculator(Base):
        """A calculator."""

        factor = 2

        def multiply(self, x):
            return self.scale(x) * self.factor

        async def fetch(self):
            import json
            return json.loads("{}")


    if __name__ == "__main__":
        add(1, 2)
    '''
)


def test_python_top_level_definitions_with_lines() -> None:
    definitions = split_definitions(PYTHON_SOURCE, "python")
    assert spans(definitions) == [
        ("module", "<module>", 1, 30),
        ("function", "add", 8, 13),
        ("class", "Calculator", 16, 26),
    ]


def test_python_definition_keeps_comment_decorators_and_docstring() -> None:
    add = by_qualname(split_definitions(PYTHON_SOURCE, "python"))["add"]
    assert add.text.splitlines()[0] == "# Adds numbers."
    assert "@cache\n@trace(level=2)\ndef add(a, b):" in add.text
    assert '"""Return a + b."""' in add.text
    assert add.calls == {"helper", "join", "trace"}
    assert add.name == "add"


def test_python_module_chunk_holds_only_code_outside_definitions() -> None:
    module = by_qualname(split_definitions(PYTHON_SOURCE, "python"))["<module>"]
    assert '"""Module docstring."""' in module.text
    assert "LIMIT = 10" in module.text
    assert 'if __name__ == "__main__":' in module.text
    assert "def add" not in module.text and "class Calculator" not in module.text
    assert module.imports == ["os", ".helpers.slug"]
    assert "add" in module.calls


def test_python_long_class_splits_into_header_and_methods() -> None:
    methods = "\n".join(f"    def method_{i}(self):\n        return {i}\n" for i in range(30))
    source = f"class Big(Base):\n    '''Doc.'''\n    attribute = 1\n\n{methods}\n\ndef after():\n    pass\n"
    definitions = split_definitions(source, "python", max_class_lines=40)
    found = by_qualname(definitions)
    assert found["Big"].kind == "class"
    assert "class Big(Base):" in found["Big"].text and "attribute = 1" in found["Big"].text
    assert "def method_" not in found["Big"].text
    assert found["Big.method_0"].kind == "method"
    assert found["Big.method_0"].start_line == 5 and found["Big.method_0"].end_line == 6
    assert found["Big.method_29"].text.strip() == "def method_29(self):\n        return 29"
    assert sum(1 for d in definitions if d.kind == "method") == 30
    assert found["after"].kind == "function"
    assert top_level_names(definitions) == {"Big", "after"}


def test_python_short_class_stays_whole() -> None:
    calculator = by_qualname(split_definitions(PYTHON_SOURCE, "python"))["Calculator"]
    assert "def multiply" in calculator.text and "async def fetch" in calculator.text
    assert calculator.imports == ["json"]
    assert {"scale", "loads"} <= calculator.calls


def test_python_imports_only_file_is_one_module_chunk() -> None:
    definitions = split_definitions("from .core import add\nfrom .util import slug\n", "python")
    assert spans(definitions) == [("module", "<module>", 1, 2)]
    assert definitions[0].imports == [".core.add", ".util.slug"]


def test_python_trivial_leftover_makes_no_module_chunk() -> None:
    source = "import os\n\n\ndef f():\n    return os.sep\n"
    assert spans(split_definitions(source, "python")) == [("function", "f", 4, 5)]


def test_python_syntax_error_falls_back_to_line_windows() -> None:
    source = "def broken(:\n    pass\n" + "x = 1\n" * 130
    definitions = split_definitions(source, "python", window_lines=50)
    assert [d.kind for d in definitions] == ["module", "module", "module"]
    assert [(d.start_line, d.end_line) for d in definitions] == [(1, 50), (51, 100), (101, 133)]
    assert definitions[0].qualname == "L1-L50"
    assert "def broken(:" in definitions[0].text


def test_empty_and_blank_sources_have_no_definitions() -> None:
    assert split_definitions("", "python") == []
    assert split_definitions("\n   \n", "go") == []


def test_crlf_line_numbers_match_lines() -> None:
    source = "import os\r\n\r\ndef f():\r\n    return 1\r\n"
    assert spans(split_definitions(source, "python")) == [("function", "f", 3, 4)]


def test_unknown_language_becomes_line_windows() -> None:
    definitions = split_definitions("a\nb\n\nc\n", "cobol-ish")
    assert spans(definitions) == [("module", "L1-L5", 1, 5)]


def test_line_windows_skip_blank_windows() -> None:
    lines = ["x"] * 3 + [""] * 4 + ["y"]
    assert [(d.start_line, d.end_line) for d in line_windows(lines, 3)] == [(1, 3), (7, 8)]


@pytest.mark.parametrize(
    "path, language",
    [
        ("a/b.py", "python"),
        ("x.TS", "typescript"),
        ("App.tsx", "tsx"),
        ("m.go", "go"),
        ("lib.rs", "rust"),
        ("A.java", "java"),
        ("a.h", "c"),
        ("a.hpp", "cpp"),
        ("x.rb", "ruby"),
        ("Rakefile", "ruby"),
        ("README.md", None),
        ("data.csv", None),
        ("noext", None),
    ],
)
def test_detect_language(path: str, language: str | None) -> None:
    assert detect_language(path) == language


def test_extension_map_covers_the_required_languages() -> None:
    required = {"python", "javascript", "typescript", "go", "rust", "java", "c", "cpp", "ruby"}
    assert required <= set(LANGUAGE_BY_EXTENSION.values())


def test_extract_imports_per_language() -> None:
    python = "import a.b as c\nfrom . import core\nfrom ..pkg.mod import name, other\nfrom x import *\n"
    assert extract_imports(python, "python") == ["a.b", ".core", "..pkg.mod.name", "..pkg.mod.other", "x"]
    js = (
        "import x, { y } from './lib/x';\nconst z = require(\"../z\");\n"
        "import './side';\nexport * from './re';\n"
    )
    assert extract_imports(js, "javascript") == ["./lib/x", "./re", "./side", "../z"]
    go = 'package p\nimport "fmt"\nimport (\n\t"os"\n\tstr "strings"\n)\n'
    assert extract_imports(go, "go") == ["fmt", "os", "strings"]
    ruby = "require 'json'\nrequire_relative '../lib/calc'\nrequire_relative 'helper'\n"
    assert extract_imports(ruby, "ruby") == ["json", "../lib/calc", "./helper"]


def test_python_used_names_counts_calls_and_imported_names() -> None:
    names = python_used_names("from pkg import add as plus\nimport pkg\n\nplus(1)\npkg.mod.scale(2)\n")
    assert {"add", "plus", "scale"} <= names


# --------------------------------------------------------------------------------- grammar-free splitting

JS_SOURCE = textwrap.dedent(
    """\
    const path = require('./path');

    /** Adds. */
    function add(a, b) {
      const s = "}{ not a brace";  // } nor this
      return helper(a) + b;
    }

    export class Box extends Base {
      open() {
        return `template ${"}"}`;
      }
    }

    const double = (x) => x * 2;
    export default function main() {
      return add(1, 2);
    }
    module.exports = { add };
    """
)


def test_heuristic_javascript(no_grammars: None) -> None:
    definitions = split_definitions(JS_SOURCE, "javascript")
    found = by_qualname(definitions)
    assert [(k, q, s, e) for k, q, s, e in spans(definitions) if k != "module"] == [
        ("function", "add", 3, 7),
        ("class", "Box", 9, 13),
        ("function", "double", 15, 15),
        ("function", "main", 16, 18),
    ]
    assert found["add"].text.startswith("/** Adds. */\nfunction add")
    assert "helper" in found["add"].calls
    assert "module.exports = { add };" in found["<module>"].text
    assert found["<module>"].imports == ["./path"]


def test_heuristic_go_methods_get_receiver_qualnames(no_grammars: None) -> None:
    source = textwrap.dedent(
        """\
        package calc

        import "fmt"

        // Calc adds.
        type Calc struct {
        \ttotal int
        }

        func (c *Calc) Add(n int) int {
        \tif n > 0 {
        \t\tc.total += n
        \t}
        \treturn c.total
        }

        func New() *Calc { return &Calc{} }
        """
    )
    assert spans(split_definitions(source, "go")) == [
        ("class", "Calc", 5, 8),
        ("method", "Calc.Add", 10, 15),
        ("function", "New", 17, 17),
    ]


def test_heuristic_rust_handles_lifetimes_and_char_literals(no_grammars: None) -> None:
    source = textwrap.dedent(
        """\
        use std::fmt;

        #[derive(Debug)]
        pub struct Token<'a> {
            text: &'a str,
        }

        impl<'a> Token<'a> {
            pub fn first(&self) -> char {
                if self.text.is_empty() { '{' } else { 'x' }
            }
        }

        fn main() {}
        """
    )
    assert spans(split_definitions(source, "rust")) == [
        ("class", "Token", 3, 6),
        ("class", "Token", 8, 12),
        ("function", "main", 14, 14),
    ]


def test_heuristic_c_skips_prototypes(no_grammars: None) -> None:
    source = (
        "#include <stdio.h>\n\nint helper(int x);\n\nstruct point {\n  int x;\n};\n\n"
        "int main(void) {\n  return helper(1);\n}\n"
    )
    definitions = split_definitions(source, "c")
    assert [(k, q, s, e) for k, q, s, e in spans(definitions) if k != "module"] == [
        ("class", "point", 5, 7),
        ("function", "main", 9, 11),
    ]


def test_heuristic_ruby(no_grammars: None) -> None:
    source = (
        "require 'json'\n\nclass Greeter\n  def hi(name)\n    puts name\n  end\nend\n\n"
        "def shout(x) = x.upcase\ndef quiet; end\n"
    )
    definitions = split_definitions(source, "ruby")
    assert [(k, q, s, e) for k, q, s, e in spans(definitions) if k != "module"][:2] == [
        ("class", "Greeter", 3, 7),
        ("function", "shout", 9, 9),
    ]
    assert by_qualname(definitions)["quiet"].start_line == 10


def test_heuristic_unknown_c_like_language_without_patterns_is_windows(no_grammars: None) -> None:
    assert [d.kind for d in split_definitions("fun main() {}\n", "scala")] == ["module"]


# ---------------------------------------------------------------------------------- tree-sitter splitting

TREE_CASES = {
    "javascript": (
        JS_SOURCE,
        [
            ("function", "add", 3, 7),
            ("class", "Box", 9, 13),
            ("function", "double", 15, 15),
            ("function", "main", 16, 18),
        ],
    ),
    "typescript": (
        "interface Shape { area(): number }\ntype Id = string;\n\nexport class Square implements Shape {\n"
        "  constructor(private side: number) {}\n  area(): number { return sq(this.side); }\n}\n\n"
        "export function sq(x: number): number {\n  return x * x;\n}\nenum Color { Red }\n",
        [
            ("class", "Shape", 1, 1),
            ("class", "Id", 2, 2),
            ("class", "Square", 4, 7),
            ("function", "sq", 9, 11),
            ("class", "Color", 12, 12),
        ],
    ),
    "go": (
        'package calc\n\nimport "fmt"\n\n// Calc adds.\ntype Calc struct {\n\ttotal int\n}\n\n'
        "func (c *Calc) Add(n int) int {\n\tfmt.Println(n)\n\treturn c.total\n}\n\n"
        "func New() *Calc { return &Calc{} }\n",
        [("class", "Calc", 5, 8), ("method", "Calc.Add", 10, 13), ("function", "New", 15, 15)],
    ),
    "rust": (
        "use std::fmt;\n\n/// A token.\n#[derive(Debug)]\npub struct Token { n: i32 }\n\nimpl Token {\n"
        "    pub fn get(&self) -> i32 { helper(self.n) }\n}\n\nfn helper(n: i32) -> i32 { n }\n",
        [("class", "Token", 3, 5), ("class", "Token", 7, 9), ("function", "helper", 11, 11)],
    ),
    "java": (
        "package demo;\n\nimport java.util.List;\n\n/** Docs. */\npublic class Calc {\n"
        "  private int total;\n\n"
        "  public int add(int n) {\n    return helper(n);\n  }\n}\n",
        [("class", "Calc", 5, 12)],
    ),
    "c": (
        "#include <stdio.h>\n\nstruct point { int x; };\n\n"
        '/* Entry. */\nint main(void) {\n  printf("hi");\n  return 0;\n}\n',
        [("class", "point", 3, 3), ("function", "main", 5, 9)],
    ),
    "cpp": (
        "#include <vector>\n\nnamespace geo {\nclass Shape {\n public:\n"
        "  virtual double area() const = 0;\n};\n}\n\n"
        "double Circle::area() const { return compute(r); }\n\n"
        "template <typename T>\nT twice(T x) { return x + x; }\n",
        [("class", "geo", 3, 8), ("function", "Circle.area", 10, 10), ("function", "twice", 12, 13)],
    ),
    "ruby": (
        "require 'json'\n\nmodule Shop\n  class Cart\n    def total\n      sum(items)\n"
        "    end\n  end\nend\n\n"
        "def helper\n  1\nend\n",
        [("class", "Shop", 3, 9), ("function", "helper", 11, 13)],
    ),
}


@pytest.mark.parametrize("language", sorted(TREE_CASES))
def test_tree_sitter_definitions(language: str) -> None:
    if not tree_sitter_available(language):
        pytest.skip(f"no tree-sitter grammar for {language} on this machine")
    source, expected = TREE_CASES[language]
    definitions = split_definitions(source, language)
    assert [s for s in spans(definitions) if s[0] != "module"] == expected


@pytest.mark.parametrize("language", sorted(TREE_CASES))
def test_every_language_finds_definitions_with_or_without_a_grammar(language: str) -> None:
    source, expected = TREE_CASES[language]
    definitions = split_definitions(source, language)
    names = {d.name for d in definitions}
    assert {qualname.split(".")[-1] for _, qualname, _, _ in expected} <= names


def test_tree_sitter_calls_and_comments() -> None:
    if not tree_sitter_available("go"):
        pytest.skip("no tree-sitter grammar for go on this machine")
    found = by_qualname(split_definitions(TREE_CASES["go"][0], "go"))
    assert found["Calc"].text.startswith("// Calc adds.")
    assert found["Calc.Add"].calls == {"Println"}


def test_tree_sitter_long_java_class_splits_into_methods() -> None:
    if not tree_sitter_available("java"):
        pytest.skip("no tree-sitter grammar for java on this machine")
    methods = "\n".join(f"  public int m{i}() {{\n    return f({i});\n  }}\n" for i in range(20))
    source = f"public class Big {{\n  private int x;\n\n{methods}}}\n"
    definitions = split_definitions(source, "java", max_class_lines=30)
    found = by_qualname(definitions)
    assert found["Big"].kind == "class" and "private int x;" in found["Big"].text
    assert "m0()" not in found["Big"].text
    assert found["Big.m0"].kind == "method" and (found["Big.m0"].start_line, found["Big.m0"].end_line) == (
        4,
        6,
    )
    assert found["Big.m19"].calls == {"f"}
    assert sum(d.kind == "method" for d in definitions) == 20


def test_tree_sitter_syntax_error_keeps_good_definitions_and_windows_the_rest() -> None:
    if not tree_sitter_available("javascript"):
        pytest.skip("no tree-sitter grammar for javascript on this machine")
    source = "function ok() {\n  return 1;\n}\n\nlet = = 3;\nfunction two() { return 2; }\n"
    assert spans(split_definitions(source, "javascript")) == [
        ("function", "ok", 1, 3),
        ("module", "L4-L5", 4, 5),
        ("function", "two", 6, 6),
    ]
    hopeless = "function ok() {\n  return 1;\n}\n\n%%% not javascript ((( \n"
    assert spans(split_definitions(hopeless, "javascript")) == [("module", "L1-L6", 1, 6)]


@pytest.mark.parametrize(
    "language", ["python", "javascript", "typescript", "go", "rust", "java", "c", "cpp", "ruby"]
)
def test_garbage_never_raises(language: str) -> None:
    rng = random.Random(language)
    alphabet = "{}()[];:'\"`/*#\n abcdefdef class fn func end\\"
    for _ in range(30):
        source = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        line_count = len(source.replace("\r\n", "\n").split("\n"))
        for definition in split_definitions(source, language):
            assert 1 <= definition.start_line <= definition.end_line <= line_count
            assert definition.text.strip()
            assert definition.kind in ("function", "class", "method", "module")


class _FakePoint(SimpleNamespace):
    pass


class _FakeNativeNode:
    """Mimics the language pack's native node: methods (`kind()`) instead of attributes (`type`)."""

    def __init__(self, kind: str, start: int, end: int, row: int, children: list[_FakeNativeNode]) -> None:
        self._kind, self._start, self._end, self._row, self._children = kind, start, end, row, children

    def kind(self) -> str:
        return self._kind

    def start_byte(self) -> int:
        return self._start

    def end_byte(self) -> int:
        return self._end

    def start_position(self) -> _FakePoint:
        return _FakePoint(row=self._row, column=0)

    def end_position(self) -> _FakePoint:
        return _FakePoint(row=self._row, column=0)

    def has_error(self) -> bool:
        return False

    def is_named(self) -> bool:
        return True

    def child_count(self) -> int:
        return len(self._children)

    def child(self, index: int) -> _FakeNativeNode:
        return self._children[index]

    def child_by_field_name(self, name: str) -> _FakeNativeNode | None:
        return self._children[0] if name == "name" and self._children else None


def test_node_reads_native_language_pack_nodes() -> None:
    data = b"func Foo"
    leaf = _FakeNativeNode("identifier", 5, 8, 0, [])
    node = Node(_FakeNativeNode("function_declaration", 0, 8, 0, [leaf]), data)
    assert node.type == "function_declaration"
    assert (node.start_byte, node.end_byte, node.start_row, node.end_row) == (0, 8, 0, 0)
    assert node.field("name").text == "Foo"
    assert [c.type for c in node.walk()] == ["function_declaration", "identifier"]
    assert not node.has_error and node.is_named
