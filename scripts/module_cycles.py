#!/usr/bin/env python3
"""Report module import cycles inside one Rust crate (stdlib only).

Usage:
    python3 scripts/module_cycles.py SRC_DIR [SRC_DIR ...] [--edges]

    SRC_DIR   a crate's source root holding `lib.rs` or `main.rs`
              (e.g. `crates/cache/src`).
    --edges   also print every cross-module edge with the line that makes it.

For each crate it builds the graph "top-level module -> top-level modules it names"
from `crate::X` / `crate::{X, Y}` paths and from `super::` / `self::` paths resolved
against where they are written (a file's module path plus any inline `mod m { .. }`).
Granularity is the top-level module: `crate::engine::foo` is an edge to `engine`, and
every file under `pacer/` (or reached through `#[path = ..] mod tests;` from
`engine.rs`) counts as `pacer` (or `engine`), so imports inside one module are not
edges. A name re-exported by the crate root (`pub use engine::Engine;` in lib.rs)
used as `crate::Engine` is an edge to the module that defines it. Comments and string
literals are ignored; `$crate` in macros is not followed.

It prints, per crate, the strongly connected components with more than one module
and the edges inside each (with file:line), or "no cycles". Exit status: 0 when no
crate has a cycle, 1 otherwise, 2 on a usage error; so it can run in CI.
"""

import os
import re
import sys
from collections import defaultdict

TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|::|\$|[{}(),;#=\[\]]|\S")


def strip_comments_and_strings(text):
    """Blank out comments and string/char literals, keeping newlines for line numbers."""
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
        elif re.match(r'b?r#*"', text[i:i + 12]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'b?r(#*)"', text[i:])
            end = text.find('"' + m.group(1), i + m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            out.append(blank(text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text[i:j + 1]))
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'\n])'", text[i:])
            if m:
                out.append(blank(m.group(0)))
                i += m.end()
            else:  # a lifetime or label
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def tokenize(text):
    toks = []
    line = 1
    pos = 0
    for m in TOKEN.finditer(text):
        line += text.count("\n", pos, m.start())
        pos = m.start()
        toks.append((m.group(0), line))
    return toks


def group_heads(toks, i):
    """toks[i] is '{' of a use group; return (first idents of each item, index after '}')."""
    heads, depth, expect = [], 0, True
    while i < len(toks):
        t = toks[i][0]
        if t == "{":
            depth += 1
            if depth == 1:
                expect = True
        elif t == "}":
            depth -= 1
            if depth == 0:
                return heads, i + 1
        elif t == "," and depth == 1:
            expect = True
        elif depth == 1 and expect and re.match(r"[A-Za-z_]", t):
            heads.append((t, toks[i][1]))
            expect = False
        elif depth == 1 and expect and t not in ("::",):
            expect = False  # `*` or similar
        i += 1
    return heads, i


def module_path_of(rel, path_attr):
    """Module path of a file from its path under src/ (or the #[path] owner map)."""
    if rel in path_attr:
        return path_attr[rel]
    parts = rel[:-3].split("/")
    if parts[-1] in ("lib", "main") and len(parts) == 1:
        return []
    if parts[-1] == "mod":
        parts = parts[:-1]
    return parts


def scan_crate(src):
    root_file = next((f for f in ("lib.rs", "main.rs") if os.path.exists(os.path.join(src, f))), None)
    if root_file is None:
        sys.exit(f"{src}: no lib.rs or main.rs")
    files = {}
    for d, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                full = os.path.join(d, name)
                rel = os.path.relpath(full, src).replace(os.sep, "/")
                with open(full, encoding="utf-8") as fh:
                    files[rel] = tokenize(strip_comments_and_strings(fh.read()))

    # Files reached through `#[path = "x.rs"] mod m;` belong to the declaring module.
    path_attr = {}
    changed = True
    while changed:
        changed = False
        for rel, toks in files.items():
            owner = module_path_of(rel, path_attr)
            raw = open(os.path.join(src, rel), encoding="utf-8").read()
            for m in re.finditer(r'#\[path\s*=\s*"([^"]+)"\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;', raw):
                target = os.path.normpath(os.path.join(os.path.dirname(rel), m.group(1))).replace(os.sep, "/")
                if target in files and path_attr.get(target) != owner + [m.group(2)]:
                    path_attr[target] = owner + [m.group(2)]
                    changed = True

    top_modules = {mp[0] for rel in files for mp in [module_path_of(rel, path_attr)] if mp}

    # Names the crate root re-exports: `pub use engine::{A, B};` -> A, B live in engine.
    reexport = {}
    toks = files[root_file]
    for i, (t, _) in enumerate(toks):
        if t == "use" and i + 1 < len(toks):
            j = i + 1
            if toks[j][0] == "crate" and j + 1 < len(toks) and toks[j + 1][0] == "::":
                j += 2
            if toks[j][0] in top_modules:
                mod = toks[j][0]
                k = j + 1
                while k < len(toks) and toks[k][0] not in (";",):
                    if re.match(r"[A-Za-z_]", toks[k][0]) and toks[k][0] not in ("as", "self"):
                        reexport.setdefault(toks[k][0], mod)
                    k += 1

    edges = defaultdict(list)  # (from, to) -> [file:line]

    def add(src_mod, name, rel, line):
        target = name if name in top_modules else reexport.get(name)
        if target and target != src_mod:
            edges[(src_mod, target)].append(f"{rel}:{line}")

    for rel, toks in sorted(files.items()):
        fpath = module_path_of(rel, path_attr)
        if not fpath:
            continue  # the crate root only declares and re-exports
        me = fpath[0]
        stack = []  # inline `mod m {` names (None for other braces)
        i = 0
        while i < len(toks):
            t, line = toks[i]
            if t == "{":
                is_mod = i >= 2 and toks[i - 2][0] == "mod"
                stack.append(toks[i - 1][0] if is_mod else None)
            elif t == "}":
                if stack:
                    stack.pop()
            elif t in ("crate", "super", "self") and i + 1 < len(toks) and toks[i + 1][0] == "::":
                prev = toks[i - 1][0] if i else ""
                if prev in ("$", "::"):
                    i += 1
                    continue
                here = fpath + [m for m in stack if m is not None]
                if t == "crate":
                    base, j = [], i + 2
                else:
                    base = list(here)
                    j = i
                    if t == "self":
                        j = i + 2
                    else:
                        while j + 1 < len(toks) and toks[j][0] == "super" and toks[j + 1][0] == "::":
                            base = base[:-1]
                            j += 2
                if base:
                    add(me, base[0], rel, line)
                elif j < len(toks) and toks[j][0] == "{":
                    heads, j = group_heads(toks, j)
                    for name, ln in heads:
                        add(me, name, rel, ln)
                elif j < len(toks):
                    add(me, toks[j][0], rel, line)
                i = max(i + 1, j)
                continue
            i += 1
    return sorted(top_modules), edges


def sccs(nodes, edges):
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def main(argv):
    show_edges = "--edges" in argv
    dirs = [a for a in argv if a != "--edges"]
    if not dirs or any(a.startswith("-") for a in dirs):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    found = False
    for src in dirs:
        nodes, edges = scan_crate(src)
        comps = sccs(nodes, edges)
        print(f"{src}: {len(nodes)} modules, {len(edges)} cross-module edges, "
              f"{len(comps)} cycle(s)")
        if show_edges:
            for (a, b), where in sorted(edges.items()):
                print(f"  {a} -> {b}  ({', '.join(where)})")
        for comp in sorted(comps):
            found = True
            members = set(comp)
            print(f"  cycle: {' '.join(comp)}")
            for (a, b), where in sorted(edges.items()):
                if a in members and b in members:
                    print(f"    {a} -> {b}  ({', '.join(where)})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
