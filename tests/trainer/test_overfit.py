"""End to end: a tiny model trained on three spoken sentences transcribes them exactly,
through the saved folder, the ONNX graph, the VAD and the CLI."""

import pytest
import torch

from app.cli import main
from engine.audio import load_audio, split_on_speech
from engine.bridge.encoder import encoder_inputs
from engine.bridge.folder import save_model
from tests.conftest import espeak
from tests.helpers import tiny_model

SENTENCES = ["hello world", "the quick brown fox", "ask not what your country can do for you"]


@pytest.mark.parametrize("bridge", ["conv", "ctc"])
def test_overfit_three_utterances_then_transcribe_exactly(tmp_path, bridge, capsys):
    wavs = [espeak(s, tmp_path / f"u{i}.wav") for i, s in enumerate(SENTENCES)]
    model = tiny_model("hubert", bridge, "gpt2", seed=0)
    # train on what the transcriber will see: the VAD's chunk of each file, through the
    # (random, frozen) encoder computed once; the bridge and the LM learn
    frames = []
    with torch.no_grad():
        for w in wavs:
            chunks = split_on_speech(load_audio(w))
            assert len(chunks) == 1
            frames.append(model.encoder(torch.from_numpy(encoder_inputs(model.config.encoder, chunks[0].audio)))[0])
    model.train()
    params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    opt = torch.optim.AdamW(params, lr=3e-3)
    for step in range(600):
        out = model.loss_from_frames(frames, SENTENCES)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        if out["ce"].item() < 0.005 and out.get("ctc", torch.zeros(())).item() < 0.5:
            break
    model.eval()
    folder = save_model(model, tmp_path / "model")

    for i, (w, s) in enumerate(zip(wavs, SENTENCES)):
        out = tmp_path / f"u{i}.json"
        assert main(["transcribe", w, "--model", str(folder), "--format", "txt", "-q"]) == 0
        assert capsys.readouterr().out.strip() == s
    assert main(["transcribe", wavs[0], "--model", str(folder), "--beam", "3", "-q"]) == 0
    assert capsys.readouterr().out.strip() == SENTENCES[0]
