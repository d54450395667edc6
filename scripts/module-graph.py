#!/usr/bin/env python3
"""Module graph and cycle check for the portshare crate (issue 18).

Reads src/**/*.rs, builds the graph of module -> module references and
checks the rule "no module cycle", where a module is a file, or a folder's
mod.rs together with its children.

Nodes. Each file is a node; a folder's mod.rs is the folder's node. The
module tree is built by following `mod NAME;` declarations from the two crate
roots: src/lib.rs (the library; its top-level modules are `server`,
`proxy`, ...) and src/main.rs (the binary, shown as the top-level module
`main`, so `src/service/` is `main::service`). Inline modules (`mod imp {
... }`) belong to the file they are written in.

Test code is left out: `mod tests { ... }` blocks, items marked
`#[cfg(test)]` (modules, `use` lines, functions), files whose name ends in
`tests.rs`, and files behind a `#[cfg(test)] mod NAME;` declaration.

References. `use` declarations, with nested groups (`use crate::{a, b::{c,
self}}`), renames and globs; paths in code (`crate::a::b::f()`,
`super::x::Y`, `self::x::f`); paths that start with a child module's name
(`guard::check()` in server/mod.rs); paths that start with a name imported
by a `use` that names a module (`use crate::dispatch; ... dispatch::x::f`);
`portshare::...` from the binary. `super::` and `self::` are resolved
relative to the file and any inline module the path sits in. Each path goes
to the deepest existing module file among its prefixes (`crate::server::
direct::write` -> src/server/direct.rs; `super::Foo` -> the parent's file).
Re-exports are not followed: `use super::Foo` where the parent re-exports
Foo from a sibling is an edge to the parent.

Levels. For the cycle rule every edge A -> B is collapsed to the children of
their common parent: src/site/cgi.rs -> src/errors.rs is the top-level edge
site -> errors; src/server/direct.rs -> src/server/connection.rs is the
sibling edge direct -> connection inside `server`. An edge from a module to
one of its own ancestors (a child using its parent's items through super::)
is allowed and reported separately; an edge from a module to its own
descendant (mod.rs using its children) is the normal direction and not part
of any level.

Output: the edges per level and every strongly connected component of more
than one module (Tarjan) per level; exit status 1 if there is any, else 0.
`--dot` prints the graph for Graphviz instead (module nodes clustered by
folder, cycle edges in red) and exits 0. `--src DIR` reads another tree.
Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

# ---------------------------------------------------------------------------
# Tokenizer: identifiers, `::`, punctuation, string literals (kept, for
# #[path = "..."]); comments and literal contents never produce paths.
# ---------------------------------------------------------------------------

IDENT = "ident"
PUNCT = "punct"
STR = "str"
LIT = "lit"


@dataclass
class Tok:
    kind: str
    text: str
    line: int


_IDENT_RE = re.compile(r"(?:r#)?[A-Za-z_][A-Za-z0-9_]*")
_NUM_RE = re.compile(r"[0-9][0-9A-Za-z_]*(?:\.[0-9][0-9A-Za-z_]*)?")


def tokenize(src: str) -> list[Tok]:
    toks: list[Tok] = []
    i, n, line = 0, len(src), 1
    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
            continue
        if c.isspace():
            i += 1
            continue
        # Comments (block comments nest in Rust).
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            line += src.count("\n", i, j)
            i = j
            continue
        # Raw strings: r"..", r#".."#, br#".."#.
        m = re.match(r'b?r(#*)"', src[i : i + 260])
        if m:
            hashes = m.group(1)
            end = src.find('"' + hashes, i + m.end())
            end = n if end < 0 else end + 1 + len(hashes)
            toks.append(Tok(STR, src[i + m.end() : max(i + m.end(), end - 1 - len(hashes))], line))
            line += src.count("\n", i, end)
            i = end
            continue
        # Strings and byte strings.
        if c == '"' or (c == "b" and src.startswith('b"', i)):
            j = i + (2 if c == "b" else 1)
            start = j
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            toks.append(Tok(STR, src[start:j], line))
            line += src.count("\n", i, j)
            i = j + 1
            continue
        # Char and byte literals vs lifetimes.
        if c == "'" or (c == "b" and src.startswith("b'", i)):
            j = i + (2 if c == "b" else 1)
            m = re.match(r"(?:\\(?:x[0-9A-Fa-f]{2}|u\{[0-9A-Fa-f_]*\}|.)|[^\\'\n])'", src[j : j + 16])
            if m:
                toks.append(Tok(LIT, src[i : j + m.end()], line))
                i = j + m.end()
                continue
            if c == "'":  # a lifetime or label: skip the quote, the name follows
                m = _IDENT_RE.match(src, i + 1)
                i = m.end() if m else i + 1
                continue
        m = _IDENT_RE.match(src, i)
        if m:
            text = m.group(0)
            toks.append(Tok(IDENT, text[2:] if text.startswith("r#") else text, line))
            i = m.end()
            continue
        m = _NUM_RE.match(src, i)
        if m:
            toks.append(Tok(LIT, m.group(0), line))
            i = m.end()
            continue
        if src.startswith("::", i):
            toks.append(Tok(PUNCT, "::", line))
            i += 2
            continue
        toks.append(Tok(PUNCT, c, line))
        i += 1
    return toks


# ---------------------------------------------------------------------------
# Item-level scanning helpers
# ---------------------------------------------------------------------------

OPEN = {"{": "}", "(": ")", "[": "]"}


def matching(toks: list[Tok], i: int) -> int:
    """Index of the bracket closing the one at toks[i] (or len(toks))."""
    opener = toks[i].text
    closer = OPEN[opener]
    depth = 0
    for j in range(i, len(toks)):
        t = toks[j]
        if t.kind != PUNCT:
            continue
        if t.text == opener:
            depth += 1
        elif t.text == closer:
            depth -= 1
            if depth == 0:
                return j
    return len(toks)


def attribute_end(toks: list[Tok], i: int) -> int | None:
    """If toks[i] starts `#[...]` or `#![...]`, the index after it."""
    if not (toks[i].kind == PUNCT and toks[i].text == "#"):
        return None
    j = i + 1
    if j < len(toks) and toks[j].text == "!":
        j += 1
    if j < len(toks) and toks[j].text == "[":
        return matching(toks, j) + 1
    return None


def is_cfg_test(attr: list[Tok]) -> bool:
    """`#[cfg(test)]`, or `cfg(all(test, ...))`; not `cfg(not(test))`."""
    words = [t.text for t in attr if t.kind == IDENT]
    body = [t.text for t in attr if t.text not in ("#", "!", "[", "]")]
    if not words or words[0] != "cfg":
        return False
    if body[:4] == ["cfg", "(", "test", ")"]:
        return True
    return body[:6] == ["cfg", "(", "all", "(", "test", ","] or body[:6] == ["cfg", "(", "all", "(", "test", ")"]


def path_attribute(attr: list[Tok]) -> str | None:
    texts = [t.text for t in attr]
    for k, t in enumerate(attr):
        if t.kind == IDENT and t.text == "path" and k + 2 < len(attr) and texts[k + 1] == "=" and attr[k + 2].kind == STR:
            return attr[k + 2].text
    return None


def item_end(toks: list[Tok], i: int) -> int:
    """Index after the item starting at toks[i]: through the first `;` at
    bracket depth 0, or through the `{...}` block opened at depth 0."""
    j = i
    while j < len(toks):
        t = toks[j]
        if t.kind == PUNCT:
            if t.text == ";":
                return j + 1
            if t.text == "{":
                return matching(toks, j) + 1
            if t.text in ("(", "["):
                j = matching(toks, j) + 1
                continue
        j += 1
    return j


VIS_WORDS = {"pub"}


def skip_visibility(toks: list[Tok], i: int) -> int:
    if i < len(toks) and toks[i].kind == IDENT and toks[i].text == "pub":
        i += 1
        if i < len(toks) and toks[i].text == "(":
            i = matching(toks, i) + 1
    return i


# ---------------------------------------------------------------------------
# Parsing a file: declarations, use trees, code paths
# ---------------------------------------------------------------------------


@dataclass
class ModDecl:
    name: str
    inline_path: tuple[str, ...]  # inline modules the declaration sits in
    path_attr: str | None


@dataclass
class RawRef:
    """A path as written, with where it was written."""

    segments: list[str]
    inline_path: tuple[str, ...]
    line: int
    from_use: bool


@dataclass
class Alias:
    name: str
    segments: list[str]
    inline_path: tuple[str, ...]


@dataclass
class ParsedFile:
    mods: list[ModDecl] = field(default_factory=list)
    inline_mods: set[tuple[str, ...]] = field(default_factory=set)
    refs: list[RawRef] = field(default_factory=list)
    aliases: list[Alias] = field(default_factory=list)
    test_only: bool = False


PATH_STARTS = {"crate", "super", "self"}


def parse_use_tree(toks: list[Tok], i: int, prefix: list[str], out: list[tuple[list[str], str | None]]) -> int:
    """Parses one use tree at toks[i]; appends (path, bound_name) pairs.
    A glob gets bound_name None; `self` in a group names the prefix."""
    segs = list(prefix)
    if i < len(toks) and toks[i].text == "::":  # leading `::`
        i += 1
    while i < len(toks):
        t = toks[i]
        if t.text == "{":
            end = matching(toks, i)
            j = i + 1
            while j < end:
                j = parse_use_tree(toks, j, segs, out)
                if j < end and toks[j].text == ",":
                    j += 1
                elif j < end:  # something unexpected: skip to the next comma
                    while j < end and toks[j].text != ",":
                        j += 1
                    j += 1
            return end + 1
        if t.text == "*":
            out.append((segs, None))
            return i + 1
        if t.kind != IDENT:
            break
        name = t.text
        i += 1
        if i < len(toks) and toks[i].text == "::":
            segs = segs + [name]
            i += 1
            continue
        if name == "self":
            bound = segs[-1] if segs and segs[-1] not in PATH_STARTS else None
            path = segs
        else:
            bound = name
            path = segs + [name]
        if i + 1 < len(toks) and toks[i].kind == IDENT and toks[i].text == "as":
            bound = toks[i + 1].text
            i += 2
        out.append((path, bound))
        return i
    if segs != list(prefix):
        out.append((segs, segs[-1]))
    return i


def parse_file(text: str) -> ParsedFile:
    toks = tokenize(text)
    pf = ParsedFile()
    inline_stack: list[tuple[str, int]] = []  # (name, index of closing brace)
    i = 0
    n = len(toks)
    pending_attrs: list[list[Tok]] = []
    seen_item = False

    def current_inline() -> tuple[str, ...]:
        return tuple(name for name, _ in inline_stack)

    while i < n:
        while inline_stack and i >= inline_stack[-1][1]:
            inline_stack.pop()
        t = toks[i]

        end = attribute_end(toks, i)
        if end is not None:
            attr = toks[i:end]
            inner = len(attr) > 1 and attr[1].text == "!"
            if inner and is_cfg_test(attr) and not inline_stack and not seen_item:
                pf.test_only = True
                return pf
            if not inner:
                pending_attrs.append(attr)
            i = end
            continue

        seen_item = True
        attrs, pending_attrs = pending_attrs, []
        item_start = i
        if any(is_cfg_test(a) for a in attrs):
            i = item_end(toks, item_start)
            continue

        j = skip_visibility(toks, i)
        if j < n and toks[j].kind == IDENT and toks[j].text == "mod" and j + 1 < n and toks[j + 1].kind == IDENT:
            name = toks[j + 1].text
            k = j + 2
            if k < n and toks[k].text == ";":
                if not (name == "tests" or name.endswith("tests")):
                    pf.mods.append(ModDecl(name, current_inline(), next((p for a in attrs if (p := path_attribute(a))), None)))
                i = k + 1
                continue
            if k < n and toks[k].text == "{":
                close = matching(toks, k)
                if name == "tests":
                    i = close + 1
                    continue
                inline_stack.append((name, close))
                pf.inline_mods.add(current_inline())
                i = k + 1
                continue

        if j < n and toks[j].kind == IDENT and toks[j].text == "use":
            pairs: list[tuple[list[str], str | None]] = []
            k = parse_use_tree(toks, j + 1, [], pairs)
            line = toks[j].line
            for segs, bound in pairs:
                if segs:
                    pf.refs.append(RawRef(segs, current_inline(), line, True))
                    if bound and bound != "_":
                        pf.aliases.append(Alias(bound, segs, current_inline()))
            while k < n and toks[k].text != ";":
                k += 1
            i = k + 1
            continue

        # A path in code: `crate::`, `super::`, `self::`, or an identifier
        # followed by `::` (resolved later if it names a module or an alias).
        if t.kind == IDENT and i + 1 < n and toks[i + 1].text == "::":
            prev = toks[i - 1] if i else None
            # Not the middle of a path, not `$crate`, not `x.method::<T>`,
            # not the path of a `pub(in crate::a)` visibility.
            prev_is_joiner = prev is not None and (
                prev.text in ("::", "$", ".")
                or (prev.text == "in" and i >= 3 and toks[i - 2].text == "(" and toks[i - 3].text == "pub")
            )
            if not prev_is_joiner and t.text not in ("Self",):
                segs = [t.text]
                k = i + 1
                while k + 1 < n and toks[k].text == "::" and toks[k + 1].kind == IDENT:
                    segs.append(toks[k + 1].text)
                    k += 2
                pf.refs.append(RawRef(segs, current_inline(), t.line, False))
                i = k
                continue
        i += 1
    return pf


# ---------------------------------------------------------------------------
# The module tree
# ---------------------------------------------------------------------------


@dataclass
class Module:
    path: tuple[str, ...]  # global module path: ("server", "direct"), ("main", "service")
    file: Path
    crate_root: tuple[str, ...]  # () for the library, ("main",) for the binary
    parsed: ParsedFile


def module_dir(file: Path) -> Path:
    """Where `mod x;` in this file looks for x.rs / x/mod.rs."""
    if file.name in ("mod.rs", "lib.rs", "main.rs"):
        return file.parent
    return file.parent / file.stem


def build_tree(src: Path) -> tuple[dict[tuple[str, ...], Module], list[str]]:
    modules: dict[tuple[str, ...], Module] = {}
    notes: list[str] = []

    def visit(file: Path, path: tuple[str, ...], crate_root: tuple[str, ...]) -> None:
        if file.name.endswith("tests.rs"):
            return
        parsed = parse_file(file.read_text(encoding="utf-8"))
        if parsed.test_only:
            return
        modules[path] = Module(path, file, crate_root, parsed)
        for decl in parsed.mods:
            base = module_dir(file).joinpath(*decl.inline_path)
            if decl.path_attr:
                candidates = [file.parent / decl.path_attr]
            else:
                candidates = [base / f"{decl.name}.rs", base / decl.name / "mod.rs"]
            child = next((c for c in candidates if c.is_file()), None)
            if child is None:
                notes.append(f"{file.name}: `mod {decl.name};` has no file ({', '.join(map(str, candidates))})")
                continue
            visit(child, path + decl.inline_path + (decl.name,), crate_root)

    if (src / "lib.rs").is_file():
        visit(src / "lib.rs", (), ())
    if (src / "main.rs").is_file():
        visit(src / "main.rs", ("main",), ("main",))
    seen = {m.file.resolve() for m in modules.values()}
    for f in sorted(src.rglob("*.rs")):
        if f.resolve() not in seen and not f.name.endswith("tests.rs"):
            shown = f.relative_to(src.parent) if f.is_relative_to(src.parent) else f
            notes.append(f"{shown}: not reached from lib.rs or main.rs by `mod` declarations (left out)")
    return modules, notes


# ---------------------------------------------------------------------------
# Resolution and edges
# ---------------------------------------------------------------------------


def resolve(
    modules: dict[tuple[str, ...], Module],
    inline: dict[tuple[str, ...], tuple[str, ...]],
    mod: Module,
    ref: RawRef,
    aliases: dict[tuple[tuple[str, ...], str], Alias],
) -> tuple[str, ...] | None:
    """Absolute module path of the file the reference goes to, or None
    for a path outside the crate (std, dependencies) or not a module."""
    here = mod.path + ref.inline_path
    segs = list(ref.segments)
    first = segs[0]
    if first == "crate":
        base, rest = mod.crate_root, segs[1:]
    elif first == "portshare":
        base, rest = (), segs[1:]
    elif first in ("super", "self"):
        base = here
        k = 0
        while k < len(segs) and segs[k] in ("super", "self"):
            if segs[k] == "super":
                if len(base) <= len(mod.crate_root):
                    return None
                base = base[:-1]
            k += 1
        rest = segs[k:]
    elif (here + (first,)) in modules or (here + (first,)) in inline:
        base, rest = here, segs
    else:
        # A name imported by `use` in this (inline) module or an enclosing one.
        alias = None
        for depth in range(len(ref.inline_path), -1, -1):
            alias = aliases.get((ref.inline_path[:depth], first))
            if alias is not None:
                break
        if alias is None or ref.from_use:
            return None
        full = alias.segments + segs[1:]
        return resolve(modules, inline, mod, RawRef(full, alias.inline_path, ref.line, True), {})
    full = base + tuple(rest)
    for k in range(len(full), -1, -1):
        p = full[:k]
        if p in modules:
            return p
        if p in inline:
            return inline[p]
    return None


def collect_edges(modules: dict[tuple[str, ...], Module]) -> dict[tuple[tuple[str, ...], tuple[str, ...]], list[int]]:
    # Inline module paths -> the file module they live in.
    inline: dict[tuple[str, ...], tuple[str, ...]] = {}
    for m in modules.values():
        for ip in m.parsed.inline_mods:
            for k in range(1, len(ip) + 1):
                inline.setdefault(m.path + ip[:k], m.path)
    edges: dict[tuple[tuple[str, ...], tuple[str, ...]], list[int]] = defaultdict(list)
    for m in modules.values():
        # Aliases that name modules (only those can start a path to a module).
        aliases: dict[tuple[tuple[str, ...], str], Alias] = {}
        for a in m.parsed.aliases:
            aliases[(a.inline_path, a.name)] = a
        for ref in m.parsed.refs:
            target = resolve(modules, inline, m, ref, aliases)
            if target is None or target == m.path:
                continue
            edges[(m.path, target)].append(ref.line)
    return edges


# ---------------------------------------------------------------------------
# Levels and strongly connected components
# ---------------------------------------------------------------------------


def name(path: tuple[str, ...]) -> str:
    return "::".join(path) if path else "crate"


def tarjan(nodes: list[str], adj: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    sccs: list[list[str]] = []
    counter = 0

    def strongconnect(v: str) -> None:
        nonlocal counter
        # Iterative form of Tarjan's algorithm.
        work = [(v, iter(sorted(adj.get(v, ()))))]
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(adj.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                sccs.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            strongconnect(v)
    return sccs


@dataclass
class Level:
    parent: tuple[str, ...]
    edges: dict[tuple[str, str], set[tuple[tuple[str, ...], tuple[str, ...]]]] = field(default_factory=lambda: defaultdict(set))


def analyse(edges):
    levels: dict[tuple[str, ...], Level] = {}
    upward: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    downward: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for (a, b) in sorted(edges):
        if b == a[: len(b)]:
            upward.append((a, b))
            continue
        if a == b[: len(a)]:
            downward.append((a, b))
            continue
        k = 0
        while a[k] == b[k]:
            k += 1
        parent = a[:k]
        lvl = levels.setdefault(parent, Level(parent))
        lvl.edges[(a[k], b[k])].add((a, b))
    results = []
    for parent in sorted(levels, key=lambda p: (len(p), p)):
        lvl = levels[parent]
        adj: dict[str, set[str]] = defaultdict(set)
        nodes: set[str] = set()
        for (x, y) in lvl.edges:
            adj[x].add(y)
            nodes.update((x, y))
        sccs = [c for c in tarjan(sorted(nodes), adj) if len(c) > 1]
        results.append((lvl, adj, sccs))
    return results, upward, downward


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def rel(modules, path) -> str:
    return str(modules[path].file)


def level_title(parent: tuple[str, ...]) -> str:
    return "top level (children of the crate roots)" if not parent else f"inside {name(parent)} (siblings)"


def report(modules, edges, results, upward, downward, notes, verbose: bool) -> int:
    out = []
    any_cycle = False
    out.append(f"{len(modules)} modules, {len(edges)} module -> module edges")
    for note in notes:
        out.append(f"note: {note}")
    for lvl, adj, sccs in results:
        out.append("")
        out.append(f"== {level_title(lvl.parent)}: {sum(len(v) for v in adj.values())} edges ==")
        for x in sorted(adj):
            out.append(f"  {x} -> {', '.join(sorted(adj[x]))}")
        for comp in sccs:
            any_cycle = True
            members = set(comp)
            out.append("")
            out.append(f"  CYCLE ({len(comp)} modules{'' if not lvl.parent else ' in ' + name(lvl.parent)}): {', '.join(comp)}")
            for (x, y), raw in sorted(lvl.edges.items()):
                if x in members and y in members:
                    for (a, b) in sorted(raw):
                        lines = edges[(a, b)]
                        out.append(f"    {x} -> {y}: {rel(modules, a)}:{','.join(map(str, sorted(set(lines))))} -> {rel(modules, b)}")
    out.append("")
    out.append(f"== edges to an ancestor (allowed, not cycles): {len(upward)} ==")
    for (a, b) in upward:
        lines = edges[(a, b)]
        out.append(f"  {name(a)} -> {name(b)}  ({rel(modules, a)}:{','.join(map(str, sorted(set(lines))))})")
    if verbose:
        out.append("")
        out.append(f"== edges to a descendant (a folder module using its children): {len(downward)} ==")
        for (a, b) in downward:
            out.append(f"  {name(a)} -> {name(b)}")
    out.append("")
    n_cycles = sum(len(s) for _, _, s in results)
    out.append(f"result: {n_cycles} cycle(s)" + (" - FAIL" if any_cycle else " - ok"))
    print("\n".join(out))
    return 1 if any_cycle else 0


def dot(modules, edges, results) -> None:
    cyc: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
    for lvl, _adj, sccs in results:
        for comp in sccs:
            members = set(comp)
            for (x, y), raw in lvl.edges.items():
                if x in members and y in members:
                    cyc.update(raw)
    print("digraph portshare_modules {")
    print('  rankdir=LR; node [shape=box, fontname="monospace", fontsize=10];')
    by_parent: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
    for p in modules:
        if p:
            by_parent[p[:-1]].append(p)

    def emit(parent: tuple[str, ...], indent: str) -> None:
        for p in sorted(by_parent.get(parent, [])):
            if by_parent.get(p):
                print(f'{indent}subgraph "cluster_{name(p)}" {{ label="{name(p)}";')
                print(f'{indent}  "{name(p)}";')
                emit(p, indent + "  ")
                print(f"{indent}}}")
            else:
                print(f'{indent}"{name(p)}";')

    print('  "crate";')
    emit((), "  ")
    for (a, b) in sorted(edges):
        style = ' [color=red, penwidth=2]' if (a, b) in cyc else ""
        if b == a[: len(b)]:
            style = ' [style=dashed, color=gray]'
        print(f'  "{name(a)}" -> "{name(b)}"{style};')
    print("}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dot", action="store_true", help="print the graph for Graphviz")
    ap.add_argument("--src", default=None, help="source folder (default: src/ beside scripts/)")
    ap.add_argument("-v", "--verbose", action="store_true", help="also list edges to descendants")
    args = ap.parse_args()
    src = Path(args.src) if args.src else Path(__file__).resolve().parent.parent / "src"
    if not (src / "lib.rs").is_file() and not (src / "main.rs").is_file():
        print(f"module-graph: no lib.rs or main.rs in {src}", file=sys.stderr)
        return 2
    modules, notes = build_tree(src)
    # Show paths relative to the repository.
    base = src.resolve().parent
    for m in modules.values():
        try:
            m.file = m.file.resolve().relative_to(base)
        except ValueError:
            pass
    edges = collect_edges(modules)
    results, upward, downward = analyse(edges)
    if args.dot:
        dot(modules, edges, results)
        return 0
    return report(modules, edges, results, upward, downward, notes, args.verbose)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `| head`
        sys.exit(0)
