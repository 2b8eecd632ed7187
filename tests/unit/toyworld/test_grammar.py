"""Tests of the toy world's grammar: sentences, translations, commands,
queries and their splits.

Authors
 * audiollm-lobes developers, 2026
"""

import collections
import random

import numpy as np
import pytest

from audiollm_lobes.toyworld import grammar, sounds, world

# ---------------------------------------------------------------------------
# Grammar: hand-worked examples
# ---------------------------------------------------------------------------

FR_EXAMPLES = [
    ("the red cat is in the kitchen", "le chat rouge est dans la cuisine"),
    (
        "the white cows are in the garden",
        "les vaches blanches sont dans le jardin",
    ),
    ("the dog sees two green balls", "le chien voit deux balles vertes"),
    ("the goat has one black book", "la chèvre a un livre noir"),
    ("the pig likes one white spoon", "le cochon aime une cuillère blanche"),
    (
        "there are three blue cups in the bathroom",
        "il y a trois tasses bleues dans la salle de bain",
    ),
    (
        "there is one brown box in the office",
        "il y a une boîte brune dans le bureau",
    ),
    (
        "the pink fox finds the yellow key in the attic",
        "le renard rose trouve la clé jaune dans le grenier",
    ),
    (
        "the green frog wants the red bag in the hallway",
        "la grenouille verte veut le sac rouge dans le couloir",
    ),
]

ZH_EXAMPLES = [
    ("the red cat is in the kitchen", "红色的猫在厨房里"),
    ("the white cows are in the garden", "白色的牛在花园里"),
    ("the dog sees two green balls", "狗看见两个绿色的球"),
    ("the goat has one black book", "山羊有一个黑色的书"),
    ("there are three blue cups in the garden", "花园里有三个蓝色的杯子"),
    (
        "there are twelve white rabbits in the garage",
        "车库里有十二只白色的兔子",
    ),
    (
        "the red cat sees the green ball in the kitchen",
        "红色的猫在厨房里看见绿色的球",
    ),
]


@pytest.mark.parametrize("english, french", FR_EXAMPLES)
def test_translate_fr_worked_examples(english, french):
    assert grammar.translate_fr(english) == french


@pytest.mark.parametrize("english, chinese", ZH_EXAMPLES)
def test_translate_zh_worked_examples(english, chinese):
    assert grammar.translate_zh(english) == chinese


def test_questions_worked_examples():
    qs = dict(
        grammar.parse_statement("the red cat is in the kitchen").questions()
    )
    assert qs["where is the cat?"] == "kitchen"
    assert qs["what color is the cat?"] == "red"
    assert qs["what is in the kitchen?"] == "cat"
    qs = dict(
        grammar.parse_statement("the dog sees two green balls").questions()
    )
    assert qs["how many balls does the dog see?"] == "two"
    assert qs["what color are the balls?"] == "green"
    assert qs["who sees the balls?"] == "dog"
    s = grammar.parse_statement("there is one pink box in the attic")
    qs = dict(s.questions())
    assert qs["how many boxes are in the attic?"] == "one"
    assert qs["where is the box?"] == "attic"
    s = grammar.parse_statement("the red cat has the green ball in the office")
    qs = dict(s.questions())
    assert qs["what does the cat have?"] == "ball"
    assert qs["what color is the ball?"] == "green"
    assert qs["where is the cat?"] == "office"


def test_parse_roundtrip_and_errors():
    rng = random.Random(1)
    for _ in range(2000):
        s = grammar.sample_statement(rng)
        assert grammar.parse_statement(s.english()) == s
    for bad in ["the red cat", "the blue unicorn is in the kitchen", ""]:
        with pytest.raises(ValueError, match="not a statement"):
            grammar.parse_statement(bad)


@pytest.mark.parametrize(
    "text, target",
    [
        (
            "turn on the lights in the kitchen",
            "intent=lights_on room=kitchen",
        ),
        ("switch off the attic lights", "intent=lights_off room=attic"),
        (
            "please set an alarm for seven thirty",
            "intent=set_alarm time=seven_thirty",
        ),
        ("wake me up at twelve", "intent=set_alarm time=twelve"),
        (
            "we need three red pens",
            "intent=add_to_list item=pen color=red count=three",
        ),
        (
            "can you put one box on the shopping list",
            "intent=add_to_list item=box count=one",
        ),
        (
            "play jazz music in the garden",
            "intent=play_music genre=jazz room=garden",
        ),
        ("the cat is hungry", "intent=feed_pet animal=cat"),
        ("shut the door to the garage", "intent=close_door room=garage"),
    ],
)
def test_command_targets(text, target):
    assert grammar.parse_command(text).target() == target


def test_unknown_command():
    with pytest.raises(ValueError, match="not a command"):
        grammar.parse_command("fly me to the moon")


def test_no_curly_braces_anywhere():
    rng = random.Random(0)
    strings = []
    for _ in range(500):
        s = grammar.sample_statement(rng)
        strings += [s.english(), s.french(), s.chinese()]
        strings += [x for qa in s.questions() for x in qa]
    for c in grammar.all_commands():
        strings += [c.text, c.target()]
    strings += [q.text + q.answer for q in grammar.all_queries()]
    strings += grammar.lexicon_strings()
    strings += [
        sounds.caption(sounds.sample_scene_events(np.random.default_rng(i)))
        for i in range(50)
    ]
    assert not any("{" in x or "}" in x for x in strings)


# ---------------------------------------------------------------------------
# Grammar: splits
# ---------------------------------------------------------------------------


def test_statement_splits_deterministic_and_disjoint():
    sizes = {"train": 3000, "valid": 200, "test": 200}
    a = grammar.split_statements(3, sizes)
    b = grammar.split_statements(3, sizes)
    c = grammar.split_statements(4, sizes)
    text = {k: [s.english() for s in v] for k, v in a.items()}
    assert text == {k: [s.english() for s in v] for k, v in b.items()}
    assert text["test"] != [s.english() for s in c["test"]]
    for split, n in sizes.items():
        assert len(set(text[split])) == n
    assert set(text["train"]).isdisjoint(text["valid"])
    assert set(text["train"]).isdisjoint(text["test"])
    assert set(text["valid"]).isdisjoint(text["test"])
    # The held-out sets do not depend on the train size.
    d = grammar.split_statements(3, dict(sizes, train=100))
    assert [s.english() for s in d["test"]] == text["test"]
    # Every kind, colour and room occurs in both train and test.
    for split in ("train", "test"):
        kinds = {s.kind for s in a[split]}
        assert kinds == set(grammar.STATEMENT_KINDS)
        assert {s.room for s in a[split] if s.room} == set(grammar.ROOMS)


def test_statement_space_is_far_larger_than_train():
    n_col, n_room = len(grammar.COLORS), len(grammar.ROOMS)
    n_an, n_ob = len(grammar.ANIMALS), len(grammar.OBJECTS)
    n_num, n_verb = len(grammar.NUMBERS), len(grammar.VERBS)
    space = (
        n_col * (n_an + n_ob) * n_room * 2  # location, singular/plural
        + n_an * n_verb * n_num * n_col * n_ob  # count
        + n_num * n_col * (n_an + n_ob) * n_room  # existence
        + n_col * n_an * n_verb * n_col * n_ob * n_room  # action
    )
    assert space > 30 * world.PROFILES["small"]["statement_pool"]


def test_command_splits_disjoint_and_balanced():
    a = grammar.split_commands(0, {"valid": 100, "test": 100})
    b = grammar.split_commands(0, {"valid": 100, "test": 100})
    assert [c.text for c in a["test"]] == [c.text for c in b["test"]]
    train = {c.text for c in a["train"]}
    assert train.isdisjoint(c.text for c in a["valid"])
    assert train.isdisjoint(c.text for c in a["test"])
    sizes = collections.Counter(c.intent for c in grammar.all_commands())
    for split in ("valid", "test"):
        counts = collections.Counter(c.intent for c in a[split])
        assert set(counts) == set(grammar.INTENTS)
        for intent, n in counts.items():
            assert n <= max(1, 0.1 * sizes[intent])
    # the first ones (synthesised in small worlds) are balanced
    first = collections.Counter(c.intent for c in a["test"][:50])
    assert set(first.values()) == {5}
    big = grammar.split_commands(0, {"valid": 300, "test": 300})
    train_counts = collections.Counter(c.intent for c in big["train"])
    for intent, n in train_counts.items():
        assert n >= 0.8 * sizes[intent]
    assert len(grammar.all_commands()) > 20 * 100


def test_query_splits_hold_out_combinations():
    s = grammar.split_queries(0)
    n_facts = sum(len(f) for f in grammar.FACTS.values())
    assert len(s["valid"]) == len(s["test"]) == n_facts
    train_text = {q.text for q in s["train"]}
    for split in ("valid", "test"):
        assert train_text.isdisjoint(q.text for q in s[split])
    # Every fact and every paraphrase still appears in train.
    facts = {(q.relation, q.subject) for q in s["train"]}
    assert len(facts) == n_facts
    paraphrases = {(q.relation, q.paraphrase) for q in s["train"]}
    assert len(paraphrases) == sum(
        len(t) for t in grammar.QUERY_TEMPLATES.values()
    )
    ex = [
        q
        for q in grammar.all_queries()
        if q.text == "what sound does a cow make"
    ]
    assert ex[0].answer == "moo"
