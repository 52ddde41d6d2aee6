"""The cgroup v2 device filter's program, run here by a small interpreter of the instructions it uses and
compared with what the rules mean (a device is allowed when some rule matches its type, major and minor
and grants every access asked). The kernel's own verdicts are in tests/integration/agent/test_device_filter.py."""

from __future__ import annotations

import struct
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.agent.adapters import device_filter as df
from services.agent.adapters.cgroups import DYNAMIC_CHAR_MAJORS, device_rules


def run(code: list[df.Insn], dev_type: int, access: int, major: int, minor: int) -> int:
    """Execute the program on one ``bpf_cgroup_dev_ctx``; also checks it only jumps forward in bounds
    and ends in EXIT (what the verifier insists on)."""
    ctx = struct.pack("<III", dev_type | (access << 16), major, minor)
    regs = [0] * 11
    pc = 0
    mask = (1 << 64) - 1
    while True:
        assert 0 <= pc < len(code), "ran off the program"
        op, dst, src, off, imm = code[pc]
        pc += 1
        if op == df.LDX_W:
            assert src == 1 and off in (0, 4, 8)
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == df.AND64_K:
            regs[dst] &= imm & mask
        elif op == df.RSH64_K:
            regs[dst] >>= imm
        elif op == df.MOV64_K:
            regs[dst] = imm & mask
        elif op == df.MOV64_X:
            regs[dst] = regs[src]
        elif op in (df.JNE_K, df.JGT_K, df.JLT_K):
            assert off >= 0, "a backward jump"
            taken = {
                df.JNE_K: regs[dst] != imm,
                df.JGT_K: regs[dst] > imm,
                df.JLT_K: regs[dst] < imm,
            }[op]
            if taken:
                pc += off
        elif op == df.EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


def meaning(rules: list[str], dev_type: int, access: int, major: int, minor: int) -> int:
    kind = "b" if dev_type == df.DEV_BLOCK else "c"
    for text in rules:
        r = df.parse_rule(text)
        if r.kind not in ("a", kind):
            continue
        if r.major_low is not None and major != r.major_low:
            continue
        if r.minor is not None and minor != r.minor:
            continue
        if access & ~r.access == 0:
            return 1
    return 0


ACCESSES = [df.ACC_READ, df.ACC_WRITE, df.ACC_READ | df.ACC_WRITE, df.ACC_MKNOD, df.ALL_ACCESS]


def test_a_gpu_hosts_rules_allow_the_jobs_own_gpu_and_refuse_the_others():
    rules = device_rules([1], {1, 5, 136, 195, 510})
    code = df.compile_rules(rules)
    assert len(code) < 120  # the 150-odd character majors are a few ranges
    rw = df.ACC_READ | df.ACC_WRITE
    assert run(code, df.DEV_CHAR, rw, 195, 1) == 1  # its own GPU
    assert run(code, df.DEV_CHAR, rw, 195, 0) == 0  # another GPU
    assert run(code, df.DEV_CHAR, rw, 195, 255) == 1  # nvidiactl
    assert run(code, df.DEV_CHAR, rw, 1, 3) == 1  # /dev/null
    assert run(code, df.DEV_CHAR, rw, 510, 0) == 1  # a dynamic major (nvidia-uvm)
    assert run(code, df.DEV_CHAR, rw, 203, 0) == 0  # a fixed major nobody registered
    assert run(code, df.DEV_CHAR, rw, 300, 0) == 0  # between the two dynamic ranges
    assert run(code, df.DEV_CHAR, rw, 512, 0) == 0  # past the last
    assert run(code, df.DEV_CHAR, df.ACC_MKNOD, 195, 0) == 1  # making a node is allowed; opening it not
    assert run(code, df.DEV_BLOCK, rw, 8, 0) == 1


def test_no_rules_deny_everything_and_a_allows_everything():
    assert run(df.compile_rules([]), df.DEV_CHAR, df.ACC_READ, 1, 3) == 0
    everything = df.compile_rules(["a"])
    assert everything[-2:] == [(df.MOV64_K, 0, 0, 0, 1), (df.EXIT, 0, 0, 0, 0)]  # nothing unreachable
    assert run(everything, df.DEV_BLOCK, df.ALL_ACCESS, 8, 1) == 1


@pytest.mark.parametrize("bad", ["", "c", "c 1:3", "x 1:3 rwm", "c 1-3 rwm", "c 1:3 rwx", "c a:3 r"])
def test_malformed_rules_are_refused(bad):
    with pytest.raises(ValueError):
        df.parse_rule(bad)


def test_consecutive_majors_become_one_range():
    merged = df.coalesce(df.parse_rule(f"c {m}:* rwm") for m in [*DYNAMIC_CHAR_MAJORS, 1, 2, 3, 7])
    spans = sorted((r.major_low, r.major_high) for r in merged)
    assert spans == [(1, 3), (7, 7), (234, 254), (384, 511)]


rule_text = st.builds(
    lambda kind, major, minor, access: f"{kind} {major}:{minor} {access}",
    st.sampled_from(["a", "b", "c"]),
    st.one_of(st.just("*"), st.integers(0, 12).map(str)),
    st.one_of(st.just("*"), st.integers(0, 3).map(str)),
    st.sampled_from(["r", "w", "m", "rw", "rm", "wm", "rwm"]),
)


@settings(max_examples=300, deadline=None)
@given(
    rules=st.lists(rule_text, max_size=12),
    dev_type=st.sampled_from([df.DEV_BLOCK, df.DEV_CHAR]),
    access=st.sampled_from(ACCESSES),
    major=st.integers(0, 14),
    minor=st.integers(0, 4),
)
def test_the_program_answers_what_the_rules_mean(rules, dev_type, access, major, minor):
    assert run(df.compile_rules(rules), dev_type, access, major, minor) == meaning(
        rules, dev_type, access, major, minor
    )


@pytest.mark.skipif(sys.byteorder != "little", reason="the expected bytes are a little-endian host's")
def test_instructions_encode_as_the_kernel_reads_them():
    assert df.encode([(df.JNE_K, 4, 0, 3, 195)]) == bytes([0x55, 0x04]) + struct.pack("<hi", 3, 195)
    assert df.encode([(df.MOV64_X, 6, 3, 0, 0)]) == bytes([0xBF, 0x36, 0, 0, 0, 0, 0, 0])


@settings(max_examples=200, deadline=None)
@given(
    majors=st.sets(st.integers(0, 20), max_size=15),
    major=st.integers(0, 22),
    access=st.sampled_from(ACCESSES),
)
def test_ranges_of_majors_hold_at_their_edges(majors, major, access):
    rules = [f"c {m}:* rw" for m in sorted(majors)]
    expected = int(major in majors and access & df.ACC_MKNOD == 0)
    assert run(df.compile_rules(rules), df.DEV_CHAR, access, major, 0) == expected
