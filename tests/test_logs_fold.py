"""While a run is followed, torchrun's own tracebacks in a host log are one line each (the rank's own
error is in its rank log); every line is still kept for the failure report and `mae-launch logs`.
tests/data/torchrun_host.log is two real host logs of torchrun 2.14 (a rank exiting 2, then a stop)."""
import io
import pathlib

from rich.console import Console

from launcher.logs import LogPrinter

LOG = (pathlib.Path(__file__).parent / "data" / "torchrun_host.log").read_bytes()


def _follow(data: bytes, fold=True):
    out = io.StringIO()
    printer = LogPrinter(Console(file=out, width=300), ["host1"], fold=fold)
    for i in range(0, len(data), 97):  # in pieces, as polls bring them
        printer.feed("host1", "h", "", data[i:i + 97])
    printer.flush({"h": ""})
    return out.getvalue().splitlines(), printer


def test_torchrun_tracebacks_are_folded_and_kept():
    shown, printer = _follow(LOG)
    assert [line for line in shown if "folded" in line] == [
        "host1     | (torchrun's ChildFailedError traceback folded; mae-launch logs --host host1 shows it whole)",
        "host1     | (torchrun's SignalException traceback folded; mae-launch logs --host host1 shows it whole)"]
    assert not any("Traceback" in line or "Root Cause" in line or "====" in line or "failed (exitcode" in line
                   for line in shown), shown
    assert len(shown) <= 8 < len(LOG.splitlines())
    assert any("Root Cause" in line for line in printer.last_lines("host1", "h", 200))  # kept for the report
    unfolded, _ = _follow(LOG, fold=False)
    assert len(unfolded) == len(LOG.splitlines())


def test_other_tracebacks_are_shown_whole():
    own = (b"Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n    boom()\n"
           b"ValueError: a problem of the job script itself\nafter\n")
    shown, _ = _follow(own)
    assert [line.split("| ", 1)[1] for line in shown] == own.decode().splitlines()


def test_a_ranks_traceback_caused_by_another_ranks_failure_is_folded():
    """tests/data/torchrun_rank_collateral.log: rank 1's real log after rank 0 failed (gloo: the peer
    closed the connection, 'typically caused by a remote worker crashing')."""
    data = (pathlib.Path(__file__).parent / "data" / "torchrun_rank_collateral.log").read_bytes()
    out = io.StringIO()
    printer = LogPrinter(Console(file=out, width=300), ["host1"], fold=True)
    printer.feed("host1", "r1", "r1", data)
    printer.feed("host1", "r1", "r1", b"[rank1]: Traceback (most recent call last):\n[rank1]:   File \"x.py\"\n"
                                      b"[rank1]: ValueError: the rank's own bug\n")
    printer.flush({"r1": "r1"})
    shown = out.getvalue().splitlines()
    assert shown == [
        "host1 r1  | (RuntimeError after another rank failed: traceback folded; mae-launch logs --host host1 shows it whole)",
        "host1 r1  | [rank1]: Traceback (most recent call last):", "host1 r1  | [rank1]:   File \"x.py\"",
        "host1 r1  | [rank1]: ValueError: the rank's own bug"], shown
