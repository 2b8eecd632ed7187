"""The toy world's language: statements, translations, questions, commands
and a small knowledge base of spoken queries.

Everything here is deterministic and compositional, so that a tiny LM can
learn the rules from text and apply them to sentences it has never seen.

*Statements* come in four kinds:

- ``location``: "the red cat is in the kitchen" / "the red cats are in ..."
- ``count``: "the dog sees two green balls"
- ``existence``: "there are three blue cups in the garden"
- ``action``: "the red cat sees the green ball in the kitchen"

French: adjective after the noun, article and adjective agree in gender
and number, plural with ``-s`` (English plurals are irregular in places,
the French ones are all regular here). Chinese: ``<colour>的<noun>``,
locations as ``在<room>里`` before the verb, existence as
``<room>里有...``, counts with the measure word 只 (animals) or 个
(objects) and 两 for two.

*Commands* ("turn on the lights in the kitchen") map to SLU targets
``intent=lights_on room=kitchen``. *Queries* ("what sound does a cow make")
ask about a fixed knowledge base and have short answers ("moo").

No string here holds curly braces: SpeechBrain formats manifest strings
with ``str.format_map``.

Authors
 * audiollm-lobes developers, 2026
"""

import itertools
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

SPLITS = ("train", "valid", "test")

# ---------------------------------------------------------------------------
# Lexicon
# ---------------------------------------------------------------------------

#: English colour -> (French masculine, French feminine, Chinese).
COLORS = {
    "red": ("rouge", "rouge", "红色"),
    "blue": ("bleu", "bleue", "蓝色"),
    "green": ("vert", "verte", "绿色"),
    "yellow": ("jaune", "jaune", "黄色"),
    "black": ("noir", "noire", "黑色"),
    "white": ("blanc", "blanche", "白色"),
    "brown": ("brun", "brune", "棕色"),
    "pink": ("rose", "rose", "粉色"),
}


@dataclass(frozen=True)
class Noun:
    """A countable noun of the lexicon.

    Arguments
    ---------
    en : str
        English singular.
    en_plural : str
        English plural.
    fr : str
        French singular (plural is ``fr + "s"``).
    gender : str
        French gender, ``"m"`` or ``"f"``.
    zh : str
        Chinese noun.
    measure : str
        Chinese measure word used when counting.

    Example
    -------
    >>> NOUNS["box"].en_plural
    'boxes'
    """

    en: str
    en_plural: str
    fr: str
    gender: str
    zh: str
    measure: str

    @property
    def fr_plural(self):
        """French plural (regular ``-s``)."""
        return self.fr + "s"


def _animal(en, fr, gender, zh, en_plural=None):
    return Noun(en, en_plural or en + "s", fr, gender, zh, "只")


def _object(en, fr, gender, zh, en_plural=None):
    return Noun(en, en_plural or en + "s", fr, gender, zh, "个")


ANIMALS = {
    n.en: n
    for n in [
        _animal("cat", "chat", "m", "猫"),
        _animal("dog", "chien", "m", "狗"),
        _animal("duck", "canard", "m", "鸭子"),
        _animal("cow", "vache", "f", "牛"),
        _animal("pig", "cochon", "m", "猪"),
        _animal("frog", "grenouille", "f", "青蛙"),
        _animal("rabbit", "lapin", "m", "兔子"),
        _animal("fox", "renard", "m", "狐狸", "foxes"),
        _animal("goat", "chèvre", "f", "山羊"),
        _animal("tiger", "tigre", "m", "老虎"),
    ]
}

OBJECTS = {
    n.en: n
    for n in [
        _object("ball", "balle", "f", "球"),
        _object("cup", "tasse", "f", "杯子"),
        _object("book", "livre", "m", "书"),
        _object("box", "boîte", "f", "盒子", "boxes"),
        _object("chair", "chaise", "f", "椅子"),
        _object("lamp", "lampe", "f", "灯"),
        _object("key", "clé", "f", "钥匙"),
        _object("pen", "stylo", "m", "笔"),
        _object("bag", "sac", "m", "包"),
        _object("spoon", "cuillère", "f", "勺子"),
    ]
}

#: All nouns by English singular.
NOUNS = {**ANIMALS, **OBJECTS}
_PLURALS = {n.en_plural: n for n in NOUNS.values()}

#: English room -> (French, gender, Chinese).
ROOMS = {
    "kitchen": ("cuisine", "f", "厨房"),
    "garden": ("jardin", "m", "花园"),
    "bedroom": ("chambre", "f", "卧室"),
    "bathroom": ("salle de bain", "f", "浴室"),
    "office": ("bureau", "m", "办公室"),
    "garage": ("garage", "m", "车库"),
    "hallway": ("couloir", "m", "走廊"),
    "attic": ("grenier", "m", "阁楼"),
}

#: English number -> (French masculine, French feminine, Chinese count).
NUMBERS = {
    "one": ("un", "une", "一"),
    "two": ("deux", "deux", "两"),
    "three": ("trois", "trois", "三"),
    "four": ("quatre", "quatre", "四"),
    "five": ("cinq", "cinq", "五"),
    "six": ("six", "six", "六"),
    "seven": ("sept", "sept", "七"),
    "eight": ("huit", "huit", "八"),
    "nine": ("neuf", "neuf", "九"),
    "ten": ("dix", "dix", "十"),
    "eleven": ("onze", "onze", "十一"),
    "twelve": ("douze", "douze", "十二"),
}

#: English verb (third person) -> (English base form, French, Chinese).
VERBS = {
    "sees": ("see", "voit", "看见"),
    "has": ("have", "a", "有"),
    "wants": ("want", "veut", "想要"),
    "likes": ("like", "aime", "喜欢"),
    "finds": ("find", "trouve", "找到"),
}

STATEMENT_KINDS = ("location", "count", "existence", "action")


# ---------------------------------------------------------------------------
# Statements
# ---------------------------------------------------------------------------


def _fr_article(gender, plural):
    if plural:
        return "les"
    return "le" if gender == "m" else "la"


def _fr_adjective(color, gender, plural):
    word = COLORS[color][0 if gender == "m" else 1]
    return word + "s" if plural else word


def _fr_room(room):
    fr, gender, _ = ROOMS[room]
    return f"dans {_fr_article(gender, False)} {fr}"


def _fr_number(number, gender):
    return NUMBERS[number][0 if gender == "m" else 1]


def _en_noun(noun, plural):
    return NOUNS[noun].en_plural if plural else noun


def _fr_noun(noun, plural):
    return NOUNS[noun].fr_plural if plural else NOUNS[noun].fr


@dataclass(frozen=True)
class Statement:
    """One statement of the grammar, with its realisations and questions.

    Unused fields are ``None``; which fields a kind uses is documented in
    the module docstring.

    Arguments
    ---------
    kind : str
        One of ``STATEMENT_KINDS``.
    subject : str
        English singular of the subject noun.
    color : str, optional
        Colour of the subject (``location``, ``existence``, ``action``) or
        of the object (``count``).
    room : str, optional
        Room (``location``, ``existence``, ``action``).
    plural : bool
        Plural subject (``location`` only).
    number : str, optional
        Count word (``count``, ``existence``).
    verb : str, optional
        Third-person verb (``count``, ``action``).
    obj : str, optional
        English singular of the object noun (``count``, ``action``).
    color2 : str, optional
        Colour of the object (``action``).

    Example
    -------
    >>> s = Statement("location", "cat", color="red", room="kitchen")
    >>> s.english()
    'the red cat is in the kitchen'
    >>> s.french()
    'le chat rouge est dans la cuisine'
    >>> s.chinese()
    '红色的猫在厨房里'
    """

    kind: str
    subject: str
    color: Optional[str] = None
    room: Optional[str] = None
    plural: bool = False
    number: Optional[str] = None
    verb: Optional[str] = None
    obj: Optional[str] = None
    color2: Optional[str] = None

    def english(self):
        """Returns the English sentence (lowercase, no punctuation).

        Returns
        -------
        str
            The sentence.

        Example
        -------
        >>> Statement("count", "dog", color="green", number="two",
        ...           verb="sees", obj="ball").english()
        'the dog sees two green balls'
        """
        k = self.kind
        if k == "location":
            noun = _en_noun(self.subject, self.plural)
            be = "are" if self.plural else "is"
            return f"the {self.color} {noun} {be} in the {self.room}"
        if k == "count":
            obj = _en_noun(self.obj, self.number != "one")
            return (
                f"the {self.subject} {self.verb} {self.number} "
                f"{self.color} {obj}"
            )
        if k == "existence":
            plural = self.number != "one"
            be = "are" if plural else "is"
            noun = _en_noun(self.subject, plural)
            return (
                f"there {be} {self.number} {self.color} {noun} "
                f"in the {self.room}"
            )
        return (
            f"the {self.color} {self.subject} {self.verb} the "
            f"{self.color2} {self.obj} in the {self.room}"
        )

    def french(self):
        """Returns the French translation.

        Returns
        -------
        str
            The translation.

        Example
        -------
        >>> Statement("existence", "cup", color="white", room="garden",
        ...           number="three").french()
        'il y a trois tasses blanches dans le jardin'
        """
        k = self.kind
        if k == "location":
            g = NOUNS[self.subject].gender
            p = self.plural
            be = "sont" if p else "est"
            return (
                f"{_fr_article(g, p)} {_fr_noun(self.subject, p)} "
                f"{_fr_adjective(self.color, g, p)} {be} "
                f"{_fr_room(self.room)}"
            )
        if k == "count":
            sg = ANIMALS[self.subject].gender
            og = OBJECTS[self.obj].gender
            p = self.number != "one"
            return (
                f"{_fr_article(sg, False)} {ANIMALS[self.subject].fr} "
                f"{VERBS[self.verb][1]} {_fr_number(self.number, og)} "
                f"{_fr_noun(self.obj, p)} {_fr_adjective(self.color, og, p)}"
            )
        if k == "existence":
            g = NOUNS[self.subject].gender
            p = self.number != "one"
            return (
                f"il y a {_fr_number(self.number, g)} "
                f"{_fr_noun(self.subject, p)} "
                f"{_fr_adjective(self.color, g, p)} {_fr_room(self.room)}"
            )
        sg = ANIMALS[self.subject].gender
        og = OBJECTS[self.obj].gender
        return (
            f"{_fr_article(sg, False)} {ANIMALS[self.subject].fr} "
            f"{_fr_adjective(self.color, sg, False)} {VERBS[self.verb][1]} "
            f"{_fr_article(og, False)} {OBJECTS[self.obj].fr} "
            f"{_fr_adjective(self.color2, og, False)} {_fr_room(self.room)}"
        )

    def chinese(self):
        """Returns the Chinese translation (no spaces).

        Returns
        -------
        str
            The translation.

        Example
        -------
        >>> Statement("action", "cat", color="red", room="kitchen",
        ...           verb="sees", obj="ball", color2="green").chinese()
        '红色的猫在厨房里看见绿色的球'
        """
        k = self.kind
        room = ROOMS[self.room][2] if self.room else None
        if k == "location":
            return (
                f"{COLORS[self.color][2]}的{NOUNS[self.subject].zh}在{room}里"
            )
        if k == "count":
            o = OBJECTS[self.obj]
            return (
                f"{ANIMALS[self.subject].zh}{VERBS[self.verb][2]}"
                f"{NUMBERS[self.number][2]}{o.measure}"
                f"{COLORS[self.color][2]}的{o.zh}"
            )
        if k == "existence":
            n = NOUNS[self.subject]
            return (
                f"{room}里有{NUMBERS[self.number][2]}{n.measure}"
                f"{COLORS[self.color][2]}的{n.zh}"
            )
        return (
            f"{COLORS[self.color][2]}的{ANIMALS[self.subject].zh}在{room}里"
            f"{VERBS[self.verb][2]}{COLORS[self.color2][2]}的"
            f"{OBJECTS[self.obj].zh}"
        )

    def questions(self):
        """Returns the spoken-QA questions about the statement.

        Returns
        -------
        list of tuple
            ``(question, answer)`` pairs; answers are one word.

        Example
        -------
        >>> s = Statement("count", "dog", color="green", number="two",
        ...               verb="sees", obj="ball")
        >>> s.questions()[0]
        ('how many balls does the dog see?', 'two')
        """
        k = self.kind
        if k == "location":
            p = self.plural
            noun = _en_noun(self.subject, p)
            be = "are" if p else "is"
            out = [
                (f"where {be} the {noun}?", self.room),
                (f"what color {be} the {noun}?", self.color),
            ]
            if not p:
                out.append((f"what is in the {self.room}?", self.subject))
            return out
        if k == "count":
            p = self.number != "one"
            obj = _en_noun(self.obj, p)
            be = "are" if p else "is"
            base = VERBS[self.verb][0]
            plural_obj = OBJECTS[self.obj].en_plural
            return [
                (
                    f"how many {plural_obj} does the {self.subject} {base}?",
                    self.number,
                ),
                (f"what color {be} the {obj}?", self.color),
                (f"who {self.verb} the {obj}?", self.subject),
                (f"what does the {self.subject} {base}?", obj),
            ]
        if k == "existence":
            p = self.number != "one"
            noun = _en_noun(self.subject, p)
            be = "are" if p else "is"
            plural_noun = NOUNS[self.subject].en_plural
            return [
                (
                    f"how many {plural_noun} are in the {self.room}?",
                    self.number,
                ),
                (f"where {be} the {noun}?", self.room),
                (f"what color {be} the {noun}?", self.color),
            ]
        base = VERBS[self.verb][0]
        return [
            (f"where is the {self.subject}?", self.room),
            (f"what color is the {self.subject}?", self.color),
            (f"what color is the {self.obj}?", self.color2),
            (f"what does the {self.subject} {base}?", self.obj),
            (f"who {self.verb} the {self.obj}?", self.subject),
        ]


def sample_statement(rng, kind=None):
    """Draws one statement uniformly within a (uniformly drawn) kind.

    Arguments
    ---------
    rng : random.Random
        Random generator.
    kind : str, optional
        Force a kind from ``STATEMENT_KINDS``.

    Returns
    -------
    Statement
        The statement.

    Example
    -------
    >>> s = sample_statement(random.Random(0), kind="action")
    >>> s.kind
    'action'
    """
    kind = kind or rng.choice(STATEMENT_KINDS)
    color = rng.choice(list(COLORS))
    if kind == "location":
        return Statement(
            kind,
            rng.choice(list(NOUNS)),
            color=color,
            room=rng.choice(list(ROOMS)),
            plural=rng.random() < 0.5,
        )
    if kind == "count":
        return Statement(
            kind,
            rng.choice(list(ANIMALS)),
            color=color,
            number=rng.choice(list(NUMBERS)),
            verb=rng.choice(list(VERBS)),
            obj=rng.choice(list(OBJECTS)),
        )
    if kind == "existence":
        return Statement(
            kind,
            rng.choice(list(NOUNS)),
            color=color,
            room=rng.choice(list(ROOMS)),
            number=rng.choice(list(NUMBERS)),
        )
    if kind == "action":
        return Statement(
            kind,
            rng.choice(list(ANIMALS)),
            color=color,
            room=rng.choice(list(ROOMS)),
            verb=rng.choice(list(VERBS)),
            obj=rng.choice(list(OBJECTS)),
            color2=rng.choice(list(COLORS)),
        )
    raise ValueError(
        f"unknown statement kind {kind!r}; expected one of {STATEMENT_KINDS}"
    )


def _expect(ok, sentence):
    if not ok:
        raise ValueError(
            f"not a statement of the toy grammar: {sentence!r}; expected e.g. "
            "'the red cat is in the kitchen', 'the dog sees two green balls', "
            "'there are three blue cups in the garden' or "
            "'the red cat sees the green ball in the kitchen'"
        )


def parse_statement(sentence):
    """Parses an English statement of the grammar.

    Arguments
    ---------
    sentence : str
        A sentence as produced by ``Statement.english``.

    Returns
    -------
    Statement
        The parsed statement.

    Raises
    ------
    ValueError
        If the sentence is not in the grammar.

    Example
    -------
    >>> parse_statement("there is one pink key in the attic").number
    'one'
    """
    w = sentence.strip().lower().split()
    try:
        if w and w[0] == "there":
            _expect(len(w) == 8 and w[5:7] == ["in", "the"], sentence)
            number, color, noun_word, room = w[2], w[3], w[4], w[7]
            plural = number != "one"
            noun = _PLURALS[noun_word].en if plural else NOUNS[noun_word].en
            _expect(w[1] == ("are" if plural else "is"), sentence)
            _expect(number in NUMBERS and color in COLORS, sentence)
            _expect(room in ROOMS, sentence)
            return Statement(
                "existence", noun, color=color, room=room, number=number
            )
        _expect(len(w) >= 6 and w[0] == "the", sentence)
        if w[3] in ("is", "are"):
            _expect(len(w) == 7 and w[4:6] == ["in", "the"], sentence)
            plural = w[3] == "are"
            noun = _PLURALS[w[2]].en if plural else NOUNS[w[2]].en
            _expect(w[1] in COLORS and w[6] in ROOMS, sentence)
            return Statement(
                "location", noun, color=w[1], room=w[6], plural=plural
            )
        if w[2] in VERBS:
            _expect(len(w) == 6 and w[1] in ANIMALS, sentence)
            number, color = w[3], w[4]
            _expect(number in NUMBERS and color in COLORS, sentence)
            plural = number != "one"
            obj = _PLURALS[w[5]].en if plural else OBJECTS[w[5]].en
            _expect(obj in OBJECTS, sentence)
            return Statement(
                "count", w[1], color=color, number=number, verb=w[2], obj=obj
            )
        _expect(len(w) == 10 and w[3] in VERBS, sentence)
        _expect(w[4] == "the" and w[7:9] == ["in", "the"], sentence)
        _expect(w[1] in COLORS and w[2] in ANIMALS, sentence)
        _expect(w[5] in COLORS and w[6] in OBJECTS and w[9] in ROOMS, sentence)
        return Statement(
            "action",
            w[2],
            color=w[1],
            room=w[9],
            verb=w[3],
            obj=w[6],
            color2=w[5],
        )
    except (KeyError, IndexError):
        _expect(False, sentence)


def translate_fr(sentence):
    """Translates an English statement into French.

    Arguments
    ---------
    sentence : str
        English statement of the grammar.

    Returns
    -------
    str
        French translation.

    Example
    -------
    >>> translate_fr("the dog sees one green ball")
    'le chien voit une balle verte'
    """
    return parse_statement(sentence).french()


def translate_zh(sentence):
    """Translates an English statement into Chinese.

    Arguments
    ---------
    sentence : str
        English statement of the grammar.

    Returns
    -------
    str
        Chinese translation.

    Example
    -------
    >>> translate_zh("there are three blue cups in the garden")
    '花园里有三个蓝色的杯子'
    """
    return parse_statement(sentence).chinese()


def _unique_statements(rng, count, exclude, what):
    out, seen = [], set(exclude)
    attempts = 0
    limit = 200 * count + 1000
    while len(out) < count:
        attempts += 1
        if attempts > limit:
            raise RuntimeError(
                f"could not draw {count} distinct {what} statements; the "
                "grammar is too small for this profile"
            )
        s = sample_statement(rng)
        text = s.english()
        if text in seen:
            continue
        seen.add(text)
        out.append(s)
    return out


def split_statements(seed, sizes):
    """Draws disjoint sets of distinct statements for train/valid/test.

    The held-out sets are drawn first from their own random streams, so
    they do not depend on the size of the train set.

    Arguments
    ---------
    seed : int
        Random seed.
    sizes : dict
        Number of statements per split, e.g.
        ``{"train": 5000, "valid": 200, "test": 200}``.

    Returns
    -------
    dict
        Split name -> list of ``Statement``.

    Example
    -------
    >>> s = split_statements(0, {"train": 50, "valid": 5, "test": 5})
    >>> a = {x.english() for x in s["train"]}
    >>> a.isdisjoint(x.english() for x in s["test"])
    True
    """
    out, taken = {}, set()
    for split in ("test", "valid", "train"):
        rng = random.Random(f"{seed}-statements-{split}")
        out[split] = _unique_statements(rng, sizes.get(split, 0), taken, split)
        taken.update(s.english() for s in out[split])
    return {split: out[split] for split in SPLITS}


# ---------------------------------------------------------------------------
# Commands (SLU)
# ---------------------------------------------------------------------------

#: Order of the slots in SLU targets.
SLOT_ORDER = ("time", "genre", "animal", "item", "color", "count", "room")

GENRES = ("jazz", "rock", "pop", "classical", "folk", "techno")

#: Spoken minute suffixes of alarm times, with their slot spelling.
_MINUTES = (("", ""), ("fifteen", "fifteen"), ("thirty", "thirty"))

#: Polite prefixes allowed before imperative commands.
COMMAND_PREFIXES = ("", "please ", "can you ", "could you please ")

#: intent -> (imperative templates, other templates). Placeholders:
#: ``<room> <time> <genre> <animal> <count> <color> <items>``.
COMMAND_TEMPLATES = {
    "lights_on": (
        [
            "turn on the lights in the <room>",
            "switch on the <room> lights",
            "turn the <room> lights on",
        ],
        ["i want the lights on in the <room>"],
    ),
    "lights_off": (
        [
            "turn off the lights in the <room>",
            "switch off the <room> lights",
            "turn the <room> lights off",
        ],
        ["i want the lights off in the <room>"],
    ),
    "open_door": (
        [
            "open the <room> door",
            "open the door of the <room>",
            "open the door to the <room>",
        ],
        [],
    ),
    "close_door": (
        [
            "close the <room> door",
            "close the door of the <room>",
            "shut the door to the <room>",
        ],
        [],
    ),
    "open_window": (
        ["open the <room> window", "open the window in the <room>"],
        ["let some air into the <room>"],
    ),
    "close_window": (
        ["close the <room> window", "shut the window in the <room>"],
        ["it is cold in the <room> close the window"],
    ),
    "set_alarm": (
        ["set an alarm for <time>", "wake me up at <time>"],
        ["i need an alarm at <time>"],
    ),
    "play_music": (
        [
            "play some <genre> music",
            "play <genre> music in the <room>",
            "put on some <genre> in the <room>",
        ],
        ["i want to hear <genre> music"],
    ),
    "add_to_list": (
        [
            "add <count> <color> <items> to the shopping list",
            "put <count> <items> on the shopping list",
        ],
        ["we need <count> <color> <items>"],
    ),
    "feed_pet": (
        [
            "feed the <animal>",
            "feed the <animal> in the <room>",
            "give some food to the <animal>",
        ],
        ["the <animal> is hungry"],
    ),
}

INTENTS = tuple(COMMAND_TEMPLATES)


@dataclass(frozen=True)
class Command:
    """A spoken command with its intent and slots.

    Arguments
    ---------
    text : str
        The spoken words.
    intent : str
        The intent name.
    slots : tuple
        ``(name, value)`` pairs in ``SLOT_ORDER``.

    Example
    -------
    >>> Command("feed the cat", "feed_pet", (("animal", "cat"),)).target()
    'intent=feed_pet animal=cat'
    """

    text: str
    intent: str
    slots: tuple

    def target(self):
        """Returns the SLU target string.

        Returns
        -------
        str
            ``"intent=<intent> <slot>=<value> ..."``.

        Example
        -------
        >>> Command("x", "lights_on", (("room", "attic"),)).target()
        'intent=lights_on room=attic'
        """
        parts = [f"intent={self.intent}"]
        parts += [f"{k}={v}" for k, v in self.slots]
        return " ".join(parts)


def _slot_values(name):
    if name == "room":
        return [(r, r) for r in ROOMS]
    if name == "time":
        return [
            (f"{h} {m}".strip(), f"{h}_{v}" if v else h)
            for h in NUMBERS
            for m, v in _MINUTES
        ]
    if name == "genre":
        return [(g, g) for g in GENRES]
    if name == "animal":
        return [(a, a) for a in ANIMALS]
    if name == "color":
        return [(c, c) for c in COLORS]
    if name == "count":
        return [(n, n) for n in NUMBERS]
    if name == "item":
        return [(o, o) for o in OBJECTS]
    raise KeyError(name)


def _expand(template):
    names = [
        n
        for n in SLOT_ORDER
        if f"<{n}>" in template or (n == "item" and "<items>" in template)
    ]
    for combo in itertools.product(*[_slot_values(n) for n in names]):
        slots = dict(zip(names, combo))
        text = template
        for name, (spoken, _) in slots.items():
            if name == "item":
                plural = slots["count"][0] != "one"
                word = OBJECTS[spoken].en_plural if plural else spoken
                text = text.replace("<items>", word)
            else:
                text = text.replace(f"<{name}>", spoken)
        yield text, tuple((n, slots[n][1]) for n in names)


@lru_cache(maxsize=None)
def all_commands():
    """Enumerates every command of the grammar (about 7,000).

    Returns
    -------
    tuple of Command
        All commands, in a fixed order.

    Example
    -------
    >>> cmds = all_commands()
    >>> len({c.text for c in cmds}) == len(cmds)
    True
    """
    out = []
    for intent, (imperative, other) in COMMAND_TEMPLATES.items():
        for template in imperative:
            for prefix in COMMAND_PREFIXES:
                for text, slots in _expand(prefix + template):
                    out.append(Command(text, intent, slots))
        for template in other:
            for text, slots in _expand(template):
                out.append(Command(text, intent, slots))
    return tuple(out)


@lru_cache(maxsize=None)
def _command_index():
    return {c.text: c for c in all_commands()}


def parse_command(text):
    """Looks up a command's intent and slots.

    Arguments
    ---------
    text : str
        The command words.

    Returns
    -------
    Command
        The command.

    Raises
    ------
    ValueError
        If the text is not a command of the grammar.

    Example
    -------
    >>> parse_command("turn on the lights in the kitchen").target()
    'intent=lights_on room=kitchen'
    """
    cmd = _command_index().get(text.strip().lower())
    if cmd is None:
        raise ValueError(
            f"not a command of the toy grammar: {text!r}; expected e.g. "
            "'turn on the lights in the kitchen' or 'set an alarm for seven'"
        )
    return cmd


def split_commands(seed, sizes, max_fraction=0.1):
    """Splits the commands into disjoint train/valid/test sets.

    Each intent's commands are shuffled; the held-out sets take commands
    from the intents in turn (so they are balanced over intents) but never
    more than ``max_fraction`` of an intent's commands per split, so that
    intents with few phrasings keep most of them for training. Valid and
    test hold exactly ``sizes["valid"]`` and ``sizes["test"]`` distinct
    commands; train gets every remaining command (its pool, intents
    interleaved), and the caller draws from it.

    Arguments
    ---------
    seed : int
        Random seed.
    sizes : dict
        Held-out sizes, e.g. ``{"valid": 100, "test": 100}``.
    max_fraction : float
        Largest share of one intent's commands held out per split.

    Returns
    -------
    dict
        Split name -> list of ``Command``.

    Example
    -------
    >>> s = split_commands(0, {"valid": 20, "test": 20})
    >>> len(s["test"]), {c.text for c in s["train"]}.isdisjoint(
    ...     c.text for c in s["test"])
    (20, True)
    """
    rng = random.Random(f"{seed}-commands")
    by_intent = {i: [] for i in INTENTS}
    for c in all_commands():
        by_intent[c.intent].append(c)
    for intent in INTENTS:
        rng.shuffle(by_intent[intent])
    caps = {i: max(1, int(max_fraction * len(by_intent[i]))) for i in INTENTS}
    pos = dict.fromkeys(INTENTS, 0)
    out = {}
    for split in ("test", "valid"):
        n = sizes.get(split, 0)
        used = dict.fromkeys(INTENTS, 0)
        chosen = []
        while len(chosen) < n:
            active = [i for i in INTENTS if used[i] < caps[i]]
            if not active:
                raise ValueError(
                    f"cannot hold out {n} {split} commands with at most "
                    f"{max_fraction:.0%} of each intent; lower the size"
                )
            for intent in active:
                if len(chosen) == n:
                    break
                chosen.append(by_intent[intent][pos[intent]])
                pos[intent] += 1
                used[intent] += 1
        out[split] = chosen
    rest = [by_intent[i][pos[i] :] for i in INTENTS]
    out["train"] = [
        c for group in itertools.zip_longest(*rest) for c in group if c
    ]
    return {split: out[split] for split in SPLITS}


# ---------------------------------------------------------------------------
# Knowledge base of spoken queries
# ---------------------------------------------------------------------------

#: relation -> paraphrases of the question, with ``<x>`` for the subject.
QUERY_TEMPLATES = {
    "sound": [
        "what sound does a <x> make",
        "what does a <x> say",
        "what noise does a <x> make",
        "which sound comes from a <x>",
        "tell me the sound a <x> makes",
        "how does a <x> sound",
    ],
    "legs": [
        "how many legs does a <x> have",
        "how many legs has a <x> got",
        "count the legs of a <x>",
        "what is the number of legs of a <x>",
        "a <x> has how many legs",
        "tell me how many legs a <x> has",
    ],
    "color": [
        "what color is <x>",
        "what is the color of <x>",
        "which color is <x>",
        "tell me the color of <x>",
        "what is the usual color of <x>",
        "<x> is what color",
    ],
    "opposite": [
        "what is the opposite of <x>",
        "what is the antonym of <x>",
        "tell me the opposite of <x>",
        "give me the opposite of <x>",
        "which word means the opposite of <x>",
        "<x> is the opposite of what",
    ],
    "capital": [
        "what is the capital of <x>",
        "which city is the capital of <x>",
        "name the capital of <x>",
        "tell me the capital of <x>",
        "what city is the capital of <x>",
        "the capital of <x> is what",
    ],
}

#: relation -> (subject, answer) facts the toy LM memorises.
FACTS = {
    "sound": [
        ("cow", "moo"),
        ("dog", "woof"),
        ("cat", "meow"),
        ("duck", "quack"),
        ("sheep", "baa"),
        ("pig", "oink"),
        ("owl", "hoot"),
        ("bee", "buzz"),
        ("snake", "hiss"),
        ("lion", "roar"),
        ("horse", "neigh"),
        ("frog", "croak"),
        ("mouse", "squeak"),
        ("crow", "caw"),
    ],
    "legs": [
        ("bird", "two"),
        ("dog", "four"),
        ("spider", "eight"),
        ("ant", "six"),
        ("fish", "zero"),
        ("snake", "zero"),
        ("horse", "four"),
        ("chicken", "two"),
        ("bee", "six"),
        ("crab", "ten"),
        ("duck", "two"),
        ("cow", "four"),
    ],
    "color": [
        ("grass", "green"),
        ("the sky", "blue"),
        ("snow", "white"),
        ("the sun", "yellow"),
        ("coal", "black"),
        ("a banana", "yellow"),
        ("a tomato", "red"),
        ("milk", "white"),
        ("a leaf", "green"),
        ("blood", "red"),
        ("chocolate", "brown"),
        ("the sea", "blue"),
        ("a carrot", "orange"),
        ("a lemon", "yellow"),
    ],
    "opposite": [
        ("hot", "cold"),
        ("big", "small"),
        ("up", "down"),
        ("day", "night"),
        ("left", "right"),
        ("fast", "slow"),
        ("open", "closed"),
        ("old", "new"),
        ("wet", "dry"),
        ("happy", "sad"),
        ("light", "dark"),
        ("full", "empty"),
    ],
    "capital": [
        ("france", "paris"),
        ("japan", "tokyo"),
        ("italy", "rome"),
        ("spain", "madrid"),
        ("germany", "berlin"),
        ("england", "london"),
        ("china", "beijing"),
        ("egypt", "cairo"),
        ("russia", "moscow"),
        ("greece", "athens"),
    ],
}


@dataclass(frozen=True)
class Query:
    """A spoken query about the knowledge base.

    Arguments
    ---------
    text : str
        The spoken question (lowercase, no punctuation).
    answer : str
        The short answer.
    relation : str
        The relation (a key of ``FACTS``).
    subject : str
        The subject of the fact.
    paraphrase : int
        Index of the paraphrase in ``QUERY_TEMPLATES[relation]``.

    Example
    -------
    >>> all_queries()[0].text, all_queries()[0].answer
    ('what sound does a cow make', 'moo')
    """

    text: str
    answer: str
    relation: str
    subject: str
    paraphrase: int


@lru_cache(maxsize=None)
def all_queries():
    """Enumerates every (paraphrase, fact) query.

    Returns
    -------
    tuple of Query
        The queries, fact by fact.

    Example
    -------
    >>> len(all_queries()) == sum(
    ...     len(FACTS[r]) * len(QUERY_TEMPLATES[r]) for r in FACTS)
    True
    """
    out = []
    for relation, facts in FACTS.items():
        for subject, answer in facts:
            article = "an" if subject[0] in "aeiou" else "a"
            for i, template in enumerate(QUERY_TEMPLATES[relation]):
                text = template.replace("a <x>", f"{article} <x>")
                text = text.replace("<x>", subject)
                out.append(Query(text, answer, relation, subject, i))
    return tuple(out)


def split_queries(seed):
    """Holds out one (paraphrase, fact) combination per fact for each of
    valid and test; train keeps the fact's other paraphrases.

    The held-out paraphrase rotates over the facts of a relation, so every
    paraphrase and every fact also appears in train.

    Arguments
    ---------
    seed : int
        Random seed (chooses the rotation offsets).

    Returns
    -------
    dict
        Split name -> list of ``Query``.

    Example
    -------
    >>> s = split_queries(0)
    >>> len(s["test"]) == sum(len(f) for f in FACTS.values())
    True
    """
    rng = random.Random(f"{seed}-queries")
    out = {split: [] for split in SPLITS}
    for relation, facts in FACTS.items():
        n_para = len(QUERY_TEMPLATES[relation])
        offset = rng.randrange(n_para)
        for i, (subject, _) in enumerate(facts):
            test_p = (offset + i) % n_para
            valid_p = (offset + i + 1) % n_para
            for q in all_queries():
                if q.relation != relation or q.subject != subject:
                    continue
                if q.paraphrase == test_p:
                    out["test"].append(q)
                elif q.paraphrase == valid_p:
                    out["valid"].append(q)
                else:
                    out["train"].append(q)
    return out


def lexicon_strings():
    """Returns every word form of the lexicon in all three languages.

    Used for the tokenizer corpus, so that any held-out sentence can be
    tokenized.

    Returns
    -------
    list of str
        One string per line, e.g. ``"cat cats chat chats 猫 只"``.

    Example
    -------
    >>> any("chèvres" in s for s in lexicon_strings())
    True
    """
    lines = []
    for c, (fm, ff, zh) in COLORS.items():
        lines.append(f"{c} {fm} {ff} {fm}s {ff}s {zh}")
    for n in NOUNS.values():
        lines.append(
            f"{n.en} {n.en_plural} {n.fr} {n.fr_plural} {n.zh} {n.measure}"
        )
    for r, (fr, g, zh) in ROOMS.items():
        lines.append(f"{r} dans {_fr_article(g, False)} {fr} 在{zh}里 {zh}里有")
    for n, (fm, ff, zh) in NUMBERS.items():
        lines.append(f"{n} {fm} {ff} {zh}")
    for v, (base, fr, zh) in VERBS.items():
        lines.append(f"{v} {base} {fr} {zh}")
    lines.append("le la les il y a est sont dans 的 在 里 有")
    return lines
