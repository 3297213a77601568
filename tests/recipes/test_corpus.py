"""The training-data builder's pieces: prose from Debian text packages, the exclusion of
evaluation sentences, and the CTC head's word splitting and frame masking."""

import gzip
import random

import numpy as np
import torch

from recipes import corpus, sentences
from recipes.stages import grown_vocabulary, spec_augment, split_words
from tests.helpers import tiny_tokenizer
from trainer import voices

GCIDE_ENTRY = """Affect \\Af*fect"\\, v. t.
   1. To act upon; to produce an effect or change upon.
      [1913 Webster]

            The climate affected their health and spirits.
                                                  --Macaulay.
      [1913 Webster]

            He was not an ill disposed young man, and meant well
            by his sisters.                       --Jane Austen.
      [1913 Webster]

            etc., as a hammer. --Old.
      [1913 Webster]
"""


def test_gcide_quotations_are_the_indented_citations_without_excluded_authors(tmp_path, monkeypatch):
    dz = tmp_path / "gcide.dict.dz"
    with gzip.open(dz, "wt", encoding="utf-8") as f:
        f.write(GCIDE_ENTRY)
    monkeypatch.setattr(sentences, "_GCIDE", dz)
    assert sentences.gcide_quotations() == ["The climate affected their health and spirits."]


def test_wordnet_examples_are_the_quoted_usages_as_sentences(tmp_path, monkeypatch):
    (tmp_path / "data.adj").write_text(
        '00001740 00 a 01 able 0 | (usually followed by `to\') having the means; "able to swim"; '
        '"she was able to program her computer"\n  1 This line is a licence header\n', encoding="latin-1")
    monkeypatch.setattr(sentences, "_WORDNET", tmp_path)
    assert sentences.wordnet_examples() == ["She was able to program her computer."]


def test_no_built_sentence_shares_five_words_with_an_excluded_text(monkeypatch):
    monkeypatch.setattr(sentences, "prose_sentences", lambda: [])
    first = sentences.build_sentences(300, seed=3)
    banned = first[:40]
    again = sentences.build_sentences(300, seed=3, exclude=banned)
    assert len(again) == 300
    grams = set().union(*(sentences.ngrams(t) for t in banned))
    assert all(not (sentences.ngrams(s) & grams) for s in again)
    assert not set(banned) & set(again)


def test_a_second_corpus_draws_none_of_the_first_corpus_sentences(tmp_path, monkeypatch):
    monkeypatch.setattr(sentences, "prose_sentences", lambda: [f"Prose sentence number {i}." for i in range(400)])
    first = sentences.build_sentences(200, seed=0)
    manifest = tmp_path / "train.tsv"
    manifest.write_text("".join(f"a/{i}.flac\t{t}\tespeak:en\n" for i, t in enumerate(first)), encoding="utf-8")
    second = sentences.build_sentences(200, seed=0, avoid=set(corpus.manifest_texts([manifest])))
    assert len(second) == 200 and not set(first) & set(second)


def test_prose_never_holds_a_heldout_drug(monkeypatch):
    drug = sentences.HELDOUT_DRUGS[0]
    monkeypatch.setattr(sentences, "fortune_sentences", lambda: [f"The nurse gave {drug} at noon today.",
                                                                "The nurse gave aspirin at noon today."])
    monkeypatch.setattr(sentences, "gcide_quotations", lambda: [])
    monkeypatch.setattr(sentences, "wordnet_examples", lambda: [])
    assert sentences.prose_sentences() == ["The nurse gave aspirin at noon today."]


def test_the_corpus_leaves_out_rehearsal_and_manifest_sentences(tmp_path):
    manifest = tmp_path / "dev.tsv"
    manifest.write_text("a.wav\tAnd so my fellow Americans, ask not.\n", encoding="utf-8")
    texts = corpus.exclusion_texts([manifest, tmp_path / "missing.tsv"])
    assert "And so my fellow Americans, ask not." in texts
    from trainer.rehearsal import sentences as rehearsal

    assert set(rehearsal()) <= set(texts)


def test_split_words_keeps_the_text_and_uses_only_allowed_pieces():
    tok = tiny_tokenizer()
    text = "the patient said the medicine helped with the pain"
    ids = tok.encode(text, add_special_tokens=False)
    rng = random.Random(0)
    variants = [split_words(tok, ids, rng, share=1.0) for _ in range(20)]
    assert all(tok.decode(v) == tok.decode(ids) for v in variants)
    assert any(len(v) > len(ids) for v in variants)
    allowed = set(ids)
    assert split_words(tok, ids, random.Random(0), share=1.0, allowed=allowed) == \
        [t for t in split_words(tok, ids, random.Random(0), share=1.0, allowed=allowed) if t in allowed]
    vocab = grown_vocabulary([ids[0]], tok, [text])
    assert vocab[0] == ids[0] and set(ids) <= set(vocab) and len(vocab) == len(set(vocab))


def test_spec_augment_masks_inside_each_clip_and_leaves_the_input():
    frames = torch.ones(2, 600, 64)
    out = spec_augment(frames, random.Random(0), lengths=[600, 200], max_time=20, max_channels=8)
    assert torch.all(frames == 1)
    assert (out[0] == 0).any() and (out[1, :200] == 0).any()
    assert torch.all(out[1, 200:] == 1)  # past the clip's end (padding) nothing is touched
    assert (out == 0).float().mean() < 0.5


def test_the_ctc_learning_rate_warms_up_then_falls_to_its_floor_by_the_deadline():
    from recipes.stages import run_schedule

    factor = run_schedule(started=100.0, deadline=200.0, warmup=10, floor=0.1)
    assert factor(0, 100.0) == 0.1  # first step of a fresh head: a tenth of the rate
    assert factor(50, 100.0) == 1.0
    assert factor(50, 150.0) < 1.0 and abs(factor(50, 150.0) - 0.55) < 1e-9
    assert abs(factor(50, 200.0) - 0.1) < 1e-9 and abs(factor(50, 500.0) - 0.1) < 1e-9
    warm_started = run_schedule(started=100.0, deadline=200.0, warmup=10, floor=0.1, fresh_from=17374)
    assert warm_started(17374, 100.0) == 0.1 and warm_started(17383, 100.0) == 1.0  # fresh Adam warms up again
    resumed = run_schedule(started=100.0, deadline=200.0, warmup=10, floor=0.1, fresh_from=None)
    assert resumed(17374, 100.0) == 1.0  # Adam moments kept: no warm-up


def test_a_corpus_split_reads_as_an_eval_manifest(tmp_path):
    from engine.evaluate import read_manifest

    (tmp_path / "test.tsv").write_text("test/ab/x.flac\tStart the aspirin.\tespeak:en-us+m3\n", encoding="utf-8")
    [item] = read_manifest(tmp_path / "test.tsv")
    assert item.text == "Start the aspirin." and item.audio == tmp_path / "test" / "ab" / "x.flac"


def test_a_corpus_writes_its_test_manifest_before_it_speaks_the_training_clips(tmp_path, monkeypatch):
    import recipes.sentences

    monkeypatch.setattr(corpus, "all_voices", lambda: [voices.Voice("espeak", "en-us"), voices.Voice("espeak", "en+m6")])
    monkeypatch.setattr(corpus, "available", lambda voice: True)
    tone = (0.1 * np.sin(np.arange(voices.SR) / 10)).astype(np.float32)
    monkeypatch.setattr(corpus, "synthesize", lambda voice, text, rng, tmp: tone)  # the pool forks: workers see it
    monkeypatch.setattr(recipes.sentences, "build_sentences",
                        lambda n, seed=0, exclude=None, avoid=None: [f"Sentence number {i}." for i in range(n)])
    seen = []

    def progress(fraction):
        seen.append((fraction, (tmp_path / "test.tsv").is_file(), (tmp_path / "train.tsv").is_file()))

    corpus.build(tmp_path, n_train=6, n_test=2, jobs=1, progress=progress)
    assert seen[1] == (0.25, False, False) and seen[2] == (0.375, True, False)  # test split done, then train
    test = [line.split("\t") for line in (tmp_path / "test.tsv").read_text().splitlines()]
    train = [line.split("\t") for line in (tmp_path / "train.tsv").read_text().splitlines()]
    assert {v for _, _, v in test} == {"espeak:en+m6"} and {v for _, _, v in train} == {"espeak:en-us"}
    assert len(test) == 2 and len(train) == 6 and all((tmp_path / a).is_file() for a, _, _ in test + train)
    assert not list(tmp_path.glob("*.tmp"))


def test_a_stopped_corpus_lists_exactly_the_clips_it_spoke_and_speaks_no_more(tmp_path, monkeypatch):
    import recipes.sentences

    monkeypatch.setattr(corpus, "all_voices", lambda: [voices.Voice("espeak", "en-us"), voices.Voice("espeak", "en+m6")])
    monkeypatch.setattr(corpus, "available", lambda voice: True)
    tone = (0.1 * np.sin(np.arange(voices.SR) / 10)).astype(np.float32)
    monkeypatch.setattr(corpus, "synthesize", lambda voice, text, rng, tmp: tone)
    monkeypatch.setattr(recipes.sentences, "build_sentences",
                        lambda n, seed=0, exclude=None, avoid=None: [f"Sentence number {i}." for i in range(n)])
    corpus.build(tmp_path, n_train=6, n_test=2, jobs=1)
    full = (tmp_path / "train.tsv").read_text().splitlines()
    for line in full[2:5]:  # as if the build had been stopped before speaking these
        (tmp_path / line.split("\t")[0]).unlink()
    (tmp_path / "train.tsv").unlink()

    def never(*args):
        raise AssertionError("written_only must not speak")

    monkeypatch.setattr(corpus, "synthesize", never)
    corpus.build(tmp_path, n_train=6, n_test=2, jobs=1, written_only=True)
    assert (tmp_path / "train.tsv").read_text().splitlines() == full[:2] + full[5:]
    assert len((tmp_path / "test.tsv").read_text().splitlines()) == 2


def test_sentences_only_writes_the_texts_a_build_speaks_and_speaks_nothing(tmp_path, monkeypatch):
    import recipes.sentences

    monkeypatch.setattr(corpus, "all_voices", lambda: [voices.Voice("espeak", "en-us"), voices.Voice("espeak", "en+m6")])
    monkeypatch.setattr(corpus, "available", lambda voice: True)

    def never(*args):
        raise AssertionError("sentences_only must not speak")

    monkeypatch.setattr(corpus, "synthesize", never)
    monkeypatch.setattr(recipes.sentences, "build_sentences",
                        lambda n, seed=0, exclude=None, avoid=None: [f"Sentence number {i}." for i in range(n)])
    corpus.build(tmp_path / "plan", n_train=6, n_test=2, jobs=1, seed=3, sentences_only=True)
    assert not (tmp_path / "plan" / "train.tsv").exists() and not list((tmp_path / "plan").glob("*.tmp"))
    tone = (0.1 * np.sin(np.arange(voices.SR) / 10)).astype(np.float32)
    monkeypatch.setattr(corpus, "synthesize", lambda voice, text, rng, tmp: tone)
    corpus.build(tmp_path / "spoken", n_train=6, n_test=2, jobs=1, seed=3)
    for split in ("test", "train"):
        spoken = [line.split("\t")[1] for line in (tmp_path / "spoken" / f"{split}.tsv").read_text().splitlines()]
        planned = (tmp_path / "plan" / f"{split}.sentences.txt").read_text().splitlines()
        assert planned == spoken and len(planned) == (2 if split == "test" else 6)
    # a later corpus can avoid a lost one through its sentences file
    assert corpus.manifest_texts([tmp_path / "plan" / "train.sentences.txt"]) == planned
