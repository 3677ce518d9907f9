# Lepton Inspect: two commands on a fresh machine.
#   make run   - set up .venv (pinned torch) and start the GUI on the embedded default
#   make test  - set up the same and run the whole test suite
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test setup bench bench-anomalib demo-model screenshot clean

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

bench: $(STAMP)
	$(PY) bench/bench_pipeline.py
	$(PY) bench/bench_models.py

# anomalib beside our PatchCore (installs anomalib into .venv; not a product dependency).
bench-anomalib: $(STAMP)
	$(PY) -m pip install --quiet 'anomalib==2.7.0'
	$(PY) bench/anomalib_side_by_side.py --dataset ../shared/datasets/magnetic_tile --grey --size 256x256 --ours-size 0.75

# Rebuild the bundled demo model from the ball-screw development data in ../shared/datasets.
demo-model: $(STAMP)
	$(PY) -m models.training.build_demo --dataset ../shared/datasets/bsdata_ballscrew --out resources/models/demo_ballscrew.lpkg

# GUI screenshots for the README (live view with an NG part; a pulled camera), on a virtual screen (needs Debian's xvfb).
screenshot: $(STAMP)
	xvfb-run -a -s "-screen 0 1600x1000x24" $(PY) -m app.screenshot docs/screenshot.png docs/screenshot_alarm.png

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
