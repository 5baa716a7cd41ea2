"""``scripts/bootstrap.sh`` on a machine like a fresh Debian 12: the system Python's ``venv`` fails until
``python3-venv`` is installed. The script says one line per step and none of the failure's noise.

A fresh Debian cannot run here, so its parts are stood in for by small scripts faithful to what they do
there: ``python3 -m venv`` prints Debian's ensurepip message and exits 1 until apt installed the package;
``dpkg-query`` and ``apt-get`` keep the list of installed packages in a file; the venv's ``pip`` records
what it was asked to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

DEBIAN_VENV_FAILURE = """\
The virtual environment was not created successfully because ensurepip is not
available.  On Debian/Ubuntu systems, you need to install the python3-venv
package using the following command.

    apt install python3.11-venv

You may need to use sudo with that command.  After installing the python3-venv
package, recreate your virtual environment.

Failing command: {venv}/bin/python3
"""

FAKE_PYTHON = f"""#!/bin/sh
# python3 of a Debian without python3-venv (until the fake apt-get installed it)
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"
  if ! grep -qx python3-venv "$FAKE_DEBIAN/installed"; then
    cat <<'EOF'
{DEBIAN_VENV_FAILURE.format(venv="$3")}
EOF
    echo "Error: Command '['$3/bin/python3', '-m', 'ensurepip', '--upgrade', '--default-pip']' returned \
non-zero exit status 1." >&2
    exit 1
  fi
  cat > "$3/bin/python" <<'EOF'
#!/bin/sh
echo "$@" >> "$FAKE_DEBIAN/pip.log"
EOF
  chmod +x "$3/bin/python"
  exit 0
fi
exec {sys.executable} "$@"
"""

FAKE_DPKG_QUERY = """#!/bin/sh
pkg="$(eval echo \\${$#})"
grep -qx "$pkg" "$FAKE_DEBIAN/installed" && printf 'install ok installed'
exit 0
"""

FAKE_APT_GET = """#!/bin/sh
echo "apt-get $*" >> "$FAKE_DEBIAN/apt.log"
[ "$1" = update ] && exit 0
for arg in "$@"; do case "$arg" in -*|install) ;; *) echo "$arg" >> "$FAKE_DEBIAN/installed";; esac; done
echo "debconf: delaying package configuration, since apt-utils is not installed" >&2
"""


def _script(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)


def test_a_failing_venv_is_quietly_fixed_through_apt_and_each_step_says_one_line(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", repo / "scripts")
    shutil.copy(ROOT / "pyproject.toml", repo)
    debian = tmp_path / "debian"
    bin_dir = debian / "bin"
    bin_dir.mkdir(parents=True)
    (debian / "installed").write_text("", encoding="utf-8")
    _script(bin_dir / "python3", FAKE_PYTHON)
    _script(bin_dir / "dpkg-query", FAKE_DPKG_QUERY)
    _script(bin_dir / "apt-get", FAKE_APT_GET)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_DEBIAN": str(debian),
           "PYTHON": str(bin_dir / "python3")}

    run = subprocess.run(["bash", "scripts/bootstrap.sh", "run"], cwd=repo, env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    assert "ensurepip" not in run.stderr and "debconf" not in run.stderr and "Error" not in run.stderr
    version = subprocess.run([sys.executable, "--version"], capture_output=True, text=True, check=True).stdout
    assert run.stderr.splitlines() == [
        f"bootstrap: creating .venv with {version.strip()}",
        "bootstrap: installing Debian packages python3-venv …",
        "bootstrap: installing Debian packages libpango-1.0-0 libpangoft2-1.0-0 fontconfig fonts-noto-cjk …",
        "bootstrap: installing archmon into .venv …",
        "bootstrap: done: .venv/bin/archmon",
    ]
    installed = (debian / "installed").read_text(encoding="utf-8").split()
    assert {"python3-venv", "fonts-noto-cjk", "libpango-1.0-0"} <= set(installed)  # the PDF's font and Pango
    pip_calls = (debian / "pip.log").read_text(encoding="utf-8").splitlines()
    assert pip_calls[-1].endswith("install -qq --disable-pip-version-check -e .")

    again = subprocess.run(["bash", "scripts/bootstrap.sh", "run"], cwd=repo, env=env, capture_output=True,
                           text=True, timeout=60, check=False)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")  # nothing to do, nothing said


def test_a_failing_step_shows_its_output(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", repo / "scripts")
    shutil.copy(ROOT / "pyproject.toml", repo)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "python3", f"""#!/bin/sh
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"; printf '#!/bin/sh\\necho "pip: no route to the package index" >&2; exit 3\\n' > "$3/bin/python"
  chmod +x "$3/bin/python"; exit 0
fi
exec {sys.executable} "$@"
""")
    env = {**os.environ, "PYTHON": str(bin_dir / "python3")}
    run = subprocess.run(["bash", "scripts/bootstrap.sh", "run"], cwd=repo, env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert run.returncode == 3
    assert "pip: no route to the package index" in run.stderr
    assert "bootstrap: failed (3):" in run.stderr


def test_ci_runs_exactly_the_readme_test_command_with_ci_set(tmp_path: Path) -> None:
    """``.ci/run`` is the README's test command and nothing else, with ``CI`` set: tests that skip on a
    developer's machine when a browser is missing fail there (bootstrap installs it)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = readme.split("Run the whole test suite", 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0].strip()
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[-1] == command == "bash scripts/test.sh"
    assert 'export CI="${CI:-true}"' in lines
    fake = tmp_path / "repo"
    (fake / ".ci").mkdir(parents=True)
    (fake / "scripts").mkdir()
    shutil.copy(ROOT / ".ci" / "run", fake / ".ci" / "run")
    _script(fake / "scripts" / "test.sh", '#!/bin/sh\necho "CI=$CI $0 $*"\n')
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    run = subprocess.run(["bash", str(fake / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60,
                         check=True)
    assert run.stdout.strip() == "CI=true scripts/test.sh"
