"""The one check every user-mistake test makes of a command line."""

from __future__ import annotations

from typing import Callable, Sequence


def fails_cleanly(capsys, main: Callable[[Sequence[str]], int], argv: Sequence[str], *needles: str) -> str:
    """Run ``main(argv)``: exit status 2, no traceback, every needle in stderr; returns stderr."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse rejects a bad value itself, also with status 2
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    return err
