#!/usr/bin/env python3
"""Transcribes the protobuf/json struct tags of Kubernetes' Go types.go files into
kinet-protobuf's schema tables (src/schema/<pkg>.rs).

Usage: gen_schema.py SRC_DIR OUT_DIR, where SRC_DIR holds
  meta/v1/types.go (k8s.io/apimachinery/pkg/apis/meta/v1) and
  core/v1, apps/v1, networking/v1, discovery/v1, coordination/v1 types.go (k8s.io/api),
taken from the v0.32.x tags that kubectl v1.32 is built with.
Field order in the tables is the Go struct order, which is the order Go's JSON encoder prints.
"""
import os
import re
import sys

PKGS = {  # Go package alias -> (dir, rust module, static prefix)
    "metav1": ("meta/v1", "meta", "META"),
    "v1": ("core/v1", "core", "CORE"),
    "apps": ("apps/v1", "apps", "APPS"),
    "networking": ("networking/v1", "networking", "NET"),
    "discovery": ("discovery/v1", "discovery", "DISC"),
    "coordination": ("coordination/v1", "coordination", "COORD"),
}
# Go import alias -> our package key, as used in each types.go
ALIASES = {"metav1": "metav1", "v1": "v1", "corev1": "v1"}
ROOTS = [
    ("v1", "Pod"), ("v1", "Service"), ("v1", "Namespace"), ("v1", "Node"), ("v1", "Endpoints"),
    ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "ServiceAccount"), ("v1", "Event"),
    ("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "DaemonSet"), ("apps", "StatefulSet"),
    ("networking", "Ingress"), ("networking", "IngressClass"), ("networking", "NetworkPolicy"),
    ("discovery", "EndpointSlice"), ("coordination", "Lease"),
]
SPECIAL = {  # Go type -> Ty variant for types with hand-written JSON forms
    "metav1.Time": "Time", "metav1.MicroTime": "MicroTime", "intstr.IntOrString": "IntOrString",
    "resource.Quantity": "Quantity", "metav1.Duration": "Duration", "runtime.RawExtension": "RawJson", "metav1.FieldsV1": "RawJson",
    "types.UID": "Str",
}
SCALARS = {"string": "Str", "bool": "Bool", "int32": "I32", "int64": "I64", "int": "I64", "float64": "F64",
           "uint32": "I32", "uint64": "I64"}

def parse(pkg):
    text = open(os.path.join(SRC, PKGS[pkg][0], "types.go")).read()
    structs, named = {}, {}
    for m in re.finditer(r"^type (\w+) struct \{\n(.*?)^\}", text, re.S | re.M):
        fields = []
        for line in m.group(2).split("\n"):
            line = line.strip()
            if line.startswith("//") or "protobuf:" not in line:
                continue
            fm = re.match(r"^(?:(\w+)\s+)?([\w.*\[\]]+)\s+`(.*)`", line)
            if not fm:
                raise SystemExit(f"cannot parse {pkg}.{m.group(1)}: {line}")
            gname, gtype, tags = fm.groups()
            jt = re.search(r'json:"([^"]*)"', tags).group(1)
            pt = re.search(r'protobuf:"([^"]*)"', tags).group(1).split(",")
            fields.append((gname or gtype, gtype, jt, pt))
        structs[m.group(1)] = fields
    for m in re.finditer(r"^type (\w+) ([\w.\[\]]+)\s*$", text, re.M):
        named[m.group(1)] = m.group(2)
    return structs, named

def qualify(pkg, gotype):
    if "." in gotype:
        alias, name = gotype.split(".", 1)
        q = f"{alias}.{name}"
        if q in SPECIAL:
            return ("special", SPECIAL[q])
        return (ALIASES.get(alias, alias), name)
    if f"{pkg}.{gotype}" in SPECIAL:
        return ("special", SPECIAL[f"{pkg}.{gotype}"])
    return (pkg, gotype)

def resolve(pkg, gotype):
    """-> (shape, ty, is_ptr) where ty is ('scalar', X) | ('special', X) | ('msg', (pkg, name))"""
    ptr = gotype.startswith("*")
    t = gotype.lstrip("*")
    shape = "One"
    if t == "[]byte":
        return shape, ("scalar", "Bytes"), ptr
    if t.startswith("[]"):
        shape, t = "List", t[2:].lstrip("*")
    if t.startswith("map["):
        shape = "Map"
        t = re.match(r"map\[[\w.]+\](.*)", t).group(1)
        if t == "[]byte":
            return shape, ("scalar", "Bytes"), ptr
    while True:
        if t in SCALARS:
            return shape, ("scalar", SCALARS[t]), ptr
        q = qualify(pkg, t)
        if q[0] == "special":
            return shape, q, ptr
        p2, name = q
        structs, named = DATA[p2]
        if name in structs:
            return shape, ("msg", (p2, name)), ptr
        if name not in named:
            raise SystemExit(f"unknown type {pkg}:{gotype}")
        base = named[name]
        if base.startswith("map[") or base.startswith("[]"):
            s2, ty, _ = resolve(p2, base)
            return s2, ty, ptr
        pkg, t = p2, base

def static_name(pkg, name):
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])|(?<=[A-Z])([A-Z])(?=[a-z])", r"_\1\2", name).upper()
    return f"{PKGS[pkg][2]}_{snake}"

SRC, OUT = sys.argv[1], sys.argv[2]
DATA = {p: parse(p) for p in PKGS}
seen, order, queue = set(), [], list(ROOTS)
rows = {}
while queue:
    key = queue.pop(0)
    if key in seen:
        continue
    seen.add(key)
    order.append(key)
    pkg, name = key
    out = []
    for gname, gtype, jt, pt in DATA[pkg][0][name]:
        jparts = jt.split(",")
        jname, omit = jparts[0], "omitempty" in jparts[1:]
        num = int(pt[1])
        shape, ty, ptr = resolve(pkg, gtype)
        if jt == ",inline" or (jname == "" and "inline" in jparts):
            presence = "Inline"
        elif ptr:
            presence = "Ptr"
        elif omit:
            presence = "Omit"
        else:
            presence = "Always"
        if ty[0] == "msg":
            queue.append(ty[1])
            tyrs = f"Ty::Msg(&{static_name(*ty[1])})"
        else:
            tyrs = f"Ty::{ty[1]}"
        out.append(f'    f({num}, "{jname}", {tyrs}, {shape}, {presence}),')
    rows[key] = out

by_mod = {}
for key in order:
    by_mod.setdefault(key[0], []).append(key)
for pkg, keys in by_mod.items():
    mod = PKGS[pkg][1]
    lines = [f"//! Generated by tools/gen_schema.py from {PKGS[pkg][0]}/types.go (Kubernetes v0.32.9); do not edit.",
             "//! One row per Go struct field, in struct order: (proto number, JSON name, type, shape, presence).",
             "", "use super::*;", ""]
    for key in sorted(keys, key=lambda k: k[1]):
        lines.append(f"pub static {static_name(*key)}: Message = Message {{")
        lines.append(f'    name: "{key[1]}",')
        lines.append("    fields: &[")
        lines.extend("    " + r for r in rows[key])
        lines.append("    ],")
        lines.append("};")
        lines.append("")
    open(os.path.join(OUT, f"{mod}.rs"), "w").write("\n".join(lines).rstrip() + "\n")
    print(mod, len(keys), "messages", sum(len(rows[k]) for k in keys), "fields")
