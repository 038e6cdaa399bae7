"""Assemble cnnviz/static/cnnviz-live-simd.wat and embed it in cnnviz/static/cnnviz-live.js.

The live kernel editor's WebAssembly SIMD module travels inside cnnviz-live.js as base64 (the line
``var SIMD_WASM = "...";``), so the page needs no network and no separate file. Its source is the
.wat text beside it; this tool is a small assembler for the part of the WebAssembly text format that
file uses (one module; an imported memory; functions with named params and locals and an inline export;
folded or flat instructions: block, loop, br, br_if, local.*, i32 arithmetic and comparisons, f32
loads and stores, v128.load/store, f32x4 splat/add/sub/mul; i32.const, f32.const). It needs nothing but
Python, so the tests can check offline that the embedded bytes are what it makes of the .wat.

Usage::

    .venv/bin/python tools/build_live_wasm.py           # rewrite SIMD_WASM in cnnviz-live.js (if it changed)
    .venv/bin/python tools/build_live_wasm.py --check   # exit 1 if the embedded module is not the .wat's
    .venv/bin/python tools/build_live_wasm.py --out m.wasm   # also write the module's bytes to a file

Cross-check against the reference assembler (wabt; needs the npm registry once)::

    .venv/bin/python tools/build_live_wasm.py --out /tmp/a.wasm
    npx -y -p wabt@1.0.36 wat2wasm cnnviz/static/cnnviz-live-simd.wat -o /tmp/b.wasm && cmp /tmp/a.wasm /tmp/b.wasm
"""
import argparse
import base64
import re
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WAT = ROOT / "cnnviz" / "static" / "cnnviz-live-simd.wat"
JS = ROOT / "cnnviz" / "static" / "cnnviz-live.js"
EMBED_RE = re.compile(r'^(\s*var SIMD_WASM = ")([A-Za-z0-9+/=]*)(";)', re.MULTILINE)

VALTYPES = {"i32": 0x7F, "i64": 0x7E, "f32": 0x7D, "f64": 0x7C, "v128": 0x7B}

# name: (opcode bytes, immediate kind, natural alignment as log2 for memory access)
_PLAIN = {
    "unreachable": 0x00, "nop": 0x01, "return": 0x0F, "drop": 0x1A, "select": 0x1B,
    "i32.eqz": 0x45, "i32.eq": 0x46, "i32.ne": 0x47, "i32.lt_s": 0x48, "i32.lt_u": 0x49, "i32.gt_s": 0x4A,
    "i32.gt_u": 0x4B, "i32.le_s": 0x4C, "i32.le_u": 0x4D, "i32.ge_s": 0x4E, "i32.ge_u": 0x4F,
    "i32.add": 0x6A, "i32.sub": 0x6B, "i32.mul": 0x6C, "i32.and": 0x71, "i32.or": 0x72, "i32.xor": 0x73,
    "i32.shl": 0x74, "i32.shr_s": 0x75, "i32.shr_u": 0x76,
    "f32.add": 0x92, "f32.sub": 0x93, "f32.mul": 0x94,
}
_SIMD = {"f32x4.splat": 0x13, "f32x4.add": 0xE4, "f32x4.sub": 0xE5, "f32x4.mul": 0xE6}
_MEMORY = {"i32.load": (b"\x28", 2), "f32.load": (b"\x2a", 2), "i32.store": (b"\x36", 2),
           "f32.store": (b"\x38", 2), "v128.load": (b"\xfd\x00", 4), "v128.store": (b"\xfd\x0b", 4)}
_LOCAL = {"local.get": 0x20, "local.set": 0x21, "local.tee": 0x22}
_BRANCH = {"br": 0x0C, "br_if": 0x0D}
_BLOCK = {"block": 0x02, "loop": 0x03}


class WatError(ValueError):
    pass


def uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def sleb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        done = (n == 0 and not byte & 0x40) or (n == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


def _name(s: str) -> bytes:
    raw = s.encode("utf-8")
    return uleb(len(raw)) + raw


def _vec(items) -> bytes:
    items = list(items)
    return uleb(len(items)) + b"".join(items)


# ----------------------------------------------------------------------------- the text: tokens and S-expressions

_TOKEN = re.compile(r'\s+|;;[^\n]*|\(;.*?;\)|(\()|(\))|("(?:[^"\\]|\\.)*")|([^\s()";]+)', re.DOTALL)


def tokens(text: str):
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise WatError(f"cannot read the text at character {pos}: {text[pos:pos + 20]!r}")
        pos = m.end()
        if m.group(1):
            yield "("
        elif m.group(2):
            yield ")"
        elif m.group(3):
            yield ("str", m.group(3)[1:-1])
        elif m.group(4):
            yield m.group(4)


def parse(text: str):
    """The text as nested lists; strings as ("str", text), everything else as str."""
    stack, top = [[]], None
    for tok in tokens(text):
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) == 1:
                raise WatError("a ')' closes nothing")
            top = stack.pop()
            stack[-1].append(top)
        else:
            stack[-1].append(tok)
    if len(stack) != 1:
        raise WatError("an '(' is never closed")
    return stack[0]


# ----------------------------------------------------------------------------- functions

class _Func:
    def __init__(self, form):
        self.name, self.export, self.params, self.results, self.locals = "(func)", None, [], [], []
        self.index = {}
        rest = list(form[1:])
        if rest and isinstance(rest[0], str) and rest[0].startswith("$"):
            self.name = rest.pop(0)
        while rest and isinstance(rest[0], list) and rest[0] and rest[0][0] in ("export", "param", "result", "local"):
            head, *args = rest.pop(0)
            if head == "export":
                self.export = args[0][1]
            elif head == "result":
                self.results += [VALTYPES[t] for t in args]
            else:
                target = self.params if head == "param" else self.locals
                if args and args[0].startswith("$"):
                    self._declare(args[0], target)
                    target.append(VALTYPES[args[1]])
                else:
                    for t in args:
                        self._declare(None, target)
                        target.append(VALTYPES[t])
        self.body = rest

    def _declare(self, name, target):
        if name is not None:
            if name in self.index:
                raise WatError(f"{self.name}: {name} declared twice")
            self.index[name] = len(self.params) + len(self.locals)

    def local(self, ref):
        if ref.startswith("$"):
            if ref not in self.index:
                raise WatError(f"{self.name}: no local {ref}")
            return self.index[ref]
        return int(ref)

    def code(self) -> bytes:
        runs = []
        for t in self.locals:                     # consecutive locals of one type as one (count, type)
            if runs and runs[-1][1] == t:
                runs[-1][0] += 1
            else:
                runs.append([1, t])
        out = bytearray(_vec(uleb(c) + bytes([t]) for c, t in runs))
        labels = []
        items = list(self.body)
        self._emit_seq(items, out, labels)
        out.append(0x0B)
        return uleb(len(out)) + bytes(out)

    # a sequence of instructions, flat or folded
    def _emit_seq(self, items, out, labels):
        i = 0
        while i < len(items):
            item = items[i]
            i += 1
            if isinstance(item, list):
                self._emit_folded(item, out, labels)
                continue
            if item in _BLOCK:                       # flat: block $l (result t)? ... end
                label = None
                if i < len(items) and isinstance(items[i], str) and items[i].startswith("$"):
                    label = items[i]
                    i += 1
                bt = 0x40
                if i < len(items) and isinstance(items[i], list) and items[i][:1] == ["result"]:
                    bt = VALTYPES[items[i][1]]
                    i += 1
                out += bytes([_BLOCK[item], bt])
                labels.append(label)
                continue
            if item == "end":
                if not labels:
                    raise WatError(f"{self.name}: 'end' closes nothing")
                labels.pop()
                out.append(0x0B)
                continue
            n = self._immediates(item)
            self._emit_op(item, items[i:i + n], out, labels)
            i += n

    def _immediates(self, op):
        if op in _LOCAL or op in _BRANCH or op in ("i32.const", "f32.const"):
            return 1
        return 0

    def _emit_folded(self, form, out, labels):
        op = form[0]
        if op in _BLOCK:
            rest = list(form[1:])
            label = rest.pop(0) if rest and isinstance(rest[0], str) and rest[0].startswith("$") else None
            bt = 0x40
            if rest and isinstance(rest[0], list) and rest[0][:1] == ["result"]:
                bt = VALTYPES[rest.pop(0)[1]]
            out += bytes([_BLOCK[op], bt])
            labels.append(label)
            self._emit_seq(rest, out, labels)
            labels.pop()
            out.append(0x0B)
            return
        args = list(form[1:])
        n = self._immediates(op)
        imms, children = args[:n], args[n:]
        if op in _MEMORY:                              # memarg: offset=N align=N before the operands
            while children and isinstance(children[0], str) and children[0].startswith(("offset=", "align=")):
                imms.append(children.pop(0))
        for child in children:
            if not isinstance(child, list):
                raise WatError(f"{self.name}: in ({op} ...), {child!r} is not an instruction")
            self._emit_folded(child, out, labels)
        self._emit_op(op, imms, out, labels)

    def _emit_op(self, op, imms, out, labels):
        if op in _PLAIN:
            out.append(_PLAIN[op])
        elif op in _SIMD:
            out += b"\xfd" + uleb(_SIMD[op])
        elif op in _LOCAL:
            out.append(_LOCAL[op])
            out += uleb(self.local(imms[0]))
        elif op in _BRANCH:
            target = imms[0]
            if target.startswith("$"):
                if target not in labels:
                    raise WatError(f"{self.name}: no enclosing block or loop {target}")
                depth = len(labels) - 1 - max(i for i, name in enumerate(labels) if name == target)
            else:
                depth = int(target)
            out.append(_BRANCH[op])
            out += uleb(depth)
        elif op == "i32.const":
            value = int(imms[0].replace("_", ""), 0)
            if not -2**31 <= value < 2**32:
                raise WatError(f"{self.name}: i32.const {imms[0]} is out of range")
            out.append(0x41)
            out += sleb(value - 2**32 if value >= 2**31 else value)
        elif op == "f32.const":
            out.append(0x43)
            out += struct.pack("<f", float(imms[0]))
        elif op in _MEMORY:
            code, natural = _MEMORY[op]
            offset, align = 0, natural
            for imm in imms:
                key, value = imm.split("=")
                if key == "offset":
                    offset = int(value, 0)
                else:
                    align = int(value, 0).bit_length() - 1
            out += code + uleb(align) + uleb(offset)
        else:
            raise WatError(f"{self.name}: this assembler does not know {op!r}")


# ----------------------------------------------------------------------------- the module

def assemble(text: str) -> bytes:
    """The binary module of a .wat text (the subset described in this file's docstring)."""
    forms = parse(text)
    if len(forms) != 1 or not isinstance(forms[0], list) or forms[0][:1] != ["module"]:
        raise WatError("expected one (module ...)")
    imports, funcs = [], []
    for field in forms[0][1:]:
        head = field[0]
        if head == "import":
            module, name, desc = field[1][1], field[2][1], field[3]
            if desc[0] != "memory":
                raise WatError("only a memory can be imported")
            limits = [x for x in desc[1:] if not x.startswith("$")]
            lim = (b"\x00" + uleb(int(limits[0]))) if len(limits) == 1 else (
                b"\x01" + uleb(int(limits[0])) + uleb(int(limits[1])))
            imports.append(_name(module) + _name(name) + b"\x02" + lim)
        elif head == "func":
            funcs.append(_Func(field))
        else:
            raise WatError(f"this assembler does not know module fields of kind {head!r}")
    types, type_of = [], []
    for f in funcs:
        sig = b"\x60" + _vec(bytes([t]) for t in f.params) + _vec(bytes([t]) for t in f.results)
        if sig not in types:
            types.append(sig)
        type_of.append(types.index(sig))
    exports = [_name(f.export) + b"\x00" + uleb(i) for i, f in enumerate(funcs) if f.export]

    def section(code, payload):
        return bytes([code]) + uleb(len(payload)) + payload

    out = b"\x00asm" + struct.pack("<I", 1)
    out += section(1, _vec(types))
    if imports:
        out += section(2, _vec(imports))
    out += section(3, _vec(uleb(t) for t in type_of))
    if exports:
        out += section(7, _vec(exports))
    out += section(10, _vec(f.code() for f in funcs))
    return out


def module_bytes() -> bytes:
    return assemble(WAT.read_text(encoding="utf-8"))


def embedded(js_text: str) -> bytes:
    """The module embedded in cnnviz-live.js."""
    m = EMBED_RE.search(js_text)
    if not m:
        raise WatError(f'{JS.name} has no line `var SIMD_WASM = "...";`')
    return base64.b64decode(m.group(2))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the embedded module is not the .wat's")
    parser.add_argument("--out", type=Path, help="also write the module's bytes to this file")
    args = parser.parse_args(argv)
    wasm = module_bytes()
    if args.out:
        args.out.write_bytes(wasm)
    js_text = JS.read_text(encoding="utf-8")
    current = embedded(js_text)
    if args.check:
        if current != wasm:
            print(f"{JS.relative_to(ROOT)}: SIMD_WASM is not {WAT.relative_to(ROOT)} assembled: "
                  f"run tools/build_live_wasm.py", file=sys.stderr)
            return 1
        print(f"{JS.relative_to(ROOT)}: SIMD_WASM is {WAT.relative_to(ROOT)} ({len(wasm)} bytes)")
        return 0
    if current != wasm:
        encoded = base64.b64encode(wasm).decode("ascii")
        JS.write_text(EMBED_RE.sub(lambda m: m.group(1) + encoded + m.group(3), js_text, count=1), encoding="utf-8")
        print(f"rewrote SIMD_WASM in {JS.relative_to(ROOT)} ({len(wasm)} bytes)")
    else:
        print(f"SIMD_WASM in {JS.relative_to(ROOT)} is up to date ({len(wasm)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
