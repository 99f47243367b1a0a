"""The estimator: sklearn conformance, thresholds, explanations, the keyword baseline.

Trained on a small slice of the shipped corpus so the module stays quick.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from classifiers.corpus import Example, label_matrix, load_corpus, split_dev
from classifiers.evaluation import evaluate, score_predictions
from classifiers.explain import attribute, top_words
from classifiers.features import TextFeaturizer, analyse
from classifiers.keywords import CueMatcher, KeywordBaseline, taxonomy_lexicon
from classifiers.model import FrameClassifier, tune_threshold
from classifiers.taxonomy import load_taxonomy
from classifiers.text import clean_text, tokens
from classifiers.training import build_classifier, predictor

TAXONOMY = load_taxonomy()


def _slice(examples: list[Example], per_frame: int = 60, none: int = 150) -> list[Example]:
    """A small but balanced subset: the first examples of each frame plus some no-frame ones."""
    chosen: dict[int, Example] = {}
    for fid in TAXONOMY.ids:
        picked = [i for i, e in enumerate(examples) if fid in e.frames][:per_frame]
        chosen.update((i, examples[i]) for i in picked)
    chosen.update((i, e) for i, e in [(i, e) for i, e in enumerate(examples) if not e.frames][:none])
    return [chosen[i] for i in sorted(chosen)]


@pytest.fixture(scope="module")
def data() -> tuple[list[Example], list[Example]]:
    train, dev = split_dev(load_corpus(TAXONOMY))
    return _slice(train), dev


@pytest.fixture(scope="module")
def model(data: tuple[list[Example], list[Example]]) -> FrameClassifier:
    train, _ = data
    clf = build_classifier(TAXONOMY).set_params(threshold_folds=3)
    return clf.fit([e.text for e in train], label_matrix(train, TAXONOMY.ids))


def test_estimator_is_clone_able_and_reports_unfitted() -> None:
    clf = build_classifier(TAXONOMY)
    copy = clone(clf)
    assert copy.get_params()["frame_ids"] == TAXONOMY.ids
    assert copy.get_params()["featurizer__char_ngram_range"] == clf.featurizer.char_ngram_range
    copy.set_params(threshold_beta=0.5, featurizer__min_df=1)
    assert copy.threshold_beta == 0.5 and copy.featurizer.min_df == 1 and clf.featurizer.min_df != 1
    with pytest.raises(NotFittedError):
        check_is_fitted(copy)
    with pytest.raises(NotFittedError):
        copy.predict(["text"])


def test_fit_clones_its_parameters(model: FrameClassifier) -> None:
    check_is_fitted(model)
    assert model.featurizer_ is not model.featurizer
    with pytest.raises(NotFittedError):
        check_is_fitted(model.featurizer)
    assert list(model.classes_) == list(TAXONOMY.ids)


def test_predictions_have_one_column_per_frame_and_valid_probabilities(
    model: FrameClassifier, data: tuple[list[Example], list[Example]]
) -> None:
    _, dev = data
    texts = [e.text for e in dev[:40]]
    proba = model.predict_proba(texts)
    assert proba.shape == (40, len(TAXONOMY.ids))
    assert ((proba >= 0) & (proba <= 1)).all()
    predicted = model.predict(texts)
    np.testing.assert_array_equal(predicted, (proba >= model.thresholds_).astype(np.int8))
    assert model.predict_proba([]).shape == (0, len(TAXONOMY.ids))


def test_zero_frames_are_allowed(model: FrameClassifier, data: tuple[list[Example], list[Example]]) -> None:
    _, dev = data
    neutral = [e.text for e in dev if not e.frames]
    rows = model.predict([*neutral, "Погода в Києві: завтра до +18, без опадів."])
    assert (rows.sum(axis=1) == 0).sum() >= len(rows) // 2
    assert ((model.thresholds_ > 0.05) & (model.thresholds_ < 0.95)).all()


def test_slice_model_beats_keywords_on_the_dev_split(
    model: FrameClassifier, data: tuple[list[Example], list[Example]]
) -> None:
    _, dev = data
    learned = evaluate(predictor(model), dev, TAXONOMY.ids, model_version="slice")
    keywords = evaluate(KeywordBaseline(TAXONOMY).predict_frames, dev, TAXONOMY.ids, model_version="kw")
    assert learned.macro_f1 > 0.6
    assert learned.macro_f1 > keywords.macro_f1


def test_explanations_quote_words_of_that_text(
    model: FrameClassifier, data: tuple[list[Example], list[Example]]
) -> None:
    _, dev = data
    checked = 0
    for ex in dev[:60]:
        hits = np.flatnonzero(model.predict([ex.text])[0])
        evidence = model.evidence(ex.text, hits.tolist(), top=5)
        for k in hits:
            assert evidence[k], (ex.text, k)
            for word in evidence[k]:
                assert word in clean_text(ex.text)
            checked += 1
    assert checked >= 10


def test_explanation_contributions_add_up_to_the_linear_score(model: FrameClassifier) -> None:
    text = "Партизаны из «Легиона Свобода России» заявили, что перешли границу Белгородской области 22 мая."
    (cleaned, toks), *_ = analyse([text])
    x = model.transform_texts([text])
    weights = [model.frame_weights(k) for k in range(len(TAXONOMY.ids))]
    words, contribution = attribute(model.featurizer_, cleaned, toks, x, weights)
    assert words and all(word in text for word in words)
    assert len(set(words)) == len(words)
    # Each frame's linear score is split over the words exactly: nothing hidden, nothing counted twice.
    for k, w in enumerate(weights):
        assert contribution[:, k].sum() == pytest.approx(float((x @ w)[0]))
    assert top_words(words, contribution[:, 0], 3) == tuple(
        words[i] for i in np.argsort(-contribution[:, 0])[:3] if contribution[i, 0] > 0
    )


def test_batch_explanations_rank_words_as_the_exact_attribution_does(
    model: FrameClassifier, data: tuple[list[Example], list[Example]]
) -> None:
    """The batch path (each document's slice, one lookup table reused across documents) against the
    one-text attribution whose contributions add up to the linear score (the test above)."""
    _, dev = data
    texts = [e.text for e in dev[:80]]
    analysed = analyse(texts)
    e = model.entries(analysed)
    weights = [model.frame_weights(k) for k in range(len(TAXONOMY.ids))]
    wanted = np.ones((len(texts), len(weights)), dtype=bool)
    wanted[::3] = False  # documents left unexplained in between
    wanted[1::3, ::2] = False
    batch = model.evidence_batch(analysed, e, model.transform_entries(e), wanted, 5)
    for i, (cleaned, toks) in enumerate(analysed):
        x = model.transform_texts([texts[i]])
        words, contribution = attribute(model.featurizer_, cleaned, toks, x, weights)
        for k in range(len(weights)):
            assert batch[i].get(k) == (top_words(words, contribution[:, k], 5) if wanted[i, k] else None), (i, k)


def test_tune_threshold_finds_the_separating_cut() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.55, 0.7, 0.9])
    truth = np.array([0, 0, 0, 1, 1, 1])
    t = tune_threshold(scores, truth, bounds=(0.05, 0.95))
    assert 0.3 < t <= 0.55
    # Bounds stop a degenerate tiny threshold even when everything is positive.
    assert tune_threshold(scores, np.ones(6, dtype=int), bounds=(0.2, 0.9)) >= 0.2


def test_fit_rejects_a_frame_with_one_class() -> None:
    y = np.zeros((10, 2), dtype=int)
    y[:5, 0] = 1
    clf = FrameClassifier(TextFeaturizer(min_df=1), frame_ids=("a", "b"))
    with pytest.raises(ValueError, match="frame 'b' has 0 positive"):
        clf.fit([f"text number {i}" for i in range(10)], y)
    with pytest.raises(ValueError, match="sequence of texts"):
        clf.fit("one string", y)


def test_cue_matcher_matches_stems_and_phrases() -> None:
    matcher = CueMatcher((("proxy", ("collective west", "НАТО")), ("resistance", ("партизан",)), ("none", ("zzz",))))
    toks = tokens("Коллективный Запад? Нет: партизаны и партизанские отряды, collective Western-backed НАТО.")
    assert matcher.counts(toks).tolist() == [2.0, 2.0, 0.0]
    assert tokens("x") and matcher.counts([]).tolist() == [0.0, 0.0, 0.0]


def test_keyword_baseline_uses_taxonomy_cues() -> None:
    baseline = KeywordBaseline(TAXONOMY)
    out = baseline.predict_frames(["Партизаны сожгли релейный шкаф.", "Погода завтра солнечная."])
    assert "internal_resistance" in out[0] and out[1] == ()
    assert len(taxonomy_lexicon(TAXONOMY)) == len(TAXONOMY.ids)


def test_score_predictions_contract_numbers() -> None:
    truth = [("a",), ("a", "b"), (), ()]
    predicted = [("a",), ("b",), ("a",), ()]
    report = score_predictions(truth, predicted, ["a", "b", "c"], model_version="v")
    assert report.per_frame["a"].precision == 0.5 and report.per_frame["a"].recall == 0.5
    assert report.per_frame["b"].f1 == 1.0 and report.per_frame["c"].support == 0
    assert report.macro_f1 == pytest.approx(0.75)  # c: never labelled nor predicted, so not averaged
    assert report.micro_f1 == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))
    assert report.none_fpr == 0.5
    assert set(report.to_json()) == {"macro_f1", "micro_f1", "none_fpr", "per_frame", "model_version"}


@pytest.mark.parametrize(
    "text",
    [
        "Foo-bar said foo twice; FOO then.",
        "Об'єкт і об’єкт, ЁЛКА и елка",
        "x_foo foo_x foo",
        "İstanbul talks: İSTANBUL again",  # case folding changes the length
        "Unit 2024 and unit 17 left",  # digits collapse to 0 in tokens
        "-edge- 'quote' don't don`t",
    ],
)
def test_explanations_quote_each_word_as_written_at_its_first_occurrence(text: str) -> None:
    """The quick str.find lookup of a word's surface agrees with walking the tokeniser's own spans."""
    _assert_surfaces_follow_the_tokeniser(*analyse([text])[0])


def test_surface_lookup_agrees_with_the_tokeniser_on_the_corpus() -> None:
    for cleaned, toks in analyse([e.text for e in load_corpus(TAXONOMY)][::7]):
        _assert_surfaces_follow_the_tokeniser(cleaned, toks)


def _assert_surfaces_follow_the_tokeniser(cleaned: str, toks: list[str]) -> None:
    from classifiers.explain import _Surfaces
    from classifiers.text import word_spans

    order = list(dict.fromkeys(toks))
    spans = list(word_spans(cleaned))
    words = _Surfaces(cleaned, toks, order)
    for i, tok in enumerate(order):
        first = toks.index(tok)
        # Past the tokeniser's spans (case folding split a letter in two), the token itself is quoted.
        expected = cleaned[slice(*spans[first])] if first < len(spans) else tok
        assert words[i] == expected, (tok, cleaned[:80])


def test_hashed_columns_agree_with_sklearns_feature_hasher() -> None:
    # The featurizer hashes word n-grams itself (faster than building FeatureHasher's matrix); models
    # trained with either must see the same columns.
    from sklearn.feature_extraction import FeatureHasher

    from classifiers.features import WORD_SPACE, hashed_columns

    rng = np.random.default_rng(7)
    alphabet = [*"abcxyz абвгдеёжзюя іїєґ'’-0123456789⚡️🇺🇦", "", "\u200b"]
    strings = ["", " ", "war", "військові дії", "шойгу герасимов"]
    strings += ["".join(rng.choice(alphabet, size=rng.integers(1, 30))) for _ in range(3000)]
    hasher = FeatureHasher(WORD_SPACE, input_type="string", alternate_sign=False)
    expected = hasher.transform([[s] for s in strings]).indices
    assert np.array_equal(hashed_columns(strings, WORD_SPACE), expected)


def test_l2_rows_normalises_in_place_and_leaves_empty_rows_empty() -> None:
    import scipy.sparse as sp
    from sklearn.preprocessing import normalize

    from classifiers.features import _l2_rows

    x = sp.random(40, 300, density=0.05, format="csr", random_state=3)
    x = sp.vstack([x, sp.csr_matrix((3, 300)), x[:5]], format="csr")  # empty rows in the middle
    expected = normalize(x, norm="l2")
    got = _l2_rows(x.copy())
    assert got.has_sorted_indices and np.allclose(got.toarray(), expected.toarray(), rtol=0, atol=1e-15)
