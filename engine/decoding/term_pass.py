"""The term pass: whole listed terms scored against the audio, put in where the audio allows.

Why: a drug name the model never learnt is heard as other words ("big summer" for
apixaban), so its first word piece is rarely likely enough for a per-token bonus
(engine.decoding.biasing) to reach it. Scored as a whole sentence, though, the term is often
nearly as likely as what the model wrote. So, after decoding:

1. spans of 1-4 draft words that sound or spell like a listed term are found through an index
   (`TermIndex`: phonetic keys, jellyfish's metaphone, and spellings, looked up by their
   letter pairs, then compared with rapidfuzz), never a scan of the whole list per word;
2. each candidate sentence (the draft with the span replaced by the term) is scored by the
   model on the same audio (teacher-forced, one decoder pass per candidate, the encoder
   output reused: `Backend.score_tokens`);
3. a term goes in where its sentence scores at most `margin` nats below the draft's. An
   everyday word ("stop", "start") must score *above* the draft by EVERYDAY_LEAD: the audio
   has to prefer it clearly. Draft words heard surely (MAX_REPLACED_CONFIDENCE, the hint
   guard's) are never replaced.

Every replacement is recorded on the result ("term-replaced" flag, `ChunkResult.replaced`:
what was there before), so the log and the editor can show it: nothing changes silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.decoding.hints import MAX_REPLACED_CONFIDENCE

# A term goes in where its sentence scores at most this many nats below the draft's (summed
# log-probs, end token included). Chosen on the bench's clips of one voice (en-gb+f2), whisper-base,
# greedy (docs/biasing.md): recall was flat from 3 to 8 with both WERs at their lowest, and
# the middle of that range is taken, since int8 scores move by up to a nat with what they are
# scored beside: at 8, "free on Sunday" -> "prednisolone" (-8.99 in one batching) got in on
# the other voice. Reported on the other voice.
DEFAULT_MARGIN = 6.0
# An everyday term must beat the draft by this much to replace anything.
EVERYDAY_LEAD = 2.0
# A span is a candidate when its phonetic key or its spelling looks like the term's this much
# (rapidfuzz ratio 0-100, spaces ignored).
MIN_SIMILARITY = 45.0  # 55: recall 68% instead of 75% on the tuning voice, general speech the same
# Spans of up to 4 words ("leave oh thy rocks" for levothyroxine) with up to 24 candidates: on
# the held-out voice 18 drug names of 28 instead of 15 (3 words, 12), general speech the same
# (docs/biasing.md, round four).
MAX_SPAN_WORDS = 4
# Candidate sentences scored per clip at most, best-looking first: the pass's cost is bounded
# whatever the list's size.
MAX_CANDIDATES = 24
FLAG = "term-replaced"

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def phonetic_key(text: str) -> str:
    """How `text` sounds, roughly: the metaphone of each word, joined (spaces ignored)."""
    import jellyfish

    return "".join(jellyfish.metaphone(w) for w in _WORD.findall(text.lower()) if w.isascii())


def spelling_key(text: str) -> str:
    return "".join(_WORD.findall(text.lower()))


def _pairs(key: str) -> set[str]:
    return {key[i:i + 2] for i in range(len(key) - 1)} or ({key} if key else set())


@dataclass
class TermIndex:
    """The terms by the letter pairs of their phonetic and spelling keys, so a span is
    compared only with terms that share some pairs with it."""
    terms: list[str]
    keys: list[tuple[str, str]] = field(default_factory=list)  # (phonetic, spelling) per term
    by_pair: dict[str, set[int]] = field(default_factory=dict)
    common: list[bool] = field(default_factory=list)  # everyday terms (EVERYDAY_LEAD applies)
    spelled: set[str] = field(default_factory=set)  # the terms' spelling keys

    @classmethod
    def build(cls, terms: list[str]) -> "TermIndex":
        from engine.decoding.biasing import everyday

        seen, kept = set(), []
        for t in terms:
            t = " ".join(t.split())
            if t and t.lower() not in seen and spelling_key(t):
                seen.add(t.lower())
                kept.append(t)
        index = cls(kept)
        for i, t in enumerate(kept):
            keys = (phonetic_key(t), spelling_key(t))
            index.keys.append(keys)
            index.common.append(everyday(t))
            index.spelled.add(keys[1])
            for p in _pairs(keys[0]) | {"~" + q for q in _pairs(keys[1])}:
                index.by_pair.setdefault(p, set()).add(i)
        return index

    def similar(self, text: str) -> list[tuple[float, int]]:
        """(similarity 0-100, term index) of the terms `text` looks or sounds like."""
        from rapidfuzz import fuzz

        sound, spell = phonetic_key(text), spelling_key(text)
        if not spell:
            return []
        near: set[int] = set()
        for p in _pairs(sound) | {"~" + q for q in _pairs(spell)}:
            near |= self.by_pair.get(p, set())
        out = []
        for i in near:
            ks, kw = self.keys[i]
            if kw == spell or not 0.5 <= len(spell) / len(kw) <= 2.0:
                continue  # the term is written already, or the span is far longer or shorter
            score = max(fuzz.ratio(sound, ks) if sound and ks else 0.0, fuzz.ratio(spell, kw))
            if score >= MIN_SIMILARITY:
                out.append((score, i))
        return out


@dataclass
class Candidate:
    """The draft's tokens [start, end) (whole words) replaced by `term`'s."""
    start: int
    end: int
    term: int
    similarity: float
    tokens: list[int]  # the replacement's tokens (with the span's leading space and trailing punctuation)


def words_of(token_texts: list[str]) -> list[tuple[int, int]]:
    """Token ranges of the draft's words: a word begins at a token with a leading space."""
    out: list[tuple[int, int]] = []
    for i, t in enumerate(token_texts):
        if not out or t[:1].isspace():
            out.append((i, i + 1))
        else:
            out[-1] = (out[-1][0], i + 1)
    return out


def likely_terms(index: TermIndex, token_texts: list[str], logprobs: list[float], limit: int) -> list[str]:
    """At most `limit` terms that look like draft words the draft was not sure of, best first
    (kept in the list's order): the terms worth a hinted second decode. None when every
    word was heard surely or none looks like a term, so that decode need not run."""
    best: dict[int, float] = {}
    for score, _, _, i, _ in _similar_spans(index, token_texts, logprobs):
        best[i] = max(best.get(i, 0.0), score)
    return [index.terms[i] for i in sorted(sorted(best, key=lambda i: (-best[i], i))[:limit])]


def _similar_spans(index: TermIndex, token_texts: list[str], logprobs: list[float]) -> list[tuple]:
    """(similarity, first token, end token, term, text) of each unsure span like a term."""
    import math

    words = words_of(token_texts)
    found = []
    for a in range(len(words)):
        for n in range(1, MAX_SPAN_WORDS + 1):
            if a + n > len(words):
                break
            s, e = words[a][0], words[a + n - 1][1]
            if math.exp(min(logprobs[s:e])) >= MAX_REPLACED_CONFIDENCE:
                continue
            text = "".join(token_texts[s:e])
            if not spelling_key(text) or any(spelling_key(w) in index.spelled for w in text.split()):
                continue  # nothing to replace, or a term written already
            for score, i in index.similar(text):
                found.append((score, s, e, i, text))
    return found


def candidates(index: TermIndex, token_texts: list[str], logprobs: list[float], encode) -> list[Candidate]:
    """Spans of 1..MAX_SPAN_WORDS words that look like a term and that the draft was not sure
    of, best-looking first, at most MAX_CANDIDATES. `encode(text)`: the model's tokens."""
    found = sorted(_similar_spans(index, token_texts, logprobs), key=lambda f: (-f[0], f[1]))
    out = []
    for score, s, e, i, text in found[:MAX_CANDIDATES]:
        lead = " " if text[:1].isspace() else ""
        tail = re.search(r"[^\w\s]*\s*$", text).group(0)
        written = index.terms[i]
        if text.strip()[:1].isupper():
            written = written[:1].upper() + written[1:]
        out.append(Candidate(s, e, i, score, encode(lead + written + tail)))
    return out


@dataclass
class Replacement:
    candidate: Candidate
    gain: float  # the candidate sentence's score minus the draft's (nats)
    logprobs: list[float]  # the model's log-probs of the replacement's tokens


def score(backend, clip, draft: list[int], cands: list[Candidate], index: TermIndex, context: str | None
          ) -> list[tuple[float, list[float]]]:
    """Per candidate: its sentence's score minus the draft's, and its per-token log-probs. All
    are scored in one pass with the clip's candidate terms in the prompt (the same prompt for
    the draft, so the sums compare)."""
    seqs = [list(draft)] + [splice(draft, [Replacement(c, 0.0, [])], lambda r: r.candidate.tokens) for c in cands]
    hints = [index.terms[t] for t in sorted({c.term for c in cands})]
    lps = backend.score_tokens(clip, seqs, context, hints)
    return [(total - lps[0][0], lp) for total, lp in lps[1:]]


def choose(index: TermIndex, cands: list[Candidate], scores: list[tuple[float, list[float]]],
           margin: float = DEFAULT_MARGIN) -> list[Replacement]:
    """The candidates to put in, given each one's gain over the draft and per-token log-probs
    (`score`): those within `margin` of the draft (everyday terms: EVERYDAY_LEAD above it),
    best gain first, no two overlapping."""
    ok = []
    for c, (gain, lp) in zip(cands, scores):
        if gain >= (EVERYDAY_LEAD if index.common[c.term] else -margin):
            ok.append(Replacement(c, gain, lp[c.start:c.start + len(c.tokens)]))
    ok.sort(key=lambda r: (-r.gain, -r.candidate.similarity))
    taken: list[Replacement] = []
    for r in ok:
        if all(r.candidate.end <= t.candidate.start or r.candidate.start >= t.candidate.end for t in taken):
            taken.append(r)
    return sorted(taken, key=lambda r: r.candidate.start)


def splice(tokens: list, new: list[Replacement], pick) -> list:
    """`tokens` (or any per-token list) with each replacement's span replaced by `pick(r)`."""
    out, at = [], 0
    for r in new:
        out += tokens[at:r.candidate.start] + list(pick(r))
        at = r.candidate.end
    return out + tokens[at:]


def improve(result, clip, index: TermIndex, backend, context: str | None = None,
            margin: float = DEFAULT_MARGIN):
    """`result` (an engine.backend.ChunkResult) with the terms the audio allows put in, or
    `result` itself. `backend` gives `term_tokens`, `score_tokens` and `decode_tokens`."""
    import dataclasses

    if not result.tokens or len(result.token_texts) != len(result.tokens):
        return result
    cut = _span_edges(result)
    cands = [c for c in candidates(index, result.token_texts, result.logprobs, backend.term_tokens)
             if c.tokens and not any(c.start < k < c.end for k in cut) and not _beside_itself(index, result, c)]
    if not cands:
        return result
    new = choose(index, cands, score(backend, clip, result.tokens, cands, index, context), margin)
    if not new:
        return result
    tokens = splice(result.tokens, new, lambda r: r.candidate.tokens)
    texts = splice(result.token_texts, new, lambda r: [backend.decode_tokens([t]) for t in r.candidate.tokens])
    logprobs = splice(result.logprobs, new, lambda r: r.logprobs)
    said = "; ".join(f"{''.join(result.token_texts[r.candidate.start:r.candidate.end]).strip()} -> "
                     f"{index.terms[r.candidate.term]}" for r in new)
    return dataclasses.replace(
        result, text=backend.decode_tokens(tokens).strip(), tokens=tokens, token_texts=texts, logprobs=logprobs,
        flags=result.flags + [FLAG], spans=_respliced(result, new, tokens, texts, logprobs, backend),
        replaced="; ".join(x for x in (result.replaced, said) if x))


def _beside_itself(index: TermIndex, result, c: Candidate) -> bool:
    """The term is the word just before or after the span: writing it again would make a
    loop ("atorvastatin atorvastatin"), never a fix."""
    words = words_of(result.token_texts)
    before = [w for w in words if w[1] <= c.start][-1:]
    after = [w for w in words if w[0] >= c.end][:1]
    return any(spelling_key("".join(result.token_texts[a:b])) == index.keys[c.term][1] for a, b in before + after)


def _span_edges(result) -> set[int]:
    """Token positions where one of the result's timed spans ends and the next begins."""
    edges, at = set(), 0
    for sp in result.spans:
        at += len(sp.token_texts)
        edges.add(at)
    return edges


def _respliced(result, new: list[Replacement], tokens: list[int], texts: list[str], logprobs: list[float],
               backend) -> list:
    """The result's timed spans over the new tokens (no replacement crosses a span's edge)."""
    import dataclasses

    if sum(len(sp.token_texts) for sp in result.spans) != len(result.tokens):
        return [] if result.spans else result.spans
    out, at, shift = [], 0, 0
    for sp in result.spans:
        end = at + len(sp.token_texts)
        grown = sum(len(r.candidate.tokens) - (r.candidate.end - r.candidate.start) for r in new
                    if at <= r.candidate.start < end)
        a, b = at + shift, end + shift + grown
        out.append(dataclasses.replace(sp, text=backend.decode_tokens(tokens[a:b]).strip(), token_texts=texts[a:b],
                                       logprobs=logprobs[a:b]))
        at, shift = end, shift + grown
    return out
