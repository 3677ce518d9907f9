# Lepton Inspect: two commands on a fresh machine.
#   make run   - set up .venv (pinned torch) and start the GUI on the embedded default
#   make test  - set up the same and run the whole test suite
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test setup bench bench-io bench-anomalib demo-model screenshot sample-report clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/lepton-inspect gui

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

# The pipeline against its limits: one table (bench/bench_pipeline.py runs bench_models.py and
# bench_gui.py for their rows), the figures in bench/results.json.
bench: $(STAMP)
	$(PY) bench/bench_pipeline.py

# The station on its line, timed: the PLC handshake (OPC UA, Modbus) against the line's own latency,
# the reject gate's pulses, a changeover.
bench-io: $(STAMP)
	$(PY) bench/bench_line_io.py

# anomalib beside our PatchCore (installs anomalib into .venv; not a product dependency).
bench-anomalib: $(STAMP)
	$(PY) -m pip install --quiet 'anomalib==2.7.0'
	$(PY) bench/anomalib_side_by_side.py --dataset ../shared/datasets/magnetic_tile --grey --size 256x256 --ours-size 0.75

# Rebuild the bundled demo model from the ball-screw development data in ../shared/datasets.
demo-model: $(STAMP)
	$(PY) -m models.training.build_demo --dataset ../shared/datasets/bsdata_ballscrew --out resources/models/demo_ballscrew.lpkg

# GUI screenshots for the README (live view with an NG part; a pulled camera), on a virtual screen (needs Debian's xvfb).
screenshot: $(STAMP)
	xvfb-run -a -s "-screen 0 1600x1000x24" $(PY) -m app.screenshot docs/screenshot.png docs/screenshot_alarm.png docs/screenshot_review.png docs/screenshot_models.png

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# The README's sample shift report: a real run (the emulator playing the bundled samples into the
# demo model) in a fresh database, its shift reported as PDF and JSON, the pages as PNG.
SAMPLE := $(shell mktemp -d -u /tmp/lepton-sample-XXXX)
sample-report: $(STAMP)
	mkdir -p $(SAMPLE)
	LEPTON_DATA_DIR=$(SAMPLE) $(VENV)/bin/lepton-inspect run --camera emu:resources/samples/ballscrew --parts 200 --db $(SAMPLE)/line.db
	LEPTON_DATA_DIR=$(SAMPLE) $(VENV)/bin/lepton-inspect report --db $(SAMPLE)/line.db --shift 1 --out docs/sample_report.pdf --json docs/sample_report.json
	$(PY) -c "import pypdfium2 as p; d = p.PdfDocument('docs/sample_report.pdf'); [d[k].render(scale=1.2).to_pil().save(f'docs/sample_report-{k + 1}.png') for k in range(len(d))]"
	rm -rf $(SAMPLE)
