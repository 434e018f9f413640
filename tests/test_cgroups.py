"""Which per-worker cgroup the sandbox chooses, and what it writes there, on fake cgroupfs trees: v1 (this host's
layout), v2 with memory and pids delegated, v2 without them, and no cgroup at all. The files are plain files in a
temp dir, so these tests check the probing and the interface files written, not the kernel's enforcement (the
hostile tests check that on the real v1 hierarchy of a host that has it)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from opencodegen.eval import cgroups
from opencodegen.eval.sandbox import Limits, Sandbox

OWN = "/user.slice/ocg"  # this process's cgroup path inside each hierarchy


def _fake_proc(root: Path, cgroup_lines: list[str], mount_lines: list[str]) -> Path:
    proc_self = root / "proc-self"
    proc_self.mkdir()
    (proc_self / "cgroup").write_text("".join(line + "\n" for line in cgroup_lines))
    base = ["22 1 0:20 / /proc rw,nosuid - proc proc rw", "23 1 0:21 / /sys rw - sysfs sysfs rw"]
    (proc_self / "mountinfo").write_text("".join(line + "\n" for line in base + mount_lines))
    return proc_self


def _v2_tree(root: Path, subtree_control: str, own_path: str = OWN, ancestors: str = "") -> Path:
    """A cgroup2 mount where this process sits in `own_path`, whose subtree_control is `subtree_control`; each
    ancestor's is `ancestors`."""
    mount = root / "cgroup2"
    parts = [p for p in own_path.split("/") if p]
    for depth in range(len(parts) + 1):
        d = mount.joinpath(*parts[:depth])
        d.mkdir(parents=True, exist_ok=True)
        (d / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
        (d / "cgroup.subtree_control").write_text((subtree_control if depth == len(parts) else ancestors) + "\n")
        (d / "cgroup.procs").write_text("")
    return _fake_proc(root, [f"0::{own_path}"], [f"30 23 0:26 / {mount} rw,nosuid,nodev - cgroup2 cgroup2 rw"])


def _v1_tree(root: Path, controllers: tuple[str, ...] = ("memory", "pids")) -> Path:
    lines, mounts = [], []
    for i, c in enumerate(("cpu", "memory", "pids", "devices"), start=1):
        if c not in controllers and c in ("memory", "pids"):
            continue
        (root / "v1" / c / OWN.lstrip("/")).mkdir(parents=True)
        lines.append(f"{i}:{c}:{OWN}")
        mounts.append(f"{30 + i} 23 0:{30 + i} / {root / 'v1' / c} rw,nosuid - cgroup cgroup rw,{c}")
    lines.append("0::/")  # the empty v2 hierarchy every v1 host also lists
    return _fake_proc(root, lines, mounts)


def test_v2_with_memory_and_pids_delegated_is_chosen(tmp_path):
    where = cgroups.probe(_v2_tree(tmp_path, "memory pids"))
    own = str(tmp_path / "cgroup2" / OWN.lstrip("/"))
    assert where == {"version": 2, "memory": own, "pids": own}
    assert cgroups.describe(where) == "cgroup v2 memory+pids per worker (process tree and its tmpfs)"


def test_v2_in_a_systemd_leaf_uses_the_nearest_ancestor_that_enables_both(tmp_path):
    # A terminal's scope in a user's delegated subtree: the scope holds processes, so it can enable nothing for
    # children; app.slice enables memory and pids, and so does every slice above it.
    leaf = "/user.slice/user-1000.slice/user@1000.service/app.slice/term.scope"
    where = cgroups.probe(_v2_tree(tmp_path, "", own_path=leaf, ancestors="memory pids"))
    app_slice = str(tmp_path / "cgroup2/user.slice/user-1000.slice/user@1000.service/app.slice")
    assert where == {"version": 2, "memory": app_slice, "pids": app_slice}


def test_v2_ancestors_enabling_only_one_controller_give_none(tmp_path):
    assert cgroups.probe(_v2_tree(tmp_path, "", own_path="/a.slice/b.scope", ancestors="memory")) is None


@pytest.mark.parametrize("subtree_control", ["", "memory", "pids", "cpu io"])
def test_v2_without_both_controllers_delegated_gives_none(tmp_path, subtree_control):
    assert cgroups.probe(_v2_tree(tmp_path, subtree_control)) is None


def test_v1_memory_and_pids_hierarchies_are_chosen(tmp_path):
    where = cgroups.probe(_v1_tree(tmp_path))
    assert where == {"version": 1, "memory": str(tmp_path / "v1/memory" / OWN.lstrip("/")),
                     "pids": str(tmp_path / "v1/pids" / OWN.lstrip("/"))}


def test_v1_without_pids_gives_none(tmp_path):
    assert cgroups.probe(_v1_tree(tmp_path, controllers=("memory",))) is None


def test_no_cgroup_mounted_gives_none(tmp_path):
    assert cgroups.probe(_fake_proc(tmp_path, ["0::/"], [])) is None


def test_unreadable_proc_gives_none(tmp_path):
    assert cgroups.probe(tmp_path / "missing") is None


def test_v2_preferred_over_v1_when_both_exist(tmp_path):
    v2 = _v2_tree(tmp_path, "memory pids")
    v1 = _v1_tree(tmp_path / "other")
    (v2 / "cgroup").write_text((v1 / "cgroup").read_text().replace("0::/", f"0::{OWN}"))
    (v2 / "mountinfo").write_text((v2 / "mountinfo").read_text() + (v1 / "mountinfo").read_text())
    assert cgroups.probe(v2)["version"] == 2


def test_v2_worker_cgroup_writes_v2_interface_files(tmp_path):
    where = cgroups.probe(_v2_tree(tmp_path, "memory pids"))
    cg = cgroups.WorkerCgroup(where, max_processes=64)
    (d,) = cg.dirs  # one directory holds both controllers in v2
    assert cg.procs_files == [str(d / "cgroup.procs")]
    assert (d / "pids.max").read_text() == str(64 + cgroups.OVERHEAD_PROCESSES)
    assert not (d / "memory.swap.max").exists()  # only written where the kernel offers it
    (d / "memory.current").write_text("52428800\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\noom_group_kill 0\n")
    cg.limit_memory(cg.usage() + 200 * 2**20)
    assert (d / "memory.max").read_text() == str(50 * 2**20 + 200 * 2**20) == str(cg.limit)
    assert cg.oom_kills() == 2
    for f in ("pids.max", "memory.current", "memory.events", "memory.max"):
        (d / f).unlink()
    cg.close()
    assert not d.exists()


def test_v2_worker_cgroup_closes_swap(tmp_path, monkeypatch):
    where = cgroups.probe(_v2_tree(tmp_path, "memory pids"))
    parent, real_mkdir = Path(where["memory"]), Path.mkdir

    def mkdir_like_cgroupfs(self, *args, **kwargs):  # a real v2 memory cgroup has memory.swap.max from the start
        real_mkdir(self, *args, **kwargs)
        if self.parent == parent:
            (self / "memory.swap.max").write_text("max\n")
    monkeypatch.setattr(Path, "mkdir", mkdir_like_cgroupfs)
    cg = cgroups.WorkerCgroup(where, max_processes=8)
    assert (cg.dirs[0] / "memory.swap.max").read_text() == "0"


def test_v1_worker_cgroup_writes_v1_interface_files(tmp_path):
    where = cgroups.probe(_v1_tree(tmp_path))
    cg = cgroups.WorkerCgroup(where, max_processes=10)
    assert sorted(cg.procs_files) == sorted(str(d / "cgroup.procs") for d in (cg.memory, cg.pids))
    assert cg.memory != cg.pids
    assert (cg.pids / "pids.max").read_text() == str(10 + cgroups.OVERHEAD_PROCESSES)
    (cg.memory / "memory.usage_in_bytes").write_text("1000\n")
    (cg.memory / "memory.memsw.limit_in_bytes").write_text("9223372036854771712\n")
    (cg.memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    cg.limit_memory(cg.usage() + 5000)
    assert (cg.memory / "memory.limit_in_bytes").read_text() == "6000" == str(cg.limit)
    assert (cg.memory / "memory.memsw.limit_in_bytes").read_text() == "6000"  # swap closed too
    assert cg.oom_kills() == 1


@pytest.mark.parametrize("tree,in_force", [
    ("v2", "memory 2048 MB per process tree incl. tmpfs, 64 processes (cgroup v2 memory+pids per worker"),
    ("v2-undelegated", "memory 2048 MB per process (no cgroup (this process may not create one)"),
    ("v1", "memory 2048 MB per process tree incl. tmpfs, 64 processes (cgroup v1 memory+pids per worker"),
    ("none", "memory 2048 MB per process (no cgroup (this process may not create one)"),
])
def test_run_reports_the_limits_in_force(tmp_path, tree, in_force):
    proc_self = {"v2": lambda: _v2_tree(tmp_path, "memory pids"), "v2-undelegated": lambda: _v2_tree(tmp_path, "cpu"),
                 "v1": lambda: _v1_tree(tmp_path), "none": lambda: _fake_proc(tmp_path, ["0::/"], [])}[tree]()
    fake = SimpleNamespace(features={"seccomp": True, "landlock": 7}, limits=Limits(), isolation="namespace",
                           _cgroups=cgroups.probe(proc_self))
    assert in_force in Sandbox.describe(fake)
