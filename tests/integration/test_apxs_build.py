"""The README's one-line apxs build works: the module built that way from
this tree loads into httpd and passes a configuration check."""

import os
import re
import shutil
import subprocess

import pegadm_harness as harness

APXS_LINE = re.compile(r"^apxs -c -i .*$", re.M)


def readme_apxs_command():
    """The apxs line of README.md, without -i (nothing is installed)."""
    with open(os.path.join(harness.REPO_ROOT, "README.md"), encoding="utf-8") as fh:
        found = APXS_LINE.findall(fh.read())
    assert len(found) == 1, "README.md should give exactly one apxs line: %r" % found
    return found[0].replace(" -i ", " ", 1)


def copy_sources(dest):
    shutil.copytree(os.path.join(harness.REPO_ROOT, "src"), os.path.join(dest, "src"))


def test_the_readme_apxs_line_builds_a_loadable_module(workdir):
    build = harness.make_public_dir(workdir, prefix="apxs-")
    copy_sources(build)
    # The line is written for a shell ($(pkg-config ...), src/*.c).
    result = subprocess.run(["bash", "-c", readme_apxs_command()], cwd=build,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    module = os.path.join(build, ".libs", "mod_pegadm.so")
    assert os.path.isfile(module)

    conf = "\n".join([
        'LoadModule pegadm_module "%s"' % module,
        harness.pegadm_conf(None, service_url="https://127.0.0.1:9"),
        harness.session_location(),
    ])
    returncode, output = harness.config_test(conf, workdir=workdir, load_pegadm=False)
    assert returncode == 0, output
    assert "Syntax OK" in output
