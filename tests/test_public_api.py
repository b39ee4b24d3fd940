import emotune


def test_all_is_sorted_and_complete():
    assert emotune.__all__ == sorted(emotune.__all__)
    for name in emotune.__all__:
        assert hasattr(emotune, name), name
    public = {n for n in vars(emotune) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(emotune, n)).__name__ == "module"}
    assert public - modules == set(emotune.__all__)


def test_only_config_reads_the_environment():
    from pathlib import Path

    pkg = Path(emotune.__file__).parent
    offenders = [p.name for p in pkg.rglob("*.py") if p.name != "config.py" and "os.environ" in p.read_text()]
    assert offenders == []
