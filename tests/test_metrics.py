"""The meter line keeps the reference format that benchmark tools parse."""
import re

from mae import metrics

THROUGHPUT = re.compile(r"throughput:?[ \t]*(\d+)")
LOSS = re.compile(r"loss:?[ \t]*([e\d\.\-\+]+)")


def test_meter_line_format_and_reference_regexes():
    log = metrics.MetricLogger()
    for t, loss, thr in ((0.5, 1.25, 128.0), (0.25, 0.75, 256.5)):
        log.update(time=t, data=0.01, loss=loss, throughput=thr, LR=1.5e-4)
    line = log.line("Training Epoch: [3]", 7, 120)
    assert line.startswith("Training Epoch: [3][  7/120]\ttime 0.2500 (0.3750)\tdata ")
    assert [p.split(" ")[0] for p in line.split("\t")[1:]] == ["time", "data", "loss", "throughput", "LR"]
    assert THROUGHPUT.findall(line) == ["256"]
    assert float(LOSS.findall(line)[-1]) == 0.75
    assert "LR 1.5000e-04 (1.5000e-04)" in line


def test_benchmark_style_parsing_over_a_log():
    lines = [metrics.meter_line("Training Epoch: [0]", i, 10, {"loss": (2.0 - 0.1 * i, 1.0),
                                                               "throughput": (1000.0 + i, 1000.0)})
             for i in range(4)]
    text = "\n".join(lines)
    thr = [int(x) for x in THROUGHPUT.findall(text)]
    assert thr == [1000, 1001, 1002, 1003]
    assert sum(thr[1:]) / len(thr[1:]) == 1002  # mean, first one skipped
    assert float(LOSS.findall(text)[-1]) == 1.7


def test_smoothed_value_and_jsonl(tmp_path):
    v = metrics.SmoothedValue(window=2)
    for x in (1.0, 2.0, 6.0):
        v.update(x)
    assert v.value == 6.0 and v.avg == 3.0 and v.median == 4.0
    with metrics.JsonlWriter(tmp_path / "m.jsonl") as w:
        w.write({"type": "step", "loss": 0.5})
        w.write({"type": "epoch", "epoch": 0})
    (tmp_path / "m.jsonl").open("a").write('{"torn": ')
    assert metrics.read_jsonl(tmp_path / "m.jsonl") == [{"type": "step", "loss": 0.5}, {"type": "epoch", "epoch": 0}]
