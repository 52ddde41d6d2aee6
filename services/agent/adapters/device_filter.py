"""cgroup v2 device fencing: the job group's device rules as a BPF program, loaded and attached here.

cgroup v1 has a ``devices`` controller that takes rules as text (``devices.allow``). cgroup v2 has none:
the kernel asks a ``BPF_PROG_TYPE_CGROUP_DEVICE`` program attached to the group (and to each of its
ancestors) on every open and mknod of a device node, and refuses unless all of them answer 1. This
module turns the same rules the v1 path writes (:func:`cgroups.device_rules`: ``"c 195:0 rwm"``,
``"c 1:* rwm"``, ``"b *:* rwm"``, ``"c *:* m"``) into such a program, as runc and systemd do, and
attaches it to the job's group before any process of the job is in it.

The program is straight-line code over the context ``struct bpf_cgroup_dev_ctx {u32 access_type; u32
major; u32 minor;}`` (``access_type``: device type in the low 16 bits, 1 block / 2 char; access in the
high 16, 1 mknod / 2 read / 4 write): one block per rule, each falling through to the next when the
device does not match or asks for more than the rule gives; a match returns 1 (allow), the end returns
0 (deny). Consecutive majors with the same minor and access are one range check, so the 150-odd
character majors a GPU host's rules list cost a dozen blocks. No C: the instructions are built here as
bytes (the eBPF encoding is a stable kernel ABI), and the ``bpf(2)`` system call is made through ctypes.

Attached with ``BPF_F_ALLOW_MULTI``: a program on an ancestor (systemd's, a container runtime's) still
runs as well, and a device must pass both. Removing the group detaches the program; nothing is pinned.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# bpf(2) commands, program and attach types, flags (include/uapi/linux/bpf.h).
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 1 << 1
SYS_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351}

DEV_BLOCK, DEV_CHAR = 1, 2  # BPF_DEVCG_DEV_*
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4  # BPF_DEVCG_ACC_*
ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
ALL_ACCESS = ACC_MKNOD | ACC_READ | ACC_WRITE

# The few eBPF opcodes the program uses (class | op | source).
LDX_W = 0x61  # dst = *(u32 *)(src + off)
AND64_K = 0x57  # dst &= imm
RSH64_K = 0x77  # dst >>= imm
MOV64_K = 0xB7  # dst = imm
MOV64_X = 0xBF  # dst = src
JNE_K = 0x55  # if dst != imm: pc += off
JGT_K = 0x25  # if dst > imm (unsigned)
JLT_K = 0xA5  # if dst < imm (unsigned)
EXIT = 0x95

# Registers: r1 the context on entry; r2 device type, r3 access, r4 major, r5 minor, r6 scratch.
TYPE, ACCESS, MAJOR, MINOR, SCRATCH = 2, 3, 4, 5, 6

Insn = tuple[int, int, int, int, int]  # (opcode, dst, src, off, imm)


@dataclass(frozen=True)
class Rule:
    """One allow rule, as v1's ``devices.allow`` reads it: type ``a`` (any), ``b`` or ``c``; major and
    minor (None: ``*``); the accesses it grants (a mask of ACC_*)."""

    kind: str
    major_low: int | None
    major_high: int | None
    minor: int | None
    access: int


def parse_rule(text: str) -> Rule:
    """``"c 195:0 rwm"`` / ``"c *:* m"`` / ``"a"`` -> Rule; ValueError for anything else."""
    parts = text.split()
    if parts == ["a"]:
        return Rule("a", None, None, None, ALL_ACCESS)
    if len(parts) != 3 or parts[0] not in ("a", "b", "c"):
        raise ValueError(f"not a device rule: {text!r}")
    major_s, sep, minor_s = parts[1].partition(":")
    if not sep or not set(parts[2]) <= set(ACCESS_BITS) or not parts[2]:
        raise ValueError(f"not a device rule: {text!r}")
    major = None if major_s == "*" else int(major_s)
    minor = None if minor_s == "*" else int(minor_s)
    access = 0
    for letter in parts[2]:
        access |= ACCESS_BITS[letter]
    return Rule(parts[0], major, major, minor, access)


def coalesce(rules: Iterable[Rule]) -> list[Rule]:
    """Rules that differ only in consecutive majors (same type, minor and access) merged into one range.
    Allow rules are a union, so their order does not change what the program answers."""
    merged: list[Rule] = []
    by_shape: dict[tuple[str, int | None, int], list[Rule]] = {}
    for rule in rules:
        if rule.major_low is None:
            merged.append(rule)
        else:
            by_shape.setdefault((rule.kind, rule.minor, rule.access), []).append(rule)
    for (kind, minor, access), group in by_shape.items():
        majors = sorted({r.major_low for r in group if r.major_low is not None})
        low = prev = majors[0]
        for major in [*majors[1:], None]:
            if major is not None and major == prev + 1:
                prev = major
                continue
            merged.append(Rule(kind, low, prev, minor, access))
            if major is not None:
                low = prev = major
    return merged


def _block(rule: Rule) -> list[Insn]:
    """The checks of one rule, each jump's offset -1 meaning "to the next block" (patched by compile)."""
    code: list[Insn] = []
    if rule.kind != "a":
        code.append((JNE_K, TYPE, 0, -1, DEV_BLOCK if rule.kind == "b" else DEV_CHAR))
    if rule.access != ALL_ACCESS:  # asks for an access the rule does not give: not this rule
        code.append((MOV64_X, SCRATCH, ACCESS, 0, 0))
        code.append((AND64_K, SCRATCH, 0, 0, ALL_ACCESS & ~rule.access))
        code.append((JNE_K, SCRATCH, 0, -1, 0))
    if rule.major_low is not None and rule.major_high is not None:
        if rule.major_low == rule.major_high:
            code.append((JNE_K, MAJOR, 0, -1, rule.major_low))
        else:
            code.append((JLT_K, MAJOR, 0, -1, rule.major_low))
            code.append((JGT_K, MAJOR, 0, -1, rule.major_high))
    if rule.minor is not None:
        code.append((JNE_K, MINOR, 0, -1, rule.minor))
    code.append((MOV64_K, 0, 0, 0, 1))
    code.append((EXIT, 0, 0, 0, 0))
    return code


def compile_rules(rules: Sequence[str]) -> list[Insn]:
    """The program allowing exactly what ``rules`` allow (v1 ``devices.allow`` lines; none: nothing)."""
    code: list[Insn] = [
        (LDX_W, TYPE, 1, 0, 0),
        (AND64_K, TYPE, 0, 0, 0xFFFF),
        (LDX_W, ACCESS, 1, 0, 0),
        (RSH64_K, ACCESS, 0, 0, 16),
        (LDX_W, MAJOR, 1, 4, 0),
        (LDX_W, MINOR, 1, 8, 0),
    ]
    for rule in coalesce(parse_rule(r) for r in rules):
        block = _block(rule)
        if len(block) == 2:  # allows everything: the rest would be unreachable, which the verifier refuses
            return code + block
        end = len(code) + len(block)  # the next block's first instruction
        for op, dst, src, off, imm in block:
            if off == -1:
                off = end - len(code) - 1  # relative to the instruction after the jump
            code.append((op, dst, src, off, imm))
    code += [(MOV64_K, 0, 0, 0, 0), (EXIT, 0, 0, 0, 0)]
    return code


def encode(code: Sequence[Insn]) -> bytes:
    """``struct bpf_insn``: u8 code, the two 4-bit register fields, s16 off, s32 imm, in the host's byte
    order (the register bit-fields are allocated from the low nibble on little-endian hosts, from the
    high one on big-endian ones, as the kernel's C compiler lays them out)."""
    little = sys.byteorder == "little"
    return b"".join(
        struct.pack("=BBhi", op, (dst | (src << 4)) if little else ((dst << 4) | src), off, imm)
        for op, dst, src, off, imm in code
    )


# ------------------------------------------------------------------------------------------ bpf(2)


class _Attr(ctypes.Union):
    _fields_ = [("raw", ctypes.c_uint8 * 128)]  # union bpf_attr; the kernel wants the unused tail zero


def _call(cmd: int, attr: _Attr) -> int:
    number = SYS_BPF.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, f"bpf(2) is not known on {platform.machine()} to this agent")
    libc = ctypes.CDLL(None, use_errno=True)
    result = int(
        libc.syscall(ctypes.c_long(number), ctypes.c_int(cmd), ctypes.byref(attr), ctypes.sizeof(attr))
    )
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _bpf(cmd: int, layout: str, *values: int) -> int:
    attr = _Attr()
    struct.pack_into(layout, attr.raw, 0, *values)
    return _call(cmd, attr)


def load(code: Sequence[Insn]) -> int:
    """Load the program; its file descriptor (close-on-exec). OSError with the verifier's log if refused."""
    insns = ctypes.create_string_buffer(encode(code))
    license_ = ctypes.create_string_buffer(b"Apache-2.0")
    log = ctypes.create_string_buffer(64 * 1024)
    try:
        # prog_type, insn_cnt, insns, license, log_level, log_size, log_buf
        return _bpf(
            BPF_PROG_LOAD,
            "=IIQQIIQ",
            BPF_PROG_TYPE_CGROUP_DEVICE,
            len(code),
            ctypes.addressof(insns),
            ctypes.addressof(license_),
            1,
            len(log),
            ctypes.addressof(log),
        )
    except OSError as exc:
        told = log.value.decode(errors="replace").strip().splitlines()
        raise OSError(
            exc.errno,
            f"loading the device filter failed: {exc.strerror}" + (f" ({told[-1]})" if told else ""),
        ) from None


def attach(group: str | os.PathLike[str], rules: Sequence[str]) -> None:
    """Fence ``group`` (a cgroup v2 folder) to ``rules``: compile, load, attach; the program lives as
    long as its attachment (the group)."""
    prog = load(compile_rules(rules))
    try:
        target = os.open(group, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            # target_fd, attach_bpf_fd, attach_type, attach_flags
            _bpf(BPF_PROG_ATTACH, "=IIII", target, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
        finally:
            os.close(target)
    finally:
        os.close(prog)


def attached(group: str | os.PathLike[str]) -> int:
    """How many device programs are attached to ``group`` itself (BPF_PROG_QUERY; a diagnostic)."""
    target = os.open(group, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        ids = (ctypes.c_uint32 * 64)()
        attr = _Attr()
        # target_fd, attach_type, query_flags, attach_flags, prog_ids, prog_cnt (in: room; out: count)
        struct.pack_into("=IIIIQI", attr.raw, 0, target, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), 64)
        _call(BPF_PROG_QUERY, attr)
        count: int = struct.unpack_from("=I", attr.raw, 24)[0]
        return count
    finally:
        os.close(target)


def problem() -> str | None:
    """None when this kernel loads device filters for us, else why not (the agent logs it once)."""
    try:
        os.close(load(compile_rules(["a"])))
    except OSError as exc:
        return f"cannot load a cgroup v2 device filter (BPF): {exc.strerror or exc}"
    return None
