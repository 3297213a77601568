"""The speaker projection's training speakers never include a speaker the bench uses."""

from __future__ import annotations

import numpy as np

from recipes.speaker_projection import fit, held_out_accent, project, training_clips


def test_training_speakers_are_disjoint_from_the_bench(tmp_path):
    accent, ocean, bench = tmp_path / "accent", tmp_path / "ocean", tmp_path / "bench"
    names = [f"english{i}" for i in range(12)]
    accent.mkdir()
    (accent / "clips.tsv").write_text("".join(f"wav/{n}.wav\tplease call stella\t{n}\tnative\n" for n in names))
    ocean.mkdir()
    (ocean / "clips.tsv").write_text("".join(f"wav/{s}{k}.wav\tbear\t{split}-{s}\tnon-native\n"
                                             for s, split in (("0001", "train"), ("0002", "test"), ("0003", "train"))
                                             for k in range(25)))
    (bench / "WAVE" / "SPEAKER0002").mkdir(parents=True)

    clips = training_clips(accent, ocean, bench)
    speakers = {s for _, s in clips}
    held = held_out_accent(names)
    assert held == {"english0", "english3", "english8"}  # every fifth of the sorted names
    assert not any(f"accent_archive/{n}" in speakers for n in held)
    assert {s for s in speakers if s.startswith("accent_archive/")} == {f"accent_archive/{n}" for n in set(names) - held}
    assert {s for s in speakers if s.startswith("speechocean762/")} == {"speechocean762/0001", "speechocean762/0003"}
    assert sum(s == "speechocean762/0001" for _, s in clips) == 20  # at most 20 clips per speaker


def test_the_projection_pulls_one_speakers_windows_together():
    rng = np.random.default_rng(0)
    centres = np.concatenate([np.zeros((6, 8)), rng.standard_normal((6, 8))], axis=1)  # voices differ in 8 dims
    speakers = np.repeat(np.arange(6), 40)
    nuisance = np.concatenate([np.full(8, 3.0), np.full(8, 0.3)])  # the room and the words vary in the other 8
    emb = centres[speakers] + rng.standard_normal((240, 16)) * nuisance
    mean, matrix = fit(emb, speakers, dims=5)
    x = project(emb, mean, matrix)
    assert x.shape == (240, 5) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)

    def separation(v):
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        sims = v @ v.T
        same = speakers[:, None] == speakers[None, :]
        return sims[same].mean() - sims[~same].mean()
    assert separation(x) > 2 * separation(emb)
