"""`aish --install-shims DIR` puts every specialist, user-defined ones too, on PATH."""

import os

from conftest import run


def test_shims_run_user_defined_specialists(home, tmp_path):
    config = os.path.join(home["HOME"], ".aish", "config.yaml")
    with open(config, "a") as f:
        f.write("specialists:\n  sherlock: {persona: 'You find root causes.', "
                "description: finds root causes}\n")
    bin_dir = tmp_path / "bin"
    (bin_dir).mkdir()
    (bin_dir / "hermes").write_text("#!/bin/sh\necho not ours\n")  # must be left alone
    result = run(home, "aish", "--install-shims", str(bin_dir))
    assert result.returncode == 0, result.stderr
    assert os.path.islink(bin_dir / "sherlock") and os.path.islink(bin_dir / "apollo")
    assert (bin_dir / "hermes").read_text() == "#!/bin/sh\necho not ours\n"
    assert b"hermes" in result.stderr  # reported as left alone
    shim = subprocess_run(home, bin_dir / "sherlock", "--help")
    assert shim.returncode == 0, shim.stderr
    assert shim.stdout.startswith(b"usage: sherlock")
    again = run(home, "aish", "--install-shims", str(bin_dir))  # idempotent
    assert again.returncode == 0, again.stderr


def subprocess_run(env, program, *args):
    import subprocess

    return subprocess.run([str(program), *args], capture_output=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=600)
