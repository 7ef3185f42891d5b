#!/usr/bin/env python3
"""List module-level dependency cycles in a Rust crate's source tree.

Usage:
    scripts/module-cycles.py shared/src [--under workflow] [--edges]

What it does
------------
1. Finds the crate's modules by following `mod name;` declarations from the crate root
   (`lib.rs`, else `main.rs`): `a.rs` or `a/mod.rs` is module `a`, `a/b.rs` is `a::b`.
   A `main.rs` beside a `lib.rs` is a separate binary crate and is not read. `#[path]`
   attributes are not followed. Inline modules (`mod tests { .. }`) belong to their file.
2. For every module file, collects the modules it refers to, with comments and string
   literals removed first:
     - `use` declarations (`use crate::…`, `use super::…`, `use self::…`, and `use child::…`
       where `child` is a submodule of the current module), with `{…}` trees expanded;
     - path expressions anywhere in the code: `crate::x::y`, `super::x`, `self::x`,
       `$crate::x`, and `child::x` for a submodule `child` of the current module.
   A dependency on `a::b::Item` counts as one on module `a::b`, or on its nearest
   existing parent module. `super` inside an inline module is resolved from that inline
   module. References to the module itself are ignored; so are `mod` declarations
   (a parent declaring a child is not a dependency), but a parent's `pub use child::X`
   re-export is one, so a child that imports through its parent's re-exports while the
   parent re-exports the child is reported as a cycle.
   Names brought in by an alias (`use super::value; value::x`) are counted through the
   `use`, not through the alias.
3. Prints each strongly connected component with more than one module (a cycle), its
   modules sorted, followed by the edges inside it with the file line that makes each.

References from inline `#[cfg(test)]` modules count, and an edge made only by them is marked
"(only from #[cfg(test)] code)"; `--no-tests` leaves them out.

Options: `--under PREFIX` keeps only components that have a module under `PREFIX`
(e.g. `workflow`); `--edges` prints the whole dependency graph instead. The exit status is
1 when a cycle is printed, 0 otherwise, so the script can guard CI.

Python 3 standard library only.
"""

import argparse
import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_comments_and_strings(text):
    """Blank out comments, string and char literals, keeping newlines so line numbers hold."""
    out = []
    i, n = 0, len(text)

    def blank(s):
        return "".join("\n" if c == "\n" else " " for c in s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif re.match(r'b?r#*"', text[i:i + 40]) and (i == 0 or not re.match(r"\w", text[i - 1])):
            m = re.match(r'b?r(#*)"', text[i:])
            if m:  # raw string: ends at `"` followed by the same number of `#`
                end = text.find('"' + m.group(1), i + m.end())
                j = n if end < 0 else end + 1 + len(m.group(1))
            else:  # b"…": an ordinary string with a prefix
                j = string_end(text, i + 2)
            out.append(blank(text[i:j]))
            i = j
        elif c == '"':
            j = string_end(text, i + 1)
            out.append(blank(text[i:j]))
            i = j
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a, 'static).
            if i + 1 < n and text[i + 1] == "\\":
                j = text.find("'", i + 3)
                j = n if j < 0 else j + 1
                out.append(blank(text[i:j]))
                i = j
            elif i + 2 < n and text[i + 2] == "'":
                out.append("   ")
                i += 3
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def string_end(text, j):
    """Index just past the closing quote of a string whose body starts at `j`."""
    n = len(text)
    while j < n:
        if text[j] == "\\":
            j += 2
        elif text[j] == '"':
            return j + 1
        else:
            j += 1
    return n


def expand_use_tree(tree):
    """`a::{b, c::{self, d}}` -> [['a','b'], ['a','c'], ['a','c','d']]; globs and `as` dropped."""
    tree = re.sub(r"\s+as\s+" + IDENT, "", tree)  # `x as y` still depends on x
    tree = re.sub(r"\s+", "", tree)
    paths = []

    def parse(s, prefix):
        # split top-level commas
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
        for part in parts:
            if not part:
                continue
            brace = part.find("{")
            if brace >= 0:
                head = part[:brace].rstrip(":")
                segs = [x for x in head.split("::") if x]
                parse(part[brace + 1:part.rfind("}")], prefix + segs)
            else:
                segs = [x for x in part.split("::") if x and x != "*"]
                if segs and segs[-1] == "self":
                    segs = segs[:-1]
                paths.append(prefix + segs)

    if tree.startswith("::"):  # `use ::name::…` names an external crate
        parse(tree[2:], ["::"])
    else:
        parse(tree, [])
    return paths


class Crate:
    def __init__(self, src):
        self.src = src
        self.files = {}  # module path (tuple) -> file path
        root = os.path.join(src, "lib.rs")
        if not os.path.exists(root):
            root = os.path.join(src, "main.rs")
        self._load((), root, src)

    def _load(self, module, path, child_dir):
        self.files[module] = path
        code = strip_comments_and_strings(open(path, encoding="utf-8").read())
        declaration = r"(?m)^\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;"
        for m in re.finditer(declaration, code):
            name = m.group(1)
            for candidate, sub_dir in (
                (os.path.join(child_dir, name + ".rs"), os.path.join(child_dir, name)),
                (os.path.join(child_dir, name, "mod.rs"), os.path.join(child_dir, name)),
            ):
                if os.path.exists(candidate):
                    self._load(module + (name,), candidate, sub_dir)
                    break

    def children(self, module):
        return {m[-1] for m in self.files if len(m) == len(module) + 1 and m[:-1] == module}

    def nearest_module(self, path):
        path = tuple(path)
        while path not in self.files:
            path = path[:-1]
        return path


TEST_GATE = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?$")


def inline_modules_at(code):
    """For each offset: the inline-module path (relative to the file) that encloses it, and
    whether one of those modules is `#[cfg(test)]`."""
    stack, depth, opens = [], 0, []  # stack of (name, is_test)
    pending = None
    result = [((), False)] * (len(code) + 1)
    mod_re = re.compile(r"\bmod\s+(" + IDENT + r")\s*\{")

    def here():
        return tuple(name for name, _ in stack), any(test for _, test in stack)

    i = 0
    while i < len(code):
        m = mod_re.match(code, i) if code[i] == "m" and (i == 0 or not re.match(r"\w", code[i - 1])) else None
        if m:
            pending = (m.group(1), bool(TEST_GATE.search(code, max(0, i - 200), i)))
            for k in range(i, m.end() - 1):
                result[k] = here()
            i = m.end() - 1
            continue
        ch = code[i]
        if ch == "{":
            depth += 1
            if pending is not None:
                stack.append(pending)
                opens.append(depth)
                pending = None
        elif ch == "}":
            if opens and opens[-1] == depth:
                opens.pop()
                stack.pop()
            depth -= 1
        result[i] = here()
        i += 1
    return result


def resolve(crate, file_module, inline, segs):
    """Absolute module path of a path's segments seen from `file_module` + `inline`, or None."""
    here = list(file_module) + list(inline)
    if not segs:
        return None
    head = segs[0]
    if head in ("crate", "$crate"):
        base, rest = [], segs[1:]
    elif head in ("self", "super"):
        base, rest = here, segs
        while rest and rest[0] in ("self", "super"):
            if rest[0] == "super":
                if not base:
                    return None
                base = base[:-1]
            rest = rest[1:]
    elif not inline and head in crate.children(file_module):
        base, rest = list(file_module), segs
    else:
        return None  # an external crate, a std path, a local item or an alias
    # Inside the file's own inline modules, the file is the module that counts.
    target = list(base) + list(rest)
    if target[: len(file_module)] == list(file_module) and len(target) > len(file_module):
        if tuple(target[: len(file_module) + 1]) not in crate.files:
            return tuple(file_module)
    return crate.nearest_module(target)


def dependencies(crate, module, path):
    """{target module: (line, source text, test_only)} for one module file: the first
    reference, preferring one outside `#[cfg(test)]` code."""
    raw = open(path, encoding="utf-8").read()
    code = strip_comments_and_strings(raw)
    raw_lines = raw.splitlines()
    inline = inline_modules_at(code)
    deps = {}

    def add(target, offset):
        if target is None or target == module:
            return
        test_only = inline[offset][1]
        if target in deps and (test_only or not deps[target][2]):
            return
        line = code.count("\n", 0, offset) + 1
        deps[target] = (line, raw_lines[line - 1].strip(), test_only)

    use_spans = []
    for m in re.finditer(r"\buse\s+([^;]*);", code):
        use_spans.append((m.start(), m.end()))
        for segs in expand_use_tree(m.group(1)):
            add(resolve(crate, module, inline[m.start()][0], segs), m.start())

    path_re = re.compile(r"(?<![\w:])(\$crate|crate|super|self|" + IDENT + r")((?:\s*::\s*" + IDENT + r")+)")
    for m in path_re.finditer(code):
        if any(s <= m.start() < e for s, e in use_spans):
            continue
        if re.search(r"\bin\s*$", code[max(0, m.start() - 8):m.start()]):
            continue  # `pub(in crate::x)` is a visibility, not a dependency
        segs = [m.group(1)] + [s.strip() for s in m.group(2).split("::") if s.strip()]
        add(resolve(crate, module, inline[m.start()][0], segs), m.start())
    return deps


def strongly_connected_components(graph):
    """Tarjan's algorithm, iterative."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(comp)
    return out


def name(module):
    return "::".join(module) if module else "crate"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="the crate's source directory, e.g. shared/src")
    ap.add_argument("--under", help="only cycles with a module under this path, e.g. workflow")
    ap.add_argument("--edges", action="store_true", help="print the dependency graph instead")
    ap.add_argument("--no-tests", action="store_true", help="ignore references from #[cfg(test)] modules")
    args = ap.parse_args()

    crate = Crate(args.src)
    graph, why = {}, {}
    for module, path in sorted(crate.files.items()):
        deps = dependencies(crate, module, path)
        if args.no_tests:
            deps = {t: d for t, d in deps.items() if not d[2]}
        graph[module] = set(deps)
        for target, where in deps.items():
            why[(module, target)] = (os.path.relpath(path, args.src), *where)

    if args.edges:
        for module in sorted(graph):
            print(f"{name(module)} -> {', '.join(sorted(name(t) for t in graph[module])) or '-'}")
        return 0

    under = tuple(args.under.split("::")) if args.under else None
    cycles = [
        sorted(c)
        for c in strongly_connected_components(graph)
        if len(c) > 1 and (under is None or any(m[: len(under)] == under for m in c))
    ]
    if not cycles:
        print(f"{args.src}: no module cycles" + (f" under {args.under}" if under else ""))
        return 0
    for comp in sorted(cycles):
        print(f"cycle: {' <-> '.join(name(m) for m in comp)}")
        members = set(comp)
        for a in comp:
            for b in sorted(graph[a] & members):
                file, line, text, test_only = why[(a, b)]
                note = "  (only from #[cfg(test)] code)" if test_only else ""
                print(f"    {name(a)} -> {name(b)}    {file}:{line}: {text}{note}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
