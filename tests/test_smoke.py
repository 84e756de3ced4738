"""The guide's first pipeline, end to end with the embedded model."""


def test_pipeline_remembers(aish):
    created = aish("apollo", "--session", "--get-id", input="Hello, my name is Bob")
    assert created.returncode == 0, created.stderr
    sid = created.stdout.decode().strip()
    assert sid.startswith("sess_") and len(sid) == 11
    follow = aish("apollo", "--session", sid, input="What is my name?")
    assert follow.returncode == 0, follow.stderr
    assert follow.stdout.strip()
    listing = aish("aish", "--list-sessions")
    assert sid in listing.stdout.decode()
