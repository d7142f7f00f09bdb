#!/usr/bin/python3
"""Where figures 1 and 2 go: the cost of each step of the cached path, call
by call, outside httpd (bench/micro/cached_path_cost.c, linked against the
module's core library from the same build as the module)."""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pegabench as pb  # noqa: E402

SOURCE = os.path.join(pb.BENCH_DIR, "micro", "cached_path_cost.c")


def main():
    pb.cli(__doc__.splitlines()[0])
    core = os.path.join(os.path.dirname(pb.MODULE_PATH), "libpegadm_core.a")
    if not os.path.exists(core):
        sys.exit("%s is missing: build the module first" % core)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "apr-1", "jansson", "libcrypto"],
                           capture_output=True, text=True, check=True).stdout.split()
    with tempfile.TemporaryDirectory() as tmp:
        binary = os.path.join(tmp, "cached_path_cost")
        subprocess.run(["cc", "-std=c11", "-O2", "-D_GNU_SOURCE", "-I",
                        os.path.join(pb.REPO_ROOT, "src"), SOURCE, core, "-o", binary]
                       + flags + ["-lpthread"], check=True)
        out = subprocess.run([binary], capture_output=True, text=True, check=True,
                             timeout=300).stdout
    result = json.loads(out)
    for name, ns in result["ns_per_call"].items():
        pb.log("%-34s %7.0f ns" % (name, ns))
    pb.save_result("cached_path_cost", dict(result, load=pb.loadavg()))


if __name__ == "__main__":
    main()
