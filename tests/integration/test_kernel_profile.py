#!/usr/bin/env python3
"""Black-box check of tools/kernel_profile.py on a made-up Nsight Compute CSV.

Usage: python3 test_kernel_profile.py [/path/to/ratplus]  (the binary is not used)

The CSV has ncu's own messages around the rows, three kernels launched 3, 6 and 3 times with round
durations and bytes (one launch of a fourth kernel with metrics that are not read), and a value with a
thousands separator. Checks, with --steps 3: each kernel's milliseconds, launches, GB and TB/s per step, the
order by time, the namespaces dropped from the names, the total; without --steps the sums. Bad input exits 2
naming the file: no file, no CSV header, a value that is not a number, no launch with the metrics, --steps 0.
Prints one line per check and `N passed, M failed`.
"""

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

SCRIPT = os.path.join(HERE, "..", "..", "tools", "kernel_profile.py")
HEADER = ('"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size",'
          '"Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"')
ATTENTION = "void ratplus::<unnamed>::cache_attention_kernel<__nv_bfloat16, __nv_bfloat16, 16>(ratplus::Mat<T1>)"
GEMM = "nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_TNT"
APPEND = "void ratplus::cuda::(anonymous namespace)::cache_append_kernel<float>(int)"


def rows(launch_id, name, ns, read, written):
    base = ('"%d","1","ratplus","host","%s","1","7","(128, 1, 1)","(1, 16, 2048)","0","9.0",'
            '"Command line profiler metrics",' % (launch_id, name))
    return [base + '"gpu__time_duration.sum","ns","%s"' % ns, base + '"dram__bytes_read.sum","byte","%s"' % read,
            base + '"dram__bytes_write.sum","byte","%s"' % written]


def profile_csv():
    lines = ["==PROF== Connected to process 1 (ratplus)", HEADER]
    launch = 0
    for step in range(3):
        # per step: one attention (4 ms, 8 GB read, 0 written), two products (1 ms and 0.5 GB each), an append
        lines += rows(launch, ATTENTION, "4,000,000", 8e9, 0)
        lines += rows(launch + 1, GEMM, 1e6, 5e8, 1e8)
        lines += rows(launch + 2, GEMM, 1e6, 5e8, 1e8)
        lines += rows(launch + 3, APPEND, 5e5, 1e9, 1e9)
        launch += 4
        if step == 0:
            lines.append("==PROF== Profiling \"cache_attention_kernel\" - 1: 0%....50%....100% - 1 pass")
    other = ('"%d","1","ratplus","host","other_kernel","1","7","(1, 1, 1)","(1, 1, 1)","0","9.0","x","sm__cycles",'
             '"cycle","5"')
    lines.append(other % launch)
    return "\n".join(lines) + "\n"


def run(args):
    p = subprocess.run([sys.executable, SCRIPT] + args, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def cells(out, marker):
    """The cells of the table row whose kernel column contains marker."""
    for line in out.splitlines():
        if marker in line:
            return [c.strip() for c in line.strip().strip("|").split("|")]
    return None


def main():
    res = harness.Results()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "profile.csv")
        with open(path, "w") as f:
            f.write(profile_csv())
        code, out, err = run([path, "--steps", "3"])
        res.check("exit 0", code == 0, err)
        att, gemm, app, total = (cells(out, m)
                                 for m in ("cache_attention_kernel", GEMM, "cache_append_kernel", "**all**"))
        res.check("attention row", att == ["4.000", "1", "8.000", "0.000", "2.00",
                                           "`void cache_attention_kernel<__nv_bfloat16, __nv_bfloat16, 16>(Mat<T1>)`"],
                  str(att))
        res.check("the two products of a step in one row",
                  gemm == ["2.000", "2", "1.000", "0.200", "0.60", "`%s`" % GEMM], str(gemm))
        res.check("append row, namespaces dropped", app == ["0.500", "1", "1.000", "1.000", "4.00",
                                                            "`void cache_append_kernel<float>(int)`"], str(app))
        res.check("total", total == ["6.500", "4", "10.000", "1.200", "1.72", "**all**"], str(total))
        res.check("rows by time", out.index("cache_attention") < out.index(GEMM) < out.index("cache_append"), out)
        res.check("metrics not read leave their kernel out", "other_kernel" not in out, out)
        code, out, _ = run([path])
        res.check("without --steps, the sums", cells(out, "**all**") == ["19.500", "12", "30.000", "3.600", "1.72",
                                                                         "**all**"], out)

        def refused(name, args, *words):
            code, _, err = run(args)
            res.check(name, code == 2 and all(w in err for w in words), "exit %d: %s" % (code, err))

        refused("no file", [os.path.join(d, "absent.csv")], "absent.csv")
        bad = os.path.join(d, "bad.csv")
        with open(bad, "w") as f:
            f.write("==PROF== nothing\nsome,other,csv\n")
        refused("no header", [bad], "bad.csv", "header")
        with open(bad, "w") as f:
            f.write(HEADER + "\n" + rows(0, GEMM, "fast", 1, 1)[0] + "\n")
        refused("not a number", [bad], "bad.csv", "launch 0", "'fast'")
        with open(bad, "w") as f:
            f.write(HEADER + "\n")
        refused("no launch", [bad], "bad.csv", "no launch")
        refused("steps 0", [path, "--steps", "0"], "--steps")
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
